"""Views into the flat parameter vector and the flat per-layer buffers.

The parameters of a network with layer sizes ``s_0 .. s_L`` live in one vector ``theta``:
all weight matrices first (``W^l`` of shape ``(s_{l-1}, s_l)``, C order), then all biases
(scikit-learn's ``_pack`` order, which L-BFGS uses as is). ``w_off[l]`` and ``b_off[l]`` are
where layer ``l+1``'s weight and bias start. Activations and deltas of a batch live the same way
in one buffer each, layer ``l`` at ``a_off[l]`` with ``rows`` rows.
"""

import numpy as np

from fastmlp._kernels._jit import jit


@jit
def weight(theta, sizes, w_off, layer):
    """``W`` of weight layer ``layer`` (0-based) as a ``(sizes[layer], sizes[layer+1])`` view."""
    rows = sizes[layer]
    cols = sizes[layer + 1]
    start = w_off[layer]
    return theta[start : start + rows * cols].reshape((rows, cols))


@jit
def bias(theta, sizes, b_off, layer):
    """``b`` of weight layer ``layer`` (0-based) as a ``(sizes[layer+1],)`` view."""
    start = b_off[layer]
    return theta[start : start + sizes[layer + 1]]


@jit
def lane_range(n_lanes, t, width):
    """Return ``(c0, c1)``: lane ``t`` of ``n_lanes`` owns ``c0 .. c1 - 1`` of ``width`` items.

    Consecutive, as even as integers allow; a lane may own none when ``width < n_lanes``.
    """
    return t * width // n_lanes, (t + 1) * width // n_lanes


@jit
def rows_view(buf, offset, rows, cols):
    """Return a ``(rows, cols)`` C-contiguous view of the flat ``buf`` starting at ``offset``."""
    return buf[offset : offset + rows * cols].reshape((rows, cols))


@jit
def activation_layout(sizes, rows):
    """Offsets of ``a^1 .. a^L`` in a flat buffer for ``rows`` samples, and the buffer's size.

    The compiled twin of :func:`fastmlp._params.activation_offsets`, for kernels that size
    their own buffers (prediction and full-data cost, outside the training loop).
    """
    n_layers = sizes.shape[0] - 1
    a_off = np.zeros(n_layers, np.int64)
    total = 0
    for layer in range(n_layers):
        a_off[layer] = total
        total += rows * sizes[layer + 1]
    return a_off, total


# Array-to-array slice assignment (``dst[a:b] = src``) compiles Numba's shape-checked
# broadcast, whose error path formats the shapes into a message: about 7 s of string code
# compiled into the first kernel of a process that uses it (measured with numba's compile
# events on a cold cache). These loops copy the same values without that error path; the
# callers pass arrays of one shape by construction.
@jit
def copy_into(dst, src):
    """``dst[...] = src`` for 1-D arrays of one length."""
    for i in range(src.shape[0]):
        dst[i] = src[i]


@jit
def copy_rows_into(dst, src):
    """``dst[...] = src`` for 2-D arrays of one shape."""
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] = src[i, j]


@jit
def add_rows_into(dst, src):
    """``dst += src`` for 2-D arrays of one shape."""
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] += src[i, j]
