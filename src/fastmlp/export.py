"""Models out: ONNX files that run where fastmlp is not installed (the optional extra ``onnx``).

The network goes through scikit-learn's own estimator (:meth:`fastmlp.Model.to_sklearn`,
:meth:`fastmlp.MLPClassifier.to_sklearn`) and skl2onnx's converters for it, so the file is
the one a scikit-learn user would export: input ``X``, float32 rows of the raw features (a
model's fill and standardisation are in the graph); a classifier's outputs ``label`` (the
class names) and ``probabilities``, a regressor's ``variable``.
"""

import os

from fastmlp._extras import MissingExtraError


def to_onnx(model, *, target_opset=None):
    """Convert a model to an ONNX graph.

    Parameters
    ----------
    model : fastmlp.Model, fastmlp.MLPClassifier, fastmlp.MLPRegressor or a fitted
        scikit-learn ``MLPClassifier``/``MLPRegressor``/``Pipeline``
    target_opset : int, optional
        The ONNX opset; default: skl2onnx's newest that the installed onnx knows.

    Returns
    -------
    onnx.ModelProto
        Input ``X`` (float32, shape ``(n, n_features)``; NaN is a missing value where the
        model fills them). Outputs ``label`` and ``probabilities`` (a classifier: an array of
        shape ``(n, n_classes)`` in the order of the class names, not a list of maps) or
        ``variable`` (a regressor, shape ``(n, n_outputs)``).

    Raises
    ------
    MissingExtraError
        skl2onnx is not installed.
    ValueError
        A model setting with no scikit-learn (and so no ONNX) equivalent.
    """
    try:
        from skl2onnx import to_onnx as sk_to_onnx
        from skl2onnx.common.data_types import FloatTensorType
    except ImportError:
        raise MissingExtraError("ONNX export (skl2onnx)", "onnx") from None
    estimator = model.to_sklearn() if hasattr(model, "to_sklearn") else model
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    n_features = int(getattr(estimator, "n_features_in_", final.n_features_in_))
    options = {id(final): {"zipmap": False}} if hasattr(final, "classes_") else None
    return sk_to_onnx(estimator, initial_types=[("X", FloatTensorType([None, n_features]))],
                      options=options, target_opset=target_opset)


def save_onnx(model, path, *, target_opset=None):
    """Write :func:`to_onnx` of ``model`` to ``path``; returns the ``onnx.ModelProto``."""
    graph = to_onnx(model, target_opset=target_opset)
    with open(os.fspath(path), "wb") as f:
        f.write(graph.SerializeToString())
    return graph
