"""Start-up cost in a fresh process: import fastmlp, ``Model.load``, first one-epoch fit.

Each round runs a new Python process that imports fastmlp, loads a saved digits model
(64-32-10, float64) and fits it for one epoch (batch 32) on the digits, which it reads from
``.npy`` files. The round's time is the whole process, interpreter start-up included; the
child's own breakdown (import / load / fit seconds) goes to ``extra_info``.

* cache cold: ``NUMBA_CACHE_DIR`` is a new empty folder, so every kernel the fit needs is
  compiled (what the first run after an install pays);
* cache warm: the folder was filled by an earlier run (the cold row's, or a warm-up), so the
  kernels are loaded from disk (every later run).
"""

import json
import os
import subprocess
import sys
import tempfile

import _benchlib as bl
import numpy as np
import pytest

CHILD = """
import json, sys, time
t0 = time.perf_counter()
import fastmlp
t1 = time.perf_counter()
import numpy as np
model = fastmlp.Model.load(sys.argv[1])
X, y = np.load(sys.argv[2]), np.load(sys.argv[3])
t2 = time.perf_counter()
history = model.fit(X, y, epochs=1, batch_size=32, learning_rate=0.1, progress=False)
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "fit_s": t3 - t2,
                  "loss": history.loss[-1]}))
"""

_filled_cache = {}  # the cold row leaves a filled cache folder for the warm row


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    import fastmlp

    folder = tmp_path_factory.mktemp("startup")
    X, y = bl.digits()
    model = bl.fastmlp_model((64, 32, 10), "float64")
    paths = [str(folder / name) for name in ("model.npz", "X.npy", "y.npy")]
    model.save(paths[0])
    np.save(paths[1], X)
    np.save(paths[2], y)
    env = dict(os.environ)
    # the child imports the same fastmlp as this process (an install, or the source tree)
    src = os.path.dirname(os.path.dirname(os.path.abspath(fastmlp.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env.pop("NUMBA_DISABLE_JIT", None)
    return folder, paths, env


def _run_child(saved, cache_dir):
    folder, paths, env = saved
    env = dict(env, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", CHILD, *paths], env=env, cwd=folder,
                         capture_output=True, text=True, timeout=600, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"child process failed ({out.returncode}):\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_fresh_process(benchmark, saved, tmp_path_factory, cache):
    benchmark.group = "fresh process: import + Model.load + first 1-epoch fit (digits)"
    benchmark.extra_info.update(kind="startup", impl="fastmlp", cache=cache,
                                workload=f"fresh process, cache {cache}")
    last = {}

    def new_cache():
        return (tempfile.mkdtemp(prefix="numba-cache-", dir=tmp_path_factory.getbasetemp()),), {}

    def run(cache_dir):
        last.update(_run_child(saved, cache_dir), cache_dir=cache_dir)

    if cache == "cold":
        bl.time_calls(benchmark, run, setup=new_cache, warmup_rounds=0,
                      rounds=min(2, bl.ROUNDS))
        _filled_cache["dir"] = last["cache_dir"]
    else:
        if "dir" not in _filled_cache and not benchmark.disabled:
            run(new_cache()[0][0])  # fill a cache first
            _filled_cache["dir"] = last["cache_dir"]
        cache_dir = _filled_cache.get("dir") or new_cache()[0][0]
        bl.time_calls(benchmark, run, args=(cache_dir,), warmup_rounds=0)
    benchmark.extra_info.update({k: v for k, v in last.items() if k != "cache_dir"})
