"""The optional extras: a clear error naming the extra when its package is missing."""


class MissingExtraError(ImportError):
    """A package of an optional extra (``tables``, ``onnx``) is not installed."""

    def __init__(self, what, extra):
        super().__init__(f"{what} needs the optional extra: pip install 'fastmlp[{extra}]'")
        self.extra = extra
