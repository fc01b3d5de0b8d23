"""Tables end to end: CSV and Parquet files through train, evaluate, predict and export.

scikit-learn's embedded wine, breast-cancer, digits and diabetes sets are written to real
files with text labels, an id column and a few % missing entries; the answers are checked
against a plain NumPy fill-and-standardise reference, scikit-learn's own pipeline and
onnxruntime.
"""

import sys

import numpy as np
import onnxruntime
import pandas as pd
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sklearn import datasets as sk_datasets
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from test_cli import _main_error

from fastmlp import Model, Preprocessing, tables
from fastmlp._extras import MissingExtraError
from fastmlp.cli import main

FAST = ["--epochs", "3", "--hidden", "16", "--batch-size", "16", "--seed", "0", "--quiet"]
SUFFIX = {"csv": ".csv", "parquet": ".parquet"}
MISSING_FRACTION = 0.03


# -- data --------------------------------------------------------------------------------------
def _labelled(name):
    """``(feature names, X float64, y as text labels)`` of a scikit-learn data set."""
    if name == "wine":
        bunch = sk_datasets.load_wine()
        names = ["barolo", "grignolino", "barbera"]  # the three cultivars, as text
        X, y = bunch.data, np.array(names)[bunch.target]
    elif name == "breast_cancer":
        bunch = sk_datasets.load_breast_cancer()
        X, y = bunch.data, bunch.target_names[bunch.target]
    else:  # digits: the first 450 rows (each digit ~45 times); has constant columns
        bunch = sk_datasets.load_digits()
        words = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven",
                          "eight", "nine"])
        X, y = bunch.data[:450], words[bunch.target[:450]]
    return [str(n) for n in bunch.feature_names], X.astype(np.float64), y.astype(str)


def _with_holes(X, rng, fraction=MISSING_FRACTION):
    """A copy of ``X`` with ``fraction`` of its entries NaN (never the first row)."""
    X = X.copy()
    holes = rng.random(X.shape) < fraction
    holes[0] = False  # a complete first row: the headerless CSV test reads it as numbers
    X[holes] = np.nan
    return X


def _frame(names, X, y=None, ids=None, target="label"):
    columns = {} if ids is None else {"id": ids}
    columns.update({name: X[:, j] for j, name in enumerate(names)})
    if y is not None:
        columns[target] = y
    return pd.DataFrame(columns)


def write(frame, path):
    """Write a DataFrame as CSV (missing: empty fields) or Parquet (missing: nulls)."""
    if str(path).endswith(".parquet"):
        table = pa.Table.from_pandas(frame, preserve_index=False)
        pa.parquet.write_table(table, path)
    else:
        frame.to_csv(path, index=False)
    return path


def read_back(path):
    """A file that fastmlp wrote, read with pyarrow itself (not with fastmlp.tables)."""
    if str(path).endswith(".parquet"):
        return pa.parquet.read_table(path)
    return pa.csv.read_csv(path)


def stratified_split(y, rng, fraction=0.25):
    """Row indices (train, test): ``fraction`` of each class to the test set."""
    test = []
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        test.extend(rows[: max(1, round(fraction * len(rows)))])
    test = np.sort(test)
    return np.setdiff1d(np.arange(len(y)), test), test


class Data:
    """One data set written as train, test and predict files of one format."""

    def __init__(self, name, fmt, directory):
        rng = np.random.default_rng(sum(map(ord, name + fmt)))
        self.names, X, self.y = _labelled(name)
        self.X = _with_holes(X, rng)
        self.ids = np.arange(1000, 1000 + len(self.y))
        self.train_rows, self.test_rows = stratified_split(self.y, rng)
        self.classes = np.unique(self.y)
        suffix = SUFFIX[fmt]
        rows = self.train_rows
        self.train = write(_frame(self.names, self.X[rows], self.y[rows], self.ids[rows]),
                           directory / f"{name}-train{suffix}")
        rows = self.test_rows
        self.test = write(_frame(self.names, self.X[rows], self.y[rows], self.ids[rows]),
                          directory / f"{name}-test{suffix}")
        # predict's input: every row, no label, an extra text column, the columns shuffled
        frame = _frame(self.names, self.X, ids=self.ids)
        frame["note"] = "unused"
        self.shuffled = list(rng.permutation(frame.columns))
        self.predict_in = write(frame[self.shuffled], directory / f"{name}-new{suffix}")


def reference_steps(X_train):
    """Plain NumPy: the training means (over present entries), then mean and std (ddof=0)."""
    present = ~np.isnan(X_train)
    fill = np.where(present, X_train, 0.0).sum(axis=0) / present.sum(axis=0)
    filled = np.where(present, X_train, fill)
    mean = filled.sum(axis=0) / len(filled)
    std = np.sqrt(((filled - mean) ** 2).sum(axis=0) / len(filled))
    std[std == 0] = 1.0
    return fill, mean, std


def reference_transform(X, steps):
    fill, mean, std = steps
    return (np.where(np.isnan(X), fill, X) - mean) / std


def onnx_run(path, X):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session, session.run(None, {"X": np.ascontiguousarray(X, dtype=np.float32)})


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("tables")


@pytest.fixture(scope="module")
def trained(workdir):
    """``trained(name, fmt)``: the Data and the model file ``fastmlp train`` saved, cached."""
    cache = {}

    def get(name, fmt):
        if (name, fmt) not in cache:
            data = Data(name, fmt, workdir)
            path = workdir / f"{name}-{fmt}.npz"
            assert main(["train", "--data", str(data.train), "--test", str(data.test),
                         "--target", "label", "--drop", "id", "--fill", "mean",
                         "--scale", "standard", "--save", str(path), *FAST]) == 0
            cache[name, fmt] = data, path
        return cache[name, fmt]

    return get


# -- round trips -------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("name", ["wine", "breast_cancer", "digits"])
def test_train_predict_export_round_trip(name, fmt, trained, workdir, capsys):
    data, path = trained(name, fmt)
    if fmt == "parquet":  # missing entries are real Parquet nulls, not NaN values
        assert sum(c.null_count for c in pa.parquet.read_table(data.train).columns) > 0
    else:
        assert ",," in data.train.read_text()
    capsys.readouterr()

    # the model file: the class names, the feature names (the table's order, no id, no
    # label) and the steps learnt from the training rows, as the NumPy reference has them
    model = Model.load(path)
    np.testing.assert_array_equal(model.classes, data.classes)
    prep = model.preprocessing
    assert prep.feature_names == data.names
    steps = reference_steps(data.X[data.train_rows])
    for got, want in zip((prep.fill, prep.mean, prep.scale), steps, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    if name == "digits":  # constant columns (always 0) are left unscaled, as StandardScaler does
        constant = np.nanstd(data.X[data.train_rows], axis=0) == 0
        assert constant.any() and np.all(prep.scale[constant] == 1.0)

    # predict: shuffled columns, --keep id, --proba, a table out in the same format
    out = workdir / f"{name}-predictions{SUFFIX[fmt]}"
    assert main(["predict", str(path), str(data.predict_in), "--keep", "id", "--proba",
                 "-o", str(out)]) == 0
    assert f"{len(data.y)} predictions written to {out}" in capsys.readouterr().err
    answer = read_back(out)
    assert answer.column_names == ["id", "prediction",
                                   *(f"proba_{c}" for c in data.classes)]
    np.testing.assert_array_equal(answer.column("id").to_numpy(), data.ids)
    proba = np.column_stack([answer.column(f"proba_{c}").to_numpy() for c in data.classes])
    labels = np.asarray(answer.column("prediction").to_pylist())
    # the network alone, on the reference's filled and standardised features
    network = Model.load(path)
    network.preprocessing = None
    expected = network.predict_proba(reference_transform(data.X, steps))
    np.testing.assert_allclose(proba, expected, rtol=1e-5, atol=1e-6)
    # and exactly what the saved model predicts from the raw rows (float32 reads back exactly)
    np.testing.assert_array_equal(proba.astype(np.float32), model.predict_proba(data.X))
    np.testing.assert_array_equal(labels, data.classes[proba.argmax(axis=1)])

    # evaluate on the test table: the whole table, columns by name
    assert main(["evaluate", str(path), "--data", str(data.test), "--target", "label"]) == 0
    report = capsys.readouterr().out
    X_test, y_test = data.X[data.test_rows], data.y[data.test_rows]
    assert f"{len(y_test)} test samples" in report
    result = model.evaluate(X_test, np.searchsorted(data.classes, y_test))
    assert f"loss {result['loss']:.4f}  accuracy {result['accuracy']:.4f}" in report

    # export: the ONNX graph holds the fill and standardisation; float32 raw rows in
    onnx_path = workdir / f"{name}-{fmt}.onnx"
    assert main(["export", str(path), "--onnx", str(onnx_path)]) == 0
    assert "outputs label, probabilities" in capsys.readouterr().out
    X32 = data.X.astype(np.float32)
    session, (onnx_labels, onnx_proba) = onnx_run(onnx_path, X32)
    assert [i.name for i in session.get_inputs()] == ["X"]
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]
    assert onnx_proba.dtype == np.float32
    ours = model.predict_proba(X32)
    np.testing.assert_allclose(onnx_proba, ours, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(onnx_labels.astype(str), model.classes[model.predict(X32)])


def test_regression_on_a_table(workdir, capsys):
    bunch = sk_datasets.load_diabetes()
    names = [str(n) for n in bunch.feature_names]
    X = bunch.data * 100  # the columns as a user would hold them, not pre-scaled to ~0.05
    frame = _frame(names, X, bunch.target, ids=np.arange(len(X)), target="progression")
    data = write(frame, workdir / "diabetes.csv")
    path = workdir / "diabetes.npz"
    assert main(["train", "--task", "regression", "--data", str(data), "--target",
                 "progression", "--drop", "id", "--scale", "standard", "--save", str(path),
                 "--epochs", "30", "--hidden", "16", "--seed", "0", "--quiet"]) == 0
    assert "test R^2 " in capsys.readouterr().out
    model = Model.load(path)
    assert model.is_regression and model.classes is None
    assert model.preprocessing.feature_names == names and model.preprocessing.fill is None

    new = write(frame[["progression", *reversed(names), "id"]], workdir / "diabetes-new.csv")
    out = workdir / "diabetes-predictions.parquet"
    assert main(["predict", str(path), str(new), "--keep", "id", "-o", str(out)]) == 0
    answer = pa.parquet.read_table(out)
    assert answer.column_names == ["id", "prediction"]
    predicted = answer.column("prediction").to_numpy()
    np.testing.assert_array_equal(predicted, model.predict(X))
    assert np.std(predicted) > 0  # the model learnt something: not one constant answer

    assert main(["evaluate", str(path), "--data", str(data), "--target", "progression"]) == 0
    r2 = model.evaluate(X, bunch.target)["r2"]
    assert f"R^2 {r2:.4f}" in capsys.readouterr().out

    onnx_path = workdir / "diabetes.onnx"
    assert main(["export", str(path), "--onnx", str(onnx_path)]) == 0
    session, (variable,) = onnx_run(onnx_path, X)
    assert [o.name for o in session.get_outputs()] == ["variable"]
    np.testing.assert_allclose(variable.ravel(), model.predict(X.astype(np.float32)),
                               rtol=1e-4)


@pytest.mark.parametrize("name", ["wine", "digits"])
def test_headerless_numeric_csv_is_read_by_position(name, trained, workdir, capsys):
    data, path = trained(name, "csv")
    X = data.X[:40]
    assert not np.isnan(X[0]).any()  # a first row of numbers: no header
    headerless = workdir / f"{name}-headerless.csv"
    _frame(data.names, X).to_csv(headerless, index=False, header=False)
    first = headerless.read_text().splitlines()[0].split(",")
    if name == "digits":  # repeated values in the first row, which a header could not have
        assert len(set(first)) < len(first)
    capsys.readouterr()
    assert main(["predict", str(path), str(headerless)]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header == '"prediction"'
    model = Model.load(path)
    assert [line.strip('"') for line in lines] == model.classes[model.predict(X)].tolist()

    # read back through fastmlp.tables: f0, f1, ... and every row, the first included
    table = tables.read_table(headerless)
    assert table.column_names == [f"f{j}" for j in range(len(data.names))]
    np.testing.assert_array_equal(tables.features(table, table.column_names), X)


def test_npy_input_keeps_bare_rows(trained, workdir, capsys):
    data, path = trained("wine", "csv")
    samples = workdir / "wine-samples.npy"
    np.save(samples, data.X[:10])
    capsys.readouterr()
    assert main(["predict", str(path), str(samples)]) == 0
    model = Model.load(path)
    assert capsys.readouterr().out.split() == model.classes[model.predict(data.X[:10])].tolist()


# -- the Python side ---------------------------------------------------------------------------
def test_python_reading_functions(trained):
    data, _ = trained("wine", "parquet")
    table = tables.read_table(data.train)
    names, X, y = tables.split_features(table, "label", drop=["id"])
    assert names == data.names
    np.testing.assert_array_equal(X, data.X[data.train_rows])  # nulls read as NaN
    np.testing.assert_array_equal(y, data.y[data.train_rows])
    assert y.dtype.kind == "U"
    np.testing.assert_array_equal(tables.column(table, "id"), data.ids[data.train_rows])
    # by name, in any order
    np.testing.assert_array_equal(tables.features(table, names[::-1]), X[:, ::-1])
    with pytest.raises(KeyError, match="'nope'"):
        tables.features(table, ["nope", *names])
    with pytest.raises(TypeError, match="'label'"):
        tables.features(table, ["label", *names])


def test_preprocessing_matches_simple_imputer_and_standard_scaler():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 6)) * [1.0, 10.0, 1e3, 0.01, 1.0, 5.0] + [0, 5, -2e3, 1, 0, 0]
    X[:, 4] = 3.5  # a constant column
    X2 = rng.standard_normal((50, 6)) * 4
    for data in (X, X2):
        data[rng.random(data.shape) < 0.1] = np.nan
    names = [f"c{j}" for j in range(6)]
    prep = Preprocessing.fit(X, names, fill="mean", scale="standard")
    sklearn = make_pipeline(SimpleImputer(), StandardScaler()).fit(X)
    np.testing.assert_allclose(prep.transform(X2), sklearn.transform(X2), rtol=0, atol=1e-12)
    np.testing.assert_allclose(prep.transform(X), sklearn.transform(X), rtol=0, atol=1e-12)
    assert prep.scale[4] == 1.0
    np.testing.assert_allclose(prep.transform(X2)[:, 4],
                               np.where(np.isnan(X2[:, 4]), 0.0, X2[:, 4] - 3.5), atol=1e-12)
    # each step alone
    np.testing.assert_allclose(Preprocessing.fit(X, fill="mean").transform(X2),
                               SimpleImputer().fit(X).transform(X2), rtol=0, atol=1e-12)
    complete, complete2 = np.nan_to_num(X), np.nan_to_num(X2)
    np.testing.assert_allclose(Preprocessing.fit(complete, scale="standard").transform(complete2),
                               StandardScaler().fit(complete).transform(complete2),
                               rtol=0, atol=1e-12)


def test_preprocessing_errors_name_the_column():
    X = np.arange(12.0).reshape(4, 3)
    X[:, 1] = np.nan
    with pytest.raises(ValueError, match="column 'b' has no values at all"):
        Preprocessing.fit(X, ["a", "b", "c"], fill="mean")
    X[:, 1] = 1.0
    X[[0, 2], 2] = np.nan
    with pytest.raises(ValueError, match="missing values: 2 in column 'c'"):
        Preprocessing.fit(X, ["a", "b", "c"], scale="standard")
    prep = Preprocessing.fit(np.ones((3, 3)), ["a", "b", "c"], scale="standard")
    with pytest.raises(ValueError, match="2 in column 'c'"):
        prep.transform(X)


def test_model_applies_and_saves_its_preprocessing(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((120, 4)) * [1, 50, 0.1, 3] + [0, 200, 0, -1]
    y = (X[:, 0] > 0).astype(int) + (X[:, 3] > -1)
    X[rng.random(X.shape) < 0.05] = np.nan
    prep = Preprocessing.fit(X, ["w", "x", "y", "z"], fill="mean", scale="standard")
    model = Model([4, 8, 3], classes=["low", "mid", "high"], seed=0, dtype="float64",
                  preprocessing=prep)
    model.fit(X, y, epochs=3, batch_size=16, learning_rate=0.5)  # NaN in X: filled
    bare = Model.load(_saved(model, tmp_path / "m.npz"))
    assert bare.preprocessing == prep and bare.preprocessing is not prep
    np.testing.assert_array_equal(bare.classes, ["low", "mid", "high"])
    bare.preprocessing = None
    Z = prep.transform(X)
    np.testing.assert_array_equal(model.predict_proba(X), bare.predict_proba(Z))
    np.testing.assert_array_equal(model.predict(X), bare.predict(Z))
    assert model.loss(X, y) == bare.loss(Z, y)
    assert model.evaluate(X, y) == bare.evaluate(Z, y)


def _saved(model, path):
    model.save(path)
    return path


def test_model_file_keeps_class_names_and_preprocessing(trained, tmp_path):
    _, path = trained("breast_cancer", "parquet")
    model = Model.load(path)
    again = Model.load(_saved(model, tmp_path / "again.npz"))
    np.testing.assert_array_equal(again.classes, ["benign", "malignant"])
    assert again.preprocessing == model.preprocessing
    assert again.preprocessing.fill is not None and again.preprocessing.mean is not None


def test_to_sklearn_pipeline_of_a_table_model(trained):
    data, path = trained("wine", "csv")
    model = Model.load(path)
    pipeline = model.to_sklearn()
    assert isinstance(pipeline, Pipeline)
    assert [type(step).__name__ for _, step in pipeline.steps] == [
        "SimpleImputer", "StandardScaler", "MLPClassifier"]
    assert np.isnan(data.X).any()
    frame = pd.DataFrame(data.X, columns=data.names)
    np.testing.assert_allclose(pipeline.predict_proba(frame), model.predict_proba(data.X),
                               rtol=0, atol=1e-6)
    np.testing.assert_array_equal(pipeline.predict(frame), model.classes[model.predict(data.X)])


# -- user errors -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bad_tables(trained, workdir):
    """Files for the error cases, in ``workdir``; wine's model as ``wine-csv.npz``."""
    data, _ = trained("wine", "csv")
    names, X, y = _labelled("wine")
    frame = _frame(names, X, y, ids=np.arange(len(y)))
    write(frame, workdir / "clean.csv")
    texty = frame.copy()
    texty.insert(3, "colour", "red")
    texty["grade"] = np.where(y == "barolo", "A", "B")
    write(texty, workdir / "texty.csv")
    holes = frame.copy()
    holes.loc[[3, 50, 51, 170], "magnesium"] = np.nan
    write(holes, workdir / "holes.csv")
    write(holes, workdir / "holes.parquet")
    empty = frame.copy()
    empty["unmeasured"] = np.nan  # an all-empty CSV column: pyarrow's null type
    write(empty, workdir / "empty.csv")
    write(frame.drop(columns=["proline"]), workdir / "no-proline.csv")
    write(frame.assign(prediction=y), workdir / "scored.csv")  # a column named as an answer's
    # a table model that does not fill: missing values at predict time are an error
    Model([13, 4, 3], classes=data.classes, seed=0,
          preprocessing=Preprocessing(names)).save(workdir / "nofill.npz")
    return workdir


@pytest.mark.parametrize("args,messages", [
    (["train", "--data", "{dir}/clean.csv"],
     ["--data '{dir}/clean.csv' is a table: name its label column with --target COLUMN"]),
    (["train", "--data", "{dir}/clean.csv", "--target", "cultivar"],
     ["the table has no column 'cultivar'"]),
    (["train", "--data", "{dir}/clean.csv", "--target", "label", "--drop", "ident"],
     ["no column 'ident'"]),
    (["train", "--data", "{dir}/texty.csv", "--target", "label", "--drop", "id"],
     ["not numbers: 'colour', 'grade'", "--drop"]),
    (["train", "--data", "{dir}/holes.csv", "--target", "label", "--drop", "id",
      "--test", "{dir}/clean.csv"],
     ["4 in column 'magnesium' (rows 4, 51, 52, ...)", "--fill mean"]),
    # issue 27: counted over the table as read, not over the training part left by the split
    (["train", "--data", "{dir}/holes.parquet", "--target", "label", "--drop", "id"],
     ["--data '{dir}/holes.parquet': missing values: 4 in column 'magnesium' "
      "(rows 4, 51, 52, ...)", "--fill mean"]),
    (["train", "--data", "{dir}/clean.csv", "--target", "label", "--drop", "id",
      "--test", "{dir}/holes.csv"],
     ["--test '{dir}/holes.csv'", "4 in column 'magnesium' (rows 4, 51, 52, ...)"]),
    (["train", "--data", "{dir}/empty.csv", "--target", "label", "--drop", "id", "--fill",
      "mean"], ["column 'unmeasured' has no values at all"]),
    (["train", "--data", "{dir}/clean.csv", "--target", "label", "--test", "{dir}/clean.csv",
      "--test-fraction", "0.3"], ["not both"]),
    (["train", "--data", "digits", "--target", "label"], ["--target is for tables"]),
    (["train", "--data", "digits", "--drop", "id"], ["--drop is for tables"]),
    (["train", "--data", "digits", "--test", "{dir}/clean.csv"], ["--test is for tables"]),
    (["evaluate", "{dir}/wine-csv.npz", "--data", "{dir}/clean.csv"], ["--target COLUMN"]),
    (["evaluate", "{dir}/wine-csv.npz", "--data", "{dir}/clean.csv", "--target", "kind"],
     ["no column 'kind'"]),
    (["evaluate", "{dir}/wine-csv.npz", "--data", "digits", "--target", "label"],
     ["--target is for tables"]),
    (["predict", "{dir}/wine-csv.npz", "{dir}/no-proline.csv"],
     ["'{dir}/no-proline.csv'", "no column 'proline'"]),
    (["predict", "{dir}/wine-csv.npz", "{dir}/clean.csv", "--keep", "id", "serial"],
     ["--keep", "no column 'serial'"]),
    (["predict", "{dir}/wine-csv.npz", "{dir}/scored.csv", "--keep", "prediction"],
     ["--keep 'prediction'"]),
    (["predict", "{dir}/nofill.npz", "{dir}/holes.csv"],
     ["4 in column 'magnesium' (rows 4, 51, 52, ...)"]),
    (["evaluate", "{dir}/nofill.npz", "--data", "{dir}/holes.parquet", "--target", "label"],
     ["4 in column 'magnesium' (rows 4, 51, 52, ...)"]),
])
def test_table_user_errors(args, messages, bad_tables, capsys):
    directory = str(bad_tables)
    err = _main_error([a.replace("{dir}", directory) for a in args], capsys)
    for message in messages:
        assert message.replace("{dir}", directory) in err, err


def _no_pyarrow():
    raise MissingExtraError("reading and writing tables (CSV, Parquet: pyarrow)", "tables")


@pytest.mark.parametrize("args,option", [
    (["train", "--data", "{dir}/clean.csv", "--target", "label"], "--data"),
    (["evaluate", "{dir}/wine-csv.npz", "--data", "{dir}/clean.csv", "--target", "label"],
     "--data"),
    (["predict", "{dir}/wine-csv.npz", "{dir}/clean.csv"], "INPUT"),
    (["predict", "{dir}/wine-csv.npz", "{dir}/ones.npy", "-o", "{dir}/p.parquet"],
     "-o"),
])
def test_tables_without_pyarrow(args, option, bad_tables, monkeypatch, capsys):
    directory = str(bad_tables)
    np.save(bad_tables / "ones.npy", np.ones((2, 13)))
    monkeypatch.setattr(tables, "_pyarrow", _no_pyarrow)
    err = _main_error([a.replace("{dir}", directory) for a in args], capsys)
    assert err.startswith(f"fastmlp: error: {option} '{directory}/"), err
    assert 'pip install ".[tables]" in a checkout of fastmlp, or pip install' in err
    assert not (bad_tables / "p.parquet").exists()


def test_export_without_skl2onnx(trained, tmp_path, monkeypatch, capsys):
    _, path = trained("wine", "csv")
    monkeypatch.setitem(sys.modules, "skl2onnx", None)
    err = _main_error(["export", path, "--onnx", tmp_path / "m.onnx"], capsys)
    assert "--onnx" in err and 'pip install ".[onnx]" in a checkout' in err, err
    assert not (tmp_path / "m.onnx").exists()


# -- found by review ---------------------------------------------------------------------------
def test_model_finds_dataframe_and_arrow_columns_by_name(trained):
    data, path = trained("wine", "parquet")
    model = Model.load(path)
    frame = pd.DataFrame(data.X, columns=data.names)
    shuffled = frame[list(reversed(data.names))]
    expected = model.predict_proba(data.X)
    np.testing.assert_array_equal(model.predict_proba(shuffled), expected)
    np.testing.assert_array_equal(model.predict_proba(pa.Table.from_pandas(shuffled)), expected)
    with pytest.raises(ValueError, match=repr(data.names[0])):
        model.predict(shuffled.drop(columns=data.names[0]))


@pytest.mark.parametrize("out", ["p.csv.gz", "p.tsv", "p.csv.bz2"])
def test_written_tables_read_back(out, trained, workdir, tmp_path, capsys):
    data, path = trained("wine", "csv")
    assert main(["predict", str(path), str(data.test), "--keep", "id", "--proba",
                 "-o", str(tmp_path / out)]) == 0
    again = tables.read_table(tmp_path / out)
    assert again.column_names[:2] == ["id", "prediction"]
    assert again.num_rows == len(read_back(data.test))


def test_duplicate_column_names_are_named(tmp_path, capsys):
    (tmp_path / "dup.csv").write_text("a,a,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n")
    message = _main_error(["train", "--data", str(tmp_path / "dup.csv"), "--target", "label"],
                          capsys)
    assert "named more than once: 'a'" in message


def test_numeric_looking_labels_match_across_formats(tmp_path, capsys):
    names, X, y = _labelled("wine")
    frame = _frame(names, X, np.array([str(int(c) + 1) for c in sk_datasets.load_wine().target]))
    pq_path, csv_path = tmp_path / "s.parquet", tmp_path / "s.csv"
    write(frame, pq_path)  # labels "1", "2", "3" as text
    frame.to_csv(csv_path, index=False)  # read back as the integers 1, 2, 3
    model = tmp_path / "s.npz"
    assert main(["train", "--data", str(pq_path), "--target", "label", *FAST,
                 "--save", str(model)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(model), "--data", str(csv_path), "--target", "label"]) == 0
    assert "accuracy" in capsys.readouterr().out


def test_features_of_every_numeric_column_type():
    table = pa.table({"u8": pa.array(np.arange(5, dtype=np.uint8)),
                      "f16": pa.array(np.linspace(0, 1, 5, dtype=np.float16)),
                      "i32": pa.array([1, None, 3, 4, 5], pa.int32()),
                      "flag": pa.array([True, False, None, True, False]),
                      "f32": pa.array(np.arange(5, dtype=np.float32) / 4)})
    expected = np.array([np.arange(5), np.linspace(0, 1, 5, dtype=np.float16),
                         [1, np.nan, 3, 4, 5], [1, 0, np.nan, 1, 0], np.arange(5) / 4]).T
    for names in (["u8", "f16", "i32", "flag", "f32"], ["u8", "i32", "f32"]):
        columns = [table.column_names.index(name) for name in names]
        np.testing.assert_array_equal(tables.features(table, names), expected[:, columns])


def test_read_table_parses_numbers_as_the_features_type(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,a,b,name,flag,label\n"
                    "7,1,0.1,x,true,0\n"
                    "8,2,,y,false,1\n"
                    "9,16777217,2.5,z,true,0\n")
    table = tables.read_table(path, float_dtype=np.float32, exclude=["id", "label"])
    assert [str(field.type) for field in table.schema] == [
        "int64", "float", "float", "string", "bool", "int64"]
    np.testing.assert_array_equal(
        tables.features(table, ["a", "b"], np.float32),
        np.array([[1, np.float32(0.1)], [2, np.nan], [16777216, 2.5]], dtype=np.float32))
    assert tables.column(table, "id").tolist() == [7, 8, 9]
    headerless = tmp_path / "h.csv"
    headerless.write_text("1,2.5,3\n4,5,6\n")
    table = tables.read_table(headerless, float_dtype=np.float64, exclude=["f2"])
    assert table.column_names == ["f0", "f1", "f2"]
    assert [str(field.type) for field in table.schema] == ["double", "double", "int64"]
    np.testing.assert_array_equal(tables.features(table, ["f0", "f1", "f2"]),
                                  [[1, 2.5, 3], [4, 5, 6]])


@pytest.mark.parametrize("name", ["wine", "digits"])
def test_typed_read_gives_the_inferred_reads_features(name, tmp_path):
    names, X, y = _labelled(name)
    X = _with_holes(X, np.random.default_rng(0))
    path = tmp_path / "t.csv"
    write(_frame(names, X, y, ids=np.arange(len(y)) + 1000), path)
    inferred = tables.read_table(path)
    typed = tables.read_table(path, float_dtype=np.float64, exclude=["id", "label"])
    assert typed.column("id").type == inferred.column("id").type == pa.int64()
    np.testing.assert_array_equal(tables.features(typed, names), tables.features(inferred, names))
    np.testing.assert_array_equal(tables.column(typed, "label"), tables.column(inferred, "label"))


@pytest.mark.parametrize("float_dtype", [None, np.float64])
def test_text_after_the_first_block_is_a_text_column(float_dtype, tmp_path):
    path = tmp_path / "late.csv"
    path.write_text("a,b\n" + "1,2\n" * 300_000 + "abc,3\n")  # 2.4 MB: text in a later block
    table = tables.read_table(path, float_dtype=float_dtype)
    assert table.column("a").type == pa.string()
    with pytest.raises(TypeError, match="not numbers: 'a'"):
        tables.features(table, ["a", "b"])


# -- messy tables: nothing mangled, nothing lost (issue 29) --------------------------------------
def _small_model(path, names=("x1", "x2"), fill=True):
    """Save a 2-feature classifier with named inputs (filling missing ones); return its path."""
    names = list(names)
    prep = Preprocessing(names, fill=np.zeros(len(names)) if fill else None)
    Model([len(names), 3, 2], seed=0, classes=np.array(["no", "yes"]),
          preprocessing=prep).save(path)
    return path


def _csv_rows(path):
    import csv

    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_keep_copies_columns_exactly_as_the_file_spells_them(tmp_path, capsys):
    model = _small_model(tmp_path / "m.npz")
    src = tmp_path / "ids.csv"
    src.write_text("account,code,x1,x2\n12345678901234567890,007,1,2\n"
                   '12345678901234567891,,3,4\n00012,NA,5,6\n" a,b ","1e5",7,8\n')
    expected = [["12345678901234567890", "007"], ["12345678901234567891", ""],
                ["00012", "NA"], [" a,b ", "1e5"]]
    out = tmp_path / "answer.csv"
    assert main(["predict", str(model), str(src), "--keep", "account", "code",
                 "-o", str(out)]) == 0
    rows = _csv_rows(out)
    assert rows[0] == ["account", "code", "prediction"]
    assert [row[:2] for row in rows[1:]] == expected
    out = tmp_path / "answer.parquet"
    assert main(["predict", str(model), str(src), "--keep", "account", "code",
                 "-o", str(out)]) == 0
    table = pa.parquet.read_table(out)
    assert [[a, c] for a, c in zip(table.column("account").to_pylist(),
                                   table.column("code").to_pylist(), strict=True)] == expected
    capsys.readouterr()
    assert main(["predict", str(model), str(src), "--keep", "account", "code"]) == 0
    assert [row[:2] for row in _csv_rows_of(capsys.readouterr().out)[1:]] == expected


def _csv_rows_of(text):
    import csv
    import io

    return list(csv.reader(io.StringIO(text, newline="")))


def test_keep_of_a_parquet_column_keeps_its_type_and_values(tmp_path):
    model = _small_model(tmp_path / "m.npz")
    src = tmp_path / "in.parquet"
    pa.parquet.write_table(pa.table({
        "id": pa.array([2**63 - 1, None, 7], pa.int64()), "x1": [1.0, 2.0, 3.0],
        "x2": [1.0, 2.0, 3.0], "tags": pa.array([[1, 2], [], None], pa.list_(pa.int64()))}),
        src)
    out = tmp_path / "out.parquet"
    assert main(["predict", str(model), str(src), "--keep", "id", "tags", "-o", str(out)]) == 0
    table = pa.parquet.read_table(out)
    assert table.column("id").type == pa.int64()
    assert table.column("id").to_pylist() == [2**63 - 1, None, 7]
    assert table.column("tags").to_pylist() == [[1, 2], [], None]


def test_empty_labels_are_missing_labels(tmp_path, capsys):
    src = tmp_path / "train.csv"
    rows = [f"{i % 7},{i % 3},{'ab'[i % 2] if i != 5 else ''}" for i in range(40)]
    src.write_text("x1,x2,label\n" + "\n".join(rows) + "\n")
    err = _main_error(["train", "--data", src, "--target", "label", *FAST], capsys)
    assert "the target column 'label' has 1 missing value" in err
    table = tables.read_table(src)
    assert tables.missing_count(table, "label") == 1
    with pytest.raises(ValueError, match="1 missing value"):
        tables.split_features(table, "label")
    # a Parquet file's empty text is missing too
    pq = tmp_path / "train.parquet"
    pa.parquet.write_table(table, pq)
    err = _main_error(["train", "--data", pq, "--target", "label", *FAST], capsys)
    assert "has 1 missing value" in err


def test_pandas_default_column_names_are_a_header(tmp_path, capsys):
    path = tmp_path / "frame.csv"
    pd.DataFrame(np.arange(50.0).reshape(10, 5) + 10).to_csv(path, index=False)
    table = tables.read_table(path)
    assert table.column_names == ["0", "1", "2", "3", "4"] and table.num_rows == 10
    model = tmp_path / "m.npz"
    Model([5, 3, 2], seed=0).save(model)
    assert main(["predict", str(model), str(path)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1 + 10  # a header, then 10 answers
    # a first row of other numbers is still data: a file without a header
    other = tmp_path / "data.csv"
    other.write_text("0,2,1\n3,4,5\n")
    assert tables.read_table(other).column_names == ["f0", "f1", "f2"]


def test_an_output_that_cannot_be_written_leaves_the_old_file(tmp_path, capsys):
    model = _small_model(tmp_path / "m.npz")
    src = tmp_path / "in.parquet"
    pa.parquet.write_table(pa.table({"x1": [1.0, 2.0], "x2": [3.0, 4.0],
                                     "tags": pa.array([[1], [2, 3]])}), src)
    answer = tmp_path / "answer.csv"
    answer.write_text("the old answer\n")
    err = _main_error(["predict", model, src, "--keep", "tags", "-o", answer], capsys)
    assert "column 'tags' holds list<" in err and "which a CSV cannot hold" in err
    assert answer.read_text() == "the old answer\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answer.csv", "in.parquet", "m.npz"]


@pytest.mark.parametrize("output", ["answer.csv", "answer.parquet", "answer.txt"])
def test_a_write_that_fails_midway_leaves_the_old_file(output, tmp_path, monkeypatch):
    import os

    model = _small_model(tmp_path / "m.npz")
    src = tmp_path / ("in.csv" if output != "answer.txt" else "in.npy")
    if output == "answer.txt":
        np.save(src, np.ones((3, 2)))
    else:
        src.write_text("x1,x2\n1,2\n3,4\n")
    answer = tmp_path / output
    answer.write_bytes(b"old")

    def crash(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", crash)  # Ctrl-C as the answer is being written
    from fastmlp.cli import EXIT_INTERRUPTED

    assert main(["predict", str(model), str(src), "-o", str(answer)]) == EXIT_INTERRUPTED
    monkeypatch.undo()
    assert answer.read_bytes() == b"old"
    assert len(list(tmp_path.iterdir())) == 3  # no temporary file left


def test_output_cannot_be_the_input_or_the_model(tmp_path, capsys):
    model = _small_model(tmp_path / "m.npz")
    src = tmp_path / "in.csv"
    src.write_text("x1,x2\n1,2\n")
    before = src.read_bytes(), model.read_bytes()
    err = _main_error(["predict", model, src, "-o", tmp_path / "." / "in.csv"], capsys)
    assert "is the INPUT file itself" in err
    err = _main_error(["predict", model, src, "-o", model], capsys)
    assert "is the MODEL file itself" in err
    assert (src.read_bytes(), model.read_bytes()) == before


def test_save_into_a_folder_that_cannot_be_written_fails_before_training(tmp_path, capsys,
                                                                       monkeypatch):
    from fastmlp import _files

    def refuse(path):
        raise PermissionError(13, "Permission denied", str(path))

    def fit(*args, **kwargs):
        raise AssertionError("training began")

    monkeypatch.setattr(_files, "create_beside", refuse)
    monkeypatch.setattr(Model, "fit", fit)
    err = _main_error(["train", "--save", tmp_path / "m.npz", *FAST], capsys)
    assert "cannot write --save" in err and "Permission denied" in err


def test_save_into_a_read_only_folder_fails_before_training(tmp_path, capsys, monkeypatch):
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        monkeypatch.setattr(Model, "fit", lambda *a, **k: pytest.fail("training began"))
        err = _main_error(["train", "--save", folder / "m.npz", *FAST], capsys)
        assert "cannot write --save" in err
    finally:
        folder.chmod(0o700)


def test_columns_near_the_float64_limit_standardise_or_name_the_column(tmp_path, capsys):
    import warnings

    rng = np.random.default_rng(0)
    big = rng.uniform(-1, 1, 60) * 1.7e308
    big[3] = np.nan
    frame = pd.DataFrame({"big": big, "small": rng.normal(size=60),
                          "label": np.array(["a", "b"])[np.arange(60) % 2]})
    path = write(frame, tmp_path / "big.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning on the way
        prep = Preprocessing.fit(frame[["big", "small"]].to_numpy(), ["big", "small"],
                                 fill="mean", scale="standard")
        Z = prep.transform(frame[["big", "small"]].to_numpy())
        assert np.isfinite(prep.fill).all() and np.isfinite(prep.scale).all()
        assert np.isfinite(Z).all() and abs(Z[:, 0].mean()) < 1e-6
        assert main(["train", "--data", str(path), "--target", "label", "--scale", "standard",
                     "--fill", "mean", *FAST]) == 0
    # a value whose standardised form is beyond float64 is named, not a warning
    prep = Preprocessing(["big"], mean=[0.0], scale=[1e-10])
    with pytest.raises(ValueError, match="column 'big' is too large to standardise"):
        prep.transform(np.array([[1e308]]))


@pytest.mark.parametrize("kind", ["Int64", "Int64 with missing", "pyarrow", "boolean"])
def test_model_takes_pandas_nullable_and_arrow_columns(kind):
    values = np.array([[1, 5], [2, 6], [3, 7], [4, 8]])
    if kind == "pyarrow":
        frame = pd.DataFrame({"a": pd.array(values[:, 0], dtype="int64[pyarrow]"),
                              "b": pd.array(values[:, 1] / 2, dtype="float64[pyarrow]")})
        plain = np.column_stack([values[:, 0], values[:, 1] / 2]).astype(float)
    elif kind == "boolean":
        frame = pd.DataFrame({"a": pd.array([True, False, True, True], dtype="boolean"),
                              "b": pd.array(values[:, 1], dtype="Int64")})
        plain = np.column_stack([[1, 0, 1, 1], values[:, 1]]).astype(float)
    else:
        a = pd.array(values[:, 0], dtype="Int64")
        plain = values.astype(float)
        if kind == "Int64 with missing":
            a[2] = pd.NA
            plain[2, 0] = np.nan
        frame = pd.DataFrame({"a": a, "b": pd.array(values[:, 1], dtype="Int64")})
    prep = Preprocessing(["a", "b"], fill=[2.5, 6.5])
    model = Model([2, 3, 2], seed=0, preprocessing=prep)
    expected = model.predict_proba(plain)
    np.testing.assert_array_equal(model.predict_proba(frame), expected)
    np.testing.assert_allclose(model.to_sklearn().predict_proba(frame), expected, rtol=1e-5)
    if kind != "Int64 with missing":  # a model without preprocessing: no NaN to fill
        bare = Model([2, 3, 2], seed=0)
        np.testing.assert_array_equal(bare.predict_proba(frame), bare.predict_proba(plain))


_FIELD_CHARS = list("0123456789aZé -+.e,\"'\t;\\") + ["\n", "\r\n", "NA", "null", "\ufeff"]
_TEXT = st.lists(st.sampled_from(_FIELD_CHARS), max_size=6).map("".join)
_NUMBER = st.one_of(st.integers(-10**25, 10**25).map(str),
                    st.floats(allow_nan=False, allow_infinity=False).map(repr),
                    st.sampled_from(["", "NA", "nan", "007", "1e5", " 3 "]))


@pytest.fixture(scope="module")
def fuzz_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keep-fuzz")
    return folder, _small_model(folder / "m.npz")


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(_TEXT, _TEXT, _NUMBER | _TEXT, _NUMBER), min_size=1,
                     max_size=6),
       quoting=st.sampled_from(["minimal", "all"]), fmt=st.sampled_from(["csv", "parquet"]))
def test_fuzz_keep_round_trips_exactly_or_is_a_one_line_error(fuzz_model, capsys, rows,
                                                              quoting, fmt):
    import csv

    folder, model = fuzz_model
    src = folder / "in.csv"
    with open(src, "w", newline="") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_ALL if quoting == "all" else csv.QUOTE_MINIMAL)
        writer.writerow(["k0", "k1", "x1", "x2"])
        writer.writerows(rows)
    out = folder / f"answer.{fmt}"
    out.write_bytes(b"old")
    capsys.readouterr()
    status = main(["predict", str(model), str(src), "--keep", "k0", "k1", "-o", str(out)])
    if status != 0:  # refused: one line, and the old answer untouched
        assert status == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("fastmlp: error: "), err
        assert out.read_bytes() == b"old"
        event("refused")
        return
    event("written")
    if fmt == "csv":
        got = [row[:2] for row in _csv_rows(out)]
        assert got[0] == ["k0", "k1"]
        got = got[1:]
    else:
        table = pa.parquet.read_table(out)
        got = [list(pair) for pair in zip(table.column("k0").to_pylist(),
                                          table.column("k1").to_pylist(), strict=True)]
    assert got == [[k0, k1] for k0, k1, _, _ in rows]
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".fastmlp-")) == []
