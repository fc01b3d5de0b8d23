"""Every fenced shell and Python block of README.md and docs/*.md runs as a reader runs it.

Each page runs in a fresh temporary folder, its blocks in page order, so a later block can
use the files an earlier one made. A block that fails fails the page's test, naming the
page, the line and the command.

The rules, in one place:

- Blocks: ```` ```sh ````, ```` ```bash ```` and ```` ```console ```` (``$ `` lines are the
  commands, the other lines their output) run in ``bash``, one command per line (``\\``
  continues a line); each command must exit with status 0. ```` ```python ```` blocks run
  in one namespace per page, in a fresh ``python`` process of the page's own, as if pasted
  one after the other into ``python``; a block must raise nothing and issue no warning that
  ``python`` would show. ```` ```text ```` blocks are not run. A fence of any other language
  (or none) fails the test: it could hold a command nobody checks.
- Scripts: a ```` ```python ```` block whose first line is ``# NAME.py`` is a script. It is
  saved as ``NAME.py`` in the page's folder, where the block stands, and runs when a later
  shell block of the page runs ``python NAME.py``, as a reader runs it: so a script that
  starts processes without ``if __name__ == "__main__":`` fails here as it fails for them.
  A page must run each of its scripts, and a block that starts processes (a Dask
  ``LocalCluster``, ``multiprocessing``) must be a script.
- Each page runs in a fresh folder of its own, so a block can use only the files that its
  own page made. ``fastmlp`` on the ``PATH`` runs the tree under test.
- Extras: each block sees only the optional extras that the page's ``pip install`` lines
  before it name (``pip install ".[tables,onnx]"``: pyarrow, skl2onnx and onnxruntime), as
  in a fresh environment. The other extras' modules (``EXTRA_MODULES``) are hidden by an
  import hook, in the page's ``python`` and in every process its blocks start (a
  ``sitecustomize`` on ``PYTHONPATH``): importing one fails as if it were not installed.
- Imports: a Python block imports every module it uses (``np``, ``pa``, ...) itself, even
  when an earlier block of the page did, so that it runs alone.
- Leftovers: every file that a page leaves in its folder is covered by the repository's
  ``.gitignore`` (a reader runs the pages in the checkout), and two pages that leave a file
  of the same name leave the same bytes (pictures aside), or running one page after the
  other in one folder could break the second.
- Output: a ```` ```text ```` block that follows a runnable block with only blank lines
  between is that block's output (stdout and stderr together, as a terminal shows them)
  and is compared with it, after the normalisations of ``TIMINGS`` (seconds and rates,
  which vary from run to run) are applied to both. In the page, a line ``...`` stands for
  any number of lines, and ``...`` within a line for any text. Every other number is
  compared as printed: the examples are seeded, so the same code prints the same numbers.
- Not run, with the reason in the page: a block preceded by
  ``<!-- docs-test: skip (the reason) -->`` (only blank lines between). See ``SKIP_MARKER``.
- Not run, with the reason here: the installer commands of ``INSTALLERS`` (this test runs
  where fastmlp and its test extra are installed already; the extras a page names are
  unhidden instead). In a shell block each is a no-op that succeeds, so
  ``pip install . && fastmlp train`` runs ``fastmlp train``.
- Fashion-MNIST: blocks (Python) and command lines (shell) that mention ``fashion`` need the
  Debian package's files in ``FASHION_DIR``. Without them they are not run, and once the
  rest of the page has run the test skips, listing them. ``FASHION_MNIST_DIR`` is unset
  for the blocks, so they read the folder the pages name.
- Pages whose blocks need Fashion-MNIST train on 60 000 images: marked ``slow``.
"""

import ast
import builtins
import hashlib
import json
import os
import re
import subprocess
import sys
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

#: The modules of each optional extra of pyproject.toml, hidden from a page that does not
#: install the extra (``test`` brings the others and pandas).
EXTRA_MODULES = {
    "plot": {"matplotlib"},
    "tables": {"pyarrow"},
    "onnx": {"skl2onnx", "onnxruntime", "onnx", "onnxconverter_common"},
    "dask": {"dask", "distributed", "zarr", "numcodecs"},
}
EXTRA_MODULES["test"] = set().union(*EXTRA_MODULES.values(), {"pandas"})
ALL_EXTRA_MODULES = set().union(*EXTRA_MODULES.values())
#: ``pip install ".[tables,onnx]"`` (or ``.[plot]``, unquoted): the extras it names.
INSTALL_EXTRAS = re.compile(r"""pip install +["']?\.\[(?P<extras>[\w,-]+)\]""")

#: A script block's first line names its file: ``# dask_fit.py``.
SCRIPT_NAME = re.compile(r"#\s*(?P<name>[\w.-]+\.py)\s*$")
#: What starts processes that import the main module: such a block must be a script.
STARTS_PROCESSES = re.compile(r"\b(LocalCluster|multiprocessing|ProcessPoolExecutor)\b")

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
    script: str | None = None  # a script block's file name (its first line: `# NAME.py`)

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
            if lang == "python":
                first = SCRIPT_NAME.fullmatch(match["code"].partition("\n")[0])
                block.script = first["name"] if first else None
                if block.script is None and STARTS_PROCESSES.search(match["code"]):
                    raise AssertionError(
                        f"{page}:{line}: the block starts processes, which import the main "
                        "module: make it a script (first line `# NAME.py`, its work under "
                        "`if __name__ == \"__main__\":`) that the page runs with `python "
                        "NAME.py`")
            blocks.append(block)
            previous = block
        else:
            previous = None
        end = match.end()
    stray = ANY_MARKER.findall(text[end:])
    assert not stray, f"{page}: a docs-test marker after the last block"
    for i, block in enumerate(blocks):
        if block.script and not any(
                b.lang in SHELL and re.search(rf"\bpython3? +{re.escape(block.script)}\b",
                                              b.code) for b in blocks[i + 1:]):
            raise AssertionError(f"{block.where()}: the script {block.script} is never run: "
                                 f"show `python {block.script}` in a shell block after it")
    return blocks


def installed_extras(block):
    """The extras that the ``pip install`` lines of a (shell) block name."""
    if block.lang not in SHELL or block.skip:
        return set()
    found = set()
    for match in INSTALL_EXTRAS.finditer(block.code):
        found.update(match["extras"].split(","))
    return found


def hidden_modules(extras):
    """The modules of the extras not in ``extras``: what a fresh environment lacks."""
    return ALL_EXTRA_MODULES - set().union(*(EXTRA_MODULES.get(e, set()) for e in extras))


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


def run_shell(block, folder, env, not_run, hidden=frozenset()):
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
    env = dict(env, FASTMLP_DOCS_TEST_HIDE=",".join(sorted(hidden)))
    result = subprocess.run(["bash", "-c", "".join(script)], cwd=folder, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    if result.returncode != 0:
        pytest.fail(f"{block.where()} failed (status {result.returncode}):\n{block.code}\n"
                    f"--- output:\n{result.stdout[-4000:]}", pytrace=False)
    if skipped:
        return  # part of the block did not run: its output cannot be the page's
    check_output(block, result.stdout)


# -- running Python blocks -----------------------------------------------------------------------
#: Put first on ``PYTHONPATH`` for every process of a page: hides the extras the page lacks.
SITECUSTOMIZE = """\
import importlib.abc
import importlib.machinery
import os
import sys

HIDDEN = set(filter(None, os.environ.get("FASTMLP_DOCS_TEST_HIDE", "").split(",")))


class Absent(importlib.abc.Loader):
    # Importing the module fails as in an environment without it. Failing here, not in
    # find_spec, leaves importlib.util.find_spec working for code that only asks (PyTorch,
    # which `fastmlp bench` runs when it is installed, asks for pandas and others at import).
    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r}", name=spec.name)

    def exec_module(self, module):
        pass


class HideExtras:
    # A module of an extra that the page does not install is not found, as in a fresh
    # environment (tests/test_docs_blocks.py).
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            return importlib.machinery.ModuleSpec(name, Absent())
        return None


sys.meta_path.insert(0, HideExtras)
"""

#: The page's ``python``: reads blocks (one JSON line each) on stdin, runs them in one
#: namespace, answers on the file descriptor argv[1]; its output is the page's terminal.
RUNNER = """\
import json
import os
import sys
import traceback
import warnings

import sitecustomize

answers = os.fdopen(int(sys.argv[1]), "w")
namespace = {"__name__": "__main__", "__builtins__": __builtins__}
for line in sys.stdin:
    block = json.loads(line)
    sitecustomize.HIDDEN.clear()
    sitecustomize.HIDDEN.update(block["hidden"])
    error = None
    with warnings.catch_warnings(record=True) as caught:
        # python's default filters: what a reader running the example would see
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("always", category=DeprecationWarning, module="__main__")
        for category in (PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.filterwarnings("ignore", category=category)
        try:
            # The line numbers of a traceback are the page's.
            exec(compile("\\n" * block["line"] + block["code"], block["page"], "exec"),
                 namespace)
        except BaseException:
            error = traceback.format_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    shown = [f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}" for w in caught]
    answers.write(json.dumps({"error": error, "warnings": shown}) + "\\n")
    answers.flush()
"""


@pytest.fixture(scope="session")
def shim(tmp_path_factory):
    """``(PYTHONPATH entry, bin folder)``: the sitecustomize and runner, and a ``fastmlp``
    that runs the tree under test with this test's ``python``."""
    root = tmp_path_factory.mktemp("docs-shim")
    (root / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (root / "docs_runner.py").write_text(RUNNER)
    bin_dir = root / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "fastmlp"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m fastmlp "$@"\n')
    wrapper.chmod(0o755)
    return root, bin_dir


def page_env(shim):
    """The environment of a page's processes: the shim first, this tree's fastmlp on PATH."""
    root, bin_dir = shim
    python_path = [str(root), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(python_path),
               PATH=os.pathsep.join([str(bin_dir), os.path.dirname(sys.executable),
                                     os.environ.get("PATH", "")]),
               PYTHONUNBUFFERED="1")  # stdout and stderr in the order they were written
    env.pop("FASHION_MNIST_DIR", None)
    return env


class PageRunner:
    """The page's own ``python`` process, into which its blocks are pasted one by one."""

    def __init__(self, shim, folder, env):
        self.folder = folder
        self.log = open(folder / ".docs-test-python-output", "w+b")
        read, write = os.pipe()
        self.process = subprocess.Popen(
            [sys.executable, str(shim[0] / "docs_runner.py"), str(write)], cwd=folder,
            env=env, stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT,
            pass_fds=[write], text=True)
        os.close(write)
        self.answers = os.fdopen(read)

    def run(self, block, hidden):
        start = self.log.seek(0, os.SEEK_END)
        self.process.stdin.write(json.dumps({"code": block.code, "line": block.line,
                                             "page": block.page,
                                             "hidden": sorted(hidden)}) + "\n")
        self.process.stdin.flush()
        line = self.answers.readline()
        self.log.seek(start)
        output = self.log.read().decode(errors="replace")
        if not line:
            pytest.fail(f"{block.where()}: python exited (status {self.process.wait()}):\n"
                        f"{output[-4000:]}", pytrace=False)
        return json.loads(line), output

    def close(self):
        self.process.stdin.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.answers.close()
        self.log.close()
        os.unlink(self.folder / ".docs-test-python-output")


def run_python(block, runner, hidden=frozenset()):
    """Paste the block into the page's python; fail on an exception or a shown warning."""
    answer, output = runner.run(block, hidden)
    if answer["error"]:
        pytest.fail(f"{block.where()} raised:\n{answer['error']}\n--- output:\n"
                    f"{output[-4000:]}", pytrace=False)
    if answer["warnings"]:
        shown = "\n".join(answer["warnings"])
        pytest.fail(f"{block.where()}: the example warns; a reader sees\n{shown}\n"
                    "Make it not warn (the page's text would have to explain the warning).",
                    pytrace=False)
    check_output(block, output)


def save_script(block, folder):
    """A script block: the reader saves it as its file, where the page shows it."""
    (folder / block.script).write_text(block.code)


# -- the test ------------------------------------------------------------------------------------
#: File name -> (page, digest) of what each page left behind, to find two pages that clash.
LEFT_BEHIND = {}


def leftovers(folder):
    """The files and folders a page left at the top of its folder (the test's own excluded)."""
    return sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir()
                  if not p.name.startswith(".docs-test"))


def digest(path):
    if path.is_dir():
        parts = sorted(p for p in path.rglob("*") if p.is_file())
        return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes()
                                       for p in parts)).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_leftovers(page, folder):
    """What the page leaves is ignored by git, and no other page leaves other bytes so named."""
    left = leftovers(folder)
    if not left:
        return
    result = subprocess.run(["git", "check-ignore", "--no-index", "--verbose",
                             "--non-matching", "--stdin"], cwd=ROOT, text=True,
                            input="\n".join(left) + "\n", capture_output=True)
    tracked = [line.split("\t")[-1] for line in result.stdout.splitlines()
               if line.startswith("::")]
    assert not tracked, (f"{page} leaves {tracked} in the checkout of a reader who runs it "
                         "there; add them to .gitignore")
    for name in left:
        if name.endswith(".png"):
            continue  # a picture is only looked at: no later command reads it back
        mine = digest(folder / name.rstrip("/"))
        other = LEFT_BEHIND.setdefault(name, (page, mine))
        assert other[0] == page or other[1] == mine, (
            f"{page} and {other[0]} both write {name}, with different contents: a reader who "
            "runs one page after the other in one folder gets the second page's file")


@pytest.mark.parametrize("path", list(page_params()))
def test_page_blocks_run(path, tmp_path, monkeypatch, shim):
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    folder = tmp_path / "page"  # fresh, and nothing in it but what the page makes
    folder.mkdir()
    env = page_env(shim)
    not_run = []
    extras = set()
    runner = None
    try:
        for block in parse(path):
            if block.skip:
                continue  # the page says why
            extras |= installed_extras(block)
            hidden = hidden_modules(extras)
            if block.lang in SHELL:
                run_shell(block, folder, env, not_run, hidden)
            elif block.script:
                save_script(block, folder)
            elif needs_fashion(block.code) and not HAVE_FASHION:
                not_run.append(f"{block.where()}")
            else:
                if runner is None:
                    runner = PageRunner(shim, folder, dict(
                        env, FASTMLP_DOCS_TEST_HIDE=",".join(sorted(hidden))))
                run_python(block, runner, hidden)
    finally:
        if runner is not None:
            runner.close()
    log = folder / ".docs-test-not-run"
    if log.exists():
        print("installer commands not run (INSTALLERS):", log.read_text(), sep="\n")
    if not_run:
        pytest.skip(f"Fashion-MNIST is not installed in {FASHION_DIR} (apt-get install "
                    f"dataset-fashion-mnist); the rest of the page ran, these did not: "
                    + "; ".join(not_run))
    check_leftovers(str(path.relative_to(ROOT)), folder)


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


def test_a_failing_block_fails(tmp_path, shim):
    env = page_env(shim)
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
    runner = PageRunner(shim, tmp_path, env)
    try:
        with pytest.raises(pytest.fail.Exception, match="ZeroDivisionError"):
            run_python(Block("page.md", 1, "python", "1 / 0\n"), runner)
        with pytest.raises(pytest.fail.Exception, match="UserWarning: shown to the reader"):
            run_python(Block("page.md", 1, "python",
                             "import warnings\nwarnings.warn('shown to the reader')\n"), runner)
        # one namespace per page, as in one python session; output compared as shown
        run_python(Block("page.md", 1, "python", "x = 6\n"), runner)
        run_python(Block("page.md", 3, "python", "print(x * 7)\n", expected="42\n"), runner)
        # an extra the page did not install is not there, in python and in what it starts
        hide = Block("page.md", 5, "python", "import pyarrow\n")
        with pytest.raises(pytest.fail.Exception, match="No module named 'pyarrow'"):
            run_python(hide, runner, hidden_modules({"plot"}))
        run_python(hide, runner, hidden_modules({"tables"}))
    finally:
        runner.close()
    with pytest.raises(pytest.fail.Exception, match="No module named 'zarr'"):
        run_shell(Block("page.md", 1, "sh", "python -c 'import zarr'\n"), tmp_path, env, [],
                  hidden_modules(set()))
    run_shell(Block("page.md", 1, "sh", "python -c 'import zarr'\n"), tmp_path, env, [],
              hidden_modules({"dask"}))
    # `fastmlp` is the tree under test, and tells a reader without pyarrow how to get it
    with pytest.raises(pytest.fail.Exception, match=r'pip install "\.\[tables\]" in a checkout'):
        run_shell(Block("page.md", 1, "sh", "fastmlp train --data x.csv --target label\n"),
                  tmp_path, env, [], hidden_modules(set()))


def test_scripts_run_as_scripts(tmp_path, shim):
    # a block that starts processes must be a script the page runs: `python NAME.py`
    page = tmp_path / "page.md"
    page.write_text("```python\nfrom distributed import LocalCluster\n```\n")
    with pytest.raises(AssertionError, match="make it a script"):
        parse_at(page)
    page.write_text("```python\n# fit.py\nimport multiprocessing\n```\n\n"
                    "```sh\npython it.py\n```\n")
    with pytest.raises(AssertionError, match="never run"):
        parse_at(page)
    # without its `__main__` guard, a script that starts worker processes fails as it fails
    # for a reader: each spawned worker runs the script's work again, and the start fails
    work = ("import multiprocessing as mp\n"
            "from concurrent.futures import ProcessPoolExecutor\n\n{guard}"
            "{indent}with ProcessPoolExecutor(1, mp_context=mp.get_context('spawn')) as pool:\n"
            "{indent}    print(list(pool.map(abs, [-1])))\n")
    guarded = "# fit.py\n" + work.format(guard="if __name__ == '__main__':\n", indent="    ")
    unguarded = "# fit.py\n" + work.format(guard="", indent="")
    env = page_env(shim)
    save_script(Block("page.md", 1, "python", guarded, script="fit.py"), tmp_path)
    run_shell(Block("page.md", 9, "sh", "python fit.py\n", expected="[1]\n"), tmp_path, env, [])
    save_script(Block("page.md", 1, "python", unguarded, script="fit.py"), tmp_path)
    with pytest.raises(pytest.fail.Exception, match="failed"):
        run_shell(Block("page.md", 9, "sh", "timeout 60 python fit.py\n"), tmp_path, env, [])


def parse_at(page):
    """parse() for a page outside the repository."""
    global ROOT
    saved, ROOT = ROOT, page.parent
    try:
        return parse(page)
    finally:
        ROOT = saved


def test_blocks_import_what_they_use():
    # a block that uses `np` imports numpy itself, so that it runs alone (issue 27: tables.md
    # and cli.md used an `np` that only an earlier block had imported)
    for path in PAGES:
        imported = {}
        for block in parse(path):
            if block.lang != "python":
                continue
            tree = ast.parse(block.code)
            mine = {alias.asname or alias.name.partition(".")[0]
                    for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                    for alias in node.names}
            used = {node.id for node in ast.walk(tree)
                    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
            borrowed = sorted((used & set(imported)) - mine - set(dir(builtins)))
            assert not borrowed, (f"{block.where()} uses {borrowed}, imported only by "
                                  f"{[imported[n] for n in borrowed]}: import them in the block")
            for name in mine:
                imported.setdefault(name, block.where())


def test_install_lines_work_from_a_checkout():
    # `pip install "fastmlp[tables]"` would look fastmlp up on the package index (issue 27)
    for path in PAGES:
        assert not re.search(r"pip install ['\"]?fastmlp\[", path.read_text()), path
    import tomllib

    with open(ROOT / "pyproject.toml", "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    assert set(EXTRA_MODULES) <= set(extras)
