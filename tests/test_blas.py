"""``_kernels.blas.gemm`` against NumPy's ``@``: every transpose, both dtypes, strided views.

The expected value is the same product computed by NumPy in float64, so the float32 tolerance
is a few float32 ulps of a sum of ``k`` terms.
"""

import numpy as np
import pytest

from fastmlp._kernels.blas import gemm

TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


def operand(rng, rows, cols, dtype, trans, wide):
    """A ``(rows, cols)`` operand (its transpose stored when ``trans``), as a block of columns
    of a wider C-contiguous matrix when ``wide`` (so its row stride exceeds its width)."""
    shape = (cols, rows) if trans else (rows, cols)
    full = rng.standard_normal((shape[0], shape[1] + (5 if wide else 0))).astype(dtype)
    return full[:, 2 : 2 + shape[1]] if wide else full


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("wide", [False, True])
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (-0.3, 1.0), (2.0, 0.5)])
def test_gemm_matches_numpy(dtype, trans_a, trans_b, wide, alpha, beta):
    rng = np.random.default_rng(0)
    m, k, n = 7, 11, 5
    A = operand(rng, m, k, dtype, trans_a, wide)
    B = operand(rng, k, n, dtype, trans_b, wide)
    C_full = rng.standard_normal((m, n + 6)).astype(dtype)
    C = C_full[:, 3 : 3 + n] if wide else C_full[:, :n].copy()
    before = C_full.copy()
    opA = (A.T if trans_a else A).astype(np.float64)
    opB = (B.T if trans_b else B).astype(np.float64)
    expected = alpha * opA @ opB + beta * C.astype(np.float64)
    gemm(trans_a, trans_b, alpha, A, B, beta, C)
    np.testing.assert_allclose(C, expected, **TOL[dtype])
    if wide:  # the columns around the block are untouched
        np.testing.assert_array_equal(C_full[:, :3], before[:, :3])
        np.testing.assert_array_equal(C_full[:, 3 + n :], before[:, 3 + n :])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_beta_zero_ignores_garbage_in_c(dtype):
    rng = np.random.default_rng(1)
    A = rng.standard_normal((4, 3)).astype(dtype)
    B = rng.standard_normal((3, 2)).astype(dtype)
    C = np.full((4, 2), np.nan, dtype)
    gemm(False, False, 1.0, A, B, 0.0, C)
    np.testing.assert_allclose(C, A.astype(np.float64) @ B, **TOL[dtype])


@pytest.mark.parametrize("beta", [0.0, 2.0])
def test_gemm_empty_inner_dimension_scales_c(beta):
    A = np.empty((3, 0))
    B = np.empty((0, 2))
    C = np.ones((3, 2))
    gemm(False, False, 1.0, A, B, beta, C)
    np.testing.assert_array_equal(C, np.full((3, 2), beta))


def test_gemm_one_row_views():
    """A single-row view may carry any row stride; the leading dimension must still be valid."""
    rng = np.random.default_rng(2)
    A = rng.standard_normal((6, 4))[2:3]
    B = rng.standard_normal((4, 9))[:, 1:4]
    C = np.zeros((1, 3))
    gemm(False, False, 1.0, A, B, 0.0, C)
    np.testing.assert_allclose(C, A @ B, rtol=1e-12)


def test_gemm_rejects_bad_shapes_and_strides():
    A = np.ones((3, 4))
    with pytest.raises(ValueError, match="shapes"):
        gemm(False, False, 1.0, A, np.ones((5, 2)), 0.0, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="unit stride"):
        gemm(False, False, 1.0, np.ones((3, 8))[:, ::2], np.ones((4, 2)), 0.0, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="one dtype"):
        gemm(False, False, 1.0, A.astype(np.float32), np.ones((4, 2)), 0.0, np.zeros((3, 2)))
