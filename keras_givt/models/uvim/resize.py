"""JAX's `jax.image.resize(method="linear")` as explicit matrices (any backend).

Dimension letters: B batch, h/w input grid, H/W output grid, C channels.

`jax.image.resize` (antialias=True by default) is separable: along each
spatial axis it multiplies by a weight matrix `(in, out)` built from the
triangle kernel `max(0, 1 − |x|)`. For output sample i the source position is
`s_i = (i + ½)·in/out − ½`; when downsampling the kernel is widened by the
factor `in/out` (antialiasing); the weights of each output are normalised
to sum to 1, and outputs whose source lies outside `[−½, in − ½]` get 0.
The matrices depend only on the (static) sizes, so they are computed once in
NumPy and applied with `keras.ops.einsum`, identical on every backend.
"""

import functools

import numpy as np
from keras import ops


@functools.lru_cache(maxsize=None)
def linear_resize_matrix(in_size, out_size, antialias=True):
    """(in_size, out_size) float32 weights of JAX's linear resize along one axis."""
    in_size, out_size = int(in_size), int(out_size)
    if in_size < 1 or out_size < 1:
        raise ValueError(
            f"Resize sizes must be >= 1; received in_size={in_size}, out_size={out_size}."
        )
    scale = out_size / in_size
    inv_scale = 1.0 / scale
    kernel_scale = max(inv_scale, 1.0) if antialias else 1.0
    sample_f = (np.arange(out_size, dtype=np.float64) + 0.5) * inv_scale - 0.5
    x = np.abs(sample_f[None, :] - np.arange(in_size, dtype=np.float64)[:, None]) / kernel_scale
    weights = np.maximum(0.0, 1.0 - x)  # (in, out)
    total = weights.sum(axis=0, keepdims=True)
    eps = 1000.0 * float(np.finfo(np.float32).eps)
    weights = np.where(np.abs(total) > eps, weights / np.where(total != 0, total, 1), 0.0)
    valid = (sample_f >= -0.5) & (sample_f <= in_size - 0.5)
    return np.where(valid[None, :], weights, 0.0).astype("float32")


def resize_grid(x, out_hw, antialias=True):
    """Resizes `x (B, h, w, C)` to `(B, H, W, C)` like `jax.image.resize(..., "linear")`."""
    h, w = int(x.shape[1]), int(x.shape[2])
    out_h, out_w = int(out_hw[0]), int(out_hw[1])
    if (h, w) == (out_h, out_w):
        return x
    wh = ops.convert_to_tensor(linear_resize_matrix(h, out_h, antialias), x.dtype)
    ww = ops.convert_to_tensor(linear_resize_matrix(w, out_w, antialias), x.dtype)
    x = ops.einsum("bhwc,hH->bHwc", x, wh)
    return ops.einsum("bHwc,wW->bHWc", x, ww)
