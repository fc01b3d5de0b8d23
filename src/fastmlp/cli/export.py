"""``fastmlp export``: a saved model as an ONNX file, to serve without fastmlp."""

import argparse
import sys

from fastmlp._files import written_whole
from fastmlp.cli._common import (
    UserError,
    _check_output_path,
    _load_model,
    _os_error_text,
    _steps_text,
)

_EPILOG_EXPORT = """The ONNX file takes float32 rows of the raw features as input "X" (NaN for a
missing value where the model fills them) and gives "label" (the class names) and
"probabilities" (n x K, in the order of the class names), or "variable" for a regression
model. It runs in onnxruntime, or any ONNX runtime, without fastmlp or Python.
Needs skl2onnx and onnxruntime: pip install ".[onnx]" in a checkout of fastmlp, or pip
install skl2onnx onnxruntime.

examples:
  fastmlp export wine.npz --onnx wine.onnx
"""


def add_parser(sub):
    """Add ``fastmlp export`` to the subcommands ``sub``; return its parser."""
    raw = argparse.RawDescriptionHelpFormatter
    export = sub.add_parser(
        "export", help="write a saved model as an ONNX file, to serve without fastmlp",
        formatter_class=raw, epilog=_EPILOG_EXPORT,
        description="Convert a saved model to ONNX (through scikit-learn's MLPClassifier or\n"
                    "MLPRegressor and skl2onnx), with its fill and standardisation steps.",
    )
    export.add_argument("model", metavar="MODEL", help="a model file written by --save")
    export.add_argument("--onnx", metavar="PATH.onnx", required=True,
                        help="the ONNX file to write")
    export.set_defaults(func=run)
    return export


def run(args, out=None):
    """Write a saved model as an ONNX file (through scikit-learn's estimator and skl2onnx)."""
    out = sys.stdout if out is None else out
    _check_output_path(args.onnx, "--onnx")
    model = _load_model(args.model)
    from fastmlp import export

    try:
        graph = export.to_onnx(model)
    except export.MissingExtraError as exc:
        raise UserError(f"--onnx: {exc}") from None
    except ValueError as exc:  # a setting scikit-learn's estimators do not have
        raise UserError(f"{args.model!r}: {exc}") from None
    try:
        with written_whole(args.onnx) as f:
            f.write(graph.SerializeToString())
    except OSError as exc:
        raise UserError(f"cannot write --onnx {args.onnx!r}: {_os_error_text(exc)}") from None
    outputs = ", ".join(o.name for o in graph.graph.output)
    steps = _steps_text(model.preprocessing)
    steps = f"; the graph has the model's steps: {steps}" if steps else ""
    print(f"wrote {args.onnx}: input X (float32, {model.layer_sizes[0]} features), outputs "
          f"{outputs}, opset {export.onnx_opset(graph)}{steps}", file=out)
    return 0
