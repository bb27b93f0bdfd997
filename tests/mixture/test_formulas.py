"""`mixture.formulas`: one body for keras.ops tensors and for the torch engine."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_givt.mixture import formulas
from keras_givt.mixture import guidance
from keras_givt.samplers import random_utils


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def test_formulas_on_keras_ops():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3)).astype("float32")
    np.testing.assert_allclose(
        _np(formulas.square_plus(ops.convert_to_tensor(x), True, ops)),
        (x + np.sqrt(x * x + 4)) / 2,
        rtol=1e-6,
    )
    loc, scale = rng.normal(size=3).astype("float32"), rng.uniform(0.5, 2, 3).astype("float32")
    want = -0.5 * ((x - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi)
    got = formulas.normal_log_prob(*(ops.convert_to_tensor(v) for v in (x, loc, scale)), ops)
    np.testing.assert_allclose(_np(got), want, rtol=1e-5, atol=1e-6)
    # The guided normal is the normalised DB-CFG density (numerical moments).
    loc_c, scale_c, loc_u, scale_u, w = 0.3, 0.8, -0.2, 1.1, 0.5
    prec = formulas.guided_precision(scale_c, scale_u, w, np)
    mean = formulas.guided_loc(loc_c, scale_c, loc_u, scale_u, w, prec, np)
    want_mean, want_std = guidance.guided_log_prob_moments(loc_c, scale_c, loc_u, scale_u, w)
    np.testing.assert_allclose([mean, prec**-0.5], [want_mean, want_std], rtol=1e-4)


@pytest.mark.parametrize("head_type", ["per_channel", "mv_diag"])
def test_split_logits_matches_the_head(head_type):
    from keras_givt.mixture.head import GaussianMixtureHead

    head = GaussianMixtureHead(
        out_dim=3, num_mixtures=2, per_channel_mixtures=head_type == "per_channel"
    )
    logits = np.random.default_rng(1).normal(size=(4, head.num_logits)).astype("float32")
    mix, loc, raw = formulas.split_logits(ops.convert_to_tensor(logits), head_type, 3, 2, ops)
    params = head.mixture_params(logits)
    np.testing.assert_array_equal(_np(mix), _np(params["mixture_logits"]))
    np.testing.assert_array_equal(_np(loc), _np(params["loc"]))
    scale = formulas.mixture_scale(raw, head.fix_square_plus, head.scale_tol, ops)
    key = "scale_diag" if head_type == "mv_diag" else "scale"
    np.testing.assert_array_equal(_np(scale), _np(params[key]))


def test_the_keras_gumbel_is_the_formula_on_one_uniform_draw():
    # One uniform draw per call, in (0, 1] (so the noise is finite), and the
    # argmax is that of the logits plus the same noise.
    shape = (3, 5)
    u = keras.random.uniform(shape, minval=1e-20, maxval=1.0, seed=keras.random.SeedGenerator(4))
    want = _np(formulas.gumbel(u, ops))
    np.testing.assert_array_equal(
        _np(random_utils.gumbel(shape, keras.random.SeedGenerator(4))), want
    )
    logits = np.random.default_rng(2).normal(size=shape).astype("float32")
    np.testing.assert_array_equal(
        _np(
            random_utils.gumbel_argmax(ops.convert_to_tensor(logits), keras.random.SeedGenerator(4))
        ),
        np.argmax(logits + want, axis=-1),
    )
    assert np.isfinite(want).all()


@pytest.mark.skipif(
    keras.config.backend() != "torch", reason="the torch engine's namespace needs torch tensors"
)
def test_torch_namespace_gives_the_keras_numbers():
    import torch

    from keras_givt.models.givt.torch_generation import _TORCH_OPS

    rng = np.random.default_rng(3)
    x, loc = rng.normal(size=(2, 3, 4)).astype("float32"), rng.normal(size=4).astype("float32")
    scale = rng.uniform(0.3, 2.0, size=4).astype("float32")
    t = [torch.as_tensor(v) for v in (x, loc, scale)]
    k = [ops.convert_to_tensor(v) for v in (x, loc, scale)]
    for fix in (True, False):
        np.testing.assert_array_equal(
            _np(formulas.mixture_scale(t[0], fix, 1e-6, _TORCH_OPS)),
            _np(formulas.mixture_scale(k[0], fix, 1e-6, ops)),
        )
    np.testing.assert_array_equal(
        _np(formulas.normal_log_prob(*t, _TORCH_OPS)), _np(formulas.normal_log_prob(*k, ops))
    )
    np.testing.assert_array_equal(
        _np(formulas.guided_log_prob(t[0], t[1], t[2], t[1] + 0.1, t[2] * 1.2, 0.4, _TORCH_OPS)),
        _np(formulas.guided_log_prob(k[0], k[1], k[2], k[1] + 0.1, k[2] * 1.2, 0.4, ops)),
    )
    for head_type, m in (("per_channel", 36), ("mv_diag", 27)):  # D = 4, K = 3
        logits = rng.normal(size=(2, m)).astype("float32")
        got = formulas.split_logits(torch.as_tensor(logits), head_type, 4, 3, _TORCH_OPS)
        want = formulas.split_logits(ops.convert_to_tensor(logits), head_type, 4, 3, ops)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(_np(g), _np(w))
