"""Tables in and out: CSV and Parquet files through pyarrow (the optional extra ``tables``).

``fastmlp train --data table.csv --target COLUMN`` and ``fastmlp predict MODEL table.parquet``
read through these functions, and so can a program::

    from fastmlp import tables
    table = tables.read_table("wine.parquet")
    names, X, y = tables.split_features(table, "cultivar")

Every reader returns NumPy float64 rows with NaN for a missing entry; a model's
:class:`~fastmlp.Preprocessing` fills or refuses them. pyarrow is imported on first use, so
``import fastmlp`` and NumPy inputs work without it.
"""

import collections
import io
import os

import numpy as np

from fastmlp._extras import MissingExtraError
from fastmlp._files import written_whole

#: File name endings read as tables, and the format of each.
TABLE_SUFFIXES = {".csv": "csv", ".csv.gz": "csv", ".csv.bz2": "csv", ".tsv": "tsv",
                  ".parquet": "parquet", ".pq": "parquet"}

#: Bytes of float64 rows converted at a time from a large batch (a Parquet row group is up to
#: a million rows): the temporary stays small, and pyarrow's per-call cost over hundreds of
#: columns is paid rarely. Fashion-MNIST's 60000 x 784 int64 Parquet table to float32 rows,
#: median of 7: 0.27 s in 1 MiB slices, 0.17 s in 4 MiB, 0.20 s in 8 MiB.
SLICE_BYTES = 4 << 20


def table_format(path):
    """``"csv"``, ``"tsv"`` or ``"parquet"`` for a path whose ending names a table, else None."""
    name = os.fspath(path).lower()
    for suffix, fmt in TABLE_SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    return None


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.compute
        import pyarrow.csv
        import pyarrow.parquet
    except ImportError:
        raise MissingExtraError("reading and writing tables (CSV, Parquet: pyarrow)",
                                "tables") from None
    return pyarrow


def read_table(path, float_dtype=None, exclude=()):
    """Read a CSV (``.csv``, ``.csv.gz``, ``.tsv``) or Parquet (``.parquet``, ``.pq``) file.

    A CSV's first row names the columns, unless every field of it is a number: then the file
    has no header and its columns are named ``f0``, ``f1``, ... A first row that is exactly
    ``0,1,...,n-1`` (n >= 2), the names pandas gives columns by default, is a header. In a
    numeric column, empty fields and ``NA``, ``NaN``, ``null`` and the like are missing values;
    in a text column an empty field is the empty text, which :func:`missing_count` and the
    target of :func:`split_features` count as missing.

    Parameters
    ----------
    path : str or path-like
    float_dtype : NumPy float dtype, optional
        CSV only: parse every column that pyarrow's type inference finds integer or float in
        the file's first block straight into this type, except the columns in ``exclude``.
        Give the features' type: :func:`features` then copies without converting, and the
        parse infers no types after the first block (Fashion-MNIST as a 60000 x 785 CSV,
        median of 6 reads taking turns: 1.78 s to float64 rows, against 2.43 s through
        inferred int64 columns). A float32 column holds each decimal rounded once, straight
        to float32, not through float64. Should a column hold text after the first block,
        the file is read again with the types inferred, as without ``float_dtype``.
    exclude : iterable of str
        Columns that keep the inferred type: the target, an id column to carry through.

    Returns
    -------
    pyarrow.Table

    Raises
    ------
    MissingExtraError
        pyarrow is not installed.
    OSError
        The file cannot be read.
    ValueError
        The file is not a table of that format, or its ending names none.
    """
    pa = _pyarrow()
    path = os.fspath(path)
    fmt = table_format(path)
    if fmt is None:
        raise ValueError(f"{path!r}: not a table file name; tables end in "
                         f"{', '.join(TABLE_SUFFIXES)}")
    if not os.path.exists(path):
        raise FileNotFoundError(2, "No such file or directory", path)
    try:
        if fmt == "parquet":
            table = pa.parquet.read_table(path)
        else:
            table = _read_csv(pa, path, fmt, float_dtype, set(exclude))
    except pa.ArrowInvalid as exc:
        raise ValueError(f"{path!r}: {exc}") from None
    # one list, counted once: column_names builds a new list on each call, and counting each
    # name in it was quadratic (0.6 s on Fashion-MNIST's 785 columns)
    twice = sorted(name for name, count in collections.Counter(table.column_names).items()
                   if count > 1)
    if twice:
        raise ValueError(f"{path!r}: columns must have distinct names; named more than once: "
                         f"{_listed(twice)}")
    return table


def _read_csv(pa, path, fmt, float_dtype, exclude):
    """Read with pyarrow's CSV reader; a first row of numbers is data, not a header.

    The header and the column types come from the first block alone (``open_csv`` reads one,
    and infers the types pyarrow's whole read would), so the file is parsed once.
    """
    read, parse, schema = _csv_options(pa, path, fmt)
    convert = pa.csv.ConvertOptions()
    if float_dtype is not None:
        to = pa.from_numpy_dtype(np.dtype(float_dtype))
        convert.column_types = {
            field.name: to for field in schema
            if field.name not in exclude and _is_int_or_float(pa, field.type)}
    try:
        return pa.csv.read_csv(path, read_options=read, parse_options=parse,
                               convert_options=convert)
    except pa.ArrowInvalid:
        if not convert.column_types:
            raise
    # text in a column that the first block showed numeric: pyarrow's inferred read makes it a
    # text column, which features() names in its error, as without float_dtype
    return pa.csv.read_csv(path, read_options=read, parse_options=parse)


def _csv_options(pa, path, fmt):
    """Return pyarrow's read and parse options for a CSV, and its first block's schema."""
    parse = pa.csv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",")
    read = pa.csv.ReadOptions()
    # pyarrow's default blocks of 1 MiB, parsed on its thread pool: on Fashion-MNIST's
    # 785 columns, 1 MiB blocks read fastest (median 1.08 s; 4 MiB 1.27 s, 16 MiB 1.25 s;
    # pandas.read_csv 1.66 s, the reads taking turns on a quiet 2-core machine).
    schema = _first_block_schema(pa, path, read, parse)
    names = schema.names
    # pandas writes a DataFrame's default column names 0, 1, ..., n-1 as its header: a first
    # row of exactly those is a header, not data (10 rows in must be 10 rows read)
    pandas_default = len(names) >= 2 and names == [str(j) for j in range(len(names))]
    if len(names) and all(_is_number(name) for name in names) and not pandas_default:
        read = pa.csv.ReadOptions(column_names=[f"f{j}" for j in range(len(schema))])
        schema = _first_block_schema(pa, path, read, parse)
    return read, parse, schema


def read_verbatim(path, names):
    """Read the columns ``names`` of a table exactly as the file holds them.

    What ``fastmlp predict --keep`` copies: a CSV's fields come back as the text between its
    delimiters (quotes removed), never parsed as numbers, so ``007`` stays ``007`` and a
    20-digit id keeps every digit; an empty field stays the empty text, ``NA`` the text NA.
    A Parquet file's columns come back with their stored type and values.

    Returns
    -------
    dict of str to pyarrow.ChunkedArray

    Raises
    ------
    KeyError
        A name is not a column of the table (the message names it).
    ValueError
        The file is not a table of that format.
    """
    pa = _pyarrow()
    path = os.fspath(path)
    names = list(names)
    fmt = table_format(path)
    try:
        if fmt == "parquet":
            table = pa.parquet.read_table(path, columns=None)
        else:
            read, parse, schema = _csv_options(pa, path, fmt)
            absent = [name for name in names if name not in schema.names]
            if absent:
                raise KeyError(f"the table has no column {_listed(absent)} (its columns: "
                               f"{_listed(schema.names, 12)})")
            convert = pa.csv.ConvertOptions(
                include_columns=names, column_types={name: pa.string() for name in names},
                strings_can_be_null=False)
            table = pa.csv.read_csv(path, read_options=read, parse_options=parse,
                                    convert_options=convert)
    except pa.ArrowInvalid as exc:
        raise ValueError(f"{path!r}: {exc}") from None
    absent = [name for name in names if name not in table.column_names]
    if absent:
        raise KeyError(f"the table has no column {_listed(absent)} (its columns: "
                       f"{_listed(table.column_names, 12)})")
    return {name: table.column(name) for name in names}


def missing_count(table, name):
    """Count the missing entries of a column: nulls, and empty text in a text column.

    pyarrow reads an empty CSV field of a text column as the empty string; a label that is
    empty is a label that is missing, not a class named ``""``.
    """
    pa = _pyarrow()
    values = table.column(name)
    missing = values.null_count
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        empty = pa.compute.equal(values, "")
        missing += pa.compute.sum(empty).as_py() or 0
    return missing


def _first_block_schema(pa, path, read, parse):
    """Return the column names and types pyarrow infers from a CSV's first block."""
    with pa.csv.open_csv(path, read_options=read, parse_options=parse) as reader:
        return reader.schema


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_int_or_float(pa, arrow_type):
    """Whether a column of ``arrow_type`` holds plain numbers: NumPy's ints and floats."""
    return pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type)


def _is_numeric(arrow_type):
    pa = _pyarrow()
    return (_is_int_or_float(pa, arrow_type) or pa.types.is_boolean(arrow_type)
            or pa.types.is_decimal(arrow_type) or pa.types.is_null(arrow_type))


def features(table, names, dtype=np.float64):
    """Return the columns ``names`` as C-contiguous rows, NaN where an entry is missing.

    Raises
    ------
    KeyError
        A column is not in the table (the message names it).
    TypeError
        Columns that are not numeric (all of them named, in one line).
    """
    pa = _pyarrow()
    names = list(names)
    # the index of each name, made once: a table's column_names is a new list on each call
    index = {name: j for j, name in enumerate(table.column_names)}
    absent = [name for name in names if name not in index]
    if absent:
        raise KeyError(f"the table has no column {_listed(absent)} (its columns: "
                       f"{_listed(table.column_names, 12)})")
    schema = table.schema
    text = [name for name in names if not _is_numeric(schema.field(index[name]).type)]
    if text:
        raise TypeError(f"feature columns must be numeric; not numbers: {_listed(text)} "
                        "(encode them as numbers, or leave them out of the features)")
    # Batch by batch into the rows of X: pyarrow lays a batch of integer and float columns out
    # as C-ordered rows itself (RecordBatch.to_tensor, NaN for a null), in C++; other numeric
    # columns (bool, decimal, half float, all-null) go column by column through a buffer. Writing
    # whole columns straight into C-ordered rows strides through memory, and a ChunkedArray's
    # to_numpy joins its chunks first: each costs several times this on wide tables.
    columns = [index[name] for name in names]
    selected = table.select(columns)
    plain = all(_is_int_or_float(pa, field.type) and field.type != pa.float16()
                for field in selected.schema)  # to_tensor cannot cast half floats
    X = np.empty((table.num_rows, len(names)), dtype=dtype)
    start = 0
    for batch in _slices(selected.to_batches(), max(1, SLICE_BYTES // (8 * len(names)))):
        stop = start + batch.num_rows
        if batch.num_rows == 0:
            continue
        if plain:
            X[start:stop] = np.asarray(batch.to_tensor(null_to_nan=True, row_major=True))
        else:
            rows = np.empty((len(names), batch.num_rows), dtype=dtype)
            for j in range(batch.num_columns):
                values = batch.column(j)
                if values.null_count or not _is_int_or_float(pa, values.type):
                    # NaN for a null; bool and decimal as numbers
                    values = pa.compute.cast(values, pa.float64())
                    rows[j] = values.to_numpy(zero_copy_only=False)
                else:
                    rows[j] = _primitive_view(pa, values)
            X[start:stop] = rows.T
        start = stop
    return X


def _slices(batches, rows):
    """Cut the batches into slices of at most ``rows`` rows (views, nothing copied).

    A Parquet file's batch is a whole row group, up to a million rows: converted whole, its
    float64 rows would be a temporary as large as the result.
    """
    for batch in batches:
        for offset in range(0, batch.num_rows, rows):
            yield batch.slice(offset, rows)


def _primitive_view(pa, values):
    """View an integer or float array without nulls as a NumPy array, copying nothing.

    Not ``Array.to_numpy``, which imports pandas (0.4 s) on its first call.
    """
    kind = ("f" if pa.types.is_floating(values.type)
            else "i" if pa.types.is_signed_integer(values.type) else "u")
    dtype = np.dtype(f"{kind}{values.type.bit_width // 8}")
    return np.frombuffer(values.buffers()[1], dtype=dtype, count=len(values),
                         offset=values.offset * dtype.itemsize)


def column(table, name):
    """Return one column as a NumPy array: numbers, or ``str`` values for text.

    Raises
    ------
    KeyError
        No such column.
    """
    if name not in table.column_names:
        raise KeyError(f"the table has no column {name!r} (its columns: "
                       f"{_listed(table.column_names, 12)})")
    values = table.column(name)
    if values.null_count:
        return np.array(values.to_pylist(), dtype=object)
    out = values.to_numpy(zero_copy_only=False)
    if out.dtype == object:
        out = out.astype(str)
    return out


def split_features(table, target, drop=()):
    """Split a table into feature columns and a target column.

    The features are every column but ``target`` and those in ``drop``, in the table's order.

    Returns
    -------
    feature_names : list of str
    X : ndarray of float64, shape (n_rows, n_features)
        NaN where an entry is missing.
    y : ndarray, shape (n_rows,)
        The target as the table holds it: numbers, or ``str`` labels.

    Raises
    ------
    KeyError
        ``target`` or a ``drop`` column is not in the table.
    TypeError
        Non-numeric feature columns (all of them named).
    ValueError
        Missing target values: nulls or empty text (the count is given), or no feature
        column left.
    """
    absent = [name for name in [target, *drop] if name not in table.column_names]
    if absent:
        raise KeyError(f"the table has no column {_listed(absent)} (its columns: "
                       f"{_listed(table.column_names, 12)})")
    names = [name for name in table.column_names if name != target and name not in drop]
    if not names:
        raise ValueError("no feature column is left once the target and --drop columns "
                         "are taken out")
    X = features(table, names)
    missing = missing_count(table, target)
    if missing:
        raise ValueError(f"the target column {target!r} has {missing} missing value"
                         f"{'s' if missing > 1 else ''}; remove those rows")
    return names, X, column(table, target)


def write_table(columns, path=None, out=None):
    """Write named columns as Parquet (``path`` ending in ``.parquet``, ``.pq``) or CSV.

    A file is written whole or not at all: to a temporary file beside ``path``, renamed over it
    once complete, so that a failure leaves an existing ``path`` as it was.

    Parameters
    ----------
    columns : dict of str to array-like
        Equal-length columns, in order: NumPy arrays, or pyarrow arrays, which are written with
        their own type (the text of :func:`read_verbatim` comes out as it went in).
    path : str, optional
        The file: Parquet for ``.parquet`` and ``.pq``, tab-separated for ``.tsv``, else CSV,
        compressed for ``.gz`` and ``.bz2`` endings.
    out : text file, optional
        Where the CSV goes when ``path`` is None.

    Raises
    ------
    ValueError
        A column that a CSV cannot hold (a list, struct or map: Parquet can), found before
        anything is written.
    """
    pa = _pyarrow()
    table = pa.table({name: values if isinstance(values, (pa.Array, pa.ChunkedArray))
                      else np.asarray(values) for name, values in columns.items()})
    parquet = path is not None and table_format(path) == "parquet"
    if not parquet:
        nested = [field.name for field in table.schema if pa.types.is_nested(field.type)]
        if nested:
            raise ValueError(f"column {_listed(nested)} holds "
                             f"{table.schema.field(nested[0]).type} values, which a CSV cannot "
                             "hold; write Parquet (a file name ending in .parquet)")
    if path is None:
        buffer = io.BytesIO()
        pa.csv.write_csv(table, buffer)
        out.write(buffer.getvalue().decode())
        return
    try:
        _write_whole(pa, table, path, parquet)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        # a type pyarrow cannot write there: nothing was written (see _write_whole)
        raise ValueError(f"cannot write {os.fspath(path)!r}: {exc}") from None


def _write_whole(pa, table, path, parquet):
    """Write ``table`` to ``path`` through a temporary file renamed over it when complete."""
    name = os.fspath(path).lower()
    with written_whole(path) as f:
        if parquet:
            pa.parquet.write_table(table, f)
            return
        options = pa.csv.WriteOptions(delimiter="\t" if name.endswith(".tsv") else ",")
        compression = {".gz": "gzip", ".bz2": "bz2"}.get(os.path.splitext(name)[1])
        if compression is None:
            pa.csv.write_csv(table, f, write_options=options)
        else:  # what read_table reads back: pyarrow infers the compression from the ending
            # compressed in memory first: closing pyarrow's stream would close the file too
            sink = pa.BufferOutputStream()
            with pa.CompressedOutputStream(sink, compression) as stream:
                pa.csv.write_csv(table, stream, write_options=options)
            f.write(sink.getvalue().to_pybytes())


def _listed(names, most=None):
    shown = list(names) if most is None else list(names)[:most]
    text = ", ".join(repr(str(name)) for name in shown)
    if most is not None and len(names) > most:
        text += f", ... ({len(names)} in all)"
    return text
