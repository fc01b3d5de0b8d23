"""The client's side of a distributed L-BFGS fit: its memory and its work as the rows grow.

Run as a script, in a fresh process of its own (the client), against a running scheduler::

    python tests/client_memory.py ADDRESS classifier 500000,4000000 [--features 8]

It makes ``X`` (float32 Gaussian, ``--features`` columns, blocks of ``--block-rows`` rows) and
``y`` (4 classes from X's first columns, or a float64 target) on the workers, persists them
there, and fits ``MLPClassifier`` or ``MLPRegressor(solver="lbfgs", hidden_layer_sizes=(4,),
max_iter=--max-iter)`` once on a few rows first (the client's imports and kernels, the
workers' kernels). For each size it then resets the process's peak RSS (Linux: ``5`` to
``/proc/self/clear_refs``), fits, and prints one JSON line: ``growth_mib`` (peak RSS during
the fit less RSS before it), ``evaluations``, ``eval_cpu_ms`` (the client's CPU time per
loss-and-gradient evaluation), ``setup_cpu_ms`` (its CPU time in the fit outside them: the
checks, the summaries, scipy), ``wall_ms`` (the client's wait per evaluation), ``blocks``,
``fit_s`` and ``n_iter``.
``tests/test_dask.py`` and the projection in ``docs/benchmarks.md`` use it.
"""

import argparse
import json
import time
import warnings


def _status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB -> MiB
    raise RuntimeError(f"no {field} in /proc/self/status")


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("kind", choices=["classifier", "regressor"])
    parser.add_argument("rows")
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--block-rows", type=int, default=250_000)
    parser.add_argument("--max-iter", type=int, default=3)
    args = parser.parse_args(argv)

    import dask.array as da
    import numpy as np
    from distributed import Client, wait

    from fastmlp import MLPClassifier, MLPRegressor
    from fastmlp.sklearn import _distributed

    def data(rows):
        state = da.random.RandomState(0)
        X = state.standard_normal((rows, args.features),
                                  chunks=(args.block_rows, args.features)).astype(np.float32)
        if args.kind == "classifier":
            y = X[:, :4].argmax(axis=1)  # labels, made on the workers
        else:
            y = (2.0 * X[:, 0] - X[:, 1] + 0.1 * X[:, 2] ** 2).astype(np.float64)
        return client.persist([X, y])

    def fit(X, y):
        cls = MLPClassifier if args.kind == "classifier" else MLPRegressor
        est = cls(solver="lbfgs", hidden_layer_sizes=(4,), max_iter=args.max_iter,
                  random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # max_iter is reached: not what is measured
            with _distributed.timings() as evaluations:
                est.fit(X, y)
        return est, evaluations

    with Client(args.address) as client:
        X, y = data(50_000)
        fit(X, y)  # warm-up
        del X, y
        for rows in (int(r) for r in args.rows.split(",")):
            X, y = data(rows)
            wait([X, y])
            time.sleep(0.2)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # the peak RSS (VmHWM) starts again from the current RSS
            before = _status("VmRSS")
            cpu, start = time.process_time(), time.perf_counter()
            est, evaluations = fit(X, y)
            fit_s, cpu = time.perf_counter() - start, time.process_time() - cpu
            n = max(1, len(evaluations))
            print(json.dumps({
                "kind": args.kind, "rows": rows, "growth_mib": _status("VmHWM") - before,
                "evaluations": len(evaluations),
                "eval_cpu_ms": 1e3 * sum(e["client_cpu_s"] for e in evaluations) / n,
                "setup_cpu_ms": 1e3 * (cpu - sum(e["client_cpu_s"] for e in evaluations)),
                "wall_ms": 1e3 * sum(e["wall_s"] for e in evaluations) / n,
                "blocks": X.numblocks[0], "fit_s": fit_s, "n_iter": est.n_iter_}), flush=True)
            del X, y, est


if __name__ == "__main__":
    main()
