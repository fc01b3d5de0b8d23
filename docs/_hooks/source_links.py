"""MkDocs hook: links from a page to the source tree (``../src/...``) leave the site alone.

``docs/derivation.md`` cites code as ``[forward.py#L52](../src/fastmlp/_kernels/forward.py#L52)``:
a working link when the page is read in the repository, but outside the documentation files
for MkDocs (``mkdocs build --strict`` rejects it). With ``repo_url`` set in ``mkdocs.yml`` such
links point to the file in the repository; without it they become plain text.
"""

import re

_SOURCE_LINK = re.compile(r"\[([^\]]+)\]\(\.\./((?:src|tests|benchmarks)/[^)\s#]+)(#L\d+)?\)")


def on_page_markdown(markdown, page, config, files):
    """Rewrite ``[text](../src/...)`` links before MkDocs validates them."""
    repo_url = (config.get("repo_url") or "").rstrip("/")
    branch = (config.get("extra") or {}).get("source_branch", "main")

    def rewrite(match):
        text, path, line = match.group(1), match.group(2), match.group(3) or ""
        if repo_url:
            return f"[{text}]({repo_url}/blob/{branch}/{path}{line})"
        return text

    return _SOURCE_LINK.sub(rewrite, markdown)
