"""`inpaint` of GIVT-MaskGIT (β-VAE) and the discrete MaskGIT (VQGAN): argument checks,
known pixels bit-identical (paste-back), all-known / all-unknown masks, image range."""

import numpy as np
import pytest

import keras_givt
from keras_givt import BetaVAE
from keras_givt import GIVTMaskGIT
from tests import helpers

_np = helpers.to_numpy


def _givt(vae=True, **overrides):
    backbone = helpers.tiny_guided_backbone(masked=True, **overrides)
    beta_vae = None
    if vae:  # 8x8x3 images <-> 4x4 grid of 4-dim latents.
        beta_vae = BetaVAE(
            codeword_dim=4, code_len=16, filters=32, num_res_blocks=1, channel_multipliers=[1, 2]
        )
    return GIVTMaskGIT(backbone, vae=beta_vae, seed=0)


def _vq(label_dropout=0.1):
    backbone = helpers.tiny_maskgit_backbone(num_classes=3)
    tok = helpers.tiny_vqgan_tokenizer()
    return keras_givt.MaskGITImageGenerator(backbone, tok, label_dropout=label_dropout, seed=0)


def _images(b=2, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=(b, 8, 8, 3)).astype("float32")


def _box_mask(b=2):
    mask = np.zeros((b, 8, 8), bool)
    mask[:, 2:6, 0:4] = True  # Tokens (1..2, 0..1) of the 4x4 grid.
    return mask


def _untouched(model, error, match, **kwargs):
    """`inpaint(**kwargs)` must fail before encoding, compiling or drawing anything."""
    seed_before = _np(model.seed_generator.state).copy()
    encoded = []
    cls = type(model)
    original = cls._encode_for_inpaint
    cls._encode_for_inpaint = lambda self, x: encoded.append(1) or original(self, x)
    try:
        with pytest.raises(error, match=match):
            model.inpaint(**kwargs)
    finally:
        cls._encode_for_inpaint = original
    assert encoded == []
    assert model.generate_functions == {}
    np.testing.assert_array_equal(_np(model.seed_generator.state), seed_before)


@pytest.mark.parametrize("family", ["givt", "vq"])
def test_bad_inpaint_arguments_fail_before_any_work(family):
    model = _givt() if family == "givt" else _vq()
    images, mask = _images(), _box_mask()
    bad = [
        (
            dict(mask=mask[:, :4]),
            ValueError,
            r"`mask` must be a \(2, 8, 8\) pixel mask.*" r"Received: mask with shape \(2, 4, 8\)",
        ),
        (dict(mask=mask.astype("float32") * 2), ValueError, r"`mask`.*only 0 and 1.*2\."),
        (dict(mask=np.array([["a"]])), TypeError, r"`mask`.*'a'"),
        (
            dict(images=images * 127.5 + 127.5),
            ValueError,
            r"`images` must be float images in \[-1, 1\].*received values in \[0\.\d+, 254\.\d+\]",
        ),
        (dict(images=(images * 127.5 + 127.5).astype("uint8")), ValueError, r"`images`.*\[-1, 1\]"),
        (
            dict(images=np.where(mask[..., None], np.nan, images)),
            ValueError,
            r"`images` must be finite.*non-finite",
        ),
        (dict(images=images[0, :, :, 0]), ValueError, r"`images`.*shape \(8, 8\)"),
        (
            dict(labels=[0, 1, 2]),
            ValueError,
            r"`labels` must be one label or 2 labels.*\[0, 1, 2\]",
        ),
        (dict(labels=[0.5, 1]), ValueError, r"`labels`.*0\.5"),
        (dict(paste_back="yes"), TypeError, r"`paste_back`.*'yes'"),
        (dict(image_range=(0, 2)), ValueError, r"`image_range`.*\(0, 2\)"),
        (dict(temperature=-1), ValueError, r"`temperature`.*temperature=-1"),
        (dict(num_steps=0), ValueError, r"`num_steps`.*num_steps=0"),
        (dict(labels=None, cfg_weight=1.0), ValueError, r"`cfg_weight`.*labels=None"),
        (dict(guidance_scale=2.0, cfg_weight=1.0), TypeError, r"either `cfg_weight`"),
        (dict(mask_image=mask), TypeError, r"unexpected keyword argument 'mask_image'"),
    ]
    for kwargs, error, match in bad:
        call = dict(images=images, mask=mask, labels=[1, 2], num_steps=2)
        call.update(kwargs)
        _untouched(model, error, match, **call)


def test_givt_token_inputs_are_checked():
    model = _givt(vae=False)
    tokens, labels = helpers.digits_tokens(2)
    mask = np.zeros((2, 16), bool)
    _untouched(
        model,
        ValueError,
        r"`images` as latents must be \(B, 16, 4\).*\(2, 16, 3\)",
        images=tokens[..., :3],
        mask=mask,
        labels=labels,
    )
    _untouched(
        model,
        ValueError,
        r"token mask.*Received: mask with shape \(2, 15\)",
        images=tokens,
        mask=mask[:, :15],
        labels=labels,
    )
    vq = _vq()
    codes = np.zeros((2, 16), "int32")
    _untouched(
        vq,
        ValueError,
        r"`images` as tokens must be integer code ids in \[0, 16\)",
        images=codes + 16,
        mask=mask,
        labels=[0, 1],
    )


@pytest.mark.parametrize("family", ["givt", "vq"])
def test_known_pixels_come_back_bit_identical(family):
    model = _givt() if family == "givt" else _vq()
    images, mask = _images(), _box_mask()
    out = _np(model.inpaint(images, mask, labels=[1, 2], num_steps=2, seed=0))
    assert out.shape == images.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out[~mask], images[~mask])
    assert np.abs(out[mask] - images[mask]).max() > 1e-3
    raw = _np(model.inpaint(images, mask, labels=[1, 2], num_steps=2, seed=0, paste_back=False))
    np.testing.assert_array_equal(raw[mask], out[mask])  # Same decode under the mask.
    assert np.abs(raw[~mask] - images[~mask]).max() > 1e-3  # The raw decode moves them.
    # (H, W) masks apply to every image; 0/1 numbers mean the same as bools.
    same = _np(model.inpaint(images, mask[0].astype("int32"), labels=[1, 2], num_steps=2, seed=0))
    np.testing.assert_array_equal(same, out)
    # [0, 1] images in and out with image_range=(0, 1).
    unit = (images + 1.0) / 2.0
    out01 = _np(model.inpaint(unit, mask, labels=[1, 2], num_steps=2, seed=0, image_range=(0, 1)))
    np.testing.assert_array_equal(out01[~mask], unit[~mask])
    np.testing.assert_allclose(out01[mask], (out[mask] + 1.0) / 2.0, atol=1e-5)


@pytest.mark.parametrize("family", ["givt", "vq"])
def test_all_known_returns_the_input_and_all_unknown_is_generation(family):
    model = _givt() if family == "givt" else _vq()
    images = _images()
    keep_all = np.zeros((2, 8, 8), bool)
    out, counts = model.inpaint(
        images, keep_all, labels=[1, 2], num_steps=3, seed=0, return_num_masked=True
    )
    np.testing.assert_array_equal(_np(out), images)
    np.testing.assert_array_equal(_np(counts), np.zeros((2, 3)))
    assert model.generate_functions == {}  # Nothing sampled.
    regen = np.ones((8, 8), bool)
    latents = "return_latents" if family == "givt" else "return_tokens"
    a = _np(model.inpaint(images, regen, labels=[1, 2], num_steps=3, seed=4, **{latents: True}))
    b = _np(model.generate(labels=[1, 2], num_steps=3, seed=4, **{latents: True}))
    np.testing.assert_array_equal(a, b)
    # Labels by name and unconditional editing (labels=None: no class).
    model.class_names = ["a", "b", "c"] if family == "vq" else [str(i) for i in range(10)]
    mask = _box_mask()
    by_name = _np(model.inpaint(images, mask, labels=model.class_names[1], num_steps=2, seed=0))
    by_id = _np(model.inpaint(images, mask, labels=1, num_steps=2, seed=0))
    np.testing.assert_array_equal(by_name, by_id)
    free = _np(model.inpaint(images, mask, labels=None, num_steps=2, seed=0))
    np.testing.assert_array_equal(free[~mask], images[~mask])


def test_vq_token_inputs_keep_their_codes():
    model = _vq()
    codes = np.random.default_rng(0).integers(0, 16, size=(2, 4, 4)).astype("int32")
    mask = np.zeros((2, 4, 4), bool)
    mask[:, 0] = True
    out = _np(model.inpaint(codes, mask, labels=[0, 2], num_steps=2, seed=0, return_tokens=True))
    np.testing.assert_array_equal(out.reshape(2, 4, 4)[~mask], codes[~mask])
    same = _np(
        model.inpaint(
            codes.reshape(2, 16),
            mask.reshape(2, 16),
            labels=[0, 2],
            num_steps=2,
            seed=0,
            return_tokens=True,
        )
    )
    np.testing.assert_array_equal(same, out)
