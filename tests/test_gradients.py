"""Backpropagation (BP1-BP4) against finite differences and against the NumPy reference.

``Model.gradients`` is compared with central finite differences of ``Model.loss``, perturbing
every parameter through the live ``model.weights``/``model.biases`` views, and with
``reference.backprop``, for every output kind of ``Model`` (softmax with labels or soft
targets, identity with real values, also as a single output, and exp with counts);
``Network.loss_and_gradient`` (the kernel behind both, and L-BFGS's objective) is compared the
same way for those and for logistic outputs and the L2 terms, which ``Model`` does not expose.

Tolerances (float64): central differences with ``h = 1e-6`` have truncation error ~``h^2`` and
rounding error ~``eps / h`` ~ 1e-10 on a cost of order 1, so the relative error
``max|g - fd| / max|g|`` must be below 1e-6 (it is ~1e-9 in practice; a wrong term in any of the
four equations gives ~1e-1). Against the reference, the same products in another order:
``rtol = 1e-12``. float32: agreement with float64 to ``atol = 1e-5`` (float32 eps is 1.2e-7, and
a gradient entry sums a few dozen products).
"""

import numpy as np
import pytest
import reference as ref

from fastmlp import Model
from fastmlp._engine import Network, hidden_code
from fastmlp._kernels.activations import EXP, IDENTITY, LOGISTIC, SOFTMAX
from fastmlp._params import bias_views, weight_views

H = 1e-6
FD_RTOL = 1e-6
REF_RTOL = 1e-12

ARCHITECTURES = {  # 0, 1, 2 and 3 hidden layers
    0: [3, 4],
    1: [3, 5, 4],
    2: [3, 5, 4, 3],
    3: [3, 4, 5, 3, 3],
}
ACTIVATIONS = ["sigmoid", "tanh", "relu", "identity"]
N = 7

#: The targets of each case, and the Model output they go with.
TARGET_KINDS = {
    "labels": "softmax",      # integer labels, one-hot encoded by Model
    "soft": "softmax",        # rows of probabilities
    "values": "identity",     # real values, (n, K)
    "one value": "identity",  # one real-valued output, y of shape (n,)
    "counts": "exp",          # non-negative counts, zeros included
}


def case_sizes(n_hidden, target_kind):
    sizes = ARCHITECTURES[n_hidden]
    return sizes[:-1] + [1] if target_kind == "one value" else sizes


def make_data(rng, sizes, target_kind):
    """``(X, y, Y)``: the inputs, the targets as ``Model`` takes them, the target rows."""
    X = rng.normal(0, 1, (N, sizes[0]))
    k = sizes[-1]
    if target_kind == "labels":
        y = np.arange(N) % k  # every class present
        rng.shuffle(y)
        return X, y, np.eye(k)[y]
    if target_kind in ("values", "one value"):
        Y = rng.normal(0.5, 2.0, (N, k))
        return X, (Y[:, 0] if k == 1 else Y), Y
    if target_kind == "counts":
        Y = rng.poisson(1.5, (N, k)).astype(np.float64)
        Y[0, 0] = 0.0  # y ln(y / a) at y = 0 is its limit 0
        return X, Y, Y
    Y = rng.dirichlet(np.ones(k), N)
    return X, Y, Y


def rel_error(got, expected):
    return np.max(np.abs(got - expected)) / np.max(np.abs(expected))


def flat(arrays):
    return np.concatenate([np.ravel(a) for a in arrays])


def model_finite_differences(model, X, y):
    """Central differences of ``model.loss`` for every entry of every weight and bias."""
    fd_W = []
    fd_b = []
    for views, out in ((lambda: model.weights, fd_W), (lambda: model.biases, fd_b)):
        for layer in range(len(model.layer_sizes) - 1):
            p = views()[layer]  # a live view: writing into it changes the model
            g = np.empty_like(p)
            for idx in np.ndindex(p.shape):
                orig = p[idx]
                p[idx] = orig + H
                plus = model.loss(X, y)
                p[idx] = orig - H
                minus = model.loss(X, y)
                p[idx] = orig
                g[idx] = (plus - minus) / (2 * H)
            out.append(g)
    return fd_W, fd_b


@pytest.mark.parametrize("target_kind", list(TARGET_KINDS))
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("n_hidden", sorted(ARCHITECTURES))
def test_model_gradients_match_finite_differences(rng, n_hidden, activation, target_kind):
    sizes = case_sizes(n_hidden, target_kind)
    model = Model(sizes, output=TARGET_KINDS[target_kind], hidden_activation=activation,
                  dtype="float64", seed=n_hidden)
    X, y, _ = make_data(rng, sizes, target_kind)
    theta_before = flat(model.weights + model.biases)
    grad_W, grad_b = model.gradients(X, y)
    assert [g.shape for g in grad_W] == [W.shape for W in model.weights]
    assert [g.shape for g in grad_b] == [b.shape for b in model.biases]
    assert all(g.dtype == np.float64 for g in grad_W + grad_b)
    fd_W, fd_b = model_finite_differences(model, X, y)
    # the finite differences put every parameter back exactly
    np.testing.assert_array_equal(flat(model.weights + model.biases), theta_before)
    got, fd = flat(grad_W + grad_b), flat(fd_W + fd_b)
    assert np.max(np.abs(fd)) > 1e-3  # a real gradient, not a vanishing one
    assert rel_error(got, fd) < FD_RTOL, (rel_error(got, fd), got, fd)
    # layer by layer too, so a small layer cannot hide behind a large one
    for g, f in zip(grad_W + grad_b, fd_W + fd_b, strict=True):
        np.testing.assert_allclose(g, f, rtol=0, atol=FD_RTOL * max(np.max(np.abs(f)), 1e-3))


@pytest.mark.parametrize("target_kind", list(TARGET_KINDS))
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("n_hidden", sorted(ARCHITECTURES))
def test_model_gradients_match_reference_backprop(rng, n_hidden, activation, target_kind):
    sizes = case_sizes(n_hidden, target_kind)
    output = TARGET_KINDS[target_kind]
    model = Model(sizes, output=output, hidden_activation=activation, dtype="float64",
                  seed=10 + n_hidden)
    X, y, Y = make_data(rng, sizes, target_kind)
    Ws, bs = ref.as_float64(model.weights, model.biases)
    ref_W, ref_b = ref.backprop(Ws, bs, X, Y, activation, output)
    grad_W, grad_b = model.gradients(X, y)
    for layer, (g, r) in enumerate(zip(grad_W + grad_b, ref_W + ref_b, strict=True)):
        np.testing.assert_allclose(g, r, rtol=REF_RTOL, atol=REF_RTOL * np.max(np.abs(r)),
                                   err_msg=f"parameter array {layer}")
    ref_loss = ref.loss(Ws, bs, X, Y, activation, output)
    assert model.loss(X, y) == pytest.approx(ref_loss, rel=REF_RTOL)
    assert model.evaluate(X, y)["loss"] == pytest.approx(ref_loss, rel=REF_RTOL)


@pytest.mark.parametrize("target_kind", ["labels", "values", "counts"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_model_gradients_float32(rng, activation, target_kind):
    sizes = ARCHITECTURES[2]
    output = TARGET_KINDS[target_kind]
    m64 = Model(sizes, output=output, hidden_activation=activation, dtype="float64", seed=3)
    m32 = Model(sizes, output=output, hidden_activation=activation, dtype="float32", seed=3)
    for dst, src in zip(m32.weights + m32.biases, m64.weights + m64.biases, strict=True):
        dst[...] = src
    X, y, _ = make_data(rng, sizes, target_kind)
    X32 = X.astype(np.float32)
    g32 = m32.gradients(X32, y)
    assert all(g.dtype == np.float32 for g in g32[0] + g32[1])
    g64 = m64.gradients(X32.astype(np.float64), y)
    np.testing.assert_allclose(flat(g32[0] + g32[1]), flat(g64[0] + g64[1]), rtol=0, atol=1e-5)
    assert m32.loss(X32, y) == pytest.approx(m64.loss(X32.astype(np.float64), y), rel=1e-5)


def test_gradients_are_those_of_the_mean_cost(rng):
    """Doubling the data (each row twice) leaves the mean cost and its gradient unchanged."""
    sizes = ARCHITECTURES[1]
    model = Model(sizes, dtype="float64", seed=0)
    X, y, _ = make_data(rng, sizes, "labels")
    g1 = flat(sum(model.gradients(X, y), []))
    g2 = flat(sum(model.gradients(np.vstack([X, X]), np.concatenate([y, y])), []))
    np.testing.assert_allclose(g1, g2, rtol=1e-13, atol=1e-16)
    # while the gradient of one row is not the mean over all rows
    assert not np.allclose(flat(sum(model.gradients(X[:1], y[:1]), [])), g1)


# -- the kernel behind Model: logistic outputs, L2 terms, clipped cost ---------------------------


OUT_CODES = {"softmax": SOFTMAX, "logistic": LOGISTIC, "identity": IDENTITY, "exp": EXP}


def network_case(rng, output, n_hidden=2, activation="tanh", k=3):
    sizes = ARCHITECTURES[n_hidden][:-1] + [k]
    net = Network(sizes, hidden_code(activation), OUT_CODES[output], np.float64)
    theta = rng.normal(0, 0.7, net.n_params)
    X = rng.normal(0, 1, (N, sizes[0]))
    if output == "softmax":
        Y = rng.dirichlet(np.ones(k), N)
    elif output == "logistic":
        Y = rng.random((N, k))  # multilabel, soft: each column a probability
    elif output == "identity":
        Y = rng.normal(0, 2, (N, k))
    else:
        Y = rng.poisson(2.0, (N, k)).astype(np.float64)  # counts, zeros among them
        Y[0, 0] = 0.0
    return net, theta, X, Y


def views(net, theta):
    return weight_views(theta, net.layer_sizes), bias_views(theta, net.layer_sizes)


@pytest.mark.parametrize("l2, l2_per_sample", [(0.0, 0.0), (0.03, 0.0), (0.0, 0.2), (0.01, 0.1)])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("output", list(OUT_CODES))
def test_network_gradient_matches_finite_differences(rng, output, activation, l2,
                                                     l2_per_sample):
    net, theta, X, Y = network_case(rng, output, activation=activation)
    kw = dict(l2=l2, l2_per_sample=l2_per_sample)
    loss, _, grad = net.loss_and_gradient(theta, X, Y, **kw)
    fd = np.empty_like(theta)
    for i in range(theta.size):
        t = theta.copy()
        t[i] += H
        plus = net.loss_and_gradient(t, X, Y, with_grad=False, **kw)[0]
        t[i] -= 2 * H
        minus = net.loss_and_gradient(t, X, Y, with_grad=False, **kw)[0]
        fd[i] = (plus - minus) / (2 * H)
    assert rel_error(grad, fd) < FD_RTOL, rel_error(grad, fd)
    # the same against the reference, cost included
    Ws, bs = ref.as_float64(*views(net, theta))
    ref_loss, ref_W, ref_b = ref.loss_and_gradient(Ws, bs, X, Y, activation, output, **kw)
    assert loss == pytest.approx(ref_loss, rel=REF_RTOL)
    np.testing.assert_allclose(grad, flat(ref_W + ref_b), rtol=REF_RTOL,
                               atol=REF_RTOL * np.max(np.abs(grad)))


@pytest.mark.parametrize("output", ["softmax", "logistic"])
def test_network_clipped_cost_matches_reference(rng, output):
    net, theta, X, Y = network_case(rng, output)
    # Saturate the outputs so the clip is active: tanh hidden units are in [-1, 1] and the output
    # weights ~0.7, so with these biases z^L is within ~5 of +-50: sigmoid(z) rounds to exactly 1
    # or is ~1e-22 (below eps), and softmax gives class 1 ~e^-100. (The clipped logistic cost is
    # ill-conditioned where 1 - a is between 1e-16 and 1e-8: 1 - a has few correct digits
    # there, in scikit-learn as here, so the test keeps away from that zone.)
    theta[net.b_off[-1]:] = [50.0, -50.0, 50.0]
    eps = float(np.finfo(np.float64).eps)
    Ws, bs = ref.as_float64(*views(net, theta))
    for l2, l2_per_sample in ((0.0, 0.0), (0.01, 0.3)):
        loss, _, grad = net.loss_and_gradient(theta, X, Y, l2=l2, l2_per_sample=l2_per_sample,
                                              clip_eps=eps)
        ref_loss, ref_W, ref_b = ref.loss_and_gradient(Ws, bs, X, Y, "tanh", output, l2,
                                                       l2_per_sample, clip_eps=eps)
        assert loss == pytest.approx(ref_loss, rel=REF_RTOL)
        np.testing.assert_allclose(grad, flat(ref_W + ref_b), rtol=REF_RTOL,
                                   atol=REF_RTOL * np.max(np.abs(grad)))
    exact = net.loss_and_gradient(theta, X, Y, clip_eps=0.0)[0]
    assert exact != pytest.approx(net.loss_and_gradient(theta, X, Y, clip_eps=eps)[0], rel=1e-6)


@pytest.mark.parametrize("output", ["identity", "exp"])
def test_network_regression_costs_by_hand(rng, output):
    """The costs written out for one tiny case: a 1-1 network, one row, no hidden layer.

    ``z = w x + b = 0.5 * 2 + 0.25 = 1.25``. Identity: ``a = 1.25``, ``y = 2``:
    ``C = 1/2 (1.25 - 2)^2 = 0.28125``, ``dC/dz = a - y = -0.75``, ``dC/dw = -0.75 * 2 = -1.5``.
    Exp: ``a = e^1.25``, ``y = 2``: ``C = 2 ln(2 / e^1.25) - 2 + e^1.25``,
    ``dC/dz = e^1.25 - 2``.
    """
    net = Network([1, 1], hidden_code("identity"), OUT_CODES[output], np.float64)
    theta = np.array([0.5, 0.25])  # w, then b
    X, Y = np.array([[2.0]]), np.array([[2.0]])
    loss, n_correct, grad = net.loss_and_gradient(theta, X, Y)
    a = 1.25 if output == "identity" else np.exp(1.25)
    cost = 0.5 * (a - 2) ** 2 if output == "identity" else 2 * np.log(2 / a) - 2 + a
    assert loss == pytest.approx(cost, rel=1e-15)
    np.testing.assert_allclose(grad, [(a - 2) * 2, a - 2], rtol=1e-15)
    assert n_correct == 0  # regression outputs count no correct rows
    np.testing.assert_allclose(net.predict_proba(theta, X), [[a]], rtol=1e-15)


def test_network_clipped_regression_costs(rng):
    """scikit-learn's convention (clip_eps > 0): the squared error is also averaged over the K
    outputs (the gradient is not); the Poisson deviance is unchanged."""
    eps = float(np.finfo(np.float64).eps)
    net, theta, X, Y = network_case(rng, "identity")
    exact, _, g_exact = net.loss_and_gradient(theta, X, Y)
    clipped, _, g_clipped = net.loss_and_gradient(theta, X, Y, clip_eps=eps)
    assert clipped == pytest.approx(exact / Y.shape[1], rel=REF_RTOL)
    np.testing.assert_array_equal(g_clipped, g_exact)
    net, theta, X, Y = network_case(rng, "exp")
    exact = net.loss_and_gradient(theta, X, Y, with_grad=False)[0]
    assert net.loss_and_gradient(theta, X, Y, clip_eps=eps, with_grad=False)[0] == \
        pytest.approx(exact, rel=REF_RTOL)
