"""Parameter validation: a local version of scikit-learn's ``_parameter_constraints`` table.

``sklearn.utils._param_validation`` is private, so the rules and messages are kept here, the
same as scikit-learn's, for both estimators.
"""

import numbers

import numpy as np
import scipy.sparse as sp


class InvalidParameterError(ValueError, TypeError):
    """A constructor parameter has an invalid type or value (a ValueError and a TypeError)."""


class _Interval:
    """Numbers of ``kind`` (``numbers.Integral`` or ``numbers.Real``) in an interval."""

    def __init__(self, kind, left, right, closed):
        self.kind, self.left, self.right, self.closed = kind, left, right, closed

    def is_satisfied_by(self, val):
        if not isinstance(val, self.kind):
            return False
        if not isinstance(val, numbers.Integral) and np.isnan(val):
            return False
        left = -np.inf if self.left is None else self.left
        right = np.inf if self.right is None else self.right
        if val < left or (val == left and self.closed not in ("left", "both")):
            return False
        if val > right or (val == right and self.closed not in ("right", "both")):
            return False
        return True

    def __str__(self):
        integral = self.kind is numbers.Integral
        left = "-inf" if self.left is None else (self.left if integral else float(self.left))
        right = "inf" if self.right is None else (self.right if integral else float(self.right))
        return (f"{'an int' if integral else 'a float'} in the range "
                f"{'[' if self.closed in ('left', 'both') else '('}{left}, "
                f"{right}{']' if self.closed in ('right', 'both') else ')'}")


class _Options:
    """One of a set of values (strings, or e.g. ``np.inf``)."""

    def __init__(self, kind, options):
        self.kind, self.options = kind, options

    def is_satisfied_by(self, val):
        return isinstance(val, self.kind) and val in self.options

    def __str__(self):
        listed = ", ".join(repr(o) if isinstance(o, str) else str(o)
                           for o in sorted(self.options, key=str))
        return f"a {'str' if self.kind is str else 'float'} among {{{listed}}}"


class _Predicate:
    """A constraint given by a predicate and its description."""

    def __init__(self, predicate, description):
        self.predicate, self.description = predicate, description

    def is_satisfied_by(self, val):
        return self.predicate(val)

    def __str__(self):
        return self.description


def _is_array_like(val):
    # scikit-learn's "array-like": has a length, a shape or __array__, and is not a scalar
    return (not sp.issparse(val)
            and (hasattr(val, "__len__") or hasattr(val, "shape") or hasattr(val, "__array__"))
            and not np.isscalar(val))


_ARRAY_LIKE = _Predicate(_is_array_like, "an array-like")
_BOOLEAN = _Predicate(lambda v: isinstance(v, (bool, np.bool_)),
                      "an instance of 'bool' or an instance of 'numpy.bool'")
_VERBOSE = _Predicate(
    lambda v: isinstance(v, (bool, np.bool_))
    or _Interval(numbers.Integral, 0, None, "left").is_satisfied_by(v),
    "an int in the range [0, inf), an instance of 'bool' or an instance of 'numpy.bool'",
)
_RANDOM_STATE = _Predicate(
    lambda v: v is None or isinstance(v, np.random.RandomState)
    or _Interval(numbers.Integral, 0, 2**32 - 1, "both").is_satisfied_by(v),
    "an int in the range [0, 4294967295], an instance of 'numpy.random.mtrand.RandomState' "
    "or None",
)


def _validate_parameters(constraints, params, caller_name):
    """Raise InvalidParameterError for the first parameter no constraint accepts."""
    for name, value in params.items():
        allowed = constraints.get(name)
        if allowed is None or any(c.is_satisfied_by(value) for c in allowed):
            continue
        if len(allowed) == 1:
            described = str(allowed[0])
        else:
            described = ", ".join(str(c) for c in allowed[:-1]) + f" or {allowed[-1]}"
        raise InvalidParameterError(
            f"The {name!r} parameter of {caller_name} must be {described}. "
            f"Got {value!r} instead."
        )
