"""Turn a pytest-benchmark JSON file of this suite into markdown tables and a speed-up chart.

Usage::

    python -m pytest benchmarks --benchmark-only --benchmark-json=bench.json
    python benchmarks/report.py bench.json -o bench.md --png speedups.png

Several JSON files may be given (e.g. one per ``bench_*.py`` file); their rows are joined.

Tables: training (seconds per epoch of fastmlp at each thread count, scikit-learn and PyTorch,
fastmlp's speed-up over each, its GFLOP/s and its share of the GEMM peak of the dtype),
``predict_proba``, whole calls (``fit``, ``partial_fit``, ``predict_proba`` of the estimator,
fastmlp's and scikit-learn's times, the ratio, PyTorch's where it has the call, and the peak
memory of a fit), the regressor's whole calls (``bench_regressor.py``: the same columns and
issue 11's target speed-up over scikit-learn), reading a table (``bench_tables.py``:
``fastmlp.tables`` vs pandas), fresh-process start-up, the GEMM rows, and the two engine
thresholds (compiled loops vs BLAS; serial vs parallel epoch) with the values the
numbers support.

Every time is the benchmark's ``--stat`` (default ``min``: the best round, the least disturbed
by other load on the machine). ``conftest.py`` prints the same tables after a run.
"""

import argparse
import json
import math
import sys
from collections import defaultdict
from dataclasses import dataclass, field

IMPL_ORDER = ("fastmlp", "sklearn", "torch")
#: Training rows that are a bound, not an implementation (``bench_train.py``'s "products" rows:
#: numpy's BLAS on the epoch's matrix products alone): their own columns, never 'vs X'.
BOUNDS = ("products",)


@dataclass
class Table:
    """A titled table: ``headers``, ``rows`` (lists of str) and notes printed under it."""

    title: str
    headers: list
    rows: list = field(default_factory=list)
    notes: list = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------
def load(path):
    """Return ``(benchmarks, machine_info)`` from a ``--benchmark-json`` file."""
    with open(path) as f:
        data = json.load(f)
    return data.get("benchmarks", []), data.get("machine_info", {})


def _t(bench, stat):
    return bench["stats"][stat]


def _fmt_s(seconds):
    if seconds is None:
        return "-"
    if seconds >= 100:
        return f"{seconds:.0f}"
    return f"{seconds:.3g}"


def _fmt_x(ratio):
    return "-" if ratio is None else f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.1f}x"


def _by_kind(benchmarks, kind):
    return [b for b in benchmarks if b.get("extra_info", {}).get("kind") == kind]


def gemm_peaks(benchmarks, stat="min"):
    """GFLOP/s of the 2048^3 numpy product per dtype: ``{"float32": 61.2, ...}``.

    The best over the thread counts measured (all threads, and one): on a quiet machine that is
    the all-thread row; on a busy one a single thread can do better, and the peak is what the
    machine showed it can reach.
    """
    peaks = {}
    for b in _by_kind(benchmarks, "gemm"):
        info = b["extra_info"]
        if info.get("peak"):
            gflops = info["flops"] / _t(b, stat) / 1e9
            peaks[info["dtype"]] = max(peaks.get(info["dtype"], 0.0), gflops)
    return peaks


def gemm_times(benchmarks, stat="min"):
    """Seconds of each numpy product on the most threads measured: ``{(dtype, m, k, n): s}``."""
    best = {}
    for b in _by_kind(benchmarks, "gemm"):
        info = b["extra_info"]
        key = (info["dtype"], info["m"], info["k"], info["n"])
        if key not in best or info["threads"] > best[key][0]:
            best[key] = (info["threads"], _t(b, stat))
    return {key: seconds for key, (_, seconds) in best.items()}


def products_seconds(row, products):
    """Seconds numpy's BLAS took for the matrix products of a predict row's forward pass (one
    ``n_samples x n_in x n_out`` product per layer), or None when one was not measured."""
    sizes = row.get("layer_sizes")
    if not sizes:
        return None
    times = [products.get((row["dtype"], row["n_samples"], a, b))
             for a, b in zip(sizes[:-1], sizes[1:], strict=False)]
    return None if None in times else sum(times)


# ---------------------------------------------------------------------------------------------
# Comparison tables (training and predict_proba)
# ---------------------------------------------------------------------------------------------
def comparisons(benchmarks, kind, stat="min"):
    """Per workload: ``{"workload", "group", "dtype", "flops", "times": {(impl, threads): s},
    "engine_lanes"}``, in the order the workloads first appear."""
    out = {}
    for b in _by_kind(benchmarks, kind):
        info = b["extra_info"]
        row = out.setdefault(info["workload"], {
            "workload": info["workload"], "group": b["group"], "dtype": info["dtype"],
            "flops": info["flops"], "times": {}, "engine_lanes": {},
            "layer_sizes": info.get("layer_sizes"), "n_samples": info.get("n_samples")})
        if info.get("kernel") == "serial":  # fastmlp with the serial kernel forced
            row["serial"] = _t(b, stat)
            continue
        row["times"][info["impl"], info["threads"]] = _t(b, stat)
        if "engine_lanes" in info:
            row["engine_lanes"][info["threads"]] = info["engine_lanes"]
    return list(out.values())


def _fastmlp_threads(rows):
    return sorted({t for r in rows for (impl, t) in r["times"] if impl == "fastmlp"})


def _other_times(row):
    """``{impl: s}`` of the implementations other than fastmlp (the bounds left out)."""
    return {impl: s for (impl, _), s in row["times"].items()
            if impl != "fastmlp" and impl not in BOUNDS}


def _bound_times(row, bound="products"):
    """``{threads: s}`` of a bound's rows (e.g. numpy's products of the epoch)."""
    return {t: s for (impl, t), s in row["times"].items() if impl == bound}


def speedups(row):
    """Return fastmlp's time (its highest thread count) and its speed-up over sklearn and
    torch (None where missing); the bounds (``BOUNDS``) are not implementations."""
    fm = [(t, s) for (impl, t), s in row["times"].items() if impl == "fastmlp"]
    if not fm:
        return None, None, None
    t_fm = max(fm)[1]
    other = _other_times(row)
    ratio = {impl: (other[impl] / t_fm if impl in other else None) for impl in ("sklearn",
                                                                                 "torch")}
    return t_fm, ratio["sklearn"], ratio["torch"]


def comparison_table(benchmarks, kind, stat="min"):
    rows = comparisons(benchmarks, kind, stat)
    if not rows:
        return None
    unit = "s/epoch" if kind == "train" else "s/call"
    threads = _fastmlp_threads(rows)
    peaks = gemm_peaks(benchmarks, stat)
    others = sorted({impl for r in rows for impl in _other_times(r)}, key=IMPL_ORDER.index)
    serial = any("serial" in r for r in rows)
    headers = (["workload"] + [f"fastmlp {t}T {unit}" for t in threads]
               + (["fastmlp serial kernel"] if serial else [])
               + [f"{impl} {unit}" for impl in others]
               + [f"vs {impl}" for impl in others] + ["fastmlp GFLOP/s", "% GEMM peak"])
    if kind == "train":
        headers.insert(1 + len(threads) + serial, "engine lanes")
    products = gemm_times(benchmarks, stat) if kind == "predict" else {}
    with_products = any(products_seconds(r, products) for r in rows)
    if with_products:
        headers += ["numpy's products s/call", "vs numpy's products"]
    # training: numpy's products of the same epoch, timed by bench_train.py's "products" rows
    bound_threads = (sorted({t for r in rows for t in _bound_times(r)}) if kind == "train"
                     else [])
    if bound_threads:
        headers += [f"numpy's products {bound_threads[-1]}T {unit}"]
        headers += [f"vs the BLAS's products {t}T" for t in threads]
    table = Table(
        title=("Training: one epoch" if kind == "train" else "predict_proba, 10000 rows"),
        headers=headers)
    for r in rows:
        t_fm, *_ = speedups(r)
        cells = [r["workload"]]
        cells += [_fmt_s(r["times"].get(("fastmlp", t))) for t in threads]
        if serial:
            cells.append(_fmt_s(r.get("serial")))
        if kind == "train":
            top = max(r["engine_lanes"], default=None)
            cells.append(str(r["engine_lanes"].get(top, "-")))
        other_t = _other_times(r)
        cells += [_fmt_s(other_t.get(impl)) for impl in others]
        cells += [_fmt_x(other_t[impl] / t_fm if (impl in other_t and t_fm) else None)
                  for impl in others]
        if t_fm:
            gflops = r["flops"] / t_fm / 1e9
            peak = peaks.get(r["dtype"])
            cells += [f"{gflops:.1f}", f"{100 * gflops / peak:.0f}%" if peak else "-"]
        else:
            cells += ["-", "-"]
        if with_products:
            bound = products_seconds(r, products)
            cells += [_fmt_s(bound), _fmt_x(bound / t_fm if (bound and t_fm) else None)]
        if bound_threads:
            bound = _bound_times(r)
            cells.append(_fmt_s(bound.get(bound_threads[-1])))
            for t in threads:
                fm_t = r["times"].get(("fastmlp", t))
                cells.append(_fmt_x(bound[t] / fm_t if (t in bound and fm_t) else None))
        table.rows.append(cells)
    top = threads[-1] if threads else None
    table.notes.append(
        f"Times are each row's {stat} over its rounds. 'vs X' = X's time / fastmlp's at {top} "
        f"threads (the default: all of numba's threads). GFLOP/s counts "
        + ("N * (6 * sum(n_in * n_out) - 2 * n_0 * n_1) per epoch"
           if kind == "train" else "2 * N * sum(n_in * n_out)")
        + "; % GEMM peak divides it by the 2048^3 numpy product of the dtype"
        + (" (" + ", ".join(f"{d}: {p:.1f} GFLOP/s" for d, p in sorted(peaks.items())) + ")."
           if peaks else " (no GEMM rows in this run)."))
    if serial:
        table.notes.append("'fastmlp serial kernel': one thread, the serial kernel forced "
                           "(PARALLEL_MIN_FLOPS ignored); the nT columns run whichever kernel "
                           "the engine chose, under numba.set_num_threads(n).")
    if with_products:
        table.notes.append("'numpy's products': the time numpy's BLAS took, in this run and on "
                           "all threads, for the forward pass's matrix products alone (one "
                           "N x n_in x n_out product per layer; bench_gemm.py); 'vs' above "
                           "1: fastmlp's whole call (products, biases, activations, softmax) "
                           "took less.")
    if bound_threads:
        table.notes.append(
            "'numpy's products': one epoch's matrix products alone -- for every batch (the "
            "same rows and batch size, the last batch short) the forward a_l @ W_l, BP4 "
            "a_l.T @ delta_{l+1} and BP2 delta_{l+1} @ W_l.T (none into the input) -- timed "
            "batch by batch by numpy (np.dot from Python into preallocated arrays; bench_train's "
            "products rows) with its BLAS on the same threads, in the same run; same FLOPs as "
            "the GFLOP/s column. 'vs the BLAS's products tT' = the products' time on t threads "
            "/ fastmlp's epoch on t threads: above 1, fastmlp's whole epoch (products, biases, "
            "activations, loss, update) took less than the products alone.")
    if kind == "train":
        table.notes.append("'engine lanes': the parts the engine split each batch into, each "
                           "run on one of numba's threads: its rows, or its hidden units (one "
                           "hidden layer at small batches; every layer's, for wide layers); "
                           "1 = the serial kernel (PARALLEL_MIN_FLOPS decides).")
    return table


# ---------------------------------------------------------------------------------------------
# Whole calls (bench_calls.py)
# ---------------------------------------------------------------------------------------------
def _fmt_time(seconds):
    """``1.23 s``, ``45.6 ms``, ``78.9 us``: the whole-call times span six decades."""
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale or unit == "us":
            value = seconds / scale
            return f"{value:.0f} {unit}" if value >= 100 else f"{value:.3g} {unit}"
    return "-"  # unreachable


def calls(benchmarks, stat="min"):
    """Per call: ``{"workload", "times": {impl: s per call}, "peak": {impl: MiB}}``, in the
    order the calls first appear; a ``call-memory`` row joins the timed row of the same call."""
    out = {}
    for b in benchmarks:
        info = b.get("extra_info", {})
        if info.get("kind") not in ("call", "call-memory"):
            continue
        row = out.setdefault(info["workload"], {"workload": info["workload"], "times": {},
                                                "peak": {}})
        if info["kind"] == "call":
            row["times"][info["impl"]] = _t(b, stat) / info.get("calls", 1)
        elif info.get("peak_rss_mib") is not None:
            row["peak"][info["impl"]] = info["peak_rss_mib"]
    return list(out.values())


def calls_table(benchmarks, stat="min"):
    rows = calls(benchmarks, stat)
    if not rows:
        return None
    timed = sorted({i for r in rows for i in r["times"]}, key=IMPL_ORDER.index)
    others = [i for i in timed if i != "fastmlp"]
    peaks = sorted({i for r in rows for i in r["peak"]}, key=IMPL_ORDER.index)
    headers = (["call"] + timed + [f"vs {impl}" for impl in others]
               + [f"peak MiB {impl}" for impl in peaks])
    table = Table("Whole calls: fastmlp.MLPClassifier vs the others", headers)
    for r in rows:
        t = r["times"]
        cells = [r["workload"]] + [_fmt_time(t.get(impl)) for impl in timed]
        cells += [_fmt_x(t[impl] / t["fastmlp"] if impl in t and t.get("fastmlp") else None)
                  for impl in others]
        cells += [f"{r['peak'][impl]:.0f}" if impl in r["peak"] else "-" for impl in peaks]
        table.rows.append(cells)
    table.notes.append(
        f"Each time is the whole call (per call for predict_proba on 1 row), the {stat} over "
        "its rounds, from a fresh estimator for fit and partial_fit; 'vs X' = X's time / "
        "fastmlp's (above 1: fastmlp is faster). fastmlp runs in the benchmark process, the "
        "others in worker processes of their own, all on the same number of threads.")
    if peaks:
        table.notes.append(
            "'peak MiB': the most resident memory the fit added over what the process held "
            "after importing the library, loading the data and a warm-up fit (its data is not "
            "counted), each library in a fresh process; a row without times is measured for "
            "its memory only.")
    if "torch" not in timed:
        table.notes.append("No PyTorch rows: it is not installed, or has no equivalent call.")
    return table


def regressor_calls(benchmarks, stat="min"):
    """Per ``bench_regressor.py`` call: ``{"workload", "times": {impl: s per call}, "target"}``
    (``target``: the speed-up over scikit-learn issue 11 asks for, or None), in the order the
    calls first appear."""
    out = {}
    for b in _by_kind(benchmarks, "regress-call"):
        info = b["extra_info"]
        row = out.setdefault(info["workload"], {"workload": info["workload"], "times": {},
                                                "target": None})
        row["times"][info["impl"]] = _t(b, stat) / info.get("calls", 1)
        if info.get("target") is not None:
            row["target"] = info["target"]
    return list(out.values())


def regressor_table(benchmarks, stat="min"):
    rows = regressor_calls(benchmarks, stat)
    if not rows:
        return None
    timed = sorted({i for r in rows for i in r["times"]}, key=IMPL_ORDER.index)
    others = [i for i in timed if i != "fastmlp"]
    headers = ["call"] + timed + [f"vs {impl}" for impl in others] + ["target vs sklearn",
                                                                        "met"]
    table = Table("Whole calls: fastmlp.MLPRegressor vs the others (issue 11)", headers)
    for r in rows:
        t = r["times"]
        ratio = {impl: t[impl] / t["fastmlp"] if impl in t and t.get("fastmlp") else None
                 for impl in others}
        cells = [r["workload"]] + [_fmt_time(t.get(impl)) for impl in timed]
        cells += [_fmt_x(ratio[impl]) for impl in others]
        target = r["target"]
        met = "-"
        if target is not None and ratio.get("sklearn") is not None:
            met = "yes" if ratio["sklearn"] >= target else "no"
        cells += ["-" if target is None else f">= {target:g}x", met]
        table.rows.append(cells)
    table.notes.append(
        f"Each time is the whole call (per call for predict on 1 row), the {stat} over its "
        "rounds, from a fresh estimator for fit; 'vs X' = X's time / fastmlp's (above 1: "
        "fastmlp is faster); 'target vs sklearn': the speed-up over scikit-learn issue 11 asks "
        "for, 'met' whether 'vs sklearn' reaches it. fastmlp runs in the benchmark process, the "
        "others in worker processes of their own, all on the same number of threads.")
    if "torch" not in timed:
        table.notes.append("No PyTorch rows: it is not installed.")
    else:
        table.notes.append("PyTorch: the same network, optimizer, batch and epochs in a plain "
                           "loop (half the mean squared error, identity output); none for "
                           "L-BFGS (torch.optim.LBFGS is another algorithm) or predict.")
    return table


def busy_table(benchmarks, stat="min"):
    """Issue 16's rows (``bench_busy.py``): seconds per epoch beside busy neighbours."""
    rows = sorted(_by_kind(benchmarks, "busy"),
                  key=lambda b: (b["extra_info"]["neighbours"], b["extra_info"]["batch"]))
    if not rows:
        return None
    settings = ("default", "NUMBA_NUM_THREADS=1", "OMP_WAIT_POLICY=passive",
                "FASTMLP_ADAPT_THREADS=0")
    headers = (["busy loops", "batch"] + [f"{s} median (worst)" for s in settings]
               + ["default / reference", "sklearn", "torch", "target", "met"])
    table = Table("A busy machine: Fashion-MNIST epoch, 784-100-10 float32 SGD (issue 16)",
                  headers)
    for row in rows:
        info = row["extra_info"]
        med = {s: info.get(f"{s}: median") for s in settings}
        worst = {s: info.get(f"{s}: worst") for s in settings}
        cells = [str(info["neighbours"]), str(info["batch"])]
        cells += ["-" if med[s] is None else f"{med[s]:.3f} ({worst[s]:.3f})" for s in settings]
        if info["neighbours"] == 0:
            before = med["FASTMLP_ADAPT_THREADS=0"]
            ratio = None if before is None else med["default"] / before
            target = "<= FASTMLP_ADAPT_THREADS=0 (before)"
            met = "-" if ratio is None else ("yes" if ratio <= 1.0 else "no")
        elif info["neighbours"] == 1:
            best = min(med["NUMBA_NUM_THREADS=1"], med["OMP_WAIT_POLICY=passive"])
            ratio = med["default"] / best
            target = "median <= 1.2x, worst <= 2x"
            met = "yes" if ratio <= 1.2 and worst["default"] <= 2 * best else "no"
        else:
            best = med["NUMBA_NUM_THREADS=1"]
            ratio = med["default"] / best
            target = "<= NUMBA_NUM_THREADS=1"
            met = "yes" if ratio <= 1.0 else "no"
        cells.append("-" if ratio is None else f"{ratio:.2f}")
        for impl in ("sklearn", "torch"):
            v = info.get(f"{impl}: seconds")
            cells.append("-" if v is None else f"{v:.2f}")
        cells += [target, met]
        table.rows.append(cells)
    table.notes.append(
        "Seconds per epoch: each run is a fresh process (a warm-up, then its epochs' mean); "
        "median and worst over the runs, the settings taking turns. 'default' lets the engine "
        "choose the threads (fastmlp._threads); the others are set by the user; "
        "FASTMLP_ADAPT_THREADS=0 is the engine before it chose (every thread, always). "
        "'reference': that, quiet; with one busy loop the better median of "
        "NUMBA_NUM_THREADS=1 and OMP_WAIT_POLICY=passive; with two, NUMBA_NUM_THREADS=1. "
        "scikit-learn and PyTorch: one run each, for scale.")
    return table


# ---------------------------------------------------------------------------------------------
# Reading a table (bench_tables.py)
# ---------------------------------------------------------------------------------------------
def tables_table(benchmarks, stat="min"):
    """Reading Fashion-MNIST as a table (``bench_tables.py``): fastmlp.tables vs pandas, per
    format and dtype, beside one epoch of the training the rows feed."""
    reads = _by_kind(benchmarks, "table-read")
    epochs = _by_kind(benchmarks, "table-epoch")
    if not reads and not epochs:
        return None
    cells = {}
    for b in reads:
        info = b["extra_info"]
        row = cells.setdefault((info["format"], info["dtype"]), {
            "rows": info["n_rows"], "cols": info["n_columns"], "mib": info.get("file_mib"),
            "times": {}})
        row["times"][info["impl"]] = _t(b, stat)
    epoch = _t(epochs[0], stat) if epochs else None
    table = Table("Reading a table: Fashion-MNIST training set to float rows, fastmlp.tables "
                  "vs pandas", ["file", "rows x columns", "MiB", "pandas s", "fastmlp s",
                                "vs pandas", "not slower", "fastmlp read / epoch"])
    for (fmt, dtype), r in sorted(cells.items()):  # csv before parquet, float32 first
        pd_s, fm_s = r["times"].get("pandas"), r["times"].get("fastmlp")
        ratio = pd_s / fm_s if pd_s is not None and fm_s else None
        table.rows.append([
            f"{fmt} -> {dtype}", f"{r['rows']} x {r['cols']}",
            "-" if r["mib"] is None else f"{r['mib']:.0f}", _fmt_s(pd_s), _fmt_s(fm_s),
            _fmt_x(ratio), "-" if ratio is None else ("yes" if ratio >= 1.0 else "no"),
            f"{fm_s / epoch:.2f}" if fm_s is not None and epoch else "-"])
    if epochs:
        info = epochs[0]["extra_info"]
        sizes = "-".join(str(s) for s in info["layer_sizes"])
        table.rows.append([f"one epoch {sizes} {info['dtype']} {info['solver']} "
                           f"b{info['batch_size']}", f"{info['n_rows']} x "
                           f"{info['layer_sizes'][0]}", "-", "-", _fmt_s(epoch), "-", "-",
                           "1.00"])
    table.notes.append(
        f"Seconds from the file to X (C-contiguous for fastmlp; pandas' to_numpy gives "
        f"Fortran order, which a model copies later, not counted) and y, the {stat} over the "
        "rounds. fastmlp: tables.read_table(float_dtype=dtype) + tables.features + "
        "tables.column; pandas: "
        "read_csv (read_parquet) + .drop(columns='label').to_numpy(dtype) + ['label'], in the "
        "same process and run. 'vs pandas' = pandas' time / fastmlp's (the issue: >= 1, "
        "fastmlp not slower); 'fastmlp read / epoch': the read over one training epoch on "
        "the rows (the last row).")
    return table


# ---------------------------------------------------------------------------------------------
# Start-up and GEMM
# ---------------------------------------------------------------------------------------------
def startup_table(benchmarks, stat="min"):
    """The first call in a fresh process (``bench_startup.py``), per workload and cache."""
    rows = _by_kind(benchmarks, "startup")
    if not rows:
        return None
    table = Table("First call in a fresh process: compile cache cold, warm, after "
                  "`fastmlp compile`, installed from the wheel",
                  ["call", "cache", "process s", "first call s", "import fastmlp s"])
    order = {"cold": 0, "warm": 1, "after compile": 2, "wheel": 3}
    for b in sorted(rows, key=lambda b: (b["extra_info"]["workload"],
                                         order.get(b["extra_info"]["cache"], 3))):
        i = b["extra_info"]
        table.rows.append([i["workload"], i["cache"], _fmt_s(_t(b, stat)),
                           _fmt_s(i.get("call_s")), _fmt_s(i.get("import_s"))])
    table.notes.append("'process s' is the whole child process (interpreter start-up "
                       "included, the round's " + stat + "); 'first call s' is the child's own "
                       "clock around the call, from its last round ('fastmlp train': the "
                       "process only).")
    sklearn = [b["extra_info"]["sklearn_fit_s"] for b in rows
               if "sklearn_fit_s" in b["extra_info"]]
    if sklearn:
        process = [b["extra_info"]["sklearn_process_s"] for b in rows
                   if "sklearn_process_s" in b["extra_info"]]
        whole = f" (the whole process: {_fmt_s(process[0])} s)" if process else ""
        table.notes.append(f"scikit-learn's MLPClassifier().fit on iris, in a fresh process: "
                           f"{_fmt_s(sklearn[0])} s{whole}.")
    shipped = [b["extra_info"]["shipped"] for b in rows if "shipped" in b["extra_info"]]
    if shipped:
        info = shipped[0]
        table.notes.append(f"'wheel': an empty compile cache and the shipped {info['cpu_name']} "
                           f"kernels ({info['kernels']}: {info['entries']} kernels, "
                           f"{info['bytes'] / 2**20:.1f} MiB, compiled in {info['seconds']} s).")
    compile_s = [b["extra_info"]["fastmlp_compile_s"] for b in rows
                 if "fastmlp_compile_s" in b["extra_info"]]
    if compile_s:
        table.notes.append(f"fastmlp compile took {_fmt_s(compile_s[0])} s.")
    return table


def shipped_table(benchmarks):
    """Epochs on the shipped x86-64-v3 kernels against native ones (``bench_shipped.py``)."""
    rows = [b for b in _by_kind(benchmarks, "shipped") if "shipped_epoch_s" in b["extra_info"]]
    if not rows:
        return None
    table = Table("Epochs on the shipped x86-64-v3 kernels against native ones",
                  ["workload", "native epoch s", "shipped epoch s", "shipped / native"])
    for b in sorted(rows, key=lambda b: b["extra_info"]["workload"]):
        i = b["extra_info"]
        table.rows.append([i["workload"], _fmt_s(i["native_epoch_s"]),
                           _fmt_s(i["shipped_epoch_s"]), f"{i['shipped_over_native']:.3f}"])
    table.notes.append("Fresh processes taking turns, each side's fastest epoch; the target is "
                       "a ratio of at most 1.05.")
    return table


def compile_table(benchmarks, top=6):
    """Where a cold first call's compile time goes (``bench_startup.py``'s cold rows)."""
    rows = [b for b in _by_kind(benchmarks, "startup")
            if b["extra_info"].get("cache") == "cold" and b["extra_info"].get("compile_by_kernel")]
    if not rows:
        return None
    table = Table("Where a cold first call's compile time goes",
                  ["call", "compiled s", "specialisations", f"largest {top}, own s each"])
    for b in sorted(rows, key=lambda b: b["extra_info"]["workload"]):
        i = b["extra_info"]
        largest = sorted(i["compile_by_kernel"].items(), key=lambda kv: -kv[1])[:top]
        table.rows.append([i["workload"], _fmt_s(i["compiled_s"]), str(i["compiled"]),
                           ", ".join(f"{name} {seconds:.2f}" for name, seconds in largest)])
    table.notes.append("Numba's compile events in the child of the cold row's last round: each "
                       "specialisation's own seconds, without the kernels it calls (compiled "
                       "while it is typed); per kernel and float dtype of its array arguments.")
    return table


def gemm_table(benchmarks, stat="min"):
    rows = _by_kind(benchmarks, "gemm")
    if not rows:
        return None
    table = Table("numpy BLAS matrix products (the limit)",
                  ["dtype", "m x k x n", "threads", "GFLOP/s"])
    for b in sorted(rows, key=lambda b: (b["extra_info"]["dtype"],
                                         b["extra_info"]["flops"], b["extra_info"]["threads"])):
        i = b["extra_info"]
        table.rows.append([i["dtype"], f"{i['m']} x {i['k']} x {i['n']}", str(i["threads"]),
                           f"{i['flops'] / _t(b, stat) / 1e9:.1f}"])
    return table


# ---------------------------------------------------------------------------------------------
# Thresholds
# ---------------------------------------------------------------------------------------------
def best_threshold(cases):
    """The size threshold that loses least over ``cases``.

    ``cases`` holds ``(size, t_below, t_above)``: the time of each case with the path used
    below the threshold (loops, serial) and the one used from it on (BLAS, parallel).
    Returns ``(threshold, loss)`` where ``loss`` is the mean of ``chosen time / best time``
    over the cases (1.0 = always the faster path); candidates are the sizes themselves.
    """
    if not cases:
        return None, None
    sizes = sorted({c[0] for c in cases}) + [math.inf]
    best = None
    for threshold in sizes:
        ratios = [(hi if size >= threshold else lo) / min(lo, hi) for size, lo, hi in cases]
        loss = sum(ratios) / len(ratios)
        if best is None or loss < best[1] - 1e-12:
            best = (threshold, loss)
    return best


def crossover(cases):
    """Smallest size from which the 'above' path wins in every case (inf if never)."""
    wins_from = math.inf
    for size, lo, hi in sorted(cases, reverse=True):
        if hi < lo:
            wins_from = size
        else:
            break
    return wins_from


def _pow2(x):
    if x is None or math.isinf(x):
        return "-"
    return f"2^{round(math.log2(x))}" if x > 0 else "0"


def matmul_tables(benchmarks, stat="min"):
    rows = _by_kind(benchmarks, "matmul")
    if not rows:
        return []
    cells = defaultdict(dict)
    for b in rows:
        i = b["extra_info"]
        cells[i["dtype"], i["op"], i["m"], i["k"], i["n"]][i["impl"]] = (
            _t(b, stat) / i["calls"])
    table = Table("BLAS_MIN_FLOPS: compiled loop vs BLAS (1 thread), per product",
                  ["dtype", "product", "m x k x n", "multiply-adds", "loop us", "BLAS us",
                   "loop / BLAS"])
    cases = defaultdict(list)
    for (dtype, op, m, k, n), t in sorted(cells.items(),
                                          key=lambda kv: (kv[0][0], kv[0][1],
                                                          kv[0][2] * kv[0][3] * kv[0][4])):
        if {"loop", "blas"} <= set(t):
            macs = m * k * n
            cases[dtype, op].append((macs, t["loop"], t["blas"]))
            cases["all", "all"].append((macs, t["loop"], t["blas"]))
            table.rows.append([dtype, {"nn": "A @ B", "tn": "A.T @ B", "nt": "A @ B.T"}[op],
                               f"{m} x {k} x {n}", str(macs), f"{1e6 * t['loop']:.2f}",
                               f"{1e6 * t['blas']:.2f}", f"{t['loop'] / t['blas']:.2f}"])
    summary = Table("BLAS_MIN_FLOPS: what the numbers say",
                    ["dtype", "product", "BLAS wins from (every larger case)",
                     "best threshold", "mean time / best at it"])
    for (dtype, op), cs in sorted(cases.items(), key=lambda kv: kv[0] == ("all", "all")):
        threshold, loss = best_threshold(cs)
        cross = crossover(cs)
        summary.rows.append([dtype, op, "never" if math.isinf(cross) else
                             f"{cross} ({_pow2(cross)})",
                             "never" if math.isinf(threshold) else
                             f"{threshold} ({_pow2(threshold)})", f"{loss:.3f}"])
    current = rows[0]["extra_info"].get("blas_min_flops")
    summary.notes.append(
        f"Current fastmlp._config.BLAS_MIN_FLOPS = {current} ({_pow2(current)}). 'best "
        "threshold' minimises the mean over the cases of (time with the threshold) / (time of "
        "the faster path); the 'all' row is the single value for every product and dtype.")
    return [table, summary]


def parallel_tables(benchmarks, stat="min"):
    rows = _by_kind(benchmarks, "parallel")
    if not rows:
        return []
    cells = defaultdict(dict)
    threads = {}
    for b in rows:
        i = b["extra_info"]
        key = (tuple(i["layer_sizes"]), i["batch_size"], i["macs_per_batch"], i["n_samples"])
        cells[key][i["impl"]] = _t(b, stat)
        if i["impl"] != "serial":
            threads[key] = i["threads"]
    table = Table("PARALLEL_MIN_FLOPS: serial vs parallel epoch (float32, SGD)",
                  ["network", "batch", "multiply-adds / batch", "rows", "serial s",
                   "parallel (rows) s", "parallel (units) s", "threads",
                   "serial / best parallel"])
    cases = []
    unit_wins = defaultdict(list)  # network -> [(batch, units beat rows)]
    for key in sorted(cells, key=lambda k: k[2]):
        t = cells[key]
        sizes, batch, macs, n = key
        parallel = min((t[k] for k in ("parallel", "units") if k in t), default=None)
        speed = "-"
        if "serial" in t and parallel is not None:
            speed = f"{t['serial'] / parallel:.2f}"
            cases.append((macs, t["serial"], parallel))
        if {"parallel", "units"} <= set(t):
            unit_wins[sizes].append((batch, t["units"] < t["parallel"]))
        table.rows.append(["-".join(map(str, sizes)), str(batch), str(macs), str(n),
                           _fmt_s(t.get("serial")), _fmt_s(t.get("parallel")),
                           _fmt_s(t.get("units")), str(threads.get(key, "-")), speed])
    threshold, loss = best_threshold(cases)
    cross = crossover(cases)
    current = rows[0]["extra_info"].get("parallel_min_flops")
    if cases:
        wins = ("never wins in every larger case" if math.isinf(cross) else
                f"wins in every case from {cross} multiply-adds per batch ({_pow2(cross)}) on")
        best = ("never parallel" if math.isinf(threshold) else
                f"{threshold} ({_pow2(threshold)})")
        table.notes.append(
            f"The parallel kernel {wins}; the threshold losing least is {best}, mean time / "
            f"best {loss:.3f}. Current fastmlp._config.PARALLEL_MIN_FLOPS = {current} "
            f"({_pow2(current)}).")
    else:
        table.notes.append("No parallel rows (one thread, or no fast threading layer).")
    for sizes, wins in sorted(unit_wins.items()):
        won = [b for b, w in sorted(wins) if w]
        lost = [b for b, w in sorted(wins) if not w]
        table.notes.append(
            f"{'-'.join(map(str, sizes))}: splitting the hidden units beats splitting the rows "
            f"at batch {', '.join(map(str, won)) or 'none'} and loses at "
            f"{', '.join(map(str, lost)) or 'none'}. Current "
            f"fastmlp._config.UNIT_SPLIT_MAX_BATCH = "
            f"{rows[0]['extra_info'].get('unit_split_max_batch')}.")
    return [table]


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------
def build_tables(benchmarks, stat="min", brief=False):
    """Every table the rows allow, in report order (``brief``: without the per-product one)."""
    tables = [comparison_table(benchmarks, "train", stat),
              comparison_table(benchmarks, "predict", stat), calls_table(benchmarks, stat),
              regressor_table(benchmarks, stat), busy_table(benchmarks, stat),
              tables_table(benchmarks, stat), startup_table(benchmarks, stat),
              shipped_table(benchmarks),
              compile_table(benchmarks), gemm_table(benchmarks, stat)]
    matmul = matmul_tables(benchmarks, stat)
    tables += (matmul[1:] if brief else matmul) + parallel_tables(benchmarks, stat)
    return [t for t in tables if t is not None]


def to_markdown(tables):
    out = []
    for t in tables:
        out += [f"### {t.title}", "", "| " + " | ".join(t.headers) + " |",
                "|" + "|".join("---" if i == 0 else "--:" for i in range(len(t.headers))) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in t.rows]
        out += [""] + [f"{n}" for n in t.notes] + ([""] if t.notes else [])
    return "\n".join(out)


def _line(cells, widths):
    return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                     for i, (c, w) in enumerate(zip(cells, widths, strict=False)))


def to_text(tables):
    out = []
    for t in tables:
        widths = [max(len(str(x)) for x in col) for col in zip(t.headers, *t.rows,
                                                               strict=False)]
        out += ["", t.title, _line(t.headers, widths), "-" * len(_line(t.headers, widths))]
        out += [_line(r, widths) for r in t.rows]
        out += [f"  {n}" for n in t.notes]
    return "\n".join(out)


def speedup_chart(benchmarks, path, stat="min"):
    """Write a PNG bar chart of fastmlp's speed-up over scikit-learn and PyTorch (log scale).

    Returns False (writing nothing) when there is nothing to compare.
    """
    rows = [r for kind in ("train", "predict") for r in comparisons(benchmarks, kind, stat)]
    data = []
    for r in rows:
        _, vs_sk, vs_torch = speedups(r)
        if vs_sk is not None or vs_torch is not None:
            label = ("train " if r["group"].startswith("train") else "") + r["workload"]
            data.append((label, vs_sk, vs_torch))
    if not data:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 0.45 * len(data) + 1.5))
    ys = range(len(data))
    h = 0.4
    for offset, idx, label, color in ((-h / 2, 1, "vs scikit-learn", "#4c72b0"),
                                      (h / 2, 2, "vs PyTorch", "#dd8452")):
        vals = [d[idx] if d[idx] is not None else 1.0 for d in data]
        # bars grow from 1 (as fast) to the ratio, leftwards when fastmlp is slower
        bars = ax.barh([y + offset for y in ys], [v - 1 for v in vals], left=1, height=h,
                       label=label, color=color)
        for bar, v, d in zip(bars, vals, data, strict=False):
            if d[idx] is not None:
                ax.text(v, bar.get_y() + bar.get_height() / 2, f" {v:.2g}x " if v < 10 else
                        f" {v:.0f}x ", va="center", ha="left" if v >= 1 else "right",
                        fontsize=7)
    ax.axvline(1, color="black", linewidth=0.8)
    ax.set_xscale("log")
    known = [v for d in data for v in d[1:] if v is not None]
    lo, hi = min(known + [1.0]) / 1.6, max(known + [1.0]) * 1.6
    ax.set_xlim(lo, hi)
    ticks = [t for t in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500) if lo <= t <= hi]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}x" for t in ticks])
    ax.minorticks_off()
    ax.set_yticks(list(ys))
    ax.set_yticklabels([d[0] for d in data], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"speed-up of fastmlp (other's time / fastmlp's, {stat} of rounds)")
    ax.set_title("fastmlp vs scikit-learn and PyTorch (CPU)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def machine_line(machine_info):
    if not machine_info:
        return ""
    cpu = machine_info.get("cpu", {})
    return (f"Machine: {cpu.get('brand_raw', machine_info.get('processor', '?'))}, "
            f"{cpu.get('count', '?')} logical CPUs; Python "
            f"{machine_info.get('python_version', '?')}.")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", nargs="+",
                        help="files written by pytest --benchmark-json (their rows are joined)")
    parser.add_argument("-o", "--output", help="markdown file to write (default: stdout)")
    parser.add_argument("--png", help="also write a bar chart of the speed-ups here")
    parser.add_argument("--stat", default="min", choices=["min", "median", "mean", "max"])
    parser.add_argument("--brief", action="store_true",
                        help="leave out the per-product loop-vs-BLAS table")
    args = parser.parse_args(argv)
    benchmarks, machine = [], {}
    for path in args.json:
        rows, info = load(path)
        benchmarks += rows
        machine = machine or info
    text = to_markdown(build_tables(benchmarks, args.stat, args.brief))
    header = machine_line(machine)
    text = (header + "\n\n" if header else "") + text + "\n"
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    if args.png and not speedup_chart(benchmarks, args.png, args.stat):
        print("report: no rows to chart (no sklearn/torch comparisons)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
