"""The optional extras: a clear error naming the extra when its package is missing."""

#: What each extra of pyproject.toml brings (tests/test_tables.py checks that they agree).
EXTRAS = {
    "plot": ("matplotlib>=3.7",),
    "tables": ("pyarrow>=14",),
    "onnx": ("skl2onnx>=1.17", "onnxruntime>=1.17"),
    "dask": ("dask[array]>=2024.1", "distributed>=2024.1", "zarr>=2.16"),
}


def install_hint(extra):
    """Return the pip lines that install an extra: from a checkout of fastmlp, or by its packages.

    Naming the extra as ``fastmlp[tables]`` would make pip look fastmlp up on the package
    index; from a checkout (as the README installs) the extra is ``".[tables]"``, and
    anywhere the packages themselves work.
    """
    packages = " ".join(f'"{p}"' if "[" in p or ">" in p else p for p in EXTRAS[extra])
    return f'pip install ".[{extra}]" in a checkout of fastmlp, or pip install {packages}'


class MissingExtraError(ImportError):
    """A package of an optional extra (``tables``, ``onnx``) is not installed."""

    def __init__(self, what, extra):
        super().__init__(f"{what} needs the optional extra {extra!r}: {install_hint(extra)}")
        self.extra = extra
