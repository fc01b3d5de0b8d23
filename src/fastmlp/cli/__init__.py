"""The ``fastmlp`` command: train, evaluate, predict, export, bench, compile and info from a shell.

User errors (a missing file, a bad value, a file that is not a model) print one line
``fastmlp: error: ...`` to stderr and exit with status 2, never a traceback.

One module per command, each with ``add_parser(sub)`` (its options and help) and
``run(args, out=None)`` (the command itself, returning the exit status), as pip's
``_internal/commands/`` and huggingface_hub's ``commands/`` are laid out: ``train``,
``evaluate``, ``predict``, ``export``, ``bench``, ``compile``, ``info``. Beside them:
``_data`` (the data sources train, evaluate and predict share), ``_common`` (errors, exit codes,
argument types, output files, threads), ``_report`` (what train prints as it goes) and
``_scheduler`` (``train --scheduler`` on a Dask cluster). This module assembles the parser.
"""

import argparse
import os
import sys

from fastmlp.callbacks import EarlyStopping
from fastmlp.cli import bench, evaluate, export, info, predict, train
from fastmlp.cli import compile as compile_
from fastmlp.cli._common import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    UserError,
    _Parser,
    check_threads,
    thread_limits,
)
from fastmlp.cli._data import load_data, load_table_data
from fastmlp.cli._report import _EpochPrinter
from fastmlp.cli.compile import _compile_cache_dir
from fastmlp.cli.predict import read_samples

# the names tests, docs and scripts import from fastmlp.cli
__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "EarlyStopping", "UserError", "_EpochPrinter",
           "_compile_cache_dir", "build_parser", "check_threads", "load_data",
           "load_table_data", "main", "read_samples", "thread_limits"]

_EPILOG_MAIN = """Each command has its own --help, with examples.

examples:
  fastmlp train --epochs 10 --save digits.npz
  fastmlp evaluate digits.npz
  fastmlp train --task regression --save diabetes.npz
  fastmlp train --data wine.csv --target cultivar --scale standard --save wine.npz
  fastmlp export wine.npz --onnx wine.onnx
  fastmlp train --help
"""


#: The subcommands, in the order ``fastmlp --help`` lists them.
COMMANDS = {"train": train, "evaluate": evaluate, "predict": predict, "bench": bench,
            "info": info, "compile": compile_, "export": export}


def build_parser():
    """Build the argument parser of the ``fastmlp`` command."""
    raw = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="fastmlp", formatter_class=raw, epilog=_EPILOG_MAIN,
        description="Train fully-connected networks fast on the CPU: classifiers (sigmoid\n"
                    "hidden layers, softmax output, cross-entropy) and regression models\n"
                    "(identity or exp output, squared error or Poisson deviance).",
    )
    from fastmlp import __version__

    parser.add_argument("--version", action="version", version=f"fastmlp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parser.commands = {name: module.add_parser(sub) for name, module in COMMANDS.items()}
    return parser


def main(argv=None):
    """Entry point of the ``fastmlp`` command; returns the exit status."""
    from fastmlp.plotting import MatplotlibMissing

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the command's own parser, which points at its --help
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except (UserError, MatplotlibMissing) as exc:
        print(f"fastmlp: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("fastmlp: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`fastmlp train | head`): stop quietly, as other tools do.
        # Point stdout at /dev/null so that flushing it at exit does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
