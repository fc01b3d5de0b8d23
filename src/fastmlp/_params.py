"""Parameter layout and initialisation (pure NumPy, no compiled code)."""

import numpy as np


def layout(layer_sizes):
    """Offsets of each layer's weights and bias in the flat parameter vector.

    Weights come first (``W^1 .. W^L``, each ``(fan_in, fan_out)`` in C order), then biases
    (``b^1 .. b^L``): scikit-learn's ``_pack`` order.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``s_0 .. s_L``, input size first, output size last.

    Returns
    -------
    sizes : (L+1,) int64 array
    w_off, b_off : (L,) int64 arrays
    n_params : int
    """
    sizes = np.asarray(layer_sizes, dtype=np.int64)
    fan_in, fan_out = sizes[:-1], sizes[1:]
    w_end = np.cumsum(fan_in * fan_out)
    w_off = np.concatenate([[0], w_end[:-1]]).astype(np.int64)
    b_end = w_end[-1] + np.cumsum(fan_out)
    b_off = np.concatenate([[w_end[-1]], b_end[:-1]]).astype(np.int64)
    return sizes, w_off, b_off, int(b_end[-1])


def activation_offsets(layer_sizes, rows):
    """Offsets of ``a^1 .. a^L`` in a flat buffer for ``rows`` samples, and its total size."""
    widths = np.asarray(layer_sizes[1:], dtype=np.int64) * rows
    offsets = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.int64)
    return offsets, int(widths.sum())


def weight_views(theta, layer_sizes):
    """Per-layer weight views ``(fan_in, fan_out)`` into ``theta`` (writes go to ``theta``)."""
    sizes, w_off, _, _ = layout(layer_sizes)
    return [
        theta[w_off[i] : w_off[i] + sizes[i] * sizes[i + 1]].reshape(sizes[i], sizes[i + 1])
        for i in range(len(sizes) - 1)
    ]


def bias_views(theta, layer_sizes):
    """Per-layer bias views ``(fan_out,)`` into ``theta`` (writes go to ``theta``)."""
    sizes, _, b_off, _ = layout(layer_sizes)
    return [theta[b_off[i] : b_off[i] + sizes[i + 1]] for i in range(len(sizes) - 1)]


def glorot_uniform(layer_sizes, activation, random_state, dtype):
    """Draw initial parameters as scikit-learn's MLP does, packed into a flat vector.

    For each layer in order, ``W`` then ``b`` are drawn (in float64) uniform in
    ``+-sqrt(f / (fan_in + fan_out))`` with ``f = 2`` for the logistic activation and 6
    otherwise (Glorot & Bengio, 2010), then cast to ``dtype``.

    Parameters
    ----------
    layer_sizes : sequence of int
    activation : str
        The hidden activation's name.
    random_state : numpy.random.RandomState or numpy.random.Generator
        Anything with ``uniform(low, high, size)``.
    dtype : numpy dtype

    Returns
    -------
    theta : (P,) array of ``dtype``
    """
    factor = 2.0 if activation in ("logistic", "sigmoid") else 6.0
    sizes, w_off, b_off, n_params = layout(layer_sizes)
    theta = np.empty(n_params, dtype=dtype)
    for i in range(len(sizes) - 1):
        fan_in, fan_out = int(sizes[i]), int(sizes[i + 1])
        bound = np.sqrt(factor / (fan_in + fan_out))
        W = random_state.uniform(-bound, bound, (fan_in, fan_out))
        b = random_state.uniform(-bound, bound, fan_out)
        theta[w_off[i] : w_off[i] + W.size] = W.ravel()
        theta[b_off[i] : b_off[i] + fan_out] = b
    return theta
