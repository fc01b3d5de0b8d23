"""What every command shares: the error type, exit codes, argument types, files and threads."""

import argparse
import contextlib
import os

import numpy as np

from fastmlp._files import check_writable
from fastmlp.model import Model

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in the command's one-line form and exit status 2."""

    def error(self, message):
        """Print ``fastmlp: error: ...`` and a pointer to ``--help``; exit with status 2."""
        self.exit(EXIT_USAGE, f"fastmlp: error: {message} (see '{self.prog} --help')\n")


# -- argument types ----------------------------------------------------------------------------
def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _number(text):
    """Return ``text`` as a float; an ``ArgumentTypeError`` that says so when it is not one."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _positive_float(text):
    value = _number(text)
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _nonneg_float(text):
    value = _number(text)
    if not np.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _momentum(text):
    value = _nonneg_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def _fraction(text):
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value


def _add_threads(parser):
    parser.add_argument("--threads", type=_positive_int, metavar="N",
                        help="use N threads: Numba's pool (numba.set_num_threads) and BLAS "
                             "(threadpoolctl) (default: all, or NUMBA_NUM_THREADS)")


def _os_error_text(exc):
    """``No such file or directory: 'x'`` rather than ``[Errno 2] ...``."""
    if exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename!r}"
    return str(exc)


# -- models and output files -------------------------------------------------------------------
def _load_model(path):
    try:
        return Model.load(path)
    except OSError as exc:
        raise UserError(_os_error_text(exc)) from None
    except ValueError as exc:
        raise UserError(str(exc)) from None
    except (RuntimeError, MemoryError) as exc:
        # a corrupt archive: zipfile's NotImplementedError ("compression method not
        # supported") or "encrypted" RuntimeError, or an array header declaring terabytes
        raise UserError(f"{path!r} is not a fastmlp model file: corrupt archive "
                        f"({type(exc).__name__}: {exc})") from None


def _check_output_path(path, option):
    """Fail before a long run, not after it, when an output file cannot be written there."""
    if path is None:
        return
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UserError(f"{option} {path!r}: the directory {directory!r} does not exist")
    if os.path.isdir(path):
        raise UserError(f"{option} {path!r} is a directory; give a file name")
    try:  # a temporary file beside it, removed: a folder that cannot be written fails now
        check_writable(path)
    except OSError as exc:
        raise UserError(f"cannot write {option} {path!r}: {_os_error_text(exc)}") from None


def _require_plotting(option, path):
    if path is None:
        return None
    from fastmlp import plotting

    try:
        plotting.require_matplotlib()
    except plotting.MatplotlibMissing as exc:
        raise UserError(f"{option}: {exc}") from None
    _check_output_path(path, option)
    return plotting


def _save(model, path, out):
    """``--save PATH``: write the model and say so (nothing without the option)."""
    if not path:
        return
    try:
        model.save(path)
    except OSError as exc:
        raise UserError(f"cannot save to {path!r}: {_os_error_text(exc)}") from None
    print(f"saved {path}", file=out)


def _scores_text(result, regression):
    """Return the closing line's scores: test accuracy (or R^2 and RMSE), test loss."""
    scores = (f"test R^2 {result['r2']:.4f}  test RMSE {result['rmse']:.4f}" if regression
              else f"test accuracy {result['accuracy']:.4f}")
    return f"{scores}  test loss {result['loss']:.4f}"


def _steps_text(preprocessing):
    """``"missing values filled with the training means, standardised"``, or ``""``."""
    if preprocessing is None:
        return ""
    steps = [text for text, on in (("missing values filled with the training means",
                                    preprocessing.fill is not None),
                                   ("standardised", preprocessing.mean is not None)) if on]
    return ", ".join(steps)


# -- threads -----------------------------------------------------------------------------------
def check_threads(n_threads):
    """Raise UserError when ``--threads`` asks for more than Numba's pool holds."""
    if n_threads is None:
        return
    import numba

    most = numba.config.NUMBA_NUM_THREADS
    if n_threads > most:
        raise UserError(f"--threads {n_threads}: at most {most} here (Numba's pool size, "
                        "NUMBA_NUM_THREADS)")


@contextlib.contextmanager
def thread_limits(n_threads):
    """Limit Numba's pool to ``n_threads`` and BLAS (threadpoolctl) likewise, for the block.

    ``None`` changes nothing.
    """
    if n_threads is None:
        yield
        return
    import numba

    # SciPy's BLAS (the kernels' when NumPy bundles none) loads lazily: load it now so the
    # limit reaches it.
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import threadpool_limits

    check_threads(n_threads)
    before = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        with threadpool_limits(limits=n_threads, user_api="blas"):
            yield
    finally:
        numba.set_num_threads(before)
