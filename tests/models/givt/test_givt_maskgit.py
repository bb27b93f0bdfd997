import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_givt import GIVTBackbone
from keras_givt import GIVTMaskGIT
from keras_givt.samplers.config import MaskedSamplingConfig
from keras_givt.samplers import schedules
from keras_givt.samplers.masked import pixel_mask_to_token_mask
from tests import helpers


def _np(x):
    return ops.convert_to_numpy(x)


def _model(seed=0, randomize=True, **overrides):
    backbone = helpers.tiny_guided_backbone(
        masked=True, seed=seed, randomize=randomize, **overrides
    )
    return GIVTMaskGIT(backbone, seed=seed)


def _expected_counts(seq_len, num_steps, schedule, n0=None):
    n0 = seq_len if n0 is None else n0
    unknown, out = n0, []
    for s in range(num_steps):
        r = (s + 1) / num_steps
        ratio = float(_np(schedules.mask_ratio(r, schedule)))
        mask_len = max(min(math.floor(n0 * ratio), unknown - 1), 0)
        out.append(mask_len)
        unknown = mask_len
    return out


@pytest.mark.parametrize(
    "num_steps, schedule", [(16, "cosine"), (5, "pow:2"), (4, "linear"), (6, "arccos")]
)
def test_generation_follows_the_schedule(num_steps, schedule):
    model = _model()
    z, counts = model.generate(
        labels=[1, 2],
        num_steps=num_steps,
        schedule=schedule,
        seed=0,
        return_latents=True,
        return_num_masked=True,
    )
    counts = _np(counts)
    want = _expected_counts(16, num_steps, schedule)
    np.testing.assert_array_equal(counts, np.array([want, want], "float32"))
    assert counts[:, -1].sum() == 0
    assert np.all(np.isfinite(_np(z))) and np.abs(_np(z)).max() > 0


def test_seeded_reproducibility_and_no_retrace():
    Counting, traces = helpers.counting_task(GIVTMaskGIT)
    model = Counting(_model().backbone, seed=0)
    a = _np(model.generate(labels=[1, 2], num_steps=4, seed=5, cfg_weight=0.4, return_latents=True))
    b = _np(model.generate(labels=[1, 2], num_steps=4, seed=5, cfg_weight=0.4, return_latents=True))
    np.testing.assert_array_equal(a, b)
    c = _np(
        model.generate(
            labels=[1, 2],
            num_steps=4,
            seed=6,
            cfg_weight=0.1,
            temperature=0.5,
            choice_temperature=3.0,
            return_latents=True,
        )
    )
    assert np.abs(a - c).max() > 1e-3
    assert len(model.generate_functions) == 1
    if keras.config.backend() != "torch":
        assert len(traces) == 1


def test_inpainting_keeps_unmasked_latents_bit_identical():
    model = _model()
    tokens, labels = helpers.digits_tokens(2)
    mask = np.zeros((2, 16), bool)
    mask[0, :5] = True
    mask[1, 7:12] = True
    out = _np(model.inpaint(tokens, mask, labels=labels, num_steps=4, seed=0, return_latents=True))
    np.testing.assert_array_equal(out[~mask], tokens[~mask])
    assert np.abs(out[mask] - tokens[mask]).min() > 0
    # Class-conditional editing: same region, another label, other content.
    other = _np(
        model.inpaint(tokens, mask, labels=[9, 9], num_steps=4, seed=0, return_latents=True)
    )
    np.testing.assert_array_equal(other[~mask], tokens[~mask])
    assert np.abs(other[mask] - out[mask]).max() > 1e-3


def test_inpainting_schedule_scales_with_the_region():
    model = _model()
    tokens, labels = helpers.digits_tokens(1)
    mask = np.zeros((1, 16), bool)
    mask[0, :6] = True
    bb = model.backbone
    sampling = MaskedSamplingConfig(
        num_steps=4, schedule="cosine", choice_temperature=1.0, temperature=1.0
    )
    out, counts = model._run(tokens, mask, labels, sampling, seed=0)
    np.testing.assert_array_equal(_np(counts)[0], _expected_counts(16, 4, "cosine", n0=6))


def test_pixel_mask_to_token_mask():
    mask = np.zeros((1, 8, 8), bool)
    mask[0, 0, 0] = True  # top-left pixel -> token 0
    mask[0, 7, 5] = True  # bottom row, column 5 -> token (3, 2) = 14
    tokens = _np(pixel_mask_to_token_mask(mask, (4, 4)))
    assert tokens.shape == (1, 16) and set(np.flatnonzero(tokens[0])) == {0, 14}
    with pytest.raises(ValueError, match="multiple of the token grid"):
        pixel_mask_to_token_mask(np.zeros((1, 7, 8), bool), (4, 4))


def test_training_mask_respects_min_rate():
    model = _model(min_masking_rate_training=0.5)
    mask = _np(model.training_mask(256))
    frac = mask.mean(1)
    assert frac.min() >= 0.5 - 1e-6 and frac.max() <= 1.0
    assert mask.sum(1).min() >= 8


def test_fit_on_digits_lowers_masked_nll():
    tokens, labels = helpers.digits_tokens(256)
    model = _model(randomize=False)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    # Fixed evaluation masks, so before/after see the same masked positions.
    rng = np.random.default_rng(0)
    eval_mask = rng.random((256, 16)) < 0.5
    data = {"latents": tokens, "labels": labels, "input_mask": eval_mask}
    before = model.evaluate(data, batch_size=64, verbose=0)
    model.fit({"latents": tokens, "labels": labels}, batch_size=32, epochs=4, verbose=0)
    after = model.evaluate(data, batch_size=64, verbose=0)
    assert after < before - 0.2, (before, after)


def test_masked_loss_ignores_unmasked_positions():
    model = _model()
    tokens, labels = helpers.digits_tokens(4)
    mask = np.zeros((4, 16), bool)
    mask[:, :3] = True
    out = model({"latents": tokens, "labels": labels, "input_mask": mask})
    loss = float(_np(model.compute_loss(y_pred=out)))
    lp = _np(model.backbone.log_prob(out["logits"], tokens))
    np.testing.assert_allclose(loss, -lp[:, :3].mean(), rtol=1e-5)


def test_bad_arguments():
    model = _model()
    with pytest.raises(ValueError, match="schedule|method"):
        model.generate(labels=[1], schedule="exp")
    with pytest.raises(ValueError, match="num_steps"):
        model.generate(labels=[1], num_steps=0)
    with pytest.raises(ValueError, match="style='masked'"):
        GIVTMaskGIT(GIVTBackbone(**helpers.tiny_kwargs()))
    with pytest.raises(ValueError, match=r"token mask"):
        model.inpaint(np.zeros((2, 16, 4), "float32"), np.zeros((2, 15), bool), labels=[1, 2])
