"""`RngBitDropout`: Keras' Dropout with the jax mask drawn by XLA's RngBitGenerator."""

import keras
import numpy as np
import pytest

from keras_givt.layers.rng_bit_dropout import RngBitDropout

ON_JAX = keras.config.backend() == "jax"


def _run(layer, x, training=True):
    return keras.ops.convert_to_numpy(layer(x, training=training))


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.9])
def test_keeps_each_element_with_probability_one_minus_rate(rate):
    x = np.full((400, 500), 3.0, "float32")
    y = _run(RngBitDropout(rate, seed=5), x)
    kept = y != 0
    np.testing.assert_allclose(y[kept], 3.0 / (1.0 - rate), rtol=1e-6)
    n, p = x.size, 1.0 - rate
    sigma = np.sqrt(n * p * (1 - p))
    assert abs(kept.sum() - n * p) < 5 * sigma, (kept.sum(), n * p)
    # No structure along either axis: every row and column keeps some and drops some.
    assert kept.any(axis=0).all() and kept.any(axis=1).all()
    assert (~kept).any(axis=0).all() and (~kept).any(axis=1).all()


def test_seeding_replays_and_advances_like_keras_dropout():
    x = np.ones((64, 64), "float32")
    a, b = RngBitDropout(0.5, seed=7), RngBitDropout(0.5, seed=7)
    first_a, first_b = _run(a, x), _run(b, x)
    np.testing.assert_array_equal(first_a, first_b)  # Same seed, same mask.
    assert not np.array_equal(first_a, _run(a, x))  # The generator advances.
    assert not np.array_equal(first_b, _run(RngBitDropout(0.5, seed=8), x))


def test_inference_rate_zero_and_rate_one():
    x = np.random.default_rng(0).normal(size=(3, 7)).astype("float32")
    np.testing.assert_array_equal(_run(RngBitDropout(0.4, seed=1), x, training=False), x)
    np.testing.assert_array_equal(_run(RngBitDropout(0.0), x), x)
    np.testing.assert_array_equal(_run(RngBitDropout(1.0, seed=1), x), np.zeros_like(x))


def test_noise_shape_broadcasts_the_mask():
    x = np.ones((4, 50, 8), "float32")
    y = _run(RngBitDropout(0.5, noise_shape=(None, 1, 8), seed=3), x)
    np.testing.assert_array_equal(y, np.broadcast_to(y[:, :1], y.shape))
    assert 0 < (y != 0).sum() < y.size


def test_bad_rate_is_refused_with_the_value():
    with pytest.raises(ValueError, match="rate=1.5"):
        RngBitDropout(1.5)


@pytest.mark.skipif(ON_JAX, reason="on jax the mask's bits come from RngBitGenerator")
def test_is_keras_dropout_off_jax():
    x = np.random.default_rng(1).normal(size=(16, 16)).astype("float32")
    keras.utils.set_random_seed(3)
    ours = _run(RngBitDropout(0.3, seed=11), x)
    keras.utils.set_random_seed(3)
    theirs = _run(keras.layers.Dropout(0.3, seed=11), x)
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.skipif(not ON_JAX, reason="the RngBitGenerator path is jax's")
def test_jax_mask_is_not_threefrys_and_traces_under_jit():
    import jax

    x = np.ones((32, 32), "float32")
    ours = _run(RngBitDropout(0.5, seed=11), x)
    theirs = _run(keras.layers.Dropout(0.5, seed=11), x)
    assert not np.array_equal(ours, theirs)  # Another generator, same seed.
    layer = RngBitDropout(0.5, seed=11)
    seed = keras.ops.convert_to_tensor(np.array([4, 9], "uint32"))

    @jax.jit
    def masked(seed):
        generator = layer.seed_generator
        object.__setattr__(layer, "seed_generator", _Fixed(seed))
        try:
            return layer(x, training=True)
        finally:
            object.__setattr__(layer, "seed_generator", generator)

    np.testing.assert_array_equal(np.asarray(masked(seed)), np.asarray(masked(seed)))
    text = jax.jit(masked).lower(seed).as_text()
    assert "rng_bit_generator" in text and "threefry" not in text


class _Fixed(keras.random.SeedGenerator):
    def __init__(self, seed):
        self._seed = seed

    def next(self, ordered=True):
        return self._seed
