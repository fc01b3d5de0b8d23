"""fastmlp: fast, exact training of fully-connected classifiers, compiled with Numba.

Public names: :class:`Model` (the network), :class:`History`, :class:`DivergenceError`,
:class:`MLPClassifier` and :class:`MLPRegressor` (drop-ins for scikit-learn's),
:class:`Preprocessing` (what a model trained on a table does to its columns) and
:data:`__version__`. Early stopping for :meth:`Model.fit` is in :mod:`fastmlp.callbacks`,
the conversions to and from scikit-learn in :mod:`fastmlp.convert`.
"""

from importlib.metadata import PackageNotFoundError, version

from fastmlp import _hooks
from fastmlp._preprocessing import Preprocessing
from fastmlp.model import DivergenceError, History, Model

try:
    __version__ = version("fastmlp")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["DivergenceError", "History", "MLPClassifier", "MLPRegressor", "Model",
           "Preprocessing", "__version__"]


def __getattr__(name):
    # The estimators pull in scikit-learn; import them only when asked for, so `import fastmlp`
    # stays light for library and command-line use.
    if name in ("MLPClassifier", "MLPRegressor"):
        from fastmlp import sklearn

        return getattr(sklearn, name)
    raise AttributeError(f"module 'fastmlp' has no attribute {name!r}")


def _convert():
    # Model.to_sklearn, MLPClassifier.from_sklearn, ... are carried out by fastmlp.convert, which
    # sits above Model and the estimators and imports both: they reach it through _hooks, and
    # this package (the top of the house) says where it is. Imported on the first conversion.
    from fastmlp import convert

    return convert


_hooks.provide("convert", _convert)
