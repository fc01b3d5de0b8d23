"""Every fenced shell and Python block of README.md and docs/*.md runs as a reader runs it.

Each page runs in a fresh temporary folder, its blocks in page order, so a later block can
use the files an earlier one made. A block that fails fails the page's test, naming the
page, the line and the command.

The rules, in one place:

- Blocks: ```` ```sh ````, ```` ```bash ```` and ```` ```console ```` (``$ `` lines are the
  commands, the other lines their output) run in ``bash``, one command per line (``\\``
  continues a line); each command must exit with status 0. ```` ```python ```` blocks run
  in one namespace per page, in this process, as if pasted one after the other into
  ``python``; a block must raise nothing and issue no warning that ``python`` would show.
  ```` ```text ```` blocks are not run. A fence of any other language (or none) fails the
  test: it could hold a command nobody checks.
- Output: a ```` ```text ```` block that follows a runnable block with only blank lines
  between is that block's output (stdout and stderr together, as a terminal shows them)
  and is compared with it, after the normalisations of ``TIMINGS`` (seconds and rates,
  which vary from run to run) are applied to both. In the page, a line ``...`` stands for
  any number of lines, and ``...`` within a line for any text. Every other number is
  compared as printed: the examples are seeded, so the same code prints the same numbers.
- Not run, with the reason in the page: a block preceded by
  ``<!-- docs-test: skip (the reason) -->`` (only blank lines between). See ``SKIP_MARKER``.
- Not run, with the reason here: the installer commands of ``INSTALLERS`` (this test runs
  where fastmlp and its test extra are installed already). In a shell block each is a
  no-op that succeeds, so ``pip install . && fastmlp train`` runs ``fastmlp train``.
- Fashion-MNIST: blocks (Python) and command lines (shell) that mention ``fashion`` need the
  Debian package's files in ``FASHION_DIR``. Without them they are not run, and once the
  rest of the page has run the test skips, listing them. ``FASHION_MNIST_DIR`` is unset
  for the blocks, so they read the folder the pages name.
- Pages whose blocks need Fashion-MNIST train on 60 000 images: marked ``slow``.
"""

import contextlib
import io
import os
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FASHION_DIR = "/usr/share/datasets/fashion-mnist"
HAVE_FASHION = os.path.isdir(FASHION_DIR)

SHELL = {"sh", "bash", "console"}
RUN = SHELL | {"python"}
NOT_RUN = {"text"}

#: Shell commands never run: (the command's first words, why). Each becomes a shell function
#: that does nothing and succeeds; what it was asked to do is logged for the test's report.
INSTALLERS = [
    ("pip install", "installs software: fastmlp and its extras are installed where this runs"),
    ("apt-get", "installs system packages (root, network); the Fashion-MNIST blocks skip "
                "when its package is not installed"),
    ("mkdocs serve", "a web server that runs until stopped; CI builds the site instead "
                     "(mkdocs build --strict)"),
]

#: ``<!-- docs-test: skip (reason) -->`` on the lines before a fence: that block is not run.
SKIP_MARKER = re.compile(r"<!--\s*docs-test:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->")
ANY_MARKER = re.compile(r"<!--\s*docs-test\b")

#: Normalisations applied to expected and actual output alike: (pattern, replacement, what).
TIMINGS = [
    # `fastmlp train` epoch rows: epoch, loss, accuracy, val loss, val accuracy, then the
    # epoch's seconds and samples per second
    (re.compile(r"^(\s*\d+(?:\s+\d+\.\d{4}){4})\s+\d+\.\d{3}\s+\d+$", re.M),
     r"\1  <seconds>  <samples/s>", "seconds and samples/s of an epoch row"),
    # its closing summary: `30 epochs in 0.40 s  106931 samples/s`
    (re.compile(r"\b(\d+ epochs? in )\d+\.\d+ s  \d+ samples/s"),
     r"\1<seconds> s  <samples/s> samples/s", "seconds and samples/s of the summary"),
]

FENCE = re.compile(r"^```(?P<lang>[^\s`]*)[^\n]*\n(?P<code>.*?)^```[ \t]*$", re.M | re.S)


@dataclass
class Block:
    page: str  # path relative to the repository
    line: int  # of the opening fence
    lang: str
    code: str
    skip: str | None = None  # the page's reason for not running it
    expected: str | None = None  # the output the page shows for it

    def where(self):
        return f"{self.page}:{self.line} ({self.lang})"


def parse(path):
    """The fenced blocks of a page, with their skip markers and shown outputs."""
    text = path.read_text()
    page = str(path.relative_to(ROOT))
    blocks, end, previous = [], 0, None
    for match in FENCE.finditer(text):
        lang = match["lang"]
        line = text.count("\n", 0, match.start()) + 1
        if lang not in RUN | NOT_RUN:
            raise AssertionError(f"{page}:{line}: a ```{lang} block: this test runs "
                                 f"{sorted(RUN)} and shows {sorted(NOT_RUN)}; give the "
                                 "fence one of those languages")
        between = text[end:match.start()]
        markers = ANY_MARKER.findall(between)
        skip = None
        if markers:
            tail = between.rstrip().splitlines()[-1] if between.strip() else ""
            found = SKIP_MARKER.fullmatch(tail.strip())
            if len(markers) > 1 or found is None or lang not in RUN:
                raise AssertionError(f"{page}:{line}: a docs-test marker must be "
                                     "`<!-- docs-test: skip (reason) -->`, alone on the line "
                                     "just before a runnable block")
            skip = found["reason"].strip()
        if lang == "text" and previous is not None and not between.strip():
            previous.expected = match["code"]
            previous = None
        elif lang in RUN:
            block = Block(page, line, lang, match["code"], skip)
            blocks.append(block)
            previous = block
        else:
            previous = None
        end = match.end()
    stray = ANY_MARKER.findall(text[end:])
    assert not stray, f"{page}: a docs-test marker after the last block"
    return blocks


def needs_fashion(text):
    return "fashion" in text.lower()


def is_slow(path):
    return any(needs_fashion(b.code) and not b.skip for b in parse(path))


def page_params():
    for path in PAGES:
        if parse(path):
            marks = [pytest.mark.slow] if is_slow(path) else []
            yield pytest.param(path, id=str(path.relative_to(ROOT)), marks=marks)


# -- comparing output ----------------------------------------------------------------------------
def normalise(text):
    for pattern, replacement, _ in TIMINGS:
        text = pattern.sub(replacement, text)
    lines = [line.rstrip() for line in text.strip("\n").splitlines()]
    return "\n".join(lines) + "\n"


def expected_pattern(expected):
    parts = []
    for line in normalise(expected).splitlines():
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(r".*?".join(map(re.escape, line.split("..."))) + r"\n")
    return re.compile("".join(parts))


def check_output(block, actual):
    if block.expected is None:
        return
    if expected_pattern(block.expected).fullmatch(normalise(actual)) is None:
        pytest.fail(f"{block.where()}: the output differs from the page's.\n"
                    f"--- the page shows:\n{block.expected}\n"
                    f"--- the block printed:\n{actual}\n"
                    "(timings are normalised by TIMINGS in tests/test_docs_blocks.py; "
                    "'...' in the page matches anything)", pytrace=False)


# -- running shell blocks ------------------------------------------------------------------------
def shell_prelude(log):
    """Bash functions that stand in for the installers of INSTALLERS."""
    functions = {}
    for command, _ in INSTALLERS:
        name, *sub = command.split()
        functions.setdefault(name, []).append(sub[0] if sub else None)
    prelude = []
    for name, subs in functions.items():
        if None in subs:
            body = f'echo "{name} $*" >> {log}'
        else:
            cases = "|".join(subs)
            body = (f'case "$1" in {cases}) echo "{name} $*" >> {log};; '
                    f'*) command {name} "$@";; esac')
        prelude.append(f"{name}() {{ {body}; }}")
    return "\n".join(prelude) + "\n"


def shell_commands(block):
    """``(line number, command, expected output or None)`` for each command of the block."""
    commands, pending, first = [], "", None
    lines = block.code.splitlines()
    if block.lang == "console":
        for i, line in enumerate(lines):
            if line.startswith("$ "):
                commands.append([block.line + 1 + i, line[2:], None])
            elif commands:
                commands[-1][2] = (commands[-1][2] or "") + line + "\n"
            elif line.strip():
                raise AssertionError(f"{block.where()}: output before the first `$ ` command")
        return commands
    for i, line in enumerate(lines):
        if first is None:
            first = block.line + 1 + i
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        command = (pending + line).strip()
        pending = ""
        if command and not command.startswith("#"):
            commands.append([first, command, None])
        first = None
    assert not pending, f"{block.where()}: the last line ends with a backslash"
    return commands


def run_shell(block, folder, env, not_run):
    """Run the block's commands in one bash process; stop at the first that fails."""
    commands = shell_commands(block)
    expected = "".join(c[2] for c in commands if c[2] is not None) or None
    if block.lang == "console" and expected is not None:
        if block.expected is not None:
            raise AssertionError(f"{block.where()}: output both in the block and after it")
        block.expected = expected
    log = folder / ".docs-test-not-run"
    script = [shell_prelude(log)]
    skipped = []
    for line, command, _ in commands:
        if needs_fashion(command) and not HAVE_FASHION:
            skipped.append(f"{block.page}:{line}: {command}")
            continue
        script.append(f"{command}\n__status=$?\nif [ $__status -ne 0 ]; then echo "
                      f"'docs-test: {block.page}:{line} exited with status '$__status >&2; "
                      "exit $__status; fi\n")
    not_run.extend(skipped)
    result = subprocess.run(["bash", "-c", "".join(script)], cwd=folder, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    if result.returncode != 0:
        pytest.fail(f"{block.where()} failed (status {result.returncode}):\n{block.code}\n"
                    f"--- output:\n{result.stdout[-4000:]}", pytrace=False)
    if skipped:
        return  # part of the block did not run: its output cannot be the page's
    check_output(block, result.stdout)


# -- running Python blocks -----------------------------------------------------------------------
def run_python(block, namespace):
    """exec the block in the page's namespace, with stdout and stderr captured together."""
    # The line numbers of a traceback are the page's.
    code = compile("\n" * block.line + block.code, block.page, "exec")
    out = io.StringIO()
    with warnings.catch_warnings(record=True) as caught:
        # python's default filters: what a reader running the example would see
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("always", category=DeprecationWarning, module="__main__")
        for category in (PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.filterwarnings("ignore", category=category)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            exec(code, namespace)
    if caught:
        shown = "\n".join(f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}"
                          for w in caught)
        pytest.fail(f"{block.where()}: the example warns; a reader sees\n{shown}\n"
                    "Make it not warn (the page's text would have to explain the warning).",
                    pytrace=False)
    check_output(block, out.getvalue())


# -- the test ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", list(page_params()))
def test_page_blocks_run(path, tmp_path, monkeypatch):
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    bin_dir = os.path.dirname(sys.executable)  # this environment's python and fastmlp
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""),
               PYTHONUNBUFFERED="1")  # stdout and stderr in the order they were written
    env.pop("FASHION_MNIST_DIR", None)
    namespace = {"__name__": "__main__"}
    not_run = []
    for block in parse(path):
        if block.skip:
            continue  # the page says why
        if block.lang in SHELL:
            run_shell(block, tmp_path, env, not_run)
        elif needs_fashion(block.code) and not HAVE_FASHION:
            not_run.append(f"{block.where()}")
        else:
            run_python(block, namespace)
    log = tmp_path / ".docs-test-not-run"
    if log.exists():
        print("installer commands not run (INSTALLERS):", log.read_text(), sep="\n")
    if not_run:
        pytest.skip(f"Fashion-MNIST is not installed in {FASHION_DIR} (apt-get install "
                    f"dataset-fashion-mnist); the rest of the page ran, these did not: "
                    + "; ".join(not_run))


# -- the rules themselves ------------------------------------------------------------------------
def test_every_page_is_covered():
    # README.md and every page of the site; a page without runnable blocks is fine
    assert {p.name for p in PAGES} >= {"README.md", "index.md", "quickstart.md", "cli.md"}
    for path in PAGES:
        parse(path)  # raises on an unknown fence language or a malformed marker


def test_skipped_blocks_say_why():
    skipped = [b for path in PAGES for b in parse(path) if b.skip]
    for block in skipped:
        assert len(block.skip) >= 10, f"{block.where()}: skip reason {block.skip!r}"


def test_output_comparison_rules():
    block = Block("page.md", 1, "sh", "", expected=(
        "epoch      loss  accuracy  test_loss   test_acc   seconds   samples/s\n"
        "    1    2.2290    0.1915     2.2980     0.1956     0.344        3910\n"
        "  ...\n"
        "test accuracy 0.9622  test loss 0.1415  30 epochs in 0.40 s  106931 samples/s\n"
        "{'loss': 0.14..., 'accuracy': 0.96...}\n"))
    good = ("epoch      loss  accuracy  test_loss   test_acc   seconds   samples/s\n"
            "    1    2.2290    0.1915     2.2980     0.1956    12.001          39\n"
            "    2    1.7530    0.5746     1.6037     0.3556     0.001     1536799\n"
            "test accuracy 0.9622  test loss 0.1415  30 epochs in 13.01 s  99 samples/s\n"
            "{'loss': 0.1415, 'accuracy': 0.9622}\n")
    check_output(block, good)
    for wrong in (good.replace("0.1915", "0.1916"), good.replace("0.9622  test", "0.9600  test"),
                  good.replace("'loss': 0.14", "'loss': 0.15"), good + "extra line\n"):
        with pytest.raises(pytest.fail.Exception):
            check_output(block, wrong)


def test_a_failing_block_fails(tmp_path):
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep
               + os.environ.get("PATH", ""))
    with pytest.raises(pytest.fail.Exception, match="status 2"):
        run_shell(Block("page.md", 1, "sh", "fastmlp train --epochs 0\n"), tmp_path, env, [])
    # the first failing command stops the block, wherever it is
    with pytest.raises(pytest.fail.Exception, match="page.md:3 exited with status 1"):
        run_shell(Block("page.md", 1, "sh", "echo one\nfalse && echo two\necho three\n"),
                  tmp_path, env, [])
    # an installer is a no-op, and what follows it on the line runs
    ok = Block("page.md", 1, "sh", "pip install nothing-at-all && echo ran\n", expected="ran\n")
    run_shell(ok, tmp_path, env, [])
    assert (tmp_path / ".docs-test-not-run").read_text() == "pip install nothing-at-all\n"
    # a console block: `$ ` lines are run, the lines after them are their output
    run_shell(Block("page.md", 1, "console", "$ echo one\none\n$ echo two >&2\ntwo\n"),
              tmp_path, env, [])
    with pytest.raises(pytest.fail.Exception, match="differs"):
        run_shell(Block("page.md", 1, "console", "$ echo one\ntwo\n"), tmp_path, env, [])
    with pytest.raises(ZeroDivisionError):
        run_python(Block("page.md", 1, "python", "1 / 0\n"), {})
    with pytest.raises(pytest.fail.Exception, match="UserWarning: shown to the reader"):
        run_python(Block("page.md", 1, "python",
                         "import warnings\nwarnings.warn('shown to the reader')\n"), {})
