"""Bodies of ``bench_busy.py``: one training run in a fresh process, beside busy neighbours.

Run as ``python _busy.py '<json spec>'`` (the spec's ``impl``, ``batch``, ``epochs``,
``rows``, ``X``/``y`` ``.npy`` paths); prints one JSON line: the seconds of each epoch. A fresh
process per run, because the settings compared (``NUMBA_NUM_THREADS``, ``OMP_WAIT_POLICY``)
are read once, when a process starts its thread pool. The network is ``Model([784, 100, 10],
dtype="float32")`` (sigmoid, SGD, learning rate 0.1), scikit-learn's ``MLPClassifier`` and a
PyTorch loop with the same network, optimizer and batch.
"""

import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np

#: The neighbour: a Python busy loop, as in issue 16's measurements.
BUSY_LOOP = "while True: pass"

#: The settings compared for fastmlp: name -> environment added to the child's.
SETTINGS = {
    "default": {},
    "NUMBA_NUM_THREADS=1": {"NUMBA_NUM_THREADS": "1"},
    "OMP_WAIT_POLICY=passive": {"OMP_WAIT_POLICY": "passive"},
    # the engine before it chose its threads (fastmlp 0.1's behaviour): every thread, always
    "FASTMLP_ADAPT_THREADS=0": {"FASTMLP_ADAPT_THREADS": "0"},
}


class Neighbours:
    """Context: ``n`` busy-loop processes, started on entry and killed on exit."""

    def __init__(self, n):
        self.n = n
        self.procs = []

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(self.n)]
        time.sleep(0.2 if self.n else 0)  # let them start spinning
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()


def child_env(setting):
    """The environment of a child: this one, without the benchmark's own OpenMP settings."""
    env = dict(os.environ)
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "NUMBA_NUM_THREADS"):
        original = env.pop(f"_FASTMLP_BENCH_{name}", None)
        env.pop(name, None)
        if original not in (None, "<unset>"):
            env[name] = original
    env.update(SETTINGS.get(setting, {}))
    return env


def run(spec, setting, timeout=900):
    """Run one child; return its list of seconds per epoch."""
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), json.dumps(spec)],
                          env=child_env(setting), capture_output=True, text=True,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"busy child {spec} ({setting}) failed ({proc.returncode}):\n"
                           f"{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fastmlp(X, y, batch, epochs):
    from fastmlp import Model

    warm = Model([784, 100, 10], dtype="float32", seed=1)  # the compile cache, the pools
    warm.fit(X[: 8 * batch], y[: 8 * batch], epochs=1, batch_size=batch, learning_rate=0.1,
             progress=False)
    model = Model([784, 100, 10], dtype="float32", seed=0)
    history = model.fit(X, y, epochs=epochs, batch_size=batch, learning_rate=0.1,
                        progress=False)
    return list(history.seconds)


def _sklearn(X, y, batch, epochs):
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier((100,), activation="logistic", solver="sgd", batch_size=batch,
                        learning_rate_init=0.1, momentum=0.0, alpha=0.0, max_iter=1, tol=0.0,
                        random_state=0)
    classes = np.arange(10)
    clf.partial_fit(X[:batch], y[:batch], classes=classes)
    seconds = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(epochs):
            start = time.perf_counter()
            clf.partial_fit(X, y)
            seconds.append(time.perf_counter() - start)
    return seconds


def _torch(X, y, batch, epochs):
    import _benchlib as bl
    import torch

    torch.manual_seed(0)
    net = bl.torch_network(torch, (784, 100, 10), "float32")
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    cost = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(np.asarray(y, dtype=np.int64))
    gen = torch.Generator().manual_seed(0)
    bl.torch_train_epoch(torch, net, opt, cost, Xt, yt, 8 * batch, batch, gen)  # warm-up
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        bl.torch_train_epoch(torch, net, opt, cost, Xt, yt, Xt.shape[0], batch, gen)
        seconds.append(time.perf_counter() - start)
    return seconds


def main(spec):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    X = np.load(spec["X"])
    y = np.load(spec["y"])
    body = {"fastmlp": _fastmlp, "sklearn": _sklearn, "torch": _torch}[spec["impl"]]
    print(json.dumps(body(X, y, spec["batch"], spec["epochs"])))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
