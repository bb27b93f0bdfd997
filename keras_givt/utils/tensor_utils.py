"""Small tensor helpers: concreteness checks, numpy conversion, slice updates."""

import keras
import numpy as np


def is_concrete(x):
    """True when `x` holds values (not a symbolic / traced tensor)."""
    if isinstance(x, (np.ndarray, np.generic, int, float, bool, list, tuple)):
        return True
    if isinstance(x, keras.KerasTensor):
        return False
    backend = keras.config.backend()
    if backend == "jax":
        import jax

        return not isinstance(x, jax.core.Tracer)
    if backend == "tensorflow":
        import tensorflow as tf

        if not tf.executing_eagerly():
            return False
        return hasattr(x, "numpy")
    return True


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def update_slice(x, start, update):
    """`ops.slice_update(x, start, update)` (functional on every backend; the
    torch generation engine writes its own KV cache in place)."""
    return keras.ops.slice_update(x, start, update)
