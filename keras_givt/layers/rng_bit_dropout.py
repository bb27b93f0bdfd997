"""Dropout whose jax mask comes from XLA's RngBitGenerator instead of threefry.

Keras' `Dropout` on jax draws its mask with `jax.random.bernoulli` on a
threefry key. XLA's CPU compiler runs threefry as an elementwise hash of
~20 rounds per 64 bits; on this project's CPU (AMD EPYC family 25, AVX2,
2 cores) one mask of (2, 16, 256, 256) took 34.7 ms, against 12.3 ms from
a key of jax's "rbg" implementation (`lax.rng_bit_generator`, XLA's own
counter-based generator) and 0.8 ms for the rest of the dropout
(`/tmp`-only probe, median of 5). A GIVT block with dropout 0.2 at width
1024, batch 2 and 256 tokens draws 5.2M bits per step; 4 such blocks
trained in 2.28-2.31 s per step with Keras' Dropout and 2.08-2.14 s with
an rbg key in `jax.random.bernoulli` (medians of 6 steps, two alternating
runs); this layer, which compares the bits directly, in 2.17-2.31 s
against 2.32-3.44 s for Keras' in one noisier back-to-back pair. At the
published size: `benchmarks/results/README.md`, session 15.

Only the source of the bits changes: each element is kept with probability
`1 - rate` (its 32 random bits below `round((1 - rate) · 2^32)`, the same
resolution as Keras' float comparison), kept elements are scaled by
`1 / (1 - rate)`, the layer draws its seeds from its own
`keras.random.SeedGenerator` exactly as Keras' Dropout does (so
rematerialised blocks replay their masks), and inference returns the input.
On tensorflow (stateless Philox) and torch (torch's generator) the layer
is Keras' Dropout. The "rbg" bits of one seed may differ between XLA
versions and between shardings of the mask, which dropout does not need.
"""

import keras

# The backend is fixed for the process: the jax branch is chosen once.
_ON_JAX = keras.config.backend() == "jax"


@keras.saving.register_keras_serializable(package="keras_givt")
class RngBitDropout(keras.layers.Dropout):
    """`keras.layers.Dropout` drawing its jax mask with XLA's RngBitGenerator.

    Same arguments, behaviour and seeding as `keras.layers.Dropout`; see the
    module docstring for what differs (the random bits on jax) and why
    (about 3× faster masks on XLA's CPU compiler).

    Args:
        rate: float in [0, 1]. Fraction of the input units to drop.
        noise_shape: optional tuple. Shape of the mask, broadcast to the
            input; `None` entries take the input's size.
        seed: optional int. Seed of the layer's seed generator.

    Example:

    >>> layer = RngBitDropout(0.5, seed=1)
    >>> y = layer(keras.ops.ones((2, 8)), training=True)
    >>> sorted(set(keras.ops.convert_to_numpy(y).ravel().tolist())) in ([0.0, 2.0], [2.0])
    True
    """

    def call(self, inputs, training=False):
        if not training or self.rate == 0 or not _ON_JAX:
            return super().call(inputs, training=training)
        import jax
        import jax.numpy as jnp

        if self.rate == 1:
            return jnp.zeros_like(inputs)
        seed = jnp.asarray(self.seed_generator.next(), jnp.uint32)  # (2,)
        # An rbg key is four words; the second pair differs from the first
        # so that the generator's key and counter words are not equal.
        key = jax.random.wrap_key_data(
            jnp.concatenate([seed, seed ^ jnp.uint32(0x9E3779B9)]), impl="rbg"
        )
        shape = tuple(
            inputs.shape[i] if size is None else size
            for i, size in enumerate(self.noise_shape or (None,) * inputs.ndim)
        )
        keep_prob = 1.0 - self.rate
        threshold = jnp.uint32(min(round(keep_prob * 2.0**32), 2**32 - 1))
        keep = jax.random.bits(key, shape, jnp.uint32) < threshold
        keep = jnp.broadcast_to(keep, inputs.shape)
        return jax.lax.select(keep, inputs / keep_prob, jnp.zeros_like(inputs))
