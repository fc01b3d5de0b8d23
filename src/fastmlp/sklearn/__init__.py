"""scikit-learn drop-ins on fastmlp's engine: :class:`MLPClassifier` and :class:`MLPRegressor`.

With :mod:`fastmlp.convert` above it (conversions to and from scikit-learn's own estimators),
the only part of fastmlp that imports scikit-learn. Its modules:

- ``_base``: what both estimators share (parameters, every solver, the forward pass);
- ``_classifier`` and ``_regressor``: the two estimators (targets, output layer, scores);
- ``_constraints``: scikit-learn's parameter validation rules and messages;
- ``_inputs``: sample weights, sparse matrices, ``validate_data``;
- ``_optimizer``: SGD and Adam state across ``partial_fit`` calls;
- ``_lbfgs``: what the in-memory and the Dask L-BFGS fits share;
- ``_distributed``: the L-BFGS fit of a dask array on its cluster (``_base`` calls it);
- ``_rollback``: an estimator put back as it was when a call raises.
"""

from fastmlp.sklearn._base import BaseMultilayerPerceptron
from fastmlp.sklearn._classifier import MLPClassifier
from fastmlp.sklearn._optimizer import StochasticOptimizer
from fastmlp.sklearn._regressor import MLPRegressor

# fastmlp 0.1 pickled its estimators' optimizer as fastmlp.sklearn._StochasticOptimizer
_StochasticOptimizer = StochasticOptimizer

__all__ = ["BaseMultilayerPerceptron", "MLPClassifier", "MLPRegressor"]
