"""Rematerialisation on jax that XLA's CPU compiler keeps.

Keras' `remat` on jax is `jax.checkpoint`. XLA's CPU pipeline drops the
optimization barriers `jax.checkpoint` relies on, and its scheduler is free
to run a recomputation as soon as its inputs exist, i.e. in the forward
pass: the compiled program then keeps every activation, as without remat.
Measured (`benchmarks/memory.py`'s docstring, and `jax.jit(...).lower(...)
.compile().memory_analysis()` of a gradient): 4 layers, width 256, batch 64,
256 tokens: 1,906 MiB of temporaries with and without `jax.checkpoint`.
big_vision escapes it with `nn.scan` over stacked layers (a loop body
cannot be hoisted or merged with the forward loop).

`late_recompute_remat` keeps the layer's own variables and call, and defines
the gradient itself (`jax.custom_vjp`): the forward pass keeps only the
block's inputs; the backward pass recomputes the block inside a `lax.cond`
whose predicate, `0 · c == 0` with c the first element of the incoming
cotangent (0 when that is not finite), is always true but is not folded by
XLA (`0 · c` is not zero for every float c). So the gradient is the plain
one; the recomputation waits for the cotangent (it cannot be scheduled into
the forward pass), and the branch boundary keeps CSE from merging it with
the forward computation. The other branch, zeros, is never taken and costs
nothing to compile. Same shapes as above: 1,906 -> 576 MiB. The forward
pass multiplies integer inputs (dropout seeds) by another such value, of
the block's input, so each block's random bits are drawn when it runs
(with dropout 0.4, `ar` at 1,024 tokens: 12 blocks kept 1,078 MiB of
temporaries, 220 MiB with the tie; without remat 2,271 MiB).

Measured alternatives (a 24-block toy stack: temporaries, and compile time
against 8.7 s without remat): an `optimization_barrier` tying the inputs to
the cotangent saves nothing (the CPU pipeline drops it); the recomputation
in both branches of a `lax.cond` on `isfinite(c)` saves as much (222 -> 15
MiB) but compiles both copies (22.6 s against 13.0 s with one heavy branch;
at the published GIVT-Causal 256 size its first train step took 373 s
against 189 s without remat); adding `0 · c` to the inputs without a cond
saves less (770 MiB above); `nn.scan` over stacked layers, big_vision's
way, needs the layers' weights stacked.

`PreLNTransformerBlock.rematerialized_call` uses it on jax's CPU backend
only (`on_jax_cpu`); elsewhere Keras' own `remat` applies.
"""

import keras
import numpy as np


def on_jax_cpu():
    """Whether Keras runs on jax with XLA's CPU compiler (jax's default device).

    Only there does `late_recompute_remat` replace Keras' `jax.checkpoint`:
    XLA's GPU and TPU compilers keep `jax.checkpoint`'s barriers and schedule
    for memory, and a `lax.cond` on a GPU reads its predicate back to the host
    (a synchronisation per block and step).
    """
    if keras.config.backend() != "jax":
        return False
    import jax

    return jax.default_backend() == "cpu"


def late_recompute_remat(layer_call, layer):
    """A jax function computing `layer_call(*args)` whose gradient recomputes it.

    Args:
        layer_call: a function of tensors only (static arguments bound),
            reading the variables of `layer` (and of its sublayers) and
            assigning none of them.
        layer: the Keras layer owning those variables.

    Returns:
        A function of the same tensor arguments.
    """
    import jax
    import jax.numpy as jnp

    variables = list(layer.variables)

    def pure(values, args, kwargs):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return layer_call(*args, **kwargs)

    @jax.custom_vjp
    def rematerialized(values, args, kwargs):
        return pure(values, args, kwargs)

    def zero_cotangent(a):  # float0 for integer inputs, as `jax.vjp` gives.
        if jnp.issubdtype(a.dtype, jnp.integer):
            return np.zeros(a.shape, jax.dtypes.float0)
        return jnp.zeros_like(a)

    def always_true(tree):
        """A () bool that is always True but that XLA cannot fold: `0 · t == 0`
        with t the first element of `tree`'s first float leaf (0 if not finite)."""
        leaf = [a for a in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(a.dtype, jnp.floating)]
        first = jnp.reshape(leaf[0], (-1,))[0]
        return 0.0 * jnp.where(jnp.isfinite(first), first, 0.0) == 0.0

    def forward(values, args, kwargs):
        # Integer inputs (dropout seeds) times an always-true value of the
        # block's float inputs: the same seeds, but their random bits are then
        # drawn when the block runs. Otherwise XLA draws every block's bits at
        # the start of the step (they depend on the seeds only) and keeps them
        # (`ar`, seq 1024, dropout 0.4, 12 blocks: 1,078 MiB of temporaries
        # instead of the no-dropout 126 MiB at 6 blocks).
        one = always_true((args, kwargs))

        def tie(a):
            return a * one.astype(a.dtype) if jnp.issubdtype(a.dtype, jnp.integer) else a

        args, kwargs = jax.tree_util.tree_map(tie, (args, kwargs))
        return pure(values, args, kwargs), (values, args, kwargs)

    def backward(residuals, cotangent):
        def recompute(operands):
            residuals, cotangent = operands
            _, vjp = jax.vjp(pure, *residuals)
            return vjp(cotangent)

        def never(operands):  # Zero cotangents, never taken (see the module docstring).
            return jax.tree_util.tree_map(zero_cotangent, operands[0])

        return jax.lax.cond(always_true(cotangent), recompute, never, (residuals, cotangent))

    rematerialized.defvjp(forward, backward)

    def call(*args, **kwargs):
        return rematerialized([v.value for v in variables], args, kwargs)

    return call
