import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CITATION = re.compile(r"\]\(\.\./(src/[\w/]+\.py)#L(\d+)\) `([^`]+)`")


def citations():
    text = (ROOT / "docs" / "derivation.md").read_text()
    found = CITATION.findall(text)
    assert len(found) >= 20
    return found


@pytest.mark.parametrize("path,line,code", citations())
def test_derivation_cites_the_line_that_holds_the_code(path, line, code):
    lines = (ROOT / path).read_text().splitlines()
    actual = lines[int(line) - 1]
    where = [i + 1 for i, text in enumerate(lines) if code in text]
    assert code in actual, f"{path}:{line} is {actual.strip()!r}; the code is on lines {where}"
