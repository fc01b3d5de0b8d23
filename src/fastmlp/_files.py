"""Files fastmlp writes whole or not at all, and the archive members it reads with care.

A leaf: imports nothing from fastmlp, so that the model, the tables and the command share it.
"""

import contextlib
import os
import secrets
import stat
import zipfile

import numpy as np

#: Zip compression methods an ``.npz`` member may use: NumPy writes stored (``np.savez``) or
#: deflated (``np.savez_compressed``) members. bzip2 and lzma, which zipfile also reads, are
#: refused: they inflate by ratios far beyond deflate's, which bounds what a small file holds.
NPZ_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}

#: Deflate's largest expansion is about 1032 to 1 (a run of one byte); a member that claims
#: more than this many bytes per compressed byte, plus a small allowance, is corrupt or crafted.
DEFLATE_MAX_RATIO = 1100


def create_beside(path):
    """Create a new, empty temporary file beside ``path``; return ``(fd, name)``.

    Not ``tempfile.mkstemp``: its file is mode 0600, which the rename would give ``path``. The
    file is created with mode ``0o666`` (the umask applies, as for ``open``), or with the mode
    of the file ``path`` names now, which a plain ``open`` would keep.
    """
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = None
    directory = os.path.dirname(os.path.abspath(path))
    for _ in range(100):
        tmp = os.path.join(directory, f".fastmlp-{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                         0o666)
        except FileExistsError:
            continue
        if mode is not None:
            os.chmod(tmp, mode)
        return fd, tmp
    raise FileExistsError(f"no unused temporary file name in {directory!r}")  # pragma: no cover


def check_writable(path):
    """Raise the ``OSError`` that writing ``path`` would raise, without touching ``path``.

    A temporary file is created beside it and removed: the check a long run makes before it
    starts, so that a folder that cannot be written fails in a second, not after the work.
    """
    fd, tmp = create_beside(path)
    os.close(fd)
    os.unlink(tmp)


@contextlib.contextmanager
def written_whole(path, mode="wb"):
    """Open a temporary file beside ``path``; rename it over ``path`` when the block ends well.

    Whatever fails inside the block (an error, Ctrl-C) removes the temporary file and leaves
    ``path`` as it was: a file fastmlp writes is written whole or not at all.
    """
    path = os.fspath(path)
    fd, tmp = create_beside(path)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def check_npz_member(info):
    """Refuse a zip member whose compression could inflate a small file into a large one.

    Called with the member's ``zipfile.ZipInfo`` before a byte of it is read. Raises
    ValueError for a method NumPy does not write, or for a claimed size that its compressed
    bytes cannot hold.
    """
    if info.compress_type not in NPZ_METHODS:
        raise ValueError(f"member {info.filename!r} uses zip compression method "
                         f"{info.compress_type}; .npz members are stored or deflated")
    if info.compress_type == zipfile.ZIP_STORED:
        plausible = info.file_size <= info.compress_size
    else:
        plausible = info.file_size <= DEFLATE_MAX_RATIO * info.compress_size + 1024
    if not plausible:
        raise ValueError(f"member {info.filename!r} claims {info.file_size} bytes from "
                         f"{info.compress_size} {NPZ_METHODS[info.compress_type]} bytes: "
                         "corrupt or crafted")


def read_npy_header(stream):
    """Read the ``.npy`` header at the start of ``stream``, without reading its data.

    Returns
    -------
    (version, header)
        ``header`` is ``(shape, fortran_order, dtype)`` for format versions 1.0 and 2.0, the
        ones NumPy writes for numeric arrays; None for another version, which the caller
        refuses or leaves to ``np.load``.
    """
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        return version, np.lib.format.read_array_header_1_0(stream)
    if version == (2, 0):
        return version, np.lib.format.read_array_header_2_0(stream)
    return version, None
