"""Small backend helpers (the guarded exceptions to `keras.ops`-only code)."""

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


class _InplaceScope:
    active = 0
    memo = {}


class inplace_cache_updates:
    """Within this scope, KV-cache writes on torch update the cache in place.

    `ops.slice_update` on torch clones the whole tensor: an (N, 2, B, H, L, E/H)
    cache copied per layer and token dominates eager decoding. The task's
    torch generation loop (under `no_grad`, owning its cache) opens this
    scope; everywhere else caches stay functional. No effect on jax and
    tensorflow (their compiled loops update in place already).
    """

    def __enter__(self):
        if not _InplaceScope.active:
            _InplaceScope.memo = {}
        _InplaceScope.active += 1
        return self

    def __exit__(self, *exc):
        _InplaceScope.active -= 1
        if not _InplaceScope.active:
            _InplaceScope.memo = {}
        return False


def inplace_updates_active():
    """True inside `inplace_cache_updates` (the torch generation loop)."""
    return bool(_InplaceScope.active)


def memoized_in_scope(tag, obj, build):
    """`build()`, computed once per `(tag, obj)` for as long as the outermost
    `inplace_cache_updates` scope lives (values made once per generation
    loop, e.g. prepared weights). The memo keeps `obj` alive, so its id is
    not reused while the entry exists."""
    key = (tag, id(obj))
    if key not in _InplaceScope.memo:
        _InplaceScope.memo[key] = (obj, build())
    return _InplaceScope.memo[key][1]


def update_slice(x, start, update):
    """`ops.slice_update(x, start, update)`; in place on torch inside `inplace_cache_updates`."""
    if _InplaceScope.active and keras.config.backend() == "torch":
        index = tuple(slice(int(s), int(s) + n) for s, n in zip(start, update.shape))
        x[index] = update
        return x
    return keras.ops.slice_update(x, start, update)
