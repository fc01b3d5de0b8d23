"""Models out: ONNX files that run where fastmlp is not installed (the optional extra ``onnx``).

The network goes through scikit-learn's own estimator (:meth:`fastmlp.Model.to_sklearn`,
:meth:`fastmlp.MLPClassifier.to_sklearn`) and skl2onnx's converters for it, so the file is
the one a scikit-learn user would export: input ``X``, float32 rows of the raw features (a
model's fill and standardisation are in the graph); a classifier's outputs ``label`` (the
class names) and ``probabilities``, a regressor's ``variable``.

An exp model (``output="exp"``, scikit-learn's ``MLPRegressor(loss="poisson")``) is exported
too, although skl2onnx's converter knows no exp output: the network is converted with an
identity output and an ONNX ``Exp`` node is appended, which computes what the model computes.
"""

import copy
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
    exp_output = getattr(final, "out_activation_", None) == "exp"
    if exp_output:
        # skl2onnx has no exp output (KeyError 'exp'): convert a copy with the identity
        # output, whose result is z, and append e^z; the caller's estimator is not changed
        estimator = copy.deepcopy(estimator)
        final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
        final.out_activation_ = "identity"
    n_features = int(getattr(estimator, "n_features_in_", final.n_features_in_))
    options = {id(final): {"zipmap": False}} if hasattr(final, "classes_") else None
    graph = sk_to_onnx(estimator, initial_types=[("X", FloatTensorType([None, n_features]))],
                       options=options, target_opset=target_opset)
    if exp_output:
        _append_exp(graph)
    return graph


def _append_exp(graph):
    """Make the graph's output ``e^z`` of what it computed (``z``), under the same name."""
    from onnx import helper

    name = graph.graph.output[0].name
    for node in graph.graph.node:
        for k, produced in enumerate(node.output):
            if produced == name:
                node.output[k] = f"{name}_z"
    graph.graph.node.append(helper.make_node("Exp", [f"{name}_z"], [name], name="exp_output"))


def onnx_opset(graph):
    """Return the graph's ONNX opset: the version of its default domain (``""`` or ``"ai.onnx"``).

    Not ``graph.opset_import[0]``: a graph also imports other domains (``ai.onnx.ml``, version
    1 to 5), and their order in the list is not fixed.
    """
    return next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))


def save_onnx(model, path, *, target_opset=None):
    """Write :func:`to_onnx` of ``model`` to ``path``; returns the ``onnx.ModelProto``."""
    graph = to_onnx(model, target_opset=target_opset)
    with open(os.fspath(path), "wb") as f:
        f.write(graph.SerializeToString())
    return graph
