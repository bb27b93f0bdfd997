"""`generate` argument checks, greedy decoding, unconditional sampling, labels by name,
keras-hub aliases and the public image range of GIVT-Causal, GIVT-MaskGIT, the
discrete MaskGIT and GIVT-UViM."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_givt
from keras_givt import GIVTCausal
from keras_givt import GIVTMaskGIT
from keras_givt.datasets import FASHION_MNIST_CLASS_NAMES
from tests import helpers
from tests.models.uvim import helpers as uvim_helpers

_np = helpers.to_numpy


def _causal(**overrides):
    return GIVTCausal(helpers.tiny_guided_backbone(**overrides), seed=0)


def _givt_maskgit(**overrides):
    return GIVTMaskGIT(helpers.tiny_guided_backbone(masked=True, **overrides), seed=0)


def _vq_maskgit(label_dropout=0.1, tokenizer=True):
    backbone = helpers.tiny_maskgit_backbone(num_classes=10)
    tok = helpers.tiny_vqgan_tokenizer() if tokenizer else None
    return keras_givt.MaskGITImageGenerator(backbone, tok, label_dropout=label_dropout, seed=0)


def _untouched(model, call):
    """Runs `call`, which must fail, and checks nothing was compiled or drawn."""
    seed_before = _np(model.seed_generator.state).copy()
    call()
    assert model.generate_functions == {}
    np.testing.assert_array_equal(_np(model.seed_generator.state), seed_before)


def _expect(error, match, fn, *args, **kwargs):
    with pytest.raises(error, match=match):
        fn(*args, **kwargs)


def _generate_fails_untouched(model, error, match, **kwargs):
    """`model.generate(**kwargs)` raises `error` (matching `match`) before any work."""
    _untouched(model, lambda: _expect(error, match, model.generate, **kwargs))


# --- Bad arguments: error type, the argument's name and the received value ----------

CAUSAL_BAD = [
    (dict(temperature=-1.0), ValueError, r"`temperature`.*temperature=-1\.0"),
    (dict(temperature=float("nan")), ValueError, r"`temperature`.*temperature=nan"),
    (dict(temperature="hot"), TypeError, r"`temperature`.*temperature='hot'"),
    (dict(temperature_probs=0.0), ValueError, r"`temperature_probs`.*temperature_probs=0\.0"),
    (dict(temperature_probs=float("inf")), ValueError, r"temperature_probs=inf"),
    (dict(cfg_weight=True), TypeError, r"`cfg_weight`.*cfg_weight=True"),
    (dict(cfg_weight="0.4"), TypeError, r"`cfg_weight`.*cfg_weight='0\.4'"),
    (dict(cfg_weight=float("nan")), ValueError, r"`cfg_weight`.*cfg_weight=nan"),
    (dict(beam_size=0), ValueError, r"`beam_size`.*beam_size=0"),
    (dict(beam_size=2.0), TypeError, r"`beam_size`.*beam_size=2\.0"),
    (dict(beam_size=2, fan_size=1), ValueError, r"`fan_size`.*beam_size=2, fan_size=1"),
    (dict(fan_size=-3), ValueError, r"`fan_size`.*fan_size=-3"),
    (dict(labels=[0.7]), ValueError, r"`labels`.*integer.*0\.7"),
    (dict(labels=[[1, 2]]), ValueError, r"`labels`.*1-D.*shape \(1, 2\)"),
    (dict(labels=[3, 10]), ValueError, r"`labels`.*\[0, 10\).*out of range: \[10\]"),
    (dict(labels=[-1]), ValueError, r"`labels`.*out of range: \[-1\]"),
    (dict(labels=[True]), TypeError, r"`labels`.*True"),
    (dict(labels=["Sneaker"]), ValueError, r"`labels`.*no class names.*Sneaker"),
    (dict(labels=[1, 2], num_samples=3), ValueError, r"`num_samples`.*num_samples=3"),
    (dict(num_samples=0), ValueError, r"`num_samples`.*num_samples=0"),
    (dict(num_samples=2.5), TypeError, r"`num_samples`.*num_samples=2\.5"),
    (dict(labels=[1], seed="a"), TypeError, r"`seed`.*seed='a'"),
    (dict(labels=[1], stochastic_beams="yes"), TypeError, r"`stochastic_beams`.*'yes'"),
    (dict(labels=[1], return_latents=None), TypeError, r"`return_latents`.*None"),
    (dict(labels=[1], prefix=np.full((1, 2, 4), np.nan)), ValueError, r"`prefix`.*finite"),
    (dict(labels=[1], prefix=np.zeros((1, 2, 3))), ValueError, r"`prefix`.*\(1, 2, 3\)"),
    (dict(labels=[1], prefix=np.zeros((2, 4))), ValueError, r"`prefix`.*shape \(2, 4\)"),
    (dict(labels=[1], image_range=(0, 255)), ValueError, r"`image_range`.*\(0, 255\)"),
    (
        dict(labels=[1], cfg_weight=0.4, guidance_scale=1.4),
        TypeError,
        r"`cfg_weight` or its alias `guidance_scale`.*cfg_weight=0\.4, guidance_scale=1\.4",
    ),
    (dict(labels=[1], guidance_scale="x"), TypeError, r"`guidance_scale`.*'x'"),
    (
        dict(labels=[1], num_steps=4),
        TypeError,
        r"unexpected keyword argument 'num_steps'.*Valid keywords: .*cfg_weight",
    ),
    (
        dict(labels=[1], temprature=0.5),
        TypeError,
        r"unexpected keyword argument 'temprature'. Did you mean `temperature`",
    ),
    (dict(num_samples=2, cfg_weight=0.4), ValueError, r"`cfg_weight`.*labels=None"),
]


@pytest.mark.parametrize("kwargs, error, match", CAUSAL_BAD)
def test_causal_bad_arguments_fail_before_any_work(kwargs, error, match):
    kwargs = {"labels": None if "num_samples" in kwargs else [1], **kwargs}
    _generate_fails_untouched(_causal(), error, match, **kwargs)


MASKGIT_BAD = [
    (dict(num_steps=0), ValueError, r"`num_steps`.*num_steps=0"),
    (dict(num_steps=np.float32(2)), TypeError, r"`num_steps`.*num_steps=(np.float32\()?2\.0"),
    (dict(schedule="exp"), ValueError, r"`schedule`.*schedule='exp'"),
    (dict(schedule="pow:-1"), ValueError, r"`schedule`.*schedule='pow:-1'"),
    (dict(schedule=2), TypeError, r"`schedule`.*schedule=2"),
    (dict(choice_temperature=-0.5), ValueError, r"`choice_temperature`.*-0\.5"),
    (dict(choice_temperature=float("inf")), ValueError, r"choice_temperature=inf"),
    (dict(temperature=-2), ValueError, r"`temperature`.*temperature=-2"),
    (dict(temperature_probs=-1.0), ValueError, r"`temperature_probs`.*-1\.0"),
    (dict(cfg_weight=False), TypeError, r"`cfg_weight`.*False"),
    (dict(labels=[2.5]), ValueError, r"`labels`.*2\.5"),
    (dict(steps=4), TypeError, r"unexpected keyword argument 'steps'. Did you mean `num_steps`"),
    (dict(return_num_masked=1), TypeError, r"`return_num_masked`.*1"),
]


@pytest.mark.parametrize("kwargs, error, match", MASKGIT_BAD)
def test_givt_maskgit_bad_arguments_fail_before_any_work(kwargs, error, match):
    _generate_fails_untouched(_givt_maskgit(), error, match, **{"labels": [1], **kwargs})


VQ_BAD = [
    (dict(num_steps=-1), ValueError, r"`num_steps`.*num_steps=-1"),
    (dict(schedule="pow:2"), ValueError, r"`schedule`.*schedule='pow:2'"),
    (dict(schedule="powx"), ValueError, r"`schedule`.*schedule='powx'"),
    (dict(temperature=float("nan")), ValueError, r"`temperature`.*temperature=nan"),
    (dict(choice_temperature="4.5"), TypeError, r"`choice_temperature`.*'4\.5'"),
    (dict(cfg_weight=float("-inf")), ValueError, r"`cfg_weight`.*cfg_weight=-inf"),
    (dict(labels=[10]), ValueError, r"`labels`.*\[0, 10\).*\[10\]"),
    (
        dict(labels=["Sandal", "Boot"]),
        ValueError,
        r"unknown class name 'Boot'. Valid names: \['T-shirt/top', .*'Ankle boot'\]",
    ),
    (dict(labels=None, num_samples=None), ValueError, r"`labels`.*`num_samples`.*labels=None"),
    (dict(return_tokens="no"), TypeError, r"`return_tokens`.*'no'"),
    (
        dict(foo=1),
        TypeError,
        r"MaskGITImageGenerator.generate\(\) got an unexpected keyword "
        r"argument 'foo'.*Valid keywords:.*num_steps",
    ),
]


@pytest.mark.parametrize("kwargs, error, match", VQ_BAD)
def test_vq_maskgit_bad_arguments_fail_before_any_work(kwargs, error, match):
    model = _vq_maskgit(tokenizer=False)
    model.class_names = list(FASHION_MNIST_CLASS_NAMES)
    _generate_fails_untouched(model, error, match, **{"labels": [1], **kwargs})


def test_uvim_bad_arguments_fail_before_any_work():
    model = uvim_helpers.tiny_uvim()
    images, _ = uvim_helpers.panoptic_data(n=2)
    bad = [
        (dict(temperature=-0.1), ValueError, r"`temperature`.*-0\.1"),
        (dict(beam_size=4, fan_size=2), ValueError, r"`fan_size`.*beam_size=4, fan_size=2"),
        (dict(beam_size=np.int64(0)), ValueError, r"`beam_size`.*beam_size=0"),
        (dict(temperature_probs="1"), TypeError, r"`temperature_probs`.*'1'"),
        (dict(cfg_weight=0.4), TypeError, r"unexpected keyword argument 'cfg_weight'"),
        (dict(guidance_scale=2.0), TypeError, r"unexpected keyword argument 'guidance_scale'"),
    ]
    for kwargs, error, match in bad:
        _untouched(model, lambda: _expect(error, match, model.generate, images, **kwargs))
    _untouched(
        model,
        lambda: _expect(
            ValueError,
            r"`images`.*\[-1, 1\].*received values in \[255, 255\]",
            model.generate,
            images * 0 + 255.0,
        ),
    )
    _untouched(
        model, lambda: _expect(ValueError, r"`images`.*finite", model.generate, images * np.nan)
    )
    _untouched(
        model,
        lambda: _expect(
            ValueError, r"`batch_size`.*batch_size=0", model.predict, images, batch_size=0
        ),
    )


def test_numpy_scalars_are_accepted():
    model = _causal()
    z = model.generate(
        labels=np.array([3.0, 1.0]),
        num_samples=np.int64(2),
        seed=np.int32(1),
        temperature=np.float32(0.9),
        beam_size=np.int64(1),
        fan_size=np.int32(2),
        return_latents=True,
    )
    assert _np(z).shape == (2, 16, 4) and np.all(np.isfinite(_np(z)))


# --- Greedy decoding (temperature=0) ---------------------------------------------------


def _argmax_component_mean(model, logits):
    params = model.backbone.head.mixture_params(logits)
    idx = np.argmax(_np(params["mixture_logits"]), axis=-1)  # (B, L)
    loc = _np(params["loc"])  # (B, L, K, D)
    return np.take_along_axis(loc, idx[..., None, None], axis=-2)[..., 0, :]


def test_causal_greedy_is_the_argmax_component_mean():
    model = _causal()
    labels = np.array([2, 5], "int32")
    z, lp = model.generate(
        labels=labels, temperature=0, seed=0, return_latents=True, return_log_probs=True
    )
    z2 = model.generate(labels=labels, temperature=0.0, seed=7, return_latents=True)
    z, z2 = _np(z), _np(z2)
    np.testing.assert_array_equal(z, z2)  # No randomness.
    # Teacher-forced full forward on the greedy tokens: each token is the mean of
    # the most probable component of its own predictive mixture.
    logits = model.backbone(
        {"tokens": ops.convert_to_tensor(z), "labels": ops.convert_to_tensor(labels)}
    )
    np.testing.assert_allclose(z, _argmax_component_mean(model, logits), atol=1e-4)
    assert np.all(np.isfinite(_np(lp)))
    sampled = _np(model.generate(labels=labels, temperature=1.0, seed=0, return_latents=True))
    assert np.abs(sampled - z).max() > 1e-2
    # Greedy with guidance and with beams: deterministic and finite.
    greedy = dict(temperature=0, cfg_weight=0.5, beam_size=2, fan_size=2, return_latents=True)
    a, b = (_np(model.generate(labels=labels, seed=seed, **greedy)) for seed in (1, 2))
    np.testing.assert_array_equal(a, b)
    assert np.all(np.isfinite(a))


def test_maskgit_greedy_is_deterministic():
    model = _givt_maskgit()
    kw = dict(
        labels=[1, 4], num_steps=3, temperature=0, choice_temperature=0.0, return_latents=True
    )
    a, b = _np(model.generate(seed=0, **kw)), _np(model.generate(seed=9, **kw))
    np.testing.assert_array_equal(a, b)
    assert np.all(np.isfinite(a))
    vq = _vq_maskgit(tokenizer=False)
    kw = dict(labels=[1, 4], num_steps=3, temperature=0, choice_temperature=0.0, return_tokens=True)
    t1, t2 = _np(vq.generate(seed=0, **kw)), _np(vq.generate(seed=5, **kw))
    np.testing.assert_array_equal(t1, t2)
    # One step of greedy decoding picks the argmax code of every position.
    one = _np(vq.generate(labels=[1, 4], num_steps=1, temperature=0, return_tokens=True))
    start = np.full((2, 16), -1, "int32")
    logits = _np(vq.backbone.token_logits(start, np.array([1, 4], "int32")))
    np.testing.assert_array_equal(one, logits.argmax(-1))


# --- Unconditional sampling (labels=None) ---------------------------------------------


def test_unconditional_sampling_uses_the_nolabel_row():
    model = _causal()
    nolabel = model.backbone.special_ids["nolabel"]
    z = _np(model.generate(num_samples=2, temperature=0, return_latents=True))
    logits = model.backbone(
        {
            "tokens": ops.convert_to_tensor(z),
            "labels": ops.convert_to_tensor(np.full((2,), nolabel, "int32")),
        }
    )
    np.testing.assert_allclose(z, _argmax_component_mean(model, logits), atol=1e-4)
    # A preset CFG default is ignored without labels (nothing to guide towards).
    model.sampling_defaults["cfg_weight"] = 0.5
    assert _np(model.generate(num_samples=3, seed=0, return_latents=True)).shape == (3, 16, 4)
    # The prefix sets the batch when neither labels nor num_samples are given.
    done = _np(model.generate(prefix=z[:, :5], temperature=0, return_latents=True))
    np.testing.assert_array_equal(done[:, :5], z[:, :5])
    # No NOLABEL row (trained without label dropout): refused, naming labels.
    plain = _causal(drop_labels_probability=0.0)
    with pytest.raises(ValueError, match=r"no NOLABEL row.*Received: labels=None"):
        plain.generate(num_samples=2)
    # The VQ MaskGIT: the "no class" token needs label dropout.
    vq = _vq_maskgit(tokenizer=False)
    assert _np(vq.generate(num_samples=2, num_steps=2, return_tokens=True)).shape == (2, 16)
    with pytest.raises(ValueError, match=r"label_dropout=0.*Received: labels=None"):
        _vq_maskgit(label_dropout=0.0, tokenizer=False).generate(num_samples=2)
    gm = _givt_maskgit()
    assert _np(gm.generate(num_samples=2, num_steps=2, return_latents=True)).shape == (2, 16, 4)


# --- Labels by name -------------------------------------------------------------------


def test_labels_by_class_name():
    model = _causal()
    with pytest.raises(ValueError, match="class_names"):
        model.class_names = ["a", "b"]
    model.class_names = list(FASHION_MNIST_CLASS_NAMES)
    by_name = _np(model.generate(labels=["Sneaker", "bag"], temperature=0, return_latents=True))
    by_id = _np(model.generate(labels=[7, 8], temperature=0, return_latents=True))
    np.testing.assert_array_equal(by_name, by_id)
    one = _np(model.generate(labels="Sneaker", num_samples=2, temperature=0, return_latents=True))
    np.testing.assert_array_equal(one[0], by_id[0])
    with pytest.raises(ValueError, match=r"unknown class name 'Boot'. Valid names: .*'Ankle boot'"):
        model.generate(labels=["Boot"])
    # Class names survive get_config / from_config.
    clone = GIVTCausal.from_config(model.get_config())
    assert clone.class_names == list(FASHION_MNIST_CLASS_NAMES)


def test_bundled_fashion_mnist_preset_knows_its_class_names():
    model = GIVTCausal.from_preset("givt_causal_fashion_mnist")
    assert model.class_names == list(FASHION_MNIST_CLASS_NAMES)
    z = _np(model.generate(labels=["Sneaker", "Bag"], seed=0, return_latents=True))
    assert z.shape == (2, 16, 16) and np.all(np.isfinite(z))


# --- keras-hub aliases ----------------------------------------------------------------


def test_guidance_scale_is_cfg_weight_plus_one():
    model = _causal()
    a = _np(model.generate(labels=[1, 2], cfg_weight=0.4, seed=3, return_latents=True))
    b = _np(model.generate(labels=[1, 2], guidance_scale=1.4, seed=3, return_latents=True))
    np.testing.assert_allclose(a, b, atol=1e-6)
    vq = _vq_maskgit(tokenizer=False)
    c = _np(vq.generate(labels=[1, 2], num_steps=2, cfg_weight=2.0, seed=3, return_tokens=True))
    d = _np(vq.generate(labels=[1, 2], num_steps=2, guidance_scale=3.0, seed=3, return_tokens=True))
    np.testing.assert_array_equal(c, d)


# --- Public image range -----------------------------------------------------------------


def test_generated_images_share_one_range():
    vq = _vq_maskgit()
    default = _np(vq.generate(labels=[1, 2], num_steps=2, seed=0))
    unit = _np(vq.generate(labels=[1, 2], num_steps=2, seed=0, image_range=(0, 1)))
    assert default.min() >= -1.0 and default.max() <= 1.0 and default.min() < 0.0
    assert unit.min() >= 0.0 and unit.max() <= 1.0
    np.testing.assert_allclose(default, 2.0 * unit - 1.0, atol=1e-6)
    from keras_givt import BetaVAE

    vae = BetaVAE(
        codeword_dim=4, code_len=16, filters=32, num_res_blocks=1, channel_multipliers=[1, 2]
    )
    model = GIVTCausal(_causal().backbone, vae=vae, seed=0)
    img = _np(model.generate(labels=[1], seed=0))
    img01 = _np(model.generate(labels=[1], seed=0, image_range=(0.0, 1.0)))
    assert img.shape == (1, 8, 8, 3)
    np.testing.assert_allclose(img01, (img + 1.0) / 2.0, atol=1e-6)


@pytest.mark.parametrize("per_channel, multivariate, k", [(True, False, 3), (False, True, 1)])
def test_greedy_token_of_other_heads(per_channel, multivariate, k):
    from keras_givt.mixture.head import GaussianMixtureHead
    from keras_givt.samplers.decoder import greedy_from_logits

    head = GaussianMixtureHead(
        out_dim=4, num_mixtures=k, per_channel_mixtures=per_channel, multivariate=multivariate
    )
    logits = np.random.default_rng(0).normal(size=(5, head.num_logits)).astype("float32")
    x, lp = greedy_from_logits(head, ops.convert_to_tensor(logits))
    params = head.mixture_params(ops.convert_to_tensor(logits))
    loc = _np(params["loc"])
    if multivariate:
        want = loc  # (R, D)
    else:  # Per channel: the mean of each channel's most probable component.
        idx = _np(params["mixture_logits"]).argmax(-1)  # (R, D)
        want = np.take_along_axis(loc, idx[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(_np(x), want, atol=1e-6)
    want_lp = _np(head.log_prob(ops.convert_to_tensor(logits), x))
    want_lp = want_lp.sum(-1) if want_lp.ndim == 2 else want_lp
    np.testing.assert_allclose(_np(lp), want_lp, rtol=1e-5, atol=1e-5)


def test_greedy_with_guidance_is_the_guided_mode():
    from keras_givt.mixture import guidance
    from keras_givt.samplers.decoder import greedy_from_logits

    model = _causal()
    head = model.backbone.head
    rng = np.random.default_rng(1)
    lc = ops.convert_to_tensor(rng.normal(size=(6, head.num_logits)).astype("float32"))
    lu = ops.convert_to_tensor(rng.normal(size=(6, head.num_logits)).astype("float32"))
    x, lp = greedy_from_logits(head, lc, lu, 0.5)
    pc, pu = head.mixture_params(lc), head.mixture_params(lu)
    idx = ops.argmax(pc["mixture_logits"], axis=-1)
    cfg = guidance.CFGDensity(pc, pu, 0.5, mixture_index=idx)
    loc, _, ok = cfg.exact_params()
    want = np.where(_np(ok), _np(loc), _np(cfg.loc_c))
    np.testing.assert_allclose(_np(x), want, atol=1e-6)
    assert np.all(np.isfinite(_np(lp)))
