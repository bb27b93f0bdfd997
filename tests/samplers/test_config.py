"""Sampling configs (`keras_givt.samplers.config`): checks, `replace`, round trips, and
`generate`/`inpaint(sampling=...)` against the same keyword arguments."""

import dataclasses
import json

import numpy as np
import pytest

import keras_givt
from keras_givt import GIVTCausal
from keras_givt import GIVTMaskGIT
from keras_givt.samplers.config import ARSamplingConfig
from keras_givt.samplers.config import DiscreteMaskedSamplingConfig
from keras_givt.samplers.config import MaskedSamplingConfig
from tests import helpers
from tests.models.uvim import helpers as uvim_helpers

CONFIGS = (ARSamplingConfig, MaskedSamplingConfig, DiscreteMaskedSamplingConfig)

_np = helpers.to_numpy


def _causal(**task_kwargs):
    return GIVTCausal(helpers.tiny_guided_backbone(), seed=0, **task_kwargs)


def _givt_maskgit(**task_kwargs):
    return GIVTMaskGIT(helpers.tiny_guided_backbone(masked=True), seed=0, **task_kwargs)


def _vq(**task_kwargs):
    backbone = helpers.tiny_maskgit_backbone(num_classes=3)
    return keras_givt.MaskGITImageGenerator(backbone, label_dropout=0.1, seed=0, **task_kwargs)


# --- Construction checks -----------------------------------------------------------------

BAD = [
    (ARSamplingConfig, dict(temperature=-1.0), ValueError, r"`temperature`.*temperature=-1\.0"),
    (ARSamplingConfig, dict(temperature="hot"), TypeError, r"`temperature`.*'hot'"),
    (ARSamplingConfig, dict(temperature_probs=0.0), ValueError, r"temperature_probs=0\.0"),
    (ARSamplingConfig, dict(cfg_weight=float("nan")), ValueError, r"`cfg_weight`.*nan"),
    (ARSamplingConfig, dict(cfg_weight=True), TypeError, r"`cfg_weight`.*True"),
    (ARSamplingConfig, dict(beam_size=0), ValueError, r"`beam_size`.*beam_size=0"),
    (ARSamplingConfig, dict(fan_size=2.0), TypeError, r"`fan_size`.*fan_size=2\.0"),
    (
        ARSamplingConfig,
        dict(beam_size=2, fan_size=1),
        ValueError,
        r"`fan_size`.*beam_size=2, fan_size=1",
    ),
    (ARSamplingConfig, dict(stochastic_beams="yes"), TypeError, r"`stochastic_beams`.*'yes'"),
    (MaskedSamplingConfig, dict(num_steps=0), ValueError, r"`num_steps`.*num_steps=0"),
    (MaskedSamplingConfig, dict(schedule="exp"), ValueError, r"`schedule`.*schedule='exp'"),
    (MaskedSamplingConfig, dict(schedule=2), TypeError, r"`schedule`.*schedule=2"),
    (MaskedSamplingConfig, dict(choice_temperature=-0.5), ValueError, r"choice_temperature.*-0\.5"),
    (MaskedSamplingConfig, dict(temperature_probs=-1.0), ValueError, r"temperature_probs.*-1\.0"),
    (DiscreteMaskedSamplingConfig, dict(schedule="pow:2"), ValueError, r"schedule='pow:2'"),
    (DiscreteMaskedSamplingConfig, dict(num_steps=-1), ValueError, r"num_steps=-1"),
    (DiscreteMaskedSamplingConfig, dict(cfg_weight=float("-inf")), ValueError, r"=-inf"),
    (DiscreteMaskedSamplingConfig, dict(temperature_probs=1.0), TypeError, r"temperature_probs"),
]


@pytest.mark.parametrize("cls, kwargs, error, match", BAD)
def test_fields_are_checked_on_construction(cls, kwargs, error, match):
    with pytest.raises(error, match=match):
        cls(**kwargs)


def test_values_are_normalised_and_unset_fields_resolve_to_the_builtin_defaults():
    config = ARSamplingConfig(temperature=np.float32(0.5), beam_size=np.int64(2), fan_size=4)
    assert config.temperature == 0.5 and type(config.temperature) is float
    assert type(config.beam_size) is int
    assert config.cfg_weight is None and config.temperature_probs is None
    resolved = config.resolved()
    assert resolved == ARSamplingConfig(
        temperature=0.5,
        temperature_probs=1.0,
        cfg_weight=None,
        beam_size=2,
        fan_size=4,
        stochastic_beams=False,
    )
    assert MaskedSamplingConfig().resolved().num_steps == 16
    assert DiscreteMaskedSamplingConfig().resolved().choice_temperature == 4.5
    assert ARSamplingConfig(temperature=0).greedy and not resolved.greedy
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.temperature = 1.0


@pytest.mark.parametrize("cls", CONFIGS)
def test_replace_and_round_trip(cls):
    config = cls(temperature=0.7, cfg_weight=0.3)
    other = config.replace(temperature=0.0)
    assert other.temperature == 0.0 and other.cfg_weight == 0.3
    assert config.temperature == 0.7  # Frozen: a copy.
    assert config.replace(cfg_weight=None).cfg_weight is None
    with pytest.raises(ValueError, match=r"`temperature`.*temperature=-2"):
        config.replace(temperature=-2)
    with pytest.raises(TypeError, match=r"unexpected field\(s\) \['temprature'\].*Valid fields: "):
        config.replace(temprature=0.5)
    data = json.loads(json.dumps(config.get_config()))
    assert cls.from_config(data) == config
    assert cls.from_config(config.resolved().get_config()) == config.resolved()
    with pytest.raises(TypeError, match=r"unexpected field\(s\) \['foo'\].*temperature"):
        cls.from_config({"foo": 1})


def test_preset_dicts_keep_keys_of_other_configs():
    defaults = {"temperature": 0.9, "num_steps": 8, "beam_size": 2}
    assert ARSamplingConfig.from_defaults(defaults) == ARSamplingConfig(
        temperature=0.9, beam_size=2
    )
    assert MaskedSamplingConfig.from_defaults(defaults) == MaskedSamplingConfig(
        temperature=0.9, num_steps=8
    )


# --- generate / inpaint with `sampling=` ------------------------------------------------


def test_causal_sampling_equals_the_same_keywords():
    model = _causal()
    kw = dict(temperature=0.8, temperature_probs=1.2, cfg_weight=0.4, beam_size=2, fan_size=3)
    a = _np(model.generate(labels=[1, 2], seed=3, return_latents=True, **kw))
    config = ARSamplingConfig(**kw)
    b = _np(model.generate(labels=[1, 2], seed=3, return_latents=True, sampling=config))
    np.testing.assert_array_equal(a, b)
    c = _np(model.generate(labels=[1, 2], seed=3, return_latents=True, sampling=dict(kw)))
    np.testing.assert_array_equal(a, c)
    # A keyword beats the config; guidance_scale is still cfg_weight + 1.
    greedy = _np(model.generate(labels=[1, 2], temperature=0, return_latents=True))
    over = _np(
        model.generate(
            labels=[1, 2],
            sampling=config.replace(beam_size=1),
            temperature=0,
            guidance_scale=1.0,
            return_latents=True,
        )
    )
    np.testing.assert_array_equal(over, greedy)


def test_preset_defaults_apply_and_the_call_beats_them():
    model = _causal(sampling_defaults={"temperature": 0.0})
    assert model.sampling == ARSamplingConfig(
        temperature=0.0, temperature_probs=1.0, beam_size=1, fan_size=1, stochastic_beams=False
    )
    greedy = _np(model.generate(labels=[1, 2], seed=0, return_latents=True))
    np.testing.assert_array_equal(
        greedy, _np(model.generate(labels=[1, 2], seed=5, return_latents=True))
    )
    plain = _causal()
    want = _np(plain.generate(labels=[1, 2], seed=1, temperature=1.0, return_latents=True))
    by_config = model.generate(
        labels=[1, 2], seed=1, sampling=ARSamplingConfig(temperature=1.0), return_latents=True
    )
    np.testing.assert_array_equal(_np(by_config), want)
    by_keyword = model.generate(labels=[1, 2], seed=1, temperature=1.0, return_latents=True)
    np.testing.assert_array_equal(_np(by_keyword), want)
    # A config as `sampling_defaults`: stored as the dict of its set fields.
    same = _causal(sampling_defaults=ARSamplingConfig(temperature=0.0))
    assert same.sampling_defaults == {"temperature": 0.0}
    assert GIVTCausal.from_config(same.get_config()).sampling_defaults == {"temperature": 0.0}
    # Assigning `sampling` replaces the preset's values of its fields.
    same.sampling_defaults["num_steps"] = 4  # Another task's key: kept.
    same.sampling = ARSamplingConfig(temperature=0.5, cfg_weight=0.1)
    assert same.sampling_defaults == {"num_steps": 4, "temperature": 0.5, "cfg_weight": 0.1}


def test_wrong_sampling_values_fail_before_any_work():
    model = _causal()
    seed_before = _np(model.seed_generator.state).copy()
    with pytest.raises(TypeError, match=r"`sampling` must be a ARSamplingConfig.*Masked"):
        model.generate(labels=[1], sampling=MaskedSamplingConfig())
    with pytest.raises(TypeError, match=r"`sampling` must be a ARSamplingConfig.*0\.5"):
        model.generate(labels=[1], sampling=0.5)
    with pytest.raises(TypeError, match=r"unexpected field\(s\) \['num_steps'\]"):
        model.generate(labels=[1], sampling={"num_steps": 3})
    with pytest.raises(ValueError, match=r"`cfg_weight`.*labels=None"):
        model.generate(num_samples=2, sampling=ARSamplingConfig(cfg_weight=0.4))
    with pytest.raises(
        TypeError, match=r"`sampling_defaults` must be a dict or a ARSamplingConfig"
    ):
        _causal(sampling_defaults=[("temperature", 1.0)])
    with pytest.raises(TypeError, match=r"`sampling_defaults` must be a ARSamplingConfig"):
        _causal(sampling_defaults=MaskedSamplingConfig(num_steps=2))
    assert model.generate_functions == {}
    np.testing.assert_array_equal(_np(model.seed_generator.state), seed_before)
    uvim = uvim_helpers.tiny_uvim()
    images, _ = uvim_helpers.panoptic_data(n=1)
    with pytest.raises(ValueError, match=r"GIVTUViM does not use `cfg_weight`.*cfg_weight=0\.4"):
        uvim.generate(images, sampling=ARSamplingConfig(cfg_weight=0.4))
    assert uvim.generate_functions == {}


def test_givt_maskgit_sampling_equals_the_same_keywords():
    model = _givt_maskgit(sampling_defaults={"num_steps": 3, "choice_temperature": 2.0})
    assert model.sampling.num_steps == 3 and model.sampling.schedule == "cosine"
    kw = dict(
        num_steps=2, schedule="linear", temperature=0.7, temperature_probs=0.9, cfg_weight=0.2
    )
    a = _np(model.generate(labels=[1, 2], seed=3, return_latents=True, **kw))
    config = MaskedSamplingConfig(**kw)
    b = _np(model.generate(labels=[1, 2], seed=3, return_latents=True, sampling=config))
    np.testing.assert_array_equal(a, b)
    # Override beats config: num_steps=2 in the config, 3 (the preset's) by keyword.
    c, counts = model.generate(
        labels=[1, 2],
        seed=3,
        sampling=config,
        num_steps=3,
        return_latents=True,
        return_num_masked=True,
    )
    assert _np(counts).shape == (2, 3)
    tokens, _ = helpers.digits_tokens(2)
    mask = np.zeros((2, 16), bool)
    mask[:, :6] = True
    d = _np(model.inpaint(tokens, mask, labels=[1, 2], seed=0, return_latents=True, **kw))
    e = _np(
        model.inpaint(tokens, mask, labels=[1, 2], seed=0, return_latents=True, sampling=config)
    )
    np.testing.assert_array_equal(d, e)


def test_vq_maskgit_sampling_equals_the_same_keywords():
    model = _vq(sampling_defaults={"num_steps": 3})
    kw = dict(
        num_steps=2, schedule="uniform", choice_temperature=1.0, temperature=0.5, cfg_weight=1.0
    )
    a = _np(model.generate(labels=[1, 2], seed=3, return_tokens=True, **kw))
    config = DiscreteMaskedSamplingConfig(**kw)
    b = _np(model.generate(labels=[1, 2], seed=3, return_tokens=True, sampling=config))
    np.testing.assert_array_equal(a, b)
    codes = np.random.default_rng(0).integers(0, 16, size=(2, 16)).astype("int32")
    mask = np.zeros((2, 16), bool)
    mask[:, 4:] = True
    c = _np(model.inpaint(codes, mask, labels=[0, 2], seed=0, return_tokens=True, **kw))
    d = _np(model.inpaint(codes, mask, labels=[0, 2], seed=0, return_tokens=True, sampling=config))
    np.testing.assert_array_equal(c, d)
    _, counts = model.generate(labels=[1], return_tokens=True, return_num_masked=True)
    assert _np(counts).shape == (1, 3)  # The preset's num_steps.
