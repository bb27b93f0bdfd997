"""DB-CFG's guided density: the rejection bound and the rejection sampler's
placement (`keras_givt.mixture.guidance`)."""

import keras
import numpy as np
from keras import ops

from keras_givt.mixture import guidance


def _params(loc, scale):
    loc = np.asarray(loc, "float32")[..., None]
    return {
        "head_type": "per_channel",
        "mixture_logits": np.zeros_like(loc),
        "loc": loc,
        "scale": np.asarray(scale, "float32")[..., None],
    }


def _log_normal(x, m, s):
    return -0.5 * ((x - m) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi)


def test_fac_is_the_max_over_big_vision_grid():
    # Reference: the ratio of grid maxima on loc_c + linspace(-10, 10, 1001),
    # in float64 numpy, for normalisable and non-normalisable channels.
    rng = np.random.default_rng(0)
    shape = (64, 5)
    lc, lu = rng.normal(size=shape) * 2, rng.normal(size=shape) * 2
    sc, su = np.exp(rng.normal(size=shape) * 0.5), np.exp(rng.normal(size=shape) * 0.5)
    for w in (0.1, 0.7, 3.0):
        cfg = guidance.CFGDensity(_params(lc, sc), _params(lu, su), w)
        got = ops.convert_to_numpy(cfg.fac)
        simple = 2 * np.maximum(sc, su)
        x = np.linspace(-10, 10, 1001)[:, None, None] + lc
        log_t = (1 + w) * _log_normal(x, lc, sc) - w * _log_normal(x, lu, su)
        with np.errstate(over="ignore"):
            want = np.exp(log_t.max(0)) / np.exp(_log_normal(x, lc, simple).max(0))
        finite = np.isfinite(want) & (want < 1e30)
        assert finite.mean() > 0.5
        assert not np.all(ops.convert_to_numpy(cfg.exact_params()[2]))  # Both kinds present.
        np.testing.assert_allclose(got[finite], want[finite], rtol=2e-3)


def test_rejection_runs_at_the_non_normalisable_channels_in_several_passes():
    # Channels far apart (loc_c = 50·j): a sample placed at another channel's
    # position would land far from its own loc_c. A third of them are not
    # normalisable, spread over more than one pass of REJECTION_CHUNK.
    n = 3 * guidance.REJECTION_CHUNK + 7
    lc = 50.0 * np.arange(n)
    sc = np.ones(n)
    su = np.where(np.arange(n) % 3 == 0, 0.5, 2.0)  # 0.5: precision 1.4 − 1.6 < 0.
    cfg = guidance.CFGDensity(_params(lc, sc), _params(lc + 0.5, su), 0.4)
    ok = ops.convert_to_numpy(cfg.exact_params()[2])
    assert (~ok).sum() == (n + 2) // 3
    x = ops.convert_to_numpy(cfg.sample(seed=keras.random.SeedGenerator(0)))
    offset = x - lc
    # Proposals come from N(loc_c, 2·max(σc, σu) = 2) and stay within ±10 of
    # a guided channel's own loc_c in practice; exact draws within ±6σ.
    assert np.all(np.abs(offset) < 12.0), np.abs(offset).max()
    # Every rejection channel has its own draw (not one value copied).
    assert len(np.unique(np.round(offset[~ok], 5))) > 0.9 * (~ok).sum()


def test_rejection_where_some_channels_match_rejection_everywhere():
    # Same non-normalisable density at every channel: the samples of the
    # gathered sampler (a mix of channels) and of the sampler run at every
    # channel share their distribution.
    n = 6000
    lc, sc = np.zeros(n), np.ones(n)
    su = np.full(n, 0.6)  # precision 1.3 − 0.3 / 0.36 < 0
    cfg = guidance.CFGDensity(_params(lc, sc), _params(lc - 0.3, su), 0.3)
    everywhere = ops.convert_to_numpy(cfg.rejection_sample(seed=keras.random.SeedGenerator(1)))
    mixed_su = np.where(np.arange(n) % 2 == 0, 0.6, 3.0)
    cfg_mixed = guidance.CFGDensity(_params(lc, sc), _params(lc - 0.3, mixed_su), 0.3)
    gathered = ops.convert_to_numpy(cfg_mixed.sample(seed=keras.random.SeedGenerator(2)))[::2]
    assert abs(everywhere.mean() - gathered.mean()) < 0.15, (everywhere.mean(), gathered.mean())
    assert abs(everywhere.std() - gathered.std()) < 0.15, (everywhere.std(), gathered.std())
    assert everywhere.std() > 0.5  # Not a constant.
