import keras
import numpy as np
import pytest
from keras import ops

from keras_givt.mixture import distributions
from keras_givt.mixture.head import GaussianMixtureHead
from keras_givt.mixture.head import square_plus

HEADS = {
    "per_channel": dict(out_dim=4, num_mixtures=3, per_channel_mixtures=True),
    "mv_diag": dict(out_dim=5, num_mixtures=2, per_channel_mixtures=False),
    "multivariate": dict(out_dim=3, num_mixtures=1, multivariate=True, fix_square_plus=True),
}


def _logits(head, seed=0, shape=(2, 7)):
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape + (head.num_logits,)).astype("float32")


def _x(head, seed=1, shape=(2, 7)):
    return np.random.default_rng(seed).normal(size=shape + (head.out_dim,)).astype("float32")


@pytest.mark.parametrize("kind", sorted(HEADS))
def test_num_logits(kind):
    head = GaussianMixtureHead(**HEADS[kind])
    d, k = head.out_dim, head.num_mixtures
    expected = {"per_channel": 3 * k * d, "mv_diag": k + 2 * k * d, "multivariate": d * d + d}
    assert head.num_logits == expected[kind]


@pytest.mark.parametrize("kind", sorted(HEADS))
def test_log_prob_matches_tfp(kind):
    if keras.config.backend() == "torch":
        pytest.skip("TFP has no torch substrate; torch is checked against big_vision fixtures")
    head = GaussianMixtureHead(**HEADS[kind])
    logits, x = _logits(head), _x(head)
    for ts, tp in [(None, None), (0.9, 1.3)]:
        ours = head.distribution(logits, ts, tp, use_tfp=False)
        tfp_dist = head.distribution(logits, ts, tp, use_tfp=True)
        assert "tensorflow_probability" in type(tfp_dist).__module__
        np.testing.assert_allclose(
            ops.convert_to_numpy(ours.log_prob(x)),
            np.asarray(tfp_dist.log_prob(x)),
            rtol=1e-5,
            atol=1e-5,
        )
        np.testing.assert_allclose(
            ops.convert_to_numpy(ours.mean()), np.asarray(tfp_dist.mean()), rtol=1e-5, atol=1e-5
        )


@pytest.mark.parametrize("kind", sorted(HEADS))
def test_log_prob_against_scipy(kind):
    """A backend-independent reference (works on torch too)."""
    from scipy import stats
    from scipy.special import logsumexp

    head = GaussianMixtureHead(**HEADS[kind])
    logits, x = _logits(head, shape=(3,)), _x(head, shape=(3,))
    p = {k: (ops.convert_to_numpy(v) if k != "head_type" else v) for k, v in head(logits).items()}
    got = ops.convert_to_numpy(head.log_prob(logits, x))
    if kind == "per_channel":
        w = p["mixture_logits"] - logsumexp(p["mixture_logits"], -1, keepdims=True)
        want = logsumexp(w + stats.norm.logpdf(x[..., None], p["loc"], p["scale"]), -1)
    elif kind == "mv_diag":
        w = p["mixture_logits"] - logsumexp(p["mixture_logits"], -1, keepdims=True)
        comp = stats.norm.logpdf(x[:, None], p["loc"], p["scale_diag"]).sum(-1)
        want = logsumexp(w + comp, -1)
    else:
        want = np.array(
            [
                stats.multivariate_normal.logpdf(
                    x[i], p["loc"][i], p["scale_tri"][i] @ p["scale_tri"][i].T
                )
                for i in range(3)
            ]
        )
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_square_plus_variants():
    x = np.array([-3.0, -1.0, 0.0, 2.0], "float32")
    fixed = ops.convert_to_numpy(square_plus(x, True))
    np.testing.assert_allclose(fixed, (x + np.sqrt(x**2 + 4)) / 2, rtol=1e-6)
    buggy = ops.convert_to_numpy(square_plus(x, False))
    np.testing.assert_allclose(buggy, x + np.sqrt(x**2 + 4) / 2, rtol=1e-6)
    assert buggy[0] < 0 < fixed[0]


def test_scale_tol_clamps_negative_squareplus():
    head = GaussianMixtureHead(out_dim=2, num_mixtures=1, fix_square_plus=False, scale_tol=1e-6)
    logits = np.zeros((1, head.num_logits), "float32")
    logits[0, 4:] = -5.0  # scale logits -> negative squareplus
    scale = ops.convert_to_numpy(head(logits)["scale"])
    np.testing.assert_allclose(scale, 1e-6)


def test_temperatures():
    head = GaussianMixtureHead(out_dim=3, num_mixtures=2, per_channel_mixtures=False)
    logits = _logits(head)
    base, hot = head(logits), head(logits, temperature_scales=0.5, temperature_probs=2.0)
    np.testing.assert_allclose(
        ops.convert_to_numpy(hot["scale_diag"]),
        0.5 * ops.convert_to_numpy(base["scale_diag"]),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(hot["mixture_logits"]),
        2.0 * ops.convert_to_numpy(base["mixture_logits"]),
        rtol=1e-6,
    )


@pytest.mark.parametrize("kind", sorted(HEADS))
def test_sampling_moments(kind):
    head = GaussianMixtureHead(**HEADS[kind])
    logits = np.repeat(_logits(head, shape=(1,)), 20000, axis=0)
    dist = head.distribution(logits, use_tfp=False)
    gen = keras.random.SeedGenerator(3)
    samples = ops.convert_to_numpy(dist.sample(seed=gen))
    mean = ops.convert_to_numpy(dist.mean())[0]
    assert samples.shape == (20000, head.out_dim)
    np.testing.assert_allclose(samples.mean(0), mean, atol=0.06)
    if kind == "multivariate":
        tri = ops.convert_to_numpy(dist.scale_tri)[0]
        np.testing.assert_allclose(np.cov(samples.T), tri @ tri.T, atol=0.1, rtol=0.05)


def test_float32_under_bfloat16_logits():
    head = GaussianMixtureHead(out_dim=4, num_mixtures=3)
    logits = ops.cast(_logits(head), "bfloat16")
    lp = head.log_prob(logits, ops.cast(_x(head), "bfloat16"))
    assert keras.backend.standardize_dtype(lp.dtype) == "float32"


def test_bad_configs():
    with pytest.raises(ValueError, match="num_mixtures=3"):
        GaussianMixtureHead(out_dim=3, num_mixtures=3, multivariate=True)
    with pytest.raises(TypeError, match="out_dim"):
        GaussianMixtureHead(out_dim=2.5)
    head = GaussianMixtureHead(out_dim=4, num_mixtures=3)
    with pytest.raises(ValueError, match=r"36 entries.*\(2, 5\)"):
        head(np.zeros((2, 5), "float32"))


def test_head_serialization():
    head = GaussianMixtureHead(**HEADS["mv_diag"])
    clone = GaussianMixtureHead.from_config(head.get_config())
    assert clone.get_config() == head.get_config()


def test_make_distribution_default_kind():
    head = GaussianMixtureHead(**HEADS["per_channel"])
    dist = head.distribution(_logits(head))
    if keras.config.backend() == "torch":
        assert isinstance(dist, distributions.NormalMixture)
    else:
        assert type(dist).__name__ == "MixtureSameFamily"
