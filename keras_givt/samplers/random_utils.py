"""Seeded loops that compile on every backend, and the Gumbel draws.

Randomness inside compiled generation comes only from a
`keras.random.SeedGenerator`. On JAX its state is a traced value: a loop
body cannot assign it back to the variable, so `seeded_fori_loop` threads
the state through the loop carry explicitly (the same idea as keras-hub's
samplers) while keeping every other variable mapping of the enclosing
`StatelessScope` (the model weights passed to `jax.jit`).

`gumbel` / `gumbel_argmax` are the one Keras-side source of Gumbel noise
(MaskGIT confidences, stochastic beams, mixture-component draws); the
formula itself is `mixture.formulas.gumbel`, shared with the torch engine.
"""

import keras
from keras import ops

from keras_givt.mixture import formulas


def _current_scope():
    from keras.src.backend.common.stateless_scope import get_stateless_scope

    return get_stateless_scope()


class _ChainedScope(keras.StatelessScope):
    """A StatelessScope that also sees its parent scope's variable values."""

    def __init__(self, overrides):
        super().__init__(overrides)
        parent = _current_scope()
        if parent is not None:
            merged = dict(parent.state_mapping)
            merged.update(self.state_mapping)
            self.state_mapping = merged


def seeded_fori_loop(lower, upper, body, init_val, seed_generator):
    """`ops.fori_loop` whose body may draw from `seed_generator`."""
    if keras.config.backend() != "jax":
        return ops.fori_loop(lower, upper, body, init_val)
    state_var = seed_generator.state
    parent = _current_scope()
    start = parent.get_current_value(state_var) if parent is not None else None
    if start is None:
        start = state_var.value

    def wrapped(i, carry):
        val, seed_state = carry
        with _ChainedScope([(state_var, seed_state)]) as scope:
            val = body(i, val)
        return val, scope.get_current_value(state_var)

    val, end = ops.fori_loop(lower, upper, wrapped, (init_val, start))
    if parent is not None:
        parent.add_update((state_var, end))
    else:
        state_var.assign(end)
    return val


def _gumbel_uniform(shape, seed, dtype):
    # In (0, 1]: the lower bound keeps log(u) finite.
    return keras.random.uniform(shape, minval=1e-20, maxval=1.0, dtype=dtype, seed=seed)


def gumbel(shape, seed, dtype=None):
    """Gumbel(0, 1) noise of `shape` (one uniform draw from `seed`, a
    `SeedGenerator` or a seed); `dtype` None is Keras's floatx."""
    return formulas.gumbel(_gumbel_uniform(shape, seed, dtype), ops)


def gumbel_argmax(logits, seed, dtype=None):
    """A categorical draw per leading position of `logits (..., K)` (Gumbel-max
    on the last axis; one uniform draw of the logits' shape) -> (...) int."""
    return formulas.gumbel_argmax(logits, _gumbel_uniform(ops.shape(logits), seed, dtype), ops)


def draw_raw_seed(seed=None):
    """Draws a raw seed tensor from `seed` (a `SeedGenerator`, an int, or None
    for Keras's global generator), for `stateless_normal` / `stateless_uniform`.

    A compiled branch or loop body cannot advance a `SeedGenerator`, so the
    seed is drawn before it and consumed by the stateless draws inside.
    """
    from keras.src.random.seed_generator import draw_seed

    return draw_seed(seed)


def _offset(raw_seed, offset):
    """`raw_seed` with `offset` (an int or an integer tensor, traced or not)
    added to its second word."""
    offset = ops.cast(offset, raw_seed.dtype)
    return raw_seed + ops.stack([ops.zeros_like(offset), offset])


def torch_generator(raw_seed, device=None):
    """A `torch.Generator` on `device` (default Keras's torch device) seeded
    from a raw seed (`draw_raw_seed`, two words): the one mapping from Keras
    seeds to torch's random stream (the plain-torch engine draws from it)."""
    import torch

    if device is None:
        from keras.src.backend.torch.core import get_device

        device = get_device()
    a, b = (int(v) for v in ops.convert_to_numpy(raw_seed).reshape(-1)[:2])
    gen = torch.Generator(device=device)
    gen.manual_seed((a % (1 << 31)) * (1 << 31) + b % (1 << 31))
    return gen


def _torch_generator(raw_seed, offset):
    return torch_generator(_offset(raw_seed, offset))


def stateless_normal(shape, raw_seed, offset=0):
    """Standard normals of `shape`, a pure function of `raw_seed` (a drawn
    seed, `draw_raw_seed`) and `offset` (int or integer tensor): usable
    inside compiled branches and loops, where a `SeedGenerator` cannot
    advance. On torch (eager) a `torch.Generator` seeded from both."""
    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        seed = tf.cast(tf.math.floormod(_offset(raw_seed, offset), tf.int32.max - 1), "int32")
        return tf.random.stateless_normal(shape, seed=seed, dtype="float32")
    if backend == "jax":
        return keras.random.normal(shape, dtype="float32", seed=_offset(raw_seed, offset))
    if backend == "torch":
        import torch

        gen = _torch_generator(raw_seed, offset)
        return torch.randn(tuple(shape), generator=gen, device=gen.device)
    raise NotImplementedError(f"Raw seeds are not supported on the {backend!r} backend.")


def stateless_uniform(shape, raw_seed, offset=0, minval=0.0, maxval=1.0):
    """Uniforms in [minval, maxval) of `shape`, as `stateless_normal`."""
    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        seed = tf.cast(tf.math.floormod(_offset(raw_seed, offset), tf.int32.max - 1), "int32")
        return tf.random.stateless_uniform(
            shape, seed=seed, minval=minval, maxval=maxval, dtype="float32"
        )
    if backend == "jax":
        return keras.random.uniform(
            shape, minval=minval, maxval=maxval, dtype="float32", seed=_offset(raw_seed, offset)
        )
    if backend == "torch":
        import torch

        gen = _torch_generator(raw_seed, offset)
        u = torch.rand(tuple(shape), generator=gen, device=gen.device)
        return minval + (maxval - minval) * u
    raise NotImplementedError(f"Raw seeds are not supported on the {backend!r} backend.")
