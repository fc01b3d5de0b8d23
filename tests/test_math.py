"""Each identity of the math (docs/derivation.md), checked numerically on the compiled kernels.

The kernels are called directly with NumPy arrays. Expected values come from central finite
differences of the kernels themselves (derivatives), from ``tests/reference.py`` or SciPy
(values), or from scikit-learn (the clipped cost) -- never from the formula under test.

Tolerances, float64: finite differences with step ``h = 1e-6`` are accurate to about
``h^2 + eps/h ~ 1e-10``, so they are compared with ``atol = 1e-8``; closed-form values to a few
ulps (``rtol = 1e-13``). float32: compared with the float64 reference at ``rtol = 2e-6`` and
``atol = 1e-6`` (a few float32 ulps; float32 eps is 1.2e-7).
"""

import numba
import numpy as np
import pytest
import reference as ref
from scipy import special
from sklearn.neural_network._base import binary_log_loss, log_loss

from fastmlp._kernels import activations as act
from fastmlp._kernels import expfast
from fastmlp._kernels.loss import output_delta, output_layer

H = 1e-6  # finite-difference step
FD_ATOL = 1e-8
F32 = dict(rtol=2e-6, atol=1e-6)

HIDDEN = {"sigmoid": act.LOGISTIC, "tanh": act.TANH, "relu": act.RELU, "identity": act.IDENTITY}
OUTPUT = {"softmax": act.SOFTMAX, "logistic": act.LOGISTIC}
EPS64 = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)


# -- helpers: the kernels as functions of z (they work in place) ------------------------------


def hidden_kernel(z, name, b=None):
    """``f(z + b)`` by ``bias_activation`` (on a copy)."""
    a = np.array(z, copy=True)
    if b is None:
        b = np.zeros(a.shape[1], a.dtype)
    act.bias_activation(a, b, HIDDEN[name])
    return a


def derivative_kernel(a, name):
    """``f'(z)`` from ``a = f(z)`` by ``multiply_derivative`` (on a delta of ones)."""
    delta = np.ones_like(a)
    act.multiply_derivative(a, delta, HIDDEN[name])
    return delta


def output_kernel(z, y, output, clip_eps=0.0, b=None):
    """``(a^L, summed cost, n_correct)`` by ``output_layer`` (on a copy)."""
    a = np.array(z, copy=True)
    if b is None:
        b = np.zeros(a.shape[1], a.dtype)
    loss_sum, n_correct = output_layer(a, b, np.asarray(y, a.dtype), OUTPUT[output],
                                       float(clip_eps), True)
    return a, loss_sum, n_correct


def cost_kernel(z, y, output, clip_eps=0.0):
    return output_kernel(z, y, output, clip_eps)[1]


def one_hot(labels, k):
    Y = np.zeros((len(labels), k))
    Y[np.arange(len(labels)), labels] = 1.0
    return Y


def targets(rng, n, k, output, kind):
    """One-hot or soft targets: softmax rows sum to 1; logistic columns are each in [0, 1]."""
    if output == "softmax":
        if kind == "one-hot":
            return one_hot(rng.integers(0, k, n), k)
        return rng.dirichlet(np.ones(k), n)
    if kind == "one-hot":
        return rng.integers(0, 2, (n, k)).astype(np.float64)
    return rng.random((n, k))


# -- hidden activations -------------------------------------------------------------------------


def test_activations_match_reference(rng):
    z = rng.normal(0, 3, (7, 5))
    b = rng.normal(0, 1, 5)
    for name in HIDDEN:
        got = hidden_kernel(z, name, b)
        expected = ref.ACTIVATIONS[name][0](z + b)
        np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-15, err_msg=name)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "identity"])
def test_derivative_from_a_matches_finite_differences(rng, name):
    """sigmoid' = a(1-a), tanh' = 1-a^2, relu' = [a > 0], identity' = 1, against FD of f(z)."""
    z = rng.normal(0, 2, (6, 9))
    z[np.abs(z) < 0.01] = 0.5  # keep the relu kink out of the finite-difference stencil
    a = hidden_kernel(z, name)
    got = derivative_kernel(a, name)
    fd = (hidden_kernel(z + H, name) - hidden_kernel(z - H, name)) / (2 * H)
    np.testing.assert_allclose(got, fd, rtol=0, atol=FD_ATOL)
    np.testing.assert_allclose(got, ref.ACTIVATIONS[name][1](z), rtol=1e-13, atol=1e-15)


def test_sigmoid_derivative_is_a_times_one_minus_a(rng):
    z = rng.normal(0, 3, (4, 6))
    a = special.expit(z)
    np.testing.assert_allclose(derivative_kernel(a, "sigmoid"), a * (1 - a), rtol=1e-15)
    # and it is a function of a, not of z: the kernel's a gives the same
    np.testing.assert_allclose(derivative_kernel(hidden_kernel(z, "sigmoid"), "sigmoid"),
                               a * (1 - a), rtol=1e-13)


def test_relu_derivative_is_exactly_zero_or_one(rng):
    z = rng.normal(0, 1, (5, 5))
    d = derivative_kernel(hidden_kernel(z, "relu"), "relu")
    np.testing.assert_array_equal(d, (z > 0).astype(float))


def test_multiply_derivative_multiplies_the_incoming_delta(rng):
    """BP2's element-wise product: delta_in * f'(z), not f'(z) alone."""
    z = rng.normal(0, 1, (3, 4))
    delta_in = rng.normal(0, 1, (3, 4))
    for name in HIDDEN:
        a = hidden_kernel(z, name)
        delta = delta_in.copy()
        act.multiply_derivative(a, delta, HIDDEN[name])
        np.testing.assert_allclose(delta, delta_in * ref.ACTIVATIONS[name][1](z), rtol=1e-13,
                                   atol=1e-15, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid1_finite_and_correct_for_huge_arguments(dtype):
    z = np.array([-1e4, -1e3, -750, -745, -710, -100, -40, -20, -1, -1e-8, 0, 1e-8, 1, 20, 40,
                  100, 710, 745, 750, 1e3, 1e4], dtype=dtype)
    got = np.array([act.sigmoid1(v) for v in z])
    assert np.isfinite(got).all()
    expected = special.expit(z.astype(np.float64))
    # atol: below 1e-308 the values are subnormal (no relative precision; expit flushes to 0)
    tol = dict(rtol=1e-14, atol=1e-300) if dtype == np.float64 else F32
    np.testing.assert_allclose(got, expected, **tol)
    assert got[0] == 0.0 and got[-1] == 1.0
    assert act.sigmoid1(dtype(0)) == 0.5


def test_sigmoid1_keeps_relative_accuracy_in_the_left_tail():
    """sigmoid(-700) ~ 1e-304: e^z / (1 + e^z), not 1 - something."""
    for v in (-30.0, -100.0, -700.0):
        np.testing.assert_allclose(act.sigmoid1(v), np.exp(v) / (1 + np.exp(v)), rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_hidden_activations_float32_and_float64(rng, dtype):
    z = rng.normal(0, 4, (8, 6)).astype(dtype)
    z[0, :3] = [1e4, -1e4, 1e3]
    b = rng.normal(0, 1, 6).astype(dtype)
    for name in HIDDEN:
        got = hidden_kernel(z, name, b)
        assert got.dtype == dtype
        assert np.isfinite(got).all()
        expected = ref.ACTIVATIONS[name][0](z.astype(np.float64) + b.astype(np.float64))
        tol = F32 if dtype == np.float32 else dict(rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(got, expected, err_msg=name, **tol)
        d = derivative_kernel(got, name)
        assert d.dtype == dtype
        np.testing.assert_allclose(d, ref.ACTIVATIONS[name][1](
            z.astype(np.float64) + b.astype(np.float64)), err_msg=name, **tol)


# -- softmax ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_rows_sum_to_one_and_stay_finite(rng, dtype):
    z = rng.normal(0, 3, (10, 5))
    z[0] = [1000, 0, -1000, 1, 2]
    z[1] = [1e4, 1e4, -1e4, 0, 1e4]
    z[2] = [-1e4, -1e4, -1e4, -1e4, -1e4 + 1]
    z[3] = [1000, 1000, 1000, 1000, 1000]
    z = z.astype(dtype)
    b = rng.normal(0, 1, 5).astype(dtype)
    a, _, _ = output_kernel(z, one_hot(np.zeros(10, int), 5), "softmax", b=b)
    assert a.dtype == dtype
    assert np.isfinite(a).all()
    assert (a >= 0).all() and (a <= 1).all()
    sum_tol = 1e-14 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(a.sum(axis=1), 1.0, rtol=0, atol=sum_tol)
    # z + b rounded to the dtype first: at |z| = 1e4 a float32 ulp is 1e-3, which the kernel's
    # float32 sum z + b cannot avoid; everything after that is compared with float64 math
    expected = ref.softmax((z + b).astype(np.float64))
    tol = F32 if dtype == np.float32 else dict(rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(a, expected, **tol)
    # softmax is shift-invariant: softmax(-1e4 + c + b) = softmax(c + b), softmax(1000 + b) =
    # softmax(b) (float32: z + b at 1e4 is rounded to 1e-3, hence the loose tolerance)
    loose = dict(rtol=2e-3) if dtype == np.float32 else dict(rtol=1e-11)
    np.testing.assert_allclose(a[2], special.softmax(b + np.array([0, 0, 0, 0, 1.0])), **loose)
    np.testing.assert_allclose(a[3], special.softmax(b.astype(np.float64)), **loose)


def test_softmax_at_1000_does_not_overflow():
    z = np.array([[1000.0, 0.0]])
    a, loss_sum, _ = output_kernel(z, [[1.0, 0.0]], "softmax")
    np.testing.assert_allclose(a, [[1.0, np.exp(-1000.0)]], rtol=1e-15, atol=0)
    assert loss_sum == pytest.approx(np.log1p(np.exp(-1000.0)), abs=1e-300)


def test_softmax_jacobian_against_finite_differences(rng):
    """da_i/dz_i = a_i (1 - a_i) and da_j/dz_i = -a_j a_i, column by column by FD."""
    k = 5
    z = rng.normal(0, 2, (1, k))
    y = one_hot([0], k)
    a = output_kernel(z, y, "softmax")[0][0]
    fd = np.empty((k, k))  # fd[i, j] = da_j / dz_i
    for i in range(k):
        zp, zm = z.copy(), z.copy()
        zp[0, i] += H
        zm[0, i] -= H
        fd[i] = (output_kernel(zp, y, "softmax")[0][0] - output_kernel(zm, y, "softmax")[0][0]) \
            / (2 * H)
    expected = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            expected[i, j] = a[i] * (1 - a[i]) if i == j else -a[j] * a[i]
    np.testing.assert_allclose(fd, expected, rtol=0, atol=FD_ATOL)
    np.testing.assert_allclose(expected, ref.softmax_jacobian(a), rtol=1e-14, atol=1e-17)
    # each column of the Jacobian sums to 0 (the outputs always sum to 1)
    np.testing.assert_allclose(fd.sum(axis=1), 0, atol=FD_ATOL)


# -- the cost and BP1 ---------------------------------------------------------------------------


@pytest.mark.parametrize("output", ["softmax", "logistic"])
@pytest.mark.parametrize("kind", ["one-hot", "soft"])
def test_exact_cost_matches_reference(rng, output, kind):
    n, k = 9, 4
    z = rng.normal(0, 3, (n, k))
    b = rng.normal(0, 1, k)
    y = targets(rng, n, k, output, kind)
    a, loss_sum, _ = output_kernel(z, y, output, b=b)
    expected = ref.cost_per_example(z + b, y, output).sum()
    assert loss_sum == pytest.approx(expected, rel=1e-13)
    # and, away from the tails, the textbook -sum y ln a (+ (1-y) ln(1-a)) of the kernel's own a
    if output == "softmax":
        textbook = -(y * np.log(a)).sum()
    else:
        textbook = -(y * np.log(a) + (1 - y) * np.log(1 - a)).sum()
    assert loss_sum == pytest.approx(textbook, rel=1e-12)


@pytest.mark.parametrize("output", ["softmax", "logistic"])
@pytest.mark.parametrize("kind", ["one-hot", "soft"])
def test_bp1_delta_is_a_minus_y_by_finite_differences(rng, output, kind):
    """BP1: dC_x/dz^L = a^L - y for every example, against FD of the kernel's exact cost."""
    n, k = 4, 3
    z = rng.normal(0, 2, (n, k))
    y = targets(rng, n, k, output, kind)
    a = output_kernel(z, y, output)[0]
    delta = np.empty_like(a)
    output_delta(a, y, delta, 1.0)
    fd = np.empty_like(z)
    for i in range(n):
        for j in range(k):
            zp, zm = z.copy(), z.copy()
            zp[i, j] += H
            zm[i, j] -= H
            fd[i, j] = (cost_kernel(zp, y, output) - cost_kernel(zm, y, output)) / (2 * H)
    np.testing.assert_allclose(delta, fd, rtol=0, atol=FD_ATOL)
    np.testing.assert_allclose(delta, a - y, rtol=1e-15, atol=1e-16)
    # scaled by 1/n: the gradient of the mean cost
    output_delta(a, y, delta, 1.0 / n)
    np.testing.assert_allclose(delta, fd / n, rtol=0, atol=FD_ATOL / n)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_output_delta_float32_and_float64(rng, dtype):
    a = rng.random((5, 3)).astype(dtype)
    y = one_hot(rng.integers(0, 3, 5), 3).astype(dtype)
    delta = np.empty_like(a)
    output_delta(a, y, delta, dtype(0.2))
    assert delta.dtype == dtype
    np.testing.assert_allclose(delta, (a.astype(float) - y) * 0.2,
                               **(F32 if dtype == np.float32 else dict(rtol=1e-15)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_confident_wrong_answer_costs_2000_exactly_and_minus_log_eps_clipped(dtype):
    z = np.array([[1000.0, -1000.0]], dtype=dtype)
    y = np.array([[0.0, 1.0]], dtype=dtype)
    eps = float(np.finfo(dtype).eps)
    a, exact, _ = output_kernel(z, y, "softmax", clip_eps=0.0)
    assert np.isfinite(a).all()
    assert np.isfinite(exact)
    assert exact == pytest.approx(2000.0, rel=1e-15)  # -ln a_1 = ln(1 + e^2000) - (-1000 - 1000)
    clipped = cost_kernel(z, y, "softmax", clip_eps=eps)
    assert clipped == pytest.approx(-np.log(eps), rel=1e-15 if dtype == np.float64 else 1e-6)
    # a confident right answer: exactly 0 (e^-2000 underflows), and -log(1 - eps) clipped
    # (scikit-learn clips at 1 - eps too, so even a perfect prediction costs eps)
    right = y[:, ::-1].copy()
    assert cost_kernel(z, right, "softmax") == 0.0
    assert cost_kernel(z, right, "softmax", clip_eps=eps) == pytest.approx(
        -np.log1p(-eps), rel=1e-6, abs=0)
    # logistic outputs: both columns confidently wrong, 1000 each
    assert cost_kernel(z, y, "logistic") == pytest.approx(2000.0, rel=1e-15)
    assert cost_kernel(z, y, "logistic", clip_eps=eps) == pytest.approx(
        -2 * np.log(eps), rel=1e-15 if dtype == np.float64 else 1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", ["softmax", "binary", "multilabel"])
def test_clipped_cost_equals_sklearn_log_loss_times_n(rng, dtype, case):
    n = 12
    k = {"softmax": 4, "binary": 1, "multilabel": 3}[case]
    output = "softmax" if case == "softmax" else "logistic"
    z = rng.normal(0, 4, (n, k))
    z[:3] *= 20  # some probabilities below eps or above 1 - eps, so the clip matters
    if case == "softmax":
        y = one_hot(rng.integers(0, k, n), k)
        y[0] = one_hot([int(np.argmin(z[0]))], k)[0]  # a confidently wrong row
    else:
        y = rng.integers(0, 2, (n, k)).astype(np.float64)
        y[0] = (z[0] < 0).astype(np.float64)  # confidently wrong
    z, y = z.astype(dtype), y.astype(dtype)
    eps = float(np.finfo(dtype).eps)
    got_a, got, _ = output_kernel(z, y, output, clip_eps=eps)
    # sklearn clips with finfo(y_prob.dtype).eps: give it probabilities of the same dtype, the
    # kernel's own. (1 - p for p within 1e-8 of 1 has few correct digits, so two sigmoids one ulp
    # apart legitimately give different clipped costs; the probabilities themselves are checked
    # against the reference here.)
    prob = got_a
    np.testing.assert_allclose(got_a, ref.OUTPUTS[output](z.astype(np.float64)),
                               **(F32 if dtype == np.float32 else dict(rtol=1e-13, atol=1e-300)))
    if case == "softmax":
        expected = log_loss(y, prob)
    elif case == "binary":
        expected = log_loss(y, prob)
    else:
        expected = binary_log_loss(y, prob)
    assert got == pytest.approx(n * float(expected), rel=1e-12 if dtype == np.float64 else 1e-5)
    assert np.isfinite(got) and got > 0
    # the clip is active: the exact cost of the confidently wrong row is far above -log(eps)
    assert cost_kernel(z[:1], y[:1], output) > -np.log(eps) + 1


def test_n_correct_counts_argmax_matches():
    z = np.array([[3.0, 1.0, 0.0], [0.0, 5.0, 1.0], [0.0, 0.0, 2.0]])
    y = one_hot([0, 2, 2], 3)
    assert output_kernel(z, y, "softmax")[2] == 2
    y_multi = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    # logistic: z > 0 predicts 1; rows 0 (1,1,0 vs 1,1,0) and 2 (0,0,1 vs 0,0,1) are right
    z_multi = np.array([[3.0, 1.0, -1.0], [-1.0, 5.0, -1.0], [-2.0, -0.5, 2.0]])
    assert output_kernel(z_multi, y_multi, "logistic")[2] == 2


# -- the vectorising exp behind the sigmoid -----------------------------------------------------


# Without the JIT (the CI's NUMBA_DISABLE_JIT run of this file) expfast.exp is np.exp.
compiled_only = pytest.mark.skipif(numba.config.DISABLE_JIT,
                                   reason="tests the compiled exp; without the JIT it is np.exp")


@numba.njit(error_model="numpy")
def _exp_loop(x, out):
    for i in range(x.shape[0]):
        out[i] = expfast.exp(x[i])


@compiled_only
@pytest.mark.parametrize("dtype,ulps", [(np.float32, 3), (np.float64, 2)])
def test_expfast_within_a_few_ulp_of_numpy(dtype, ulps):
    """Every normal result, on a dense grid of the whole range, against ``np.exp``."""
    info = np.finfo(dtype)
    x = np.linspace(np.log(info.tiny), np.log(info.max), 1_000_003).astype(dtype)
    got = np.empty_like(x)
    _exp_loop(x, got)
    with np.errstate(over="ignore"):
        expected = np.exp(x)
    normal = np.isfinite(expected) & (expected >= info.tiny)
    assert normal.mean() > 0.999
    err = np.abs(got[normal] - expected[normal]) / np.spacing(expected[normal])
    assert err.max() <= ulps


@compiled_only
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_expfast_edges(dtype):
    """Overflow is inf, subnormal results are 0, NaN stays NaN, e^0 is exactly 1."""
    info = np.finfo(dtype)
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, 1e30, -1e30,
                  np.log(info.max) * 1.001, np.log(info.tiny) * 1.001], dtype)
    got = np.empty_like(x)
    _exp_loop(x, got)
    assert np.isnan(got[0])
    np.testing.assert_array_equal(got[[1, 2, 3, 4, 6, 7, 8, 9]],
                                  np.array([np.inf, 0, 1, 1, np.inf, 0, np.inf, 0], dtype))
    assert abs(got[5] - dtype(np.e)) <= 2 * np.spacing(dtype(np.e))
