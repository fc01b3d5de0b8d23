"""The compiled epoch against the NumPy reference epoch, batch for batch.

``fastmlp._engine.Trainer.epoch`` (one ``@njit`` call per epoch: gather, forward, BP1-BP4 and
the optimizer update of every mini-batch) must give the same summed cost and the same
parameters as ``reference.epoch`` (the same sample order, scikit-learn's update rules), epoch
after epoch, so the optimizer state carried between epochs is checked too.

Tolerances:
- float64: ``1e-10`` relative on the summed cost and on the parameters after 3 epochs (both
  sides compute the same sums in a different order; the differences are ~1e-14 and grow by the
  learning rate times the curvature each step).
- float32 engine against the float64 reference, started from the same (float32-rounded)
  parameters and data: ``F32_RTOL = 1e-4`` on the summed cost and ``F32_ATOL = 1e-4`` on every
  parameter after 2 epochs (float32 eps is 1.2e-7; the measured gap is ~1e-6).
- CSR against dense, and chunked against one chunk: ``1e-13`` (the same arithmetic, at most
  summed in another order).
"""

import numpy as np
import pytest
import reference as ref
import scipy.sparse as sp

from fastmlp._engine import Network, Trainer, hidden_code
from fastmlp._kernels import train
from fastmlp._kernels.activations import LOGISTIC, SOFTMAX
from fastmlp._params import activation_offsets, bias_views, weight_views

RTOL = 1e-10
F32_RTOL = 1e-4
F32_ATOL = 1e-4
SAME_RTOL = 1e-13

ACTIVATIONS = ["sigmoid", "tanh", "relu", "identity"]
OPTIMIZERS = {  # name -> (Trainer/reference optimizer, settings)
    "sgd": ("sgd", dict(learning_rate=0.3)),
    "momentum": ("sgd", dict(learning_rate=0.1, momentum=0.9)),
    "nesterov": ("sgd", dict(learning_rate=0.1, momentum=0.9, nesterov=True)),
    "adam": ("adam", dict(learning_rate=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-8)),
}
L2 = {"none": (0.0, 0.0), "l2": (0.05, 0.0), "l2_per_sample": (0.0, 0.4), "both": (0.02, 0.3)}

N = 23
BATCH = 5  # 23 = 4 * 5 + 3: the last batch of every epoch is short


def make_case(rng, output, hidden, sizes=(4, 6, 5, 3), dtype=np.float64, n=N):
    sizes = list(sizes)
    out_act = SOFTMAX if output == "softmax" else LOGISTIC
    net = Network(sizes, hidden_code(hidden), out_act, dtype)
    theta = rng.normal(0, 0.6, net.n_params).astype(dtype)
    X = rng.normal(0, 1, (n, sizes[0])).astype(dtype)
    k = sizes[-1]
    if output == "softmax":
        Y = rng.dirichlet(np.ones(k), n)
        Y[: n // 2] = np.eye(k)[rng.integers(0, k, n // 2)]  # half one-hot, half soft rows
    else:
        Y = rng.integers(0, 2, (n, k)).astype(np.float64)  # multilabel 0/1 columns
        Y[: n // 3] = rng.random((n // 3, k))  # and some soft ones
    return net, theta, X, Y.astype(dtype)


def reference_params(net, theta):
    return ref.as_float64(weight_views(theta, net.layer_sizes), bias_views(theta, net.layer_sizes))


def flat(arrays):
    return np.concatenate([np.ravel(a) for a in arrays])


def run_both(rng, net, theta, X, Y, orders, optimizer, hidden, output, *, l2=0.0,
             l2_per_sample=0.0, clip_eps=0.0, batch_size=BATCH, trainer=None):
    """Train ``theta`` (in place) and a reference copy epoch by epoch; yield both results.

    ``trainer`` (made with the same settings) replaces the default one, to test a kernel the
    engine would not choose for so small a case.
    """
    opt_name, settings = OPTIMIZERS[optimizer]
    if trainer is None:
        trainer = Trainer(net, batch_size, opt_name, l2=l2, l2_per_sample=l2_per_sample,
                          clip_eps=clip_eps, **settings)
    Ws, bs = reference_params(net, theta)
    ref_opt = ref.make_optimizer(opt_name, Ws, bs, **settings)
    for order in orders:
        got = trainer.epoch(theta, X, Y, order)
        expected = ref.epoch(Ws, bs, X, Y, order, batch_size, ref_opt, hidden, output, l2,
                             l2_per_sample, clip_eps)
        yield got, expected, flat(Ws + bs)


def orders_for(rng, n_epochs=3, n=N):
    """Shuffled orders, as fit draws them, and the identity once."""
    return [rng.permutation(n) for _ in range(n_epochs - 1)] + [np.arange(n)]


def check_epochs(rng, net, theta, X, Y, optimizer, hidden, output, **kw):
    theta0 = theta.copy()
    n = X.shape[0]
    for (loss_sum, n_correct, n_seen), (ref_loss, ref_correct), ref_theta in run_both(
            rng, net, theta, X, Y, orders_for(rng, 3, n), optimizer, hidden, output, **kw):
        assert n_seen == n
        assert np.isfinite(loss_sum)
        assert loss_sum == pytest.approx(ref_loss, rel=RTOL)
        assert n_correct == ref_correct
        np.testing.assert_allclose(theta, ref_theta, rtol=RTOL, atol=RTOL * np.abs(theta).max())
    # training moved the parameters well beyond the tolerance (the comparison can fail)
    assert np.abs(theta - theta0).max() > 1e-3


@pytest.mark.parametrize("clip", ["exact", "clipped"])
@pytest.mark.parametrize("output", ["softmax", "logistic"])
@pytest.mark.parametrize("hidden", ACTIVATIONS)
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_epoch_matches_reference(rng, optimizer, hidden, output, clip):
    net, theta, X, Y = make_case(rng, output, hidden)
    clip_eps = 0.0 if clip == "exact" else float(np.finfo(np.float64).eps)
    check_epochs(rng, net, theta, X, Y, optimizer, hidden, output, clip_eps=clip_eps)


@pytest.mark.parametrize("l2", sorted(L2))
@pytest.mark.parametrize("output", ["softmax", "logistic"])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_epoch_with_l2_matches_reference(rng, optimizer, output, l2):
    """coef = l2 + l2_per_sample / n_batch: the short last batch gets a larger coefficient."""
    hidden = "tanh"
    net, theta, X, Y = make_case(rng, output, hidden)
    l2_, per_sample = L2[l2]
    check_epochs(rng, net, theta, X, Y, optimizer, hidden, output, l2=l2_,
                 l2_per_sample=per_sample)


@pytest.mark.parametrize("sizes", [(4, 3), (4, 6, 3), (4, 3, 5, 4, 3)], ids=["0h", "1h", "3h"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_epoch_other_depths(rng, sizes, optimizer):
    net, theta, X, Y = make_case(rng, "softmax", "sigmoid", sizes=sizes)
    check_epochs(rng, net, theta, X, Y, optimizer, "sigmoid", "softmax", l2=0.01)


@pytest.mark.parametrize("optimizer", ["nesterov", "adam"])
def test_epoch_large_layers(rng, optimizer):
    """Products of 32 x 40 x 64 multiply-adds and more (BLAS, where small ones may be loops)."""
    n, batch = 100, 32  # 100 = 3 * 32 + 4
    sizes = (40, 64, 48, 10)
    net, theta, X, Y = make_case(rng, "softmax", "sigmoid", sizes=sizes, n=n)
    theta *= 0.3
    Ws, bs = reference_params(net, theta)
    opt_name, settings = OPTIMIZERS[optimizer]
    trainer = Trainer(net, batch, opt_name, l2=0.01, **settings)
    ref_opt = ref.make_optimizer(opt_name, Ws, bs, **settings)
    for order in orders_for(rng, 2, n):
        loss_sum, n_correct, n_seen = trainer.epoch(theta, X, Y, order)
        ref_loss, ref_correct = ref.epoch(Ws, bs, X, Y, order, batch, ref_opt, "sigmoid",
                                          "softmax", l2=0.01)
        assert (n_seen, n_correct) == (n, ref_correct)
        assert loss_sum == pytest.approx(ref_loss, rel=RTOL)
        np.testing.assert_allclose(theta, flat(Ws + bs), rtol=RTOL,
                                   atol=RTOL * np.abs(theta).max())
    # the full-data cost and gradient, in one chunk and in small ones
    ref_loss, ref_W, ref_b = ref.loss_and_gradient(Ws, bs, X, Y, "sigmoid", "softmax", 0.01)
    for chunk in (n, 7):
        loss, _, grad = kernel_loss_and_gradient(net, theta, X, Y, l2=0.01, l2_per_sample=0.0,
                                                 clip_eps=0.0, chunk=chunk)
        assert loss == pytest.approx(ref_loss, rel=1e-12)
        np.testing.assert_allclose(grad, flat(ref_W + ref_b), rtol=1e-12,
                                   atol=1e-12 * np.abs(grad).max())


@pytest.mark.parametrize("batch_size", [1, 4, N, N + 5])
def test_epoch_batch_sizes(rng, batch_size):
    """One row per batch; batches that divide unevenly; one batch (buffers larger than N)."""
    net, theta, X, Y = make_case(rng, "softmax", "relu")
    orders = orders_for(rng, 2)
    for (loss_sum, _, n_seen), (ref_loss, _), ref_theta in run_both(
            rng, net, theta, X, Y, orders, "momentum", "relu", "softmax", l2_per_sample=0.1,
            batch_size=batch_size):
        assert n_seen == N
        assert loss_sum == pytest.approx(ref_loss, rel=RTOL)
        np.testing.assert_allclose(theta, ref_theta, rtol=RTOL, atol=RTOL * np.abs(theta).max())


def test_epoch_order_is_followed(rng):
    """A subset of the rows, in a given order, repeated rows included: exactly those batches."""
    net, theta, X, Y = make_case(rng, "softmax", "tanh")
    order = np.array([5, 3, 3, 22, 0, 17, 9, 9, 9, 1, 11, 2], dtype=np.int64)
    for (loss_sum, n_correct, n_seen), (ref_loss, ref_correct), ref_theta in run_both(
            rng, net, theta, X, Y, [order, order[::-1].copy()], "adam", "tanh", "softmax"):
        assert n_seen == len(order)
        assert loss_sum == pytest.approx(ref_loss, rel=RTOL)
        assert n_correct == ref_correct
        np.testing.assert_allclose(theta, ref_theta, rtol=RTOL, atol=RTOL * np.abs(theta).max())


def test_epoch_order_matters(rng):
    """A different order gives different parameters (the epoch does not ignore ``order``)."""
    net, theta, X, Y = make_case(rng, "softmax", "sigmoid")
    t1, t2 = theta.copy(), theta.copy()
    Trainer(net, BATCH, "sgd", learning_rate=0.3).epoch(t1, X, Y, np.arange(N))
    Trainer(net, BATCH, "sgd", learning_rate=0.3).epoch(t2, X, Y, np.arange(N)[::-1].copy())
    assert not np.allclose(t1, t2, rtol=1e-6, atol=0)


def test_cost_is_taken_before_each_update(rng):
    """The first batch's cost is that of the initial parameters."""
    net, theta, X, Y = make_case(rng, "softmax", "tanh")
    Ws, bs = reference_params(net, theta)
    order = rng.permutation(N)
    trainer = Trainer(net, N, "sgd", learning_rate=0.5)  # one batch: the whole epoch
    loss_sum, _, _ = trainer.epoch(theta, X, Y, order)
    assert loss_sum / N == pytest.approx(ref.loss(Ws, bs, X, Y, "tanh", "softmax"), rel=1e-13)


def test_epoch_stops_before_a_non_finite_batch(rng):
    """A batch whose cost is not finite ends the epoch before its update; n_seen says where."""
    net, theta, X, Y = make_case(rng, "softmax", "sigmoid")
    X = X.copy()
    order = rng.permutation(N)
    X[order[12]] = np.nan  # in the third batch (rows 10..14 of the order)
    Ws, bs = reference_params(net, theta)
    ref_opt = ref.make_optimizer("sgd", Ws, bs, learning_rate=0.3)
    ref_loss, _ = ref.epoch(Ws, bs, X, Y, order[:10], BATCH, ref_opt, "sigmoid", "softmax")
    loss_sum, _, n_seen = Trainer(net, BATCH, "sgd", learning_rate=0.3).epoch(theta, X, Y, order)
    assert n_seen == 10
    assert not np.isfinite(loss_sum)
    np.testing.assert_allclose(theta, flat(Ws + bs), rtol=RTOL, atol=RTOL)


@pytest.mark.parametrize("l2", ["none", "both"])
@pytest.mark.parametrize("output", ["softmax", "logistic"])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_parallel_epoch_matches_reference(rng, monkeypatch, optimizer, output, l2):
    """The threaded epoch (each batch split over threads, gradient slabs summed) is the same.

    21 rows in batches of 5: the last batch has one row, fewer than the threads, so one thread
    has no rows and must contribute a zero gradient. With and without L2.
    """
    from fastmlp import _config

    monkeypatch.setattr(_config, "PARALLEL_MIN_FLOPS", 0, raising=False)
    n = 21
    net, theta, X, Y = make_case(rng, output, "tanh", n=n)
    opt_name, settings = OPTIMIZERS[optimizer]
    l2, per_sample = L2[l2]
    trainer = Trainer(net, BATCH, opt_name, l2=l2, l2_per_sample=per_sample, **settings)
    if trainer.n_lanes < 2:
        pytest.skip("no parallel epoch here (a one-thread pool, or no fast threading layer)")
    check_epochs(rng, net, theta, X, Y, optimizer, "tanh", output, l2=l2,
                 l2_per_sample=per_sample, trainer=trainer)


def lane_split_trainer(monkeypatch, split, net, batch_size, opt_name, lanes=None, **kw):
    """A Trainer on the unit-split (``train_units``) or column-split (``train_columns``)
    kernel, however small the network; on ``lanes`` lanes when given (whatever the pool)."""
    from fastmlp import _config, _engine

    monkeypatch.setattr(_config, "PARALLEL_MIN_FLOPS", 0)
    if lanes is not None:  # more lanes than threads: the governor's counts are the pool's
        monkeypatch.setattr(_engine, "parallel_lanes", lambda: lanes)
        monkeypatch.setattr(_config, "ADAPT_THREADS", False)
    if split == "units":
        monkeypatch.setattr(_config, "UNIT_SPLIT_MIN_UNITS", 1)
    else:
        monkeypatch.setattr(_config, "UNIT_SPLIT_MAX_BATCH", 0)
        monkeypatch.setattr(_config, "COLUMN_SPLIT_MIN_UNITS", 0)  # lanes may own no unit
    trainer = Trainer(net, batch_size, opt_name, **kw)
    if trainer.n_lanes < 2:
        pytest.skip("no parallel epoch here (a one-thread pool, or no fast threading layer)")
    assert trainer.split == split
    return trainer


#: (split, layer sizes, lanes) of the lane splits' reference tests: the unit split's one
#: hidden layer; the column split's one, two and three (a middle layer's BP2 and update in
#: one region), and two on four lanes, two of which own none of a 2-unit layer. ``None``: the
#: pool's lanes.
LANE_NETS = {"units": ("units", (4, 7, 3), None), "columns-1": ("columns", (4, 7, 3), None),
             "columns-2": ("columns", (4, 7, 2, 3), None),
             "columns-3": ("columns", (5, 6, 9, 4, 3), None),
             "columns-4-lanes": ("columns", (4, 7, 2, 3), 4)}


@pytest.mark.parametrize("l2", ["none", "both"])
@pytest.mark.parametrize("hidden", ACTIVATIONS)
@pytest.mark.parametrize("output", ["softmax", "logistic"])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("case", sorted(LANE_NETS))
def test_lane_split_epoch_matches_reference(rng, monkeypatch, case, optimizer, output, hidden,
                                            l2):
    """Hidden units split over lanes (plain SGD without L2 fuses BP4 into the update).

    7 and 9 units do not split evenly, 2 units on 4 lanes leave two lanes without any; 21
    rows in batches of 5 leave a last batch of one row, fewer than the lanes that gather it.
    """
    split, sizes, lanes = LANE_NETS[case]
    net, theta, X, Y = make_case(rng, output, hidden, sizes=sizes, n=21)
    opt_name, settings = OPTIMIZERS[optimizer]
    l2, per_sample = L2[l2]
    trainer = lane_split_trainer(monkeypatch, split, net, BATCH, opt_name, lanes, l2=l2,
                                 l2_per_sample=per_sample, **settings)
    assert lanes is None or trainer.n_lanes == lanes
    check_epochs(rng, net, theta, X, Y, optimizer, hidden, output, l2=l2,
                 l2_per_sample=per_sample, trainer=trainer)


#: A small network for each lane split (two hidden layers for the columns).
LANE_SPLITS = {"units": (6, 9, 4), "columns": (6, 9, 8, 4)}


@pytest.mark.parametrize("split", sorted(LANE_SPLITS))
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_lane_split_float32_agrees_with_float64(rng, monkeypatch, optimizer, split):
    net, theta, X, Y = make_case(rng, "softmax", "sigmoid", sizes=LANE_SPLITS[split],
                                 dtype=np.float32)
    opt_name, settings = OPTIMIZERS[optimizer]
    trainer = lane_split_trainer(monkeypatch, split, net, BATCH, opt_name, **settings)
    Ws, bs = reference_params(net, theta)
    ref_opt = ref.make_optimizer(opt_name, Ws, bs, **settings)
    theta0 = theta.copy()
    for order in orders_for(rng, 2):
        loss_sum, _, n_seen = trainer.epoch(theta, X, Y, order)
        ref_loss, _ = ref.epoch(Ws, bs, X, Y, order, BATCH, ref_opt, "sigmoid", "softmax")
        assert theta.dtype == np.float32 and n_seen == N
        assert loss_sum == pytest.approx(ref_loss, rel=F32_RTOL)
        np.testing.assert_allclose(theta, flat(Ws + bs), rtol=0, atol=F32_ATOL)
    assert np.abs(theta - theta0).max() > 100 * F32_ATOL


@pytest.mark.parametrize("split", sorted(LANE_SPLITS))
@pytest.mark.parametrize("optimizer,l2", [("sgd", 0.0), ("nesterov", 0.01)])
@pytest.mark.parametrize("bad_batch", [0, 2, 4])
def test_lane_split_stops_before_a_non_finite_batch(rng, monkeypatch, bad_batch, optimizer, l2,
                                                    split):
    """A batch whose cost is not finite stops the epoch with every earlier update done and
    its own not (the unit split updates batch b in the region after its cost is known), in
    the fused plain-SGD path and in the optimizer's."""
    hidden = LANE_SPLITS[split][1:-1]
    net, theta, X, Y = make_case(rng, "softmax", "sigmoid", sizes=(4, *hidden, 3))
    X = X.copy()
    order = rng.permutation(N)
    X[order[bad_batch * BATCH + 2]] = np.inf
    seen = bad_batch * BATCH
    opt_name, settings = OPTIMIZERS[optimizer]
    Ws, bs = reference_params(net, theta)
    ref_opt = ref.make_optimizer(opt_name, Ws, bs, **settings)
    ref.epoch(Ws, bs, X, Y, order[:seen], BATCH, ref_opt, "sigmoid", "softmax", l2)
    trainer = lane_split_trainer(monkeypatch, split, net, BATCH, opt_name, l2=l2, **settings)
    loss_sum, _, n_seen = trainer.epoch(theta, X, Y, order)
    assert n_seen == seen
    assert not np.isfinite(loss_sum)
    np.testing.assert_allclose(theta, flat(Ws + bs), rtol=RTOL, atol=RTOL)


def test_unit_split_is_used_for_small_batches_of_one_hidden_layer():
    """The engine's choice of kernel, by shape (on a pool of at least two threads)."""
    net = Network([784, 100, 10], hidden_code("sigmoid"), SOFTMAX, np.float32)
    if Trainer(net, 32, "sgd", learning_rate=0.1).n_lanes < 2:
        pytest.skip("no parallel epoch here (a one-thread pool, or no fast threading layer)")
    assert Trainer(net, 32, "sgd", learning_rate=0.1).split == "units"
    assert Trainer(net, 200, "sgd", learning_rate=0.1).split == "rows"
    deep = Network([784, 100, 50, 10], hidden_code("sigmoid"), SOFTMAX, np.float32)
    assert Trainer(deep, 32, "sgd", learning_rate=0.1).split == "rows"
    narrow = Network([784, 8, 10], hidden_code("sigmoid"), SOFTMAX, np.float32)
    assert Trainer(narrow, 64, "sgd", learning_rate=0.1).split == "rows"


def test_column_split_is_used_for_wide_hidden_layers():
    """Every hidden layer of at least ``COLUMN_SPLIT_MIN_UNITS`` units per lane: columns,
    whatever the batch (one hidden layer keeps the unit split at small batches)."""
    from fastmlp import _config

    probe = Trainer(Network([784, 100, 10], hidden_code("sigmoid"), SOFTMAX, np.float32), 32,
                    "sgd", learning_rate=0.1)
    if probe.n_lanes < 2:
        pytest.skip("no parallel epoch here (a one-thread pool, or no fast threading layer)")
    wide = _config.COLUMN_SPLIT_MIN_UNITS * probe.n_lanes
    for hidden in ([wide, wide], [2 * wide, wide, wide]):
        net = Network([784, *hidden, 10], hidden_code("sigmoid"), SOFTMAX, np.float32)
        for batch in (16, 256):
            assert Trainer(net, batch, "adam", learning_rate=0.1).split == "columns"
    one = Network([784, wide, 10], hidden_code("sigmoid"), SOFTMAX, np.float32)
    assert Trainer(one, 32, "sgd", learning_rate=0.1).split == "units"
    assert Trainer(one, 256, "sgd", learning_rate=0.1).split == "columns"
    one_narrow = Network([784, wide, wide - 1, 10], hidden_code("sigmoid"), SOFTMAX, np.float32)
    assert Trainer(one_narrow, 256, "sgd", learning_rate=0.1).split == "rows"


# -- float32 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("output", ["softmax", "logistic"])
@pytest.mark.parametrize("hidden", ACTIVATIONS)
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_float32_epoch_agrees_with_float64(rng, optimizer, hidden, output):
    net32, theta32, X32, Y32 = make_case(rng, output, hidden, dtype=np.float32)
    theta0 = theta32.copy()
    l2, per_sample = L2["both"]
    orders = orders_for(rng, 2)
    opt_name, settings = OPTIMIZERS[optimizer]
    trainer = Trainer(net32, BATCH, opt_name, l2=l2, l2_per_sample=per_sample, **settings)
    for buf in (trainer.grad, trainer.state_1):
        assert buf.dtype == np.float32
    # the float64 reference from the same float32-rounded starting point and data
    Ws, bs = reference_params(net32, theta32)
    ref_opt = ref.make_optimizer(opt_name, Ws, bs, **settings)
    for order in orders:
        loss_sum, n_correct, n_seen = trainer.epoch(theta32, X32, Y32, order)
        ref_loss, _ = ref.epoch(Ws, bs, X32, Y32, order, BATCH, ref_opt, hidden, output, l2,
                                per_sample)
        assert theta32.dtype == np.float32
        assert n_seen == N
        assert loss_sum == pytest.approx(ref_loss, rel=F32_RTOL)
        np.testing.assert_allclose(theta32, flat(Ws + bs), rtol=0, atol=F32_ATOL)
    assert np.abs(theta32 - theta0).max() > 100 * F32_ATOL


# -- sparse input, full-data loss and gradient, chunking ----------------------------------------


class KernelState:
    """The buffers and optimizer state ``train_epoch`` documents, made here.

    The serial kernel is called directly (not through ``Trainer``), with its own state, so that
    ``Trainer.epoch`` on a CSR ``X`` is compared with the kernel as well as with the reference.
    """

    def __init__(self, net, batch_size, optimizer, *, learning_rate, momentum=0.0,
                 nesterov=False, beta_1=0.9, beta_2=0.999, epsilon=1e-8, l2=0.0,
                 l2_per_sample=0.0, clip_eps=0.0):
        dt, sizes, P = net.dtype, net.layer_sizes, net.n_params
        self.net, self.batch_size = net, batch_size
        self.a_off, total = activation_offsets(sizes, batch_size)
        self.x_buf = np.empty((batch_size, sizes[0]), dt)
        self.y_buf = np.empty((batch_size, sizes[-1]), dt)
        self.act_buf, self.delta_buf = np.empty(total, dt), np.empty(total, dt)
        self.grad = np.empty(P, dt)
        adam = optimizer == "adam"
        self.optimizer_args = (
            train.ADAM if adam else train.SGD, float(learning_rate), float(momentum),
            bool(nesterov), float(beta_1), float(beta_2), float(epsilon), np.zeros(P, dt),
            np.zeros(P if adam else 0, dt),
            np.zeros(1, np.int64), float(l2), float(l2_per_sample), float(clip_eps), 0.0)

    def epoch(self, theta, X, Y, order):
        net = self.net
        layout_args = (self.batch_size, theta, self.grad, net.sizes, net.w_off, net.b_off,
                       net.hidden_act, net.out_act, self.x_buf, self.y_buf, self.act_buf,
                       self.delta_buf, self.a_off)
        return train.train_epoch(X, Y, order, *layout_args, *self.optimizer_args)


def sparsify(rng, X):
    X = X.copy()
    X[rng.random(X.shape) < 0.6] = 0
    X[3] = 0  # an all-zero row
    return X


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("optimizer", ["nesterov", "adam"])
@pytest.mark.parametrize("output", ["softmax", "logistic"])
def test_csr_epoch_equals_dense_epoch(rng, output, optimizer, dtype):
    net, theta, X, Y = make_case(rng, output, "relu", dtype=dtype)
    X = sparsify(rng, X)
    X_csr = sp.csr_matrix(X)
    assert X_csr.nnz < X.size
    opt_name, settings = OPTIMIZERS[optimizer]
    kw = dict(l2=0.01, l2_per_sample=0.1, **settings)
    trainer, sparse = Trainer(net, BATCH, opt_name, **kw), Trainer(net, BATCH, opt_name, **kw)
    dense = KernelState(net, BATCH, opt_name, **kw)
    theta_trainer, theta_dense, theta_sparse = theta.copy(), theta.copy(), theta.copy()
    Ws, bs = reference_params(net, theta)
    ref_opt = ref.make_optimizer(opt_name, Ws, bs, **settings)
    for order in orders_for(rng):
        got = sparse.epoch(theta_sparse, X_csr, Y, order)
        expected = dense.epoch(theta_dense, X, Y, order)
        assert got[2] == expected[2] == N
        assert got[1] == expected[1]
        assert got[0] == pytest.approx(expected[0], rel=SAME_RTOL)
        np.testing.assert_allclose(theta_sparse, theta_dense, rtol=SAME_RTOL,
                                   atol=SAME_RTOL * np.abs(theta_dense).max())
        # the kernel called directly is what Trainer.epoch runs
        loss_trainer = trainer.epoch(theta_trainer, X, Y, order)[0]
        assert loss_trainer == pytest.approx(expected[0], rel=RTOL)
        np.testing.assert_allclose(theta_trainer, theta_dense, rtol=RTOL,
                                   atol=RTOL * np.abs(theta_dense).max())
        # and both are the reference epoch
        ref_loss, _ = ref.epoch(Ws, bs, X, Y, order, BATCH, ref_opt, "relu", output,
                                kw["l2"], kw["l2_per_sample"])
        if dtype == np.float64:
            assert got[0] == pytest.approx(ref_loss, rel=RTOL)
            np.testing.assert_allclose(theta_sparse, flat(Ws + bs), rtol=RTOL,
                                       atol=RTOL * np.abs(theta_sparse).max())
        else:
            assert got[0] == pytest.approx(ref_loss, rel=F32_RTOL)
            np.testing.assert_allclose(theta_sparse, flat(Ws + bs), rtol=0, atol=F32_ATOL)
    assert theta_sparse.dtype == dtype
    assert np.abs(theta_dense - theta).max() > 1e-3


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_trainer_epoch_accepts_csr(rng, dtype):
    """``Trainer.epoch`` with a scipy.sparse X trains exactly as with the dense X."""
    net, theta, X, Y = make_case(rng, "softmax", "sigmoid", dtype=dtype)
    X = sparsify(rng, X)
    kw = dict(learning_rate=0.1, momentum=0.9, l2_per_sample=0.1)
    dense, sparse = Trainer(net, BATCH, "sgd", **kw), Trainer(net, BATCH, "sgd", **kw)
    theta_dense, theta_sparse = theta.copy(), theta.copy()
    for order in orders_for(rng, 2):
        expected = dense.epoch(theta_dense, X, Y, order)
        got = sparse.epoch(theta_sparse, sp.csr_matrix(X), Y, order)
        assert got[1:] == expected[1:]
        assert got[0] == pytest.approx(expected[0], rel=SAME_RTOL)
        np.testing.assert_allclose(theta_sparse, theta_dense, rtol=SAME_RTOL,
                                   atol=SAME_RTOL * np.abs(theta_dense).max())
    assert theta_sparse.dtype == dtype


def kernel_x_args(net, X):
    """The full-data kernels' first arguments for a dense or a CSR ``X``."""
    dt = net.dtype
    if sp.issparse(X):
        return (np.empty((0, 0), dt), X.data, X.indices, X.indptr, True)
    return (X, np.empty(0, dt), np.empty(0, np.int32), np.empty(0, np.int32), False)


def kernel_loss_and_gradient(net, theta, X, Y, *, l2, l2_per_sample, clip_eps, chunk, lanes=0):
    """The full-data kernel on dense or CSR ``X``: serial (``lanes=0``) or in row lanes."""
    dt = net.dtype
    x_args = kernel_x_args(net, X)
    settings = (net.sizes, net.w_off, net.b_off, net.hidden_act, net.out_act, l2,
                l2_per_sample, clip_eps, chunk)
    if lanes:
        grads = np.empty((lanes, net.n_params), dtype=dt)
        loss, n_correct = train.loss_and_gradient_parallel(*x_args, Y, theta, grads, *settings)
        return loss, n_correct, grads[0]
    grad = np.empty(net.n_params, dtype=dt)
    loss, n_correct = train.loss_and_gradient(*x_args, Y, theta, grad, *settings)
    return loss, n_correct, grad


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("output", ["softmax", "logistic"])
@pytest.mark.parametrize("chunk", [1, 4, 10, N, 64])
def test_loss_and_gradient_chunks_and_csr(rng, chunk, output, dtype):
    net, theta, X, Y = make_case(rng, output, "sigmoid", dtype=dtype)
    X = sparsify(rng, X)
    kw = dict(l2=0.01, l2_per_sample=0.2, clip_eps=float(np.finfo(dtype).eps))
    loss_1, correct_1, grad_1 = kernel_loss_and_gradient(net, theta, X, Y, chunk=N, **kw)
    assert grad_1.dtype == dtype
    tol = SAME_RTOL if dtype == np.float64 else 1e-5
    # the float64 reference, from the same starting point and data
    Ws, bs = reference_params(net, theta)
    ref_loss, ref_W, ref_b = ref.loss_and_gradient(Ws, bs, X, Y, "sigmoid", output,
                                                   kw["l2"], kw["l2_per_sample"], kw["clip_eps"])
    ref_tol = 1e-12 if dtype == np.float64 else F32_RTOL
    assert loss_1 == pytest.approx(ref_loss, rel=ref_tol)
    assert correct_1 == ref.n_correct(Ws, bs, X, Y, "sigmoid", output)
    np.testing.assert_allclose(grad_1, flat(ref_W + ref_b), rtol=ref_tol,
                               atol=ref_tol * np.abs(grad_1).max())
    # chunked, dense and CSR, serial and in 1 to 3 row lanes: the same totals
    for name, data in (("dense", X), ("csr", sp.csr_matrix(X))):
        for lanes in (0, 1, 2, 3):
            loss, n_correct, grad = kernel_loss_and_gradient(net, theta, data, Y, chunk=chunk,
                                                             lanes=lanes, **kw)
            what = f"{name}, {lanes} lanes"
            assert grad.dtype == dtype
            assert loss == pytest.approx(loss_1, rel=tol), what
            assert n_correct == correct_1, what
            np.testing.assert_allclose(grad, grad_1, rtol=tol, atol=tol * np.abs(grad_1).max(),
                                       err_msg=what)


def kernel_loss(net, theta, X, Y, *, l2, l2_per_sample, clip_eps, chunk, lanes=0):
    """The cost-only kernel, as :func:`kernel_loss_and_gradient` calls the gradient's."""
    x_args = kernel_x_args(net, X)
    settings = (net.sizes, net.w_off, net.b_off, net.hidden_act, net.out_act, l2,
                l2_per_sample, clip_eps, chunk)
    if lanes:
        return train.loss_parallel(*x_args, Y, theta, lanes, *settings)
    return train.loss(*x_args, Y, theta, *settings)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("output", ["softmax", "logistic"])
@pytest.mark.parametrize("chunk", [1, 7, N])
def test_the_cost_alone_is_the_gradient_kernels_cost(rng, chunk, output, dtype):
    """Forward passes only give the cost the gradient kernels give: exactly without L2 (the
    same forward passes, summed in the same order), to rounding with it (the sum of squares
    is another loop)."""
    net, theta, X, Y = make_case(rng, output, "sigmoid", dtype=dtype)
    X = sparsify(rng, X)
    clip = float(np.finfo(dtype).eps)
    for name, data in (("dense", X), ("csr", sp.csr_matrix(X))):
        for lanes in (0, 1, 2, 3):
            what = f"{name}, {lanes} lanes"
            kw = dict(l2=0.0, l2_per_sample=0.0, clip_eps=clip, chunk=chunk, lanes=lanes)
            loss, n_correct, _ = kernel_loss_and_gradient(net, theta, data, Y, **kw)
            assert kernel_loss(net, theta, data, Y, **kw) == (loss, n_correct), what
            kw.update(l2=0.01, l2_per_sample=0.2)
            loss, n_correct, _ = kernel_loss_and_gradient(net, theta, data, Y, **kw)
            got, got_correct = kernel_loss(net, theta, data, Y, **kw)
            assert got == pytest.approx(loss, rel=1e-12 if dtype == np.float64 else 1e-6), what
            assert got_correct == n_correct, what


COST_ONLY_CALLS = """
import numpy as np
from numba.core import event
from fastmlp import Model
from fastmlp.datasets import load_digits

X, y, Xt, yt = load_digits()
model = Model([64, 16, 10], seed=0)
with event.install_recorder("numba:compile") as recorder:
    model.evaluate(Xt, yt)
    model.loss(Xt, yt)
names = {ev.data["dispatcher"].py_func.__name__ for _, ev in recorder.buffer
         if ev.is_start and hasattr(ev.data["dispatcher"], "py_func")}
print(" ".join(sorted(names)))
"""


@pytest.mark.slow
def test_a_cost_without_gradient_compiles_no_backward_pass(tmp_path):
    """``evaluate`` and ``loss`` in a fresh process, on an empty cache (issue 14: a call
    compiles only the kernels on its own path)."""
    import os
    import subprocess
    import sys

    # FASTMLP_SHIPPED=0: an installed wheel's kernels would load instead of compiling
    env = {**os.environ, "FASTMLP_CACHE_DIR": str(tmp_path / "cache"), "FASTMLP_SHIPPED": "0"}
    env.pop("NUMBA_CACHE_DIR", None)
    run = subprocess.run([sys.executable, "-c", COST_ONLY_CALLS], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    compiled = set(run.stdout.split())
    assert {"loss", "_rows_loss", "forward"} <= compiled  # it did compile: the check can fail
    assert not compiled & {"backward", "forward_backward", "loss_and_gradient",
                           "loss_and_gradient_parallel"}, compiled


@pytest.mark.parametrize("sparse", [False, True])
def test_network_loss_and_gradient_splits_large_inputs_in_lanes(rng, monkeypatch, sparse):
    """Large inputs take the row-lane kernel; its result does not depend on the thread count."""
    import numba

    from fastmlp import _engine

    monkeypatch.setattr(_engine, "parallel_lanes", lambda: 2)
    monkeypatch.setattr(_engine._config, "LOSS_PARALLEL_MIN_FLOPS", 1 << 20)
    net, theta, X, Y = make_case(rng, "softmax", "relu", sizes=(40, 64, 10), n=500)
    assert 500 * net.n_weights >= 1 << 20  # lanes are used
    data = sp.csr_matrix(sparsify(rng, X)) if sparse else X
    calls = []
    parallel = train.loss_and_gradient_parallel

    def recording(*args):
        calls.append(args[7].shape[0])  # the lanes' gradient slabs
        return parallel(*args)

    monkeypatch.setattr(train, "loss_and_gradient_parallel", recording)
    results = []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        numba.set_num_threads(threads)
        try:
            results.append(net.loss_and_gradient(theta, data, Y, l2_per_sample=0.1))
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert calls == [2, 2]
    (loss_1, correct_1, grad_1), (loss_2, correct_2, grad_2) = results
    assert (loss_1, correct_1) == (loss_2, correct_2)
    np.testing.assert_array_equal(grad_1, grad_2)
    serial = kernel_loss_and_gradient(net, theta, data, Y, l2=0.0, l2_per_sample=0.1,
                                      clip_eps=0.0, chunk=500)
    assert loss_1 == pytest.approx(serial[0], rel=SAME_RTOL)
    assert correct_1 == serial[1]
    np.testing.assert_allclose(grad_1, serial[2], rtol=1e-12, atol=1e-12 * np.abs(grad_1).max())


def test_network_loss_and_gradient_uses_chunks(rng, monkeypatch):
    """``Network.loss_and_gradient`` over more rows than LOSS_CHUNK gives the one-chunk result."""
    from fastmlp import _engine

    net, theta, X, Y = make_case(rng, "softmax", "tanh", n=50)
    expected = kernel_loss_and_gradient(net, theta, X, Y, l2=0.0, l2_per_sample=0.0,
                                        clip_eps=0.0, chunk=50)
    monkeypatch.setattr(_engine, "LOSS_CHUNK", 7)
    loss, n_correct, grad = net.loss_and_gradient(theta, X, Y)
    assert loss == pytest.approx(expected[0], rel=SAME_RTOL)
    assert n_correct == expected[1]
    np.testing.assert_allclose(grad, expected[2], rtol=SAME_RTOL,
                               atol=SAME_RTOL * np.abs(grad).max())
