"""Tests for fastmlp.datasets (IDX reader/writer and dataset loaders)."""

import gzip
import os
import struct
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastmlp import datasets
from fastmlp.datasets import (
    DIABETES_Y_SCALE,
    load_diabetes,
    load_digits,
    load_fashion_mnist,
    load_idx,
    load_mnist,
    load_npz,
    write_idx,
)

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def _sample(dtype, shape=(3, 4, 5), seed=0):
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    return (rng.standard_normal(shape) * 1e3).astype(dtype)


def _idx_bytes(array):
    """Raw IDX bytes of ``array`` (via write_idx to a temporary file)."""
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "a.idx")
        write_idx(p, array)
        with open(p, "rb") as f:
            return f.read()


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


# --------------------------------------------------------------------------------------
# round trips
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip(tmp_path, dtype, suffix):
    a = _sample(dtype)
    p = tmp_path / f"a-idx{suffix}"
    write_idx(p, a)
    with open(p, "rb") as f:
        assert (f.read(2) == b"\x1f\x8b") == (suffix == ".gz")
    b = load_idx(p)
    assert b.dtype == np.dtype(dtype)
    assert b.dtype.isnative
    assert b.shape == a.shape
    assert b.flags.writeable and b.flags.c_contiguous
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape", [(7,), (2, 3), (0, 28, 28), (1, 1, 1, 1, 2)])
def test_round_trip_shapes(tmp_path, shape):
    a = _sample(np.int16, shape)
    write_idx(tmp_path / "a", a)
    np.testing.assert_array_equal(load_idx(str(tmp_path / "a")), a)


def test_write_big_endian_input_and_header_layout(tmp_path):
    a = np.arange(6, dtype=">i4").reshape(2, 3)
    write_idx(tmp_path / "a", a)
    raw = (tmp_path / "a").read_bytes()
    assert raw[:4] == b"\x00\x00\x0c\x02"
    assert struct.unpack(">2I", raw[4:12]) == (2, 3)
    assert struct.unpack(">6i", raw[12:]) == tuple(range(6))
    np.testing.assert_array_equal(load_idx(tmp_path / "a"), a)


def test_gzip_detected_by_content_not_name(tmp_path):
    a = _sample(np.uint8)
    write_idx(tmp_path / "a.gz", a)
    os.rename(tmp_path / "a.gz", tmp_path / "plain-name")
    np.testing.assert_array_equal(load_idx(tmp_path / "plain-name"), a)
    write_idx(tmp_path / "b", a)
    os.rename(tmp_path / "b", tmp_path / "b.gz")
    np.testing.assert_array_equal(load_idx(tmp_path / "b.gz"), a)


def test_write_rejects_unsupported(tmp_path):
    with pytest.raises(TypeError, match="int64"):
        write_idx(tmp_path / "a", np.zeros(3, dtype=np.int64))
    with pytest.raises(TypeError):
        write_idx(tmp_path / "a", np.zeros(3, dtype=bool))
    with pytest.raises(ValueError, match="dimensions"):
        write_idx(tmp_path / "a", np.zeros((), dtype=np.uint8))


# --------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "head, match",
    [
        (b"\x01\x00\x08\x01", "first two bytes must be zero"),
        (b"\x00\x07\x08\x01", "first two bytes must be zero"),
        (b"\x00\x00\x07\x01", "unknown data type code 0x07"),
        (b"\x00\x00\x0a\x01", "unknown data type code 0x0A"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
    ],
)
@pytest.mark.parametrize("gz", [False, True])
def test_wrong_magic(tmp_path, head, match, gz):
    data = head + struct.pack(">I", 3) + b"abc"
    if gz:
        data = gzip.compress(data)
    p = _write(tmp_path / "bad", data)
    with pytest.raises(ValueError, match=match) as exc:
        load_idx(p)
    assert "bad" in str(exc.value) and "magic" in str(exc.value)


def test_too_short_for_magic(tmp_path):
    for data in (b"", b"\x00", b"\x00\x00\x08"):
        with pytest.raises(ValueError, match="too short"):
            load_idx(_write(tmp_path / "short", data))


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_data(tmp_path, gz):
    good = _idx_bytes(np.arange(24, dtype=np.int32).reshape(2, 3, 4))
    data = good[:-5]
    if gz:
        data = gzip.compress(data)
    p = _write(tmp_path / "trunc", data)
    with pytest.raises(ValueError, match=r"truncated.*declares 96 data bytes, found only 91"):
        load_idx(p)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_header(tmp_path, gz):
    data = b"\x00\x00\x08\x03" + struct.pack(">2I", 1, 2)
    if gz:
        data = gzip.compress(data)
    with pytest.raises(ValueError, match="truncated IDX header"):
        load_idx(_write(tmp_path / "trunc", data))


def test_truncated_gzip_stream(tmp_path):
    good = gzip.compress(_idx_bytes(_sample(np.uint8)))
    # cut into the deflate data and into the CRC/size trailer
    for cut in (len(good) // 2, len(good) - 4, len(good) - 1):
        with pytest.raises(ValueError, match="gzip"):
            load_idx(_write(tmp_path / "cut.gz", good[:cut]))


@pytest.mark.parametrize("gz", [False, True])
def test_trailing_bytes(tmp_path, gz):
    data = _idx_bytes(_sample(np.float32)) + b"xyz"
    if gz:
        data = gzip.compress(data)
    with pytest.raises(ValueError, match="3 unexpected trailing bytes"):
        load_idx(_write(tmp_path / "trail", data))


def test_corrupt_gzip(tmp_path):
    good = bytearray(gzip.compress(_idx_bytes(_sample(np.float64, (20, 20)))))
    bad_crc = bytearray(good)
    bad_crc[-8] ^= 0xFF  # CRC32 in the trailer
    bad_body = bytearray(good)
    for i in range(12, 40):
        bad_body[i] ^= 0x5A
    garbage = b"\x1f\x8b" + os.urandom(64)
    for data in (bad_crc, bad_body, garbage, b"\x1f\x8b"):
        with pytest.raises(ValueError, match="corrupt") as exc:
            load_idx(_write(tmp_path / "corrupt.gz", bytes(data)))
        assert "corrupt.gz" in str(exc.value)


def test_missing_file(tmp_path):
    p = tmp_path / "does-not-exist-idx"
    with pytest.raises(FileNotFoundError, match="does-not-exist-idx"):
        load_idx(p)


@pytest.mark.parametrize("gz", [False, True])
def test_absurd_header_rejected_without_allocating(tmp_path, gz):
    data = b"\x00\x00\x0e\x04" + struct.pack(">4I", *(2**32 - 1,) * 4)
    if gz:
        data = gzip.compress(data)
    with pytest.raises(ValueError, match="limit"):
        load_idx(_write(tmp_path / "huge", data))


def test_large_declared_size_small_gzip_is_truncated(tmp_path):
    # under the limit but far more than present: must fail fast, not allocate 8 GiB; refused
    # from the sizes alone, as more than the gzip file's bytes can inflate to
    data = gzip.compress(b"\x00\x00\x08\x02" + struct.pack(">2I", 2**16, 2**17) + b"\x00" * 10)
    with pytest.raises(ValueError, match="more than the 32 bytes of the gzip file can hold"):
        load_idx(_write(tmp_path / "big.gz", data))


# --------------------------------------------------------------------------------------
# load_mnist / load_fashion_mnist
# --------------------------------------------------------------------------------------
def _fake_mnist(directory, n_train=12, n_test=5, gz=False, n_train_labels=None, seed=0):
    rng = np.random.default_rng(seed)
    sfx = ".gz" if gz else ""
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 4, 3), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(
            0, 10, n_train if n_train_labels is None else n_train_labels, dtype=np.uint8
        ),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 4, 3), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    arrays["train-images-idx3-ubyte"][0, 0, 0] = 255
    for name, a in arrays.items():
        write_idx(os.path.join(directory, name + sfx), a)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_fake(tmp_path, gz):
    arrays = _fake_mnist(tmp_path, gz=gz)
    X_train, y_train, X_test, y_test = load_mnist(tmp_path)
    assert X_train.shape == (12, 12) and X_test.shape == (5, 12)
    assert X_train.dtype == np.float32 and X_test.dtype == np.float32
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    assert X_train.min() >= 0 and X_train.max() == 1.0 and X_test.max() <= 1
    np.testing.assert_allclose(
        X_train * 255, arrays["train-images-idx3-ubyte"].reshape(12, -1), atol=1e-4
    )
    np.testing.assert_array_equal(y_test, arrays["t10k-labels-idx1-ubyte"])


def test_load_mnist_count_mismatch(tmp_path):
    _fake_mnist(tmp_path, n_train=12, n_train_labels=11)
    with pytest.raises(ValueError, match="12 images.*11 labels"):
        load_mnist(tmp_path)


def test_load_mnist_missing_files(tmp_path):
    _fake_mnist(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte")
    with pytest.raises(FileNotFoundError) as exc:
        load_mnist(tmp_path)
    msg = str(exc.value)
    assert str(tmp_path) in msg
    assert "t10k-labels-idx1-ubyte" in msg and "train-images-idx3-ubyte" in msg
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "nope")


@pytest.mark.skipif(
    not os.path.isdir(FASHION_DIR),
    reason=f"real Fashion-MNIST not installed at {FASHION_DIR} "
    "(apt-get install dataset-fashion-mnist)",
)
def test_load_fashion_mnist_real(monkeypatch):
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    X_train, y_train, X_test, y_test = load_fashion_mnist()
    assert X_train.shape == (60000, 784) and X_test.shape == (10000, 784)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert X_train.dtype == np.float32 and X_test.dtype == np.float32
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    for X in (X_train, X_test):
        assert X.min() == 0.0 and X.max() == 1.0
    assert set(np.unique(y_train)) == set(range(10)) == set(np.unique(y_test))
    assert np.all(np.bincount(y_train) == 6000)


def test_load_fashion_mnist_env_and_path(tmp_path, monkeypatch):
    _fake_mnist(tmp_path, n_train=7, n_test=3, gz=True)
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path))
    assert load_fashion_mnist()[0].shape == (7, 12)
    monkeypatch.delenv("FASHION_MNIST_DIR")
    assert load_fashion_mnist(tmp_path)[2].shape == (3, 12)


def test_load_fashion_mnist_missing(tmp_path, monkeypatch):
    nowhere = tmp_path / "no-such-dir"
    monkeypatch.setenv("FASHION_MNIST_DIR", str(nowhere))
    with pytest.raises(FileNotFoundError) as exc:
        load_fashion_mnist(nowhere)
    msg = str(exc.value)
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "FASHION_MNIST_DIR" in msg and str(nowhere) in msg
    # path=None, FASHION_MNIST_DIR unset: the default dir
    monkeypatch.delenv("FASHION_MNIST_DIR")
    monkeypatch.setattr(datasets, "_FASHION_MNIST_DEFAULT_DIR", str(tmp_path / "default"))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as exc:
        load_fashion_mnist()
    assert f"directory {str(tmp_path / 'default')!r} does not exist" in str(exc.value)


@pytest.mark.parametrize("made", [False, True], ids=["no-such-folder", "empty-folder"])
def test_fashion_mnist_dir_is_never_silently_ignored(made, tmp_path, monkeypatch):
    # A FASHION_MNIST_DIR without the files is an error naming the variable and the path,
    # even when the default folder holds the data.
    default = tmp_path / "default"
    default.mkdir()
    _fake_mnist(default, n_train=7, n_test=3)
    monkeypatch.setattr(datasets, "_FASHION_MNIST_DEFAULT_DIR", str(default))
    wrong = tmp_path / "wrong"
    if made:
        wrong.mkdir()
    monkeypatch.setenv("FASHION_MNIST_DIR", str(wrong))
    with pytest.raises(FileNotFoundError) as exc:
        load_fashion_mnist()
    problem = "lacks train-images-idx3-ubyte[.gz]" if made else "does not exist"
    assert (f"the environment variable FASHION_MNIST_DIR is {str(wrong)!r}, a folder that "
            f"{problem}") in str(exc.value)
    monkeypatch.delenv("FASHION_MNIST_DIR")
    assert load_fashion_mnist()[0].shape == (7, 12)


# --------------------------------------------------------------------------------------
# load_digits / load_npz
# --------------------------------------------------------------------------------------
def test_load_digits():
    X_train, y_train, X_test, y_test = load_digits()
    assert X_train.shape[0] + X_test.shape[0] == 1797
    assert X_test.shape == (450, 64) and X_train.shape == (1347, 64)
    assert X_train.dtype == np.float32 and y_train.dtype == np.int64
    assert X_test.dtype == np.float32 and y_test.dtype == np.int64
    assert X_train.min() == 0.0 and X_train.max() == 1.0 and X_test.max() <= 1.0
    assert set(np.unique(y_test)) == set(range(10))
    again = load_digits()
    np.testing.assert_array_equal(again[1], y_train)
    other = load_digits(test_size=0.5, seed=1)
    assert other[2].shape[0] in (898, 899)


def test_load_diabetes():
    from sklearn.datasets import load_diabetes as sk_load_diabetes

    X_train, y_train, X_test, y_test = load_diabetes()
    assert X_train.shape == (331, 10) and X_test.shape == (111, 10)
    assert y_train.shape == (331,) and y_test.shape == (111,)
    for a in (X_train, y_train, X_test, y_test):
        assert a.dtype == np.float32 and a.flags.c_contiguous
    # standardised by the training set; the test set with the same mean and deviation
    np.testing.assert_allclose(X_train.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(X_train.std(axis=0), 1, rtol=1e-5)
    assert np.abs(X_test.mean(axis=0)).max() < 0.5
    # the targets divided by 100, every one of them kept, the split always the same
    target = sk_load_diabetes().target
    np.testing.assert_allclose(np.sort(np.concatenate([y_train, y_test])),
                               np.sort(target / 100), rtol=1e-6)
    assert y_train.min() > 0 and DIABETES_Y_SCALE == 100
    again = load_diabetes()
    np.testing.assert_array_equal(again[0], X_train)
    np.testing.assert_array_equal(again[3], y_test)
    other = load_diabetes(test_size=0.5, seed=1)
    assert other[2].shape == (221, 10)
    assert not np.array_equal(other[1][:10], y_train[:10])


def test_load_npz_two_dimensional_targets(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "reg.npz"
    np.savez(p, X_train=rng.standard_normal((10, 3)), y_train=rng.standard_normal((10, 2)),
             X_test=rng.standard_normal((4, 3)), y_test=rng.standard_normal((4, 2)))
    _, y_train, _, y_test = load_npz(p)
    assert y_train.shape == (10, 2) and y_test.shape == (4, 2)
    assert y_train.dtype == np.float64
    np.savez(p, X_train=np.zeros((10, 3)), y_train=np.zeros((10, 2)), X_test=np.zeros((4, 3)),
             y_test=np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"y_train has shape \(10, 2\) but y_test \(4, 3\)"):
        load_npz(p)
    np.savez(p, X_train=np.zeros((10, 3)), y_train=np.zeros(10), X_test=np.zeros((4, 3)),
             y_test=np.zeros((4, 1)))
    with pytest.raises(ValueError, match="differ in their rows only"):
        load_npz(p)
    np.savez(p, X_train=np.zeros((10, 3)), y_train=np.zeros((10, 2, 2)),
             X_test=np.zeros((4, 3)), y_test=np.zeros(4))
    with pytest.raises(ValueError, match=r"must be 1-D .* or 2-D .*, got shape \(10, 2, 2\)"):
        load_npz(p)


def test_load_npz(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "d.npz"
    np.savez(
        p,
        X_train=rng.standard_normal((10, 3)),
        y_train=np.arange(10, dtype=np.int32) % 2,
        X_test=rng.integers(0, 5, (4, 3)),
        y_test=np.array([0, 1, 0, 1]),
    )
    X_train, y_train, X_test, y_test = load_npz(p)
    assert X_train.dtype == np.float32 and X_test.dtype == np.float32
    assert X_train.shape == (10, 3) and X_test.shape == (4, 3)
    assert y_train.dtype == np.int64 and y_test.shape == (4,)


def test_load_npz_errors(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, X_train=np.zeros((3, 2)), y_test=np.zeros(3))
    with pytest.raises(ValueError, match=r"missing array\(s\) y_train, X_test;"):
        load_npz(p)

    np.savez(p, X_train=np.zeros(3), y_train=np.zeros(3), X_test=np.zeros(3), y_test=np.zeros(3))
    with pytest.raises(ValueError, match="2-D"):
        load_npz(p)

    np.savez(
        p,
        X_train=np.zeros((3, 2)),
        y_train=np.zeros(3),
        X_test=np.zeros((3, 4)),
        y_test=np.zeros(3),
    )
    with pytest.raises(ValueError, match="2 features.*4"):
        load_npz(p)

    np.savez(
        p,
        X_train=np.array([None] * 6).reshape(3, 2),
        y_train=np.zeros(3),
        X_test=np.zeros((3, 2)),
        y_test=np.zeros(3),
    )
    with pytest.raises(ValueError):
        load_npz(p)

    with pytest.raises(FileNotFoundError):
        load_npz(tmp_path / "missing.npz")


# --------------------------------------------------------------------------------------
# property tests: arbitrary bytes never produce anything but ValueError or success
# --------------------------------------------------------------------------------------
_VALID = _idx_bytes(_sample(np.int16, (3, 5, 2)))
_VALID_GZ = gzip.compress(_VALID, mtime=0)
_FUZZ = settings(
    max_examples=200,
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("idx-fuzz")


def _load_bytes(directory, data):
    p = _write(directory / "fuzz", data)
    try:
        out = load_idx(p)
    except ValueError:
        return None
    assert isinstance(out, np.ndarray)
    return out


_header_like = st.builds(
    lambda code, ndim, dims, tail: (
        bytes([0, 0, code, ndim]) + b"".join(struct.pack(">I", d) for d in dims) + tail
    ),
    st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF]),
    st.integers(0, 5),
    st.lists(st.integers(0, 2**32 - 1) | st.integers(0, 6), max_size=5),
    st.binary(max_size=100),
)
_any_bytes = st.binary(max_size=300) | _header_like


@_FUZZ
@given(data=_any_bytes, gz=st.booleans(), gzip_magic=st.booleans())
def test_fuzz_random_bytes(fuzz_dir, data, gz, gzip_magic):
    if gz:
        data = gzip.compress(data, mtime=0)
    elif gzip_magic:
        data = b"\x1f\x8b" + data
    _load_bytes(fuzz_dir, data)


@_FUZZ
@given(cut=st.integers(0, len(_VALID) - 1), gz=st.booleans())
def test_fuzz_truncations_raise_value_error(fuzz_dir, cut, gz):
    src = _VALID_GZ if gz else _VALID
    cut = min(cut, len(src) - 1)
    with pytest.raises(ValueError):
        load_idx(_write(fuzz_dir / "trunc", src[:cut]))


@_FUZZ
@given(
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=4),
    gz=st.booleans(),
)
def test_fuzz_corrupted_valid_file(fuzz_dir, flips, gz):
    data = bytearray(_VALID_GZ if gz else _VALID)
    for pos, x in flips:
        data[pos % len(data)] ^= x
    _load_bytes(fuzz_dir, bytes(data))


def test_valid_fuzz_seed_loads(fuzz_dir):
    assert _load_bytes(fuzz_dir, _VALID).shape == (3, 5, 2)
    assert _load_bytes(fuzz_dir, _VALID_GZ).dtype == np.int16
