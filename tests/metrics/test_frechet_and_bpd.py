import math

import numpy as np
import pytest
from keras import ops

from keras_givt.metrics import bits_per_dim
from keras_givt.metrics import frechet_distance
from keras_givt.metrics import gaussian_statistics


def test_bits_per_dim():
    assert bits_per_dim(2 * 784 * math.log(2), 784) == pytest.approx(2.0)
    # Density on [-1, 1] pixels reported per 8-bit pixel: + log2(127.5) per dim.
    assert bits_per_dim(0.0, 10, data_scale=127.5) == pytest.approx(math.log2(127.5))
    out = bits_per_dim(np.array([0.0, 4 * math.log(2)], "float32"), 4)
    np.testing.assert_allclose(ops.convert_to_numpy(out), [0.0, 1.0], atol=1e-6)
    with pytest.raises(ValueError, match="num_dims"):
        bits_per_dim(1.0, 0)
    with pytest.raises(TypeError, match="num_dims"):
        bits_per_dim(1.0, 2.5)
    with pytest.raises(ValueError, match="data_scale"):
        bits_per_dim(1.0, 3, data_scale=-1.0)


def test_gaussian_statistics_matches_numpy():
    x = np.random.default_rng(0).normal(size=(50, 4))
    stats = gaussian_statistics(x)
    np.testing.assert_allclose(stats["mu"], x.mean(0))
    np.testing.assert_allclose(stats["sigma"], np.cov(x.T))
    with pytest.raises(ValueError, match="features"):
        gaussian_statistics(np.zeros((1, 4)))


def _random_stats(rng, dim, rank=None):
    a = rng.normal(size=(dim, rank or dim))
    return {"mu": rng.normal(size=dim), "sigma": a @ a.T / dim}


def test_identical_stats_give_zero_and_fd_is_symmetric():
    rng = np.random.default_rng(1)
    a, b = _random_stats(rng, 16), _random_stats(rng, 16)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-8)
    assert frechet_distance(a, b) > 0
    # Singular covariances (dead features) need no epsilon.
    s = _random_stats(rng, 16, rank=5)
    assert frechet_distance(s, s) == pytest.approx(0.0, abs=1e-8)
    assert np.isfinite(frechet_distance(s, b))


def test_matches_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(2)
    var_a, var_b = rng.uniform(0.1, 2.0, 8), rng.uniform(0.1, 2.0, 8)
    mu = rng.normal(size=8)
    previous = -1.0
    for shift in (0.0, 0.5, 1.0, 2.0):
        a = {"mu": mu, "sigma": np.diag(var_a)}
        b = {"mu": mu + shift, "sigma": np.diag(var_b)}
        expected = 8 * shift**2 + np.sum(var_a + var_b - 2 * np.sqrt(var_a * var_b))
        fd = frechet_distance(a, b)
        assert fd == pytest.approx(expected, rel=1e-9, abs=1e-12)
        assert fd > previous
        previous = fd


def test_frechet_errors():
    a = {"mu": np.zeros(3), "sigma": np.eye(3)}
    with pytest.raises(ValueError, match="same feature dim"):
        frechet_distance(a, {"mu": np.zeros(2), "sigma": np.eye(2)})
    with pytest.raises(TypeError, match="stats_b"):
        frechet_distance(a, {"mu": np.zeros(3)})
    with pytest.raises(ValueError, match="stats_a"):
        frechet_distance({"mu": np.zeros(3), "sigma": np.eye(2)}, a)
