"""pytest set-up of the benchmark suite, and the summary table printed after a run.

Run (the lead's pyproject collects ``bench_*.py``)::

    python -m pytest benchmarks --benchmark-only            # timings + summary (< 10 min)
    python -m pytest benchmarks --benchmark-disable         # CI: every body once, small data
    python -m pytest benchmarks --benchmark-only --benchmark-json=bench.json
    python benchmarks/report.py bench.json -o bench.md --png speedups.png
"""

import importlib.util
import os
import sys
import time

import pytest

# Importing fastmlp sets GOMP_SPINCOUNT; record the OpenMP settings from before, which the
# scikit-learn / PyTorch worker processes restore (see _benchlib.ORIGINAL_OMP_ENV).
for _name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
    os.environ.setdefault(f"_FASTMLP_BENCH_{_name}", os.environ.get(_name, "<unset>"))

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # bench modules import _benchlib, also under --import-mode=importlib
    sys.path.insert(0, HERE)


def _report_module():
    # loaded by path under a private name: "report" is too common a module name to import
    spec = importlib.util.spec_from_file_location("_fastmlp_bench_report",
                                                  os.path.join(HERE, "report.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_session = {}


def pytest_sessionstart(session):
    _session["start"] = time.perf_counter()
    _session["load"] = os.getloadavg()


def pytest_sessionfinish(session):
    bl = sys.modules.get("_benchlib")
    if bl is not None:  # stop the scikit-learn / PyTorch worker processes
        bl.close_workers()


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, config):
    bs = getattr(config, "_benchmarksession", None)
    if bs is None:
        return
    ran = [b for b in bs.benchmarks if b and getattr(b, "extra_info", {}).get("kind")]
    if not ran:
        if bs.disabled and "start" in _session:
            terminalreporter.write_line(
                "fastmlp benchmarks: timings disabled (each body ran once, on "
                "FASTMLP_BENCH_SMOKE_ROWS rows for training); no summary table.")
        return
    import _benchlib as bl

    report = _report_module()
    benchmarks = [b.as_dict(include_data=False) for b in ran]
    tables = report.build_tables(benchmarks, "min")
    tr = terminalreporter
    tr.write_sep("=", "fastmlp benchmark summary")
    load0 = _session.get("load", (float("nan"),) * 3)
    load1 = os.getloadavg()
    tr.write_line(
        f"{bl.N_THREADS} numba threads (fastmlp rows also at {bl.THREAD_COUNTS}); "
        f"scikit-learn BLAS and PyTorch on {bl.N_THREADS}. Load average (1 min) at the start "
        f"{load0[0]:.2f}, at the end {load1[0]:.2f}: on a machine busy with other work the "
        f"times are noisy; each is the best of its rounds. OpenMP here (numba's pool): "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
        f"GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT')}; the scikit-learn/PyTorch worker "
        f"processes run with OMP_WAIT_POLICY={bl.ORIGINAL_OMP_WAIT_POLICY}.")
    tr.write_line(report.to_text(tables))
    if "start" in _session:
        tr.write_line(f"\nsuite wall time: {time.perf_counter() - _session['start']:.0f} s")
