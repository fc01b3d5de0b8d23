"""Dataset loaders: IDX files (MNIST, Fashion-MNIST), scikit-learn digits and diabetes, ``.npz``.

All loaders return ``(X_train, y_train, X_test, y_test)`` with ``X`` a C-contiguous
``float32`` array of shape ``(n_samples, n_features)``.  The IDX reader :func:`load_idx`
and writer :func:`write_idx` are self-contained (standard library and NumPy only) and
validate their input strictly: a malformed, truncated or corrupt file raises
:class:`ValueError` with a message naming the file and the problem.
"""

from __future__ import annotations

import errno
import gzip
import os
import struct
import zlib

import numpy as np

from fastmlp._extras import install_hint
from fastmlp._files import DEFLATE_MAX_RATIO, check_npz_member, read_npy_header

__all__ = [
    "load_idx",
    "write_idx",
    "load_mnist",
    "load_fashion_mnist",
    "load_digits",
    "load_diabetes",
    "load_npz",
]

#: IDX type code -> big-endian NumPy dtype.
_IDX_CODE_TO_DTYPE = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
#: Native NumPy dtype -> IDX type code (used by the writer).
_DTYPE_TO_IDX_CODE = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}

#: Largest data payload (in bytes) an IDX header may declare; larger headers are rejected
#: before anything is allocated.
_MAX_IDX_BYTES = 2**34
#: Chunk size used when decompressing gzip files (bounds memory to what is really there).
_CHUNK = 16 * 2**20
_GZIP_MAGIC = b"\x1f\x8b"

_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_FASHION_MNIST_ENV = "FASHION_MNIST_DIR"
_FASHION_MNIST_DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"


# --------------------------------------------------------------------------------------
# IDX reader / writer
# --------------------------------------------------------------------------------------
def _read_exact(f, n):
    """Read up to ``n`` bytes from ``f`` in bounded chunks; fewer means end of file."""
    if n <= _CHUNK:
        return f.read(n)
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(min(_CHUNK, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return bytes(buf) if len(buf) < n else buf


def _parse_idx(f, name, remaining_raw, compressed_size=None):
    """Parse an IDX stream from the binary file object ``f``.

    ``remaining_raw`` is a callable giving the number of bytes left in ``f`` (raw files),
    or ``None`` for a stream whose length is unknown (gzip), whose file has
    ``compressed_size`` bytes: a header declaring more than deflate can inflate that to is
    refused before anything is read.
    """
    head = f.read(4)
    if len(head) < 4:
        raise ValueError(
            f"{name}: not a valid IDX file: file is only {len(head)} bytes long, "
            "too short for the 4-byte magic number"
        )
    if head[0] != 0 or head[1] != 0:
        raise ValueError(
            f"{name}: wrong IDX magic number 0x{head.hex()}: "
            f"the first two bytes must be zero, found 0x{head[:2].hex()}"
        )
    code, ndim = head[2], head[3]
    if code not in _IDX_CODE_TO_DTYPE:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_CODE_TO_DTYPE)
        raise ValueError(
            f"{name}: wrong IDX magic number 0x{head.hex()}: unknown data type code "
            f"0x{code:02X} (expected one of {known})"
        )
    if ndim == 0:
        raise ValueError(
            f"{name}: wrong IDX magic number 0x{head.hex()}: header declares 0 dimensions"
        )
    raw_dims = f.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise ValueError(
            f"{name}: truncated IDX header: {ndim} dimensions declare {4 * ndim} bytes of "
            f"sizes, found only {len(raw_dims)}"
        )
    shape = struct.unpack(f">{ndim}I", raw_dims)
    be_dtype = _IDX_CODE_TO_DTYPE[code]
    count = 1
    for d in shape:
        count *= d  # Python int: no overflow
    expected = count * be_dtype.itemsize
    if expected > _MAX_IDX_BYTES:
        raise ValueError(
            f"{name}: implausible IDX header: shape {shape} of {be_dtype.name} declares "
            f"{expected} data bytes, more than the limit of {_MAX_IDX_BYTES} bytes"
        )

    if compressed_size is not None and expected > DEFLATE_MAX_RATIO * compressed_size + 1024:
        raise ValueError(
            f"{name}: implausible IDX header: shape {shape} of {be_dtype.name} declares "
            f"{expected} data bytes, more than the {compressed_size} bytes of the gzip file "
            "can hold: corrupt or crafted"
        )
    if remaining_raw is not None:
        # Raw file: the size is known, so check before reading anything.
        found = remaining_raw()
        if found < expected:
            raise ValueError(
                f"{name}: truncated IDX file: header (shape {shape}, {be_dtype.name}) "
                f"declares {expected} data bytes, found only {found}"
            )
        if found > expected:
            raise ValueError(
                f"{name}: {found - expected} unexpected trailing bytes after the "
                f"{expected} data bytes declared by the IDX header (shape {shape})"
            )
        arr = np.empty(count, dtype=be_dtype)
        n_read = f.readinto(arr.view(np.uint8)) if expected else 0
        if n_read != expected:  # the file changed under us
            raise ValueError(
                f"{name}: truncated IDX file: expected {expected} data bytes, found {n_read}"
            )
    else:
        data = _read_exact(f, expected)
        if len(data) < expected:
            raise ValueError(
                f"{name}: truncated IDX file: header (shape {shape}, {be_dtype.name}) "
                f"declares {expected} data bytes, found only {len(data)} "
                "(after decompression)"
            )
        extra = f.read(_CHUNK)  # also reaches EOF, which verifies the gzip CRC
        if extra:
            more = "at least " if len(extra) == _CHUNK else ""
            raise ValueError(
                f"{name}: {more}{len(extra)} unexpected trailing bytes after the "
                f"{expected} data bytes declared by the IDX header (shape {shape})"
            )

        arr = np.frombuffer(data, dtype=be_dtype, count=count)
        if not arr.flags.writeable:
            arr = arr.copy()
    if be_dtype.itemsize > 1 and not be_dtype.isnative:
        arr = arr.byteswap(inplace=True).view(be_dtype.newbyteorder("="))
    else:
        arr = arr.view(be_dtype.newbyteorder("="))
    return arr.reshape(shape)


def load_idx(path):
    """Read an IDX file (the format of MNIST and Fashion-MNIST).

    The file may be raw or gzip-compressed; compression is detected from the gzip magic
    bytes ``1f 8b``, not from the file name.

    Parameters
    ----------
    path : str or os.PathLike
        Path of the IDX file.

    Returns
    -------
    numpy.ndarray
        Native-endian array with the shape given in the header and the dtype given by
        the type code: ``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32,
        ``0x0D`` float32, ``0x0E`` float64.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a valid IDX file: wrong magic number (first two bytes not
        zero, unknown type code or zero dimensions), truncated header or data, trailing
        bytes after the data, a header declaring more than 2**34 data bytes, or a corrupt
        gzip stream.  The message names the file and the problem.

    Notes
    -----
    The layout is: two zero bytes, a type-code byte, a byte with the number of
    dimensions ``d``, ``d`` big-endian uint32 sizes, then the data in big-endian C order.
    """
    name = os.fspath(path)
    with open(name, "rb") as f:
        is_gzip = f.read(2) == _GZIP_MAGIC
        f.seek(0)
        if not is_gzip:
            size = os.fstat(f.fileno()).st_size
            return _parse_idx(f, repr(name), lambda: size - f.tell())
        try:
            with gzip.GzipFile(fileobj=f, mode="rb") as gz:
                return _parse_idx(gz, repr(name), None, os.fstat(f.fileno()).st_size)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise ValueError(
                f"{name!r}: corrupt or truncated gzip stream ({type(exc).__name__}: {exc})"
            ) from exc


def write_idx(path, array):
    """Write an array to an IDX file.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; the file is gzip-compressed if the name ends with ``.gz``.
    array : array_like
        Array with 1 to 255 dimensions, each smaller than 2**32, of dtype uint8, int8,
        int16, int32, float32 or float64 (any byte order).

    Raises
    ------
    TypeError
        If the dtype is not one of the supported ones.
    ValueError
        If the number of dimensions or a dimension size cannot be represented.

    See Also
    --------
    load_idx : The matching reader.
    """
    arr = np.asarray(array)
    code = _DTYPE_TO_IDX_CODE.get(arr.dtype.newbyteorder("="))
    if code is None:
        supported = ", ".join(str(d) for d in _DTYPE_TO_IDX_CODE)
        raise TypeError(f"cannot write dtype {arr.dtype} to IDX; supported: {supported}")
    if not 1 <= arr.ndim <= 255:
        raise ValueError(f"IDX arrays need 1 to 255 dimensions, got {arr.ndim}")
    if any(d >= 2**32 for d in arr.shape):
        raise ValueError(f"IDX dimension sizes must be < 2**32, got shape {arr.shape}")
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    payload = np.ascontiguousarray(arr, dtype=_IDX_CODE_TO_DTYPE[code]).tobytes()
    name = os.fspath(path)
    if str(name).endswith(".gz"):
        with gzip.GzipFile(name, mode="wb", mtime=0) as f:
            f.write(header)
            f.write(payload)
    else:
        with open(name, "wb") as f:
            f.write(header)
            f.write(payload)


# --------------------------------------------------------------------------------------
# MNIST-format directories
# --------------------------------------------------------------------------------------
def _find_mnist_files(directory):
    """Return the four file paths in ``directory`` (raw preferred over ``.gz``) or None."""
    found = []
    for base in _MNIST_FILES:
        for candidate in (base, base + ".gz"):
            p = os.path.join(directory, candidate)
            if os.path.isfile(p):
                found.append(p)
                break
        else:
            return None
    return found


def _mnist_folder_problem(directory):
    """Return why ``directory`` fails: ``"does not exist"`` or ``"lacks <the files>"``."""
    if not os.path.isdir(directory):
        return "does not exist"
    missing = [
        f"{b}[.gz]"
        for b in _MNIST_FILES
        if not any(os.path.isfile(os.path.join(directory, b + s)) for s in ("", ".gz"))
    ]
    return f"lacks {', '.join(missing)}"


def _missing_mnist_message(directory):
    expected = ", ".join(f"{b}[.gz]" for b in _MNIST_FILES)
    return (f"directory {directory!r} {_mnist_folder_problem(directory)}; an MNIST-format "
            f"folder must contain the four IDX files {expected}")


def _images_labels(img_path, lbl_path):
    images = load_idx(img_path)
    labels = load_idx(lbl_path)
    if images.ndim != 3:
        raise ValueError(
            f"{img_path!r}: expected a 3-D image array (n, rows, cols), got shape {images.shape}"
        )
    if images.dtype != np.uint8:
        raise ValueError(f"{img_path!r}: expected uint8 images, got {images.dtype}")
    if labels.ndim != 1:
        raise ValueError(f"{lbl_path!r}: expected a 1-D label array, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{lbl_path!r}: expected integer labels, got {labels.dtype}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"image/label count mismatch: {img_path!r} has {images.shape[0]} images but "
            f"{lbl_path!r} has {labels.shape[0]} labels"
        )
    X = images.reshape(images.shape[0], -1).astype(np.float32)
    X /= np.float32(255.0)
    return X, labels.astype(np.int64)


def load_mnist(path):
    """Load an MNIST-format dataset from a directory of IDX files.

    Parameters
    ----------
    path : str or os.PathLike
        Directory containing ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each optionally
        gzip-compressed with a ``.gz`` suffix (the uncompressed file wins if both exist).

    Returns
    -------
    X_train : numpy.ndarray of shape (n_train, rows * cols), float32
        Training images flattened and scaled to [0, 1] (divided by 255).
    y_train : numpy.ndarray of shape (n_train,), int64
        Training labels.
    X_test : numpy.ndarray of shape (n_test, rows * cols), float32
        Test images, scaled like ``X_train``.
    y_test : numpy.ndarray of shape (n_test,), int64
        Test labels.

    Raises
    ------
    FileNotFoundError
        If the directory or one of the four files is missing; the message lists the
        expected file names and the directory.
    ValueError
        If a file is not valid IDX (see :func:`load_idx`), if images are not 3-D uint8 or
        labels not 1-D integers, if image and label counts differ, or if training and
        test images have different sizes.
    """
    directory = os.fspath(path)
    files = _find_mnist_files(directory)
    if files is None:
        raise FileNotFoundError(_missing_mnist_message(directory))
    X_train, y_train = _images_labels(files[0], files[1])
    X_test, y_test = _images_labels(files[2], files[3])
    if X_train.shape[1] != X_test.shape[1]:
        raise ValueError(
            f"{directory!r}: training images have {X_train.shape[1]} pixels but test "
            f"images have {X_test.shape[1]}"
        )
    return X_train, y_train, X_test, y_test


def load_fashion_mnist(path=None):
    """Load Fashion-MNIST (60 000 training and 10 000 test 28x28 images, 10 classes).

    Parameters
    ----------
    path : str or os.PathLike, optional
        Directory with the four IDX files (see :func:`load_mnist`).  When ``None``, the
        directory named by the environment variable ``FASHION_MNIST_DIR`` when it is set,
        else ``/usr/share/datasets/fashion-mnist`` (where Debian's ``dataset-fashion-mnist``
        package installs them).

    Returns
    -------
    X_train : numpy.ndarray of shape (60000, 784), float32
        Training images scaled to [0, 1].
    y_train : numpy.ndarray of shape (60000,), int64
        Training labels 0-9.
    X_test : numpy.ndarray of shape (10000, 784), float32
        Test images scaled to [0, 1].
    y_test : numpy.ndarray of shape (10000,), int64
        Test labels 0-9.

    Raises
    ------
    FileNotFoundError
        If the directory does not contain the four files; the message names the directory
        (and ``FASHION_MNIST_DIR`` when the directory came from it) and explains how to
        install the files (``apt-get install dataset-fashion-mnist``) or point to them.
        A ``FASHION_MNIST_DIR`` that names a missing or incomplete folder is this error,
        not a reason to look elsewhere.
    ValueError
        If the files are malformed (see :func:`load_mnist`).
    """
    env = os.environ.get(_FASHION_MNIST_ENV)
    if path is not None:
        directory = os.fspath(path)
    elif env:
        directory = env  # set on purpose: never silently replaced by the default folder
    else:
        directory = _FASHION_MNIST_DEFAULT_DIR
    if _find_mnist_files(directory) is not None:
        return load_mnist(directory)
    where = f"directory {directory!r} {_mnist_folder_problem(directory)}"
    if path is None and env:
        where = (f"the environment variable {_FASHION_MNIST_ENV} is {directory!r}, a folder "
                 f"that {_mnist_folder_problem(directory)}")
    expected = ", ".join(f"{b}[.gz]" for b in _MNIST_FILES)
    raise FileNotFoundError(
        f"Fashion-MNIST not found: {where}. Install it with "
        "`apt-get install dataset-fashion-mnist` (Debian; it installs into "
        f"{_FASHION_MNIST_DEFAULT_DIR}), or set the environment variable "
        f"{_FASHION_MNIST_ENV} (or pass path=) to a folder holding the four IDX files "
        f"{expected}."
    )


# --------------------------------------------------------------------------------------
# Other sources
# --------------------------------------------------------------------------------------
def load_digits(*, test_size=0.25, seed=0):
    """Load scikit-learn's 8x8 digits dataset (1797 samples, 10 classes), split.

    Parameters
    ----------
    test_size : float or int, default=0.25
        Passed to :func:`sklearn.model_selection.train_test_split`.
    seed : int, default=0
        ``random_state`` of the split.

    Returns
    -------
    X_train : numpy.ndarray of shape (n_train, 64), float32
        Training images scaled to [0, 1] (divided by 16).
    y_train : numpy.ndarray of shape (n_train,), int64
        Training labels.
    X_test : numpy.ndarray of shape (n_test, 64), float32
        Test images scaled to [0, 1].
    y_test : numpy.ndarray of shape (n_test,), int64
        Test labels.

    Notes
    -----
    The split is stratified on the labels.
    """
    from sklearn.datasets import load_digits as _sk_load_digits
    from sklearn.model_selection import train_test_split

    data = _sk_load_digits()
    X = (np.asarray(data.data, dtype=np.float64) / 16.0).astype(np.float32)
    y = np.asarray(data.target, dtype=np.int64)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, stratify=y, random_state=seed
    )
    return (
        np.ascontiguousarray(X_train),
        np.ascontiguousarray(y_train),
        np.ascontiguousarray(X_test),
        np.ascontiguousarray(y_test),
    )


#: The diabetes targets are divided by this, so that they are of order 1 (and stay positive).
DIABETES_Y_SCALE = 100.0


def load_diabetes(*, test_size=0.25, seed=0):
    """Load scikit-learn's diabetes regression data set (442 patients, 10 features), split.

    The target is a measure of disease progression one year after baseline (25 to 346 in the
    original units). The split is always the same for the same arguments, so that ``fastmlp
    train --task regression`` and ``fastmlp evaluate`` see the same test set.

    Parameters
    ----------
    test_size : float or int, default=0.25
        Passed to :func:`sklearn.model_selection.train_test_split` (not stratified).
    seed : int, default=0
        ``random_state`` of the split.

    Returns
    -------
    X_train : numpy.ndarray of shape (n_train, 10), float32
        Training features, standardised: each column less the training set's mean, divided by
        its standard deviation.
    y_train : numpy.ndarray of shape (n_train,), float32
        Training targets divided by :data:`DIABETES_Y_SCALE` (100), so 0.25 to 3.46: of order 1,
        as a network's initial outputs are, and positive, as an ``exp`` output needs. Multiply
        predictions by 100 for the original units.
    X_test : numpy.ndarray of shape (n_test, 10), float32
        Test features, standardised with the training set's mean and standard deviation.
    y_test : numpy.ndarray of shape (n_test,), float32
        Test targets divided by 100.
    """
    from sklearn.datasets import load_diabetes as _sk_load_diabetes
    from sklearn.model_selection import train_test_split

    data = _sk_load_diabetes(scaled=False)
    X = np.asarray(data.data, dtype=np.float64)
    y = np.asarray(data.target, dtype=np.float64) / DIABETES_Y_SCALE
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=test_size,
                                                        random_state=seed)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    std[std == 0] = 1.0
    return (
        np.ascontiguousarray((X_train - mean) / std, dtype=np.float32),
        np.ascontiguousarray(y_train, dtype=np.float32),
        np.ascontiguousarray((X_test - mean) / std, dtype=np.float32),
        np.ascontiguousarray(y_test, dtype=np.float32),
    )


def _read_npz(name, keys):
    """Return ``(names in the archive, {key: array})`` for the ``keys`` present in it.

    Raises FileNotFoundError (and the other OSErrors of opening a file), or ValueError for
    anything else: not an ``.npz``, pickled objects, a corrupt or truncated archive (zipfile,
    zlib and NumPy raise many types for those), or an array whose header declares more data
    than its archive member holds (rejected before anything that size is allocated).
    """
    # The file is opened here, not by np.load, which leaks its handle on a corrupt archive;
    # opening it raises FileNotFoundError, PermissionError, ... as they are.
    with open(name, "rb") as f:
        try:
            return _read_npz_file(f, keys)
        except OSError as exc:
            if exc.errno not in (None, errno.EINVAL):
                raise  # the disk failed, not the format
            # a seek to a corrupt offset (EINVAL) or a corrupt bz2 member (no errno)
            raise ValueError(f"{name!r}: not a valid .npz file (corrupt or truncated): "
                             f"{exc}") from None
        except _NotNpz as exc:
            raise ValueError(f"{name!r}: {exc}") from None
        except ValueError as exc:
            if "pickle" in str(exc):
                raise ValueError(f"{name!r}: it contains pickled objects, which are never "
                                 "loaded (they could run code)") from None
            raise ValueError(f"{name!r}: not a valid .npz file: {exc}") from None
        except Exception as exc:  # BadZipFile, NotImplementedError, zlib.error, EOFError, ...
            raise ValueError(
                f"{name!r}: not a valid .npz file (corrupt or truncated): "
                f"{type(exc).__name__}: {exc}"
            ) from None


def _read_npz_file(f, keys):
    npz = np.load(f, allow_pickle=False)
    if not hasattr(npz, "files"):
        raise _NotNpz("expected an .npz archive, got a single array")
    with npz:
        files = list(npz.files)
        arrays = {}
        for key in keys:
            if key in files:
                _check_npz_member(npz, key)
                arrays[key] = npz[key]
    return files, arrays


class _NotNpz(Exception):
    """A well-formed file that is not an .npz archive (reported as ValueError)."""


def _check_npz_member(npz, key):
    """Reject an array whose header declares more bytes than its archive member holds."""
    member = key if key in npz.zip.namelist() else f"{key}.npy"
    info = npz.zip.getinfo(member)
    try:  # a member that could inflate a small file into a large one is refused unread
        check_npz_member(info)
    except ValueError as exc:
        raise _NotNpz(f"not a valid .npz file: {exc}") from None
    size = info.file_size
    with npz.zip.open(member) as f:
        _, header = read_npy_header(f)
    if header is None:
        return  # version 3.0 (utf-8 field names): np.load checks it
    shape, _, dtype = header
    count = 1
    for d in shape:
        count *= int(d)  # Python int: no overflow
    if count * dtype.itemsize > size:
        raise _NotNpz(f"array {key} declares shape {shape} of {dtype} ({count * dtype.itemsize} "
                      f"bytes) but the file holds only {size} bytes for it: corrupt or truncated")


def load_npz(path):
    """Load a user's own train/test split from an ``.npz`` file.

    Parameters
    ----------
    path : str or os.PathLike
        ``.npz`` file (as written by :func:`numpy.savez`) with the arrays ``X_train``,
        ``y_train``, ``X_test`` and ``y_test``.  It is opened with
        ``allow_pickle=False``.

    Returns
    -------
    X_train : numpy.ndarray of shape (n_train, n_features), float32
        Training features.
    y_train : numpy.ndarray of shape (n_train,) or (n_train, n_targets)
        Training labels or targets (integers are returned as int64, others unchanged): 1-D for
        class labels or one regression target per row, 2-D for several regression targets.
    X_test : numpy.ndarray of shape (n_test, n_features), float32
        Test features.
    y_test : numpy.ndarray of shape (n_test,) or (n_test, n_targets)
        Test labels or targets, of the same number of dimensions (and columns) as ``y_train``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If keys are missing (the message names them), if an ``X`` array is not 2-D or not
        numeric, if train and test have different numbers of features, if a ``y`` array
        is not 1-D or 2-D or its length differs from its ``X``, if ``y_train`` and ``y_test``
        differ in shape beyond their rows, if the file holds pickled objects, or if it is not
        an ``.npz`` archive or a corrupt or truncated one.
    """
    name = os.fspath(path)
    keys = SPLIT_KEYS
    files, arrays = _read_npz(name, keys)
    missing = [k for k in keys if k not in files]
    if missing:
        raise ValueError(
            f"{name!r}: missing array(s) {', '.join(missing)}; the file must contain "
            f"{', '.join(keys)} (found: {', '.join(files) or 'none'})"
        )
    return _checked_split(name, arrays, in_memory=True)


def _checked_split(name, arrays, in_memory):
    """``(X_train, y_train, X_test, y_test)`` of a user's split, its shapes and dtypes checked.

    ``in_memory``: X as C-contiguous float32; otherwise X is left as it is (read in blocks
    by training) and only its shape and dtype are checked. y is always read into memory.
    """
    out = []
    for split in ("train", "test"):
        X, y = arrays[f"X_{split}"], np.asarray(arrays[f"y_{split}"][...])
        if len(X.shape) != 2:
            raise ValueError(f"{name!r}: X_{split} must be 2-D, got shape {X.shape}")
        if np.dtype(X.dtype).kind not in "biuf":
            raise ValueError(f"{name!r}: X_{split} must be numeric, got dtype {X.dtype}")
        if y.ndim not in (1, 2):
            raise ValueError(f"{name!r}: y_{split} must be 1-D (labels, or one target per row) "
                             f"or 2-D (several targets per row), got shape {y.shape}")
        if y.shape[0] != X.shape[0]:
            raise ValueError(
                f"{name!r}: X_{split} has {X.shape[0]} rows but y_{split} has {y.shape[0]} labels"
            )
        if y.dtype.kind in "iu":
            y = y.astype(np.int64)
        out += [np.ascontiguousarray(X, dtype=np.float32) if in_memory else X, y]
    if out[0].shape[1] != out[2].shape[1]:
        raise ValueError(
            f"{name!r}: X_train has {out[0].shape[1]} features but X_test has {out[2].shape[1]}"
        )
    if out[1].shape[1:] != out[3].shape[1:]:
        raise ValueError(f"{name!r}: y_train has shape {out[1].shape} but y_test "
                         f"{out[3].shape}: they must differ in their rows only")
    return tuple(out)


#: The arrays of a user's own split, in an .npz, a zarr group or a folder of .npy files.
SPLIT_KEYS = ("X_train", "y_train", "X_test", "y_test")


def load_out_of_core(path):
    """Open a user's split whose X arrays stay on disk, to be trained on one block at a time.

    Parameters
    ----------
    path : str or os.PathLike
        A zarr store (a folder ending in ``.zarr``: a group with the arrays ``X_train``,
        ``y_train``, ``X_test``, ``y_test``; needs zarr, the ``dask`` extra),
        or a folder holding ``X_train.npy``, ``y_train.npy``, ``X_test.npy`` and
        ``y_test.npy`` (the X files are opened as read-only ``numpy.memmap``).

    Returns
    -------
    X_train, y_train, X_test, y_test
        The X arrays as zarr arrays or memmaps (nothing read yet), the y arrays in memory, as
        :func:`load_npz` gives them.

    Raises
    ------
    FileNotFoundError
        A missing file or store.
    ValueError
        Missing arrays (named), or shapes and dtypes as :func:`load_npz` checks them.
    """
    name = os.fspath(path)
    if not os.path.exists(name):
        raise FileNotFoundError(2, "No such file or directory", name)
    if name.rstrip("/").endswith(".zarr"):
        try:
            import zarr
        except ImportError:
            raise ValueError(f"{name!r} is a zarr store: reading it needs zarr, "
                             + install_hint("dask")) from None
        try:
            group = zarr.open_group(name, mode="r")
        except Exception as exc:  # noqa: BLE001 - zarr raises several types for a bad store
            raise ValueError(f"{name!r}: not a zarr group ({type(exc).__name__}: {exc})") from None
        found = set(group.array_keys())
        arrays = {key: group[key] for key in SPLIT_KEYS if key in found}
    else:
        found = {f[:-4] for f in os.listdir(name) if f.endswith(".npy")}
        arrays = {key: np.load(os.path.join(name, key + ".npy"), allow_pickle=False,
                               mmap_mode="r" if key.startswith("X") else None)
                  for key in SPLIT_KEYS if key in found}
    missing = [key for key in SPLIT_KEYS if key not in arrays]
    if missing:
        raise ValueError(f"{name!r}: missing array(s) {', '.join(missing)}; it must hold "
                         f"{', '.join(SPLIT_KEYS)} (found: {', '.join(sorted(found)) or 'none'})")
    return _checked_split(name, arrays, in_memory=False)


def is_npy_folder(path):
    """Whether ``path`` is a folder of the split's ``.npy`` files (not IDX files)."""
    return os.path.isdir(path) and os.path.exists(os.path.join(path, "X_train.npy"))
