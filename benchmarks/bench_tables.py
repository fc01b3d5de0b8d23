"""Reading a table: Fashion-MNIST as a 60000 x 785 CSV, ``fastmlp.tables`` vs pandas.

The issue: "Reading a 60000 x 785 CSV (Fashion-MNIST written as a table) and training one
epoch: benchmark the reading against pandas.read_csv. It may not be slower."

The table: the Fashion-MNIST training set, a ``label`` column (0-9) then 784 pixel columns
``p0`` .. ``p783`` holding the integers 0-255, written once per session with
``pyarrow.csv.write_csv`` (about 120 MB), and a Parquet copy of it (the CSV as pyarrow reads it,
int64 columns, ``pyarrow.parquet.write_table``'s defaults). Each row times what a program does
to get from the file to the rows a model needs, X (C-contiguous, in the dtype) and y:

- fastmlp: ``tables.read_table(path, float_dtype=dtype, exclude=["label"])`` (what the
  command does: numeric columns parsed straight into the features' type), then
  ``tables.features(table, pixel names, dtype)`` and ``tables.column(table, "label")``;
- pandas (the competitor, in the same process and run): ``pandas.read_csv(path)`` (or
  ``pandas.read_parquet``), then ``.drop(columns="label").to_numpy(dtype)`` and
  ``df["label"].to_numpy()``.

Rows, grouped so that the report divides by the pandas row of the same run: CSV to float32,
CSV to float64, Parquet to float32 and to float64, each for both libraries; and one epoch of
``fastmlp.Model([784, 100, 10], dtype="float32")``, SGD, batch 32, learning rate 0.1, on the
rows the CSV gave (pixels / 255), so the reading is seen next to the training it feeds.

Timing: each read row has a warm-up read (the file in the page cache, the imports), then
``FASTMLP_BENCH_TABLE_ROUNDS`` (default 5) timed reads; the epoch row is timed like the other
training rows (``_benchlib.time_epochs``). pyarrow reads a CSV on its own thread pool
(``pyarrow.cpu_count()`` threads, recorded in ``extra_info``), pandas' C parser on one thread:
both as their users get them. Every read is checked against the pixels it was written from.

With ``--benchmark-disable`` (CI) the table holds the first 256 rows only (at most
``FASTMLP_BENCH_SMOKE_ROWS``) and every body runs once. Skipped with the reason when
Fashion-MNIST, pyarrow or pandas is missing.
"""

import os

import _benchlib as bl
import numpy as np
import pytest

#: Timed reads per read row (after one warm-up read).
READ_ROUNDS = int(os.environ.get("FASTMLP_BENCH_TABLE_ROUNDS", "5"))
#: Table rows under ``--benchmark-disable``: a few hundred are enough to run every body.
SMOKE_TABLE_ROWS = 256
LABEL = "label"
FORMATS = ("csv", "parquet")
DTYPES = ("float32", "float64")
IMPLS = ("pandas", "fastmlp")
EPOCH_LAYERS = (784, 100, 10)
EPOCH_BATCH = 32

_TABLES = {}  # rows -> {"csv": path, "parquet": path, "pixels": uint8 X, "labels": y}


def _pyarrow():
    pytest.importorskip("pyarrow", reason="needs pyarrow (pip install '.[tables]')")
    import pyarrow
    import pyarrow.csv
    import pyarrow.parquet

    return pyarrow


def _pandas():
    try:
        import pandas
    except ImportError:
        pytest.skip("needs pandas (pip install '.[test]')")
    return pandas


def table_rows(benchmark):
    """Rows of the table: all of Fashion-MNIST's, or a few hundred under --benchmark-disable."""
    rows = bl.smoke_rows(benchmark)
    return None if rows is None else min(rows, SMOKE_TABLE_ROWS)


def fashion_table(tmp_path_factory, rows):
    """The Fashion-MNIST training set (its first ``rows`` rows; None: all) as a CSV table and a
    Parquet copy, written once per session; skips when the data or pyarrow is missing."""
    X, y = bl.dataset("fashion", "float32")  # skips when Fashion-MNIST is missing
    pa = _pyarrow()
    if rows not in _TABLES:
        pixels = np.rint(X[:rows] * np.float32(255)).astype(np.uint8)  # the IDX file's bytes
        labels = np.asarray(y[:rows], dtype=np.int64)
        columns = {LABEL: labels, **{f"p{j}": pixels[:, j] for j in range(pixels.shape[1])}}
        folder = tmp_path_factory.mktemp("fashion-table")
        paths = {fmt: str(folder / f"fashion-train.{fmt}") for fmt in FORMATS}
        pa.csv.write_csv(pa.table(columns), paths["csv"])
        # the Parquet copy of the table as read from the CSV (int64 columns)
        pa.parquet.write_table(pa.csv.read_csv(paths["csv"]), paths["parquet"])
        _TABLES[rows] = {**paths, "pixels": pixels, "labels": labels}
    return _TABLES[rows]


def read_fastmlp(path, dtype):
    from fastmlp import tables

    # as the command reads a table: numbers parsed straight into the features' type
    table = tables.read_table(path, float_dtype=dtype, exclude=[LABEL])
    names = [name for name in table.column_names if name != LABEL]
    return tables.features(table, names, dtype=dtype), tables.column(table, LABEL)


def read_pandas(path, dtype):
    pd = _pandas()
    df = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)
    return df.drop(columns=LABEL).to_numpy(dtype), df[LABEL].to_numpy()


READERS = {"fastmlp": read_fastmlp, "pandas": read_pandas}


def _versions(impl):
    pa = _pyarrow()
    info = {"pyarrow_version": pa.__version__, "pyarrow_threads": pa.cpu_count()}
    if impl == "pandas":
        info["pandas_version"] = _pandas().__version__
    return info


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_read_table(benchmark, tmp_path_factory, fmt, dtype, impl):
    if impl == "pandas":
        _pandas()  # skip before the table is written
    data = fashion_table(tmp_path_factory, table_rows(benchmark))
    n_rows, n_cols = data["pixels"].shape[0], data["pixels"].shape[1] + 1
    path = data[fmt]
    benchmark.group = f"tables: read {fmt} to {dtype} ({n_rows} x {n_cols})"
    benchmark.extra_info.update(kind="table-read", impl=impl, format=fmt, dtype=dtype,
                                n_rows=n_rows, n_columns=n_cols,
                                file_mib=os.path.getsize(path) / 2**20, **_versions(impl))
    X, y = bl.time_calls(benchmark, READERS[impl], args=(path, dtype), rounds=READ_ROUNDS)
    benchmark.extra_info["c_contiguous"] = bool(X.flags.c_contiguous)
    assert X.dtype == np.dtype(dtype)
    assert X.flags.c_contiguous or impl == "pandas"  # pandas gives Fortran order, see above
    assert np.array_equal(X, data["pixels"].astype(dtype))
    assert np.array_equal(y, data["labels"])


def test_epoch_after_read(benchmark, tmp_path_factory):
    """One epoch of 784-100-10 float32 SGD batch 32 on the rows read from the CSV."""
    data = fashion_table(tmp_path_factory, table_rows(benchmark))
    X, y = read_fastmlp(data["csv"], "float32")
    X /= np.float32(255)
    import fastmlp

    benchmark.group = f"tables: one epoch on the rows read ({X.shape[0]} rows)"
    benchmark.extra_info.update(kind="table-epoch", impl="fastmlp", dtype="float32",
                                layer_sizes=list(EPOCH_LAYERS), batch_size=EPOCH_BATCH,
                                solver="sgd", n_rows=X.shape[0], threads=bl.N_THREADS)
    model = fastmlp.Model(list(EPOCH_LAYERS), dtype="float32", seed=0)

    def epoch(rows=None):
        n = X.shape[0] if rows is None else rows
        history = model.fit(X[:n], y[:n], epochs=1, batch_size=EPOCH_BATCH,
                            learning_rate=0.1, progress=False)
        return history.loss[-1]

    with bl.numba_threads(bl.N_THREADS):
        estimate = bl.time_epochs(benchmark, epoch, X.shape[0], EPOCH_BATCH)
    if estimate is not None:
        benchmark.extra_info["estimated_s"] = estimate
    benchmark.extra_info["loss"] = float(model.history.loss[-1])
    assert np.isfinite(model.history.loss[-1])
