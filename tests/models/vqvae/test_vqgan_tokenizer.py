"""VQGANTokenizer: MaskGIT parity, training on real digits, adversarial step, saving."""

import json
import os

import keras
import numpy as np
import pytest
from keras import ops

import keras_givt
from keras_givt.conversion import maskgit
from keras_givt.models.vqvae import DeadCodeRestart
from keras_givt.models.vqvae import StyleGANDiscriminator
from tests.conftest import FIXTURES_DIR
from tools import parity

MASKGIT_FIXTURES = os.path.join(FIXTURES_DIR, "maskgit")
TINY = dict(
    filters=32, num_res_blocks=1, channel_multipliers=[1, 1], embedding_dim=4, codebook_size=16
)


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def digits_images(num=64, seed=0):
    """Real tiny data: sklearn's 8x8 digits as (N, 8, 8, 3) images in [0, 1]."""
    from sklearn.datasets import load_digits

    data = load_digits()
    idx = np.random.default_rng(seed).permutation(len(data.images))[:num]
    images = data.images[idx].astype("float32") / 16.0
    return np.repeat(images[..., None], 3, axis=-1), data.target[idx].astype("int32")


# `make test` also runs tools/check_big_vision_fixtures.py on every config and
# backend; the slowest config is `large` here to avoid running it twice.
@pytest.mark.parametrize(
    "name",
    [
        pytest.param("vqgan_tokenizer", marks=pytest.mark.large),
        "maskgit_transformer",
        "maskgit_mask_schedule",
    ],
)
def test_maskgit_fixture_parity(name):
    with open(os.path.join(MASKGIT_FIXTURES, "index.json")) as f:
        entry = json.load(f)["configs"][name]
    cdir = os.path.join(MASKGIT_FIXTURES, name)
    want = dict(np.load(os.path.join(cdir, "outputs.npz")))
    got = parity.run_config(cdir, entry, want)
    assert set(got) == set(want)
    for key, value in want.items():
        if np.issubdtype(value.dtype, np.integer):
            np.testing.assert_array_equal(got[key], value, err_msg=key)
        else:
            np.testing.assert_allclose(got[key], value, atol=1e-5, rtol=1e-4, err_msg=key)


def test_trains_on_digits_lowers_loss_and_uses_many_codes():
    images, _ = digits_images(64)
    keras.utils.set_random_seed(0)
    tok = keras_givt.VQGANTokenizer(**TINY, dead_code_threshold=1.0)
    tok.build_for_image_size(8)
    tok.compile(optimizer=keras.optimizers.Adam(3e-3))
    restart = DeadCodeRestart(every_n_steps=3)
    hist = tok.fit(images, epochs=4, batch_size=16, verbose=0, callbacks=[restart]).history
    assert hist["loss"][-1] < hist["loss"][0]
    assert hist["reconstruction_loss"][-1] < hist["reconstruction_loss"][0]
    ids = _np(tok.encode_to_indices(images))
    assert ids.shape == (64, 4, 4) and len(np.unique(ids)) > 1
    assert hist["perplexity"][-1] > 1.0
    recon = _np(tok.decode_from_indices(ids))
    assert recon.shape == images.shape
    # Dead codes were restarted during fit and training went on from there.
    assert restart.restarted > 0


def test_adversarial_and_perceptual_step_updates_both_networks():
    images, _ = digits_images(8)
    features = keras.Sequential([keras.layers.Conv2D(4, 3, padding="same")])
    features.build((None, 8, 8, 3))
    tok = keras_givt.VQGANTokenizer(
        **TINY,
        discriminator=StyleGANDiscriminator(filters=8, channel_multipliers=[1], dense_units=8),
        adversarial_loss="hinge",
        r1_gamma=1.0,
        perceptual_network=features,
    )
    tok.build_for_image_size(8)
    tok.compile(optimizer=keras.optimizers.Adam(1e-3))
    g0 = [_np(v).copy() for v in tok.decoder.trainable_variables]
    d0 = [_np(v).copy() for v in tok.discriminator.trainable_variables]
    p0 = [_np(v).copy() for v in features.weights]
    hist = tok.fit(images, epochs=1, batch_size=8, verbose=0).history
    assert {"generator_loss", "discriminator_loss", "perceptual_loss"} <= set(hist)
    assert max(np.abs(a - _np(b)).max() for a, b in zip(g0, tok.decoder.trainable_variables)) > 0
    assert (
        max(np.abs(a - _np(b)).max() for a, b in zip(d0, tok.discriminator.trainable_variables)) > 0
    )
    # The user's feature network stays frozen.
    for a, b in zip(p0, features.weights):
        np.testing.assert_array_equal(a, _np(b))


def test_adversarial_loss_formulas():
    tok = keras_givt.VQGANTokenizer(
        **TINY, discriminator=StyleGANDiscriminator(8, [1], 8), r1_gamma=0.0
    )
    tok.build_for_image_size(8)
    real, _ = digits_images(4)
    fake = real[::-1].copy()
    d_real, d_fake = _np(tok.discriminator(real)), _np(tok.discriminator(fake))
    softplus = lambda v: np.log1p(np.exp(v))  # noqa: E731
    g, d = tok.adversarial_losses(real, fake)
    np.testing.assert_allclose(_np(g), softplus(-d_fake).mean(), rtol=1e-5)
    np.testing.assert_allclose(
        _np(d), softplus(-d_real).mean() + softplus(d_fake).mean(), rtol=1e-5
    )
    tok.adversarial_loss = "hinge"
    g, d = tok.adversarial_losses(real, fake)
    np.testing.assert_allclose(_np(g), -d_fake.mean(), rtol=1e-5)
    want = np.maximum(1 - d_real, 0).mean() + np.maximum(1 + d_fake, 0).mean()
    np.testing.assert_allclose(_np(d), want, rtol=1e-5)
    # R1 = γ/2 · E‖∇ₓD(x)‖², positive.
    tok.r1_gamma = 2.0
    _, d_r1 = tok.adversarial_losses(real, fake)
    assert float(_np(d_r1)) > float(_np(d))


def test_save_and_load_round_trip(tmp_path):
    tok = keras_givt.VQGANTokenizer(**TINY)
    tok.build_for_image_size(8)
    images, _ = digits_images(2)
    path = str(tmp_path / "tok.keras")
    tok.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_array_equal(
        _np(again.encode_to_indices(images)), _np(tok.encode_to_indices(images))
    )
    assert again.get_config() == tok.get_config()


def test_checkpoint_errors(tmp_path):
    config = {
        "filters": 32,
        "num_res_blocks": 1,
        "channel_multipliers": [1, 2],
        "embedding_dim": 8,
        "codebook_size": 16,
    }  # The fixture has 32 codes.
    path = os.path.join(MASKGIT_FIXTURES, "vqgan_tokenizer", "checkpoint")
    with pytest.raises(ValueError, match="quantizer/codebook"):
        maskgit.load_vqgan_tokenizer(path, config, image_size=16)
    with pytest.raises(ValueError, match="Unknown MaskGIT vqvae option"):
        maskgit.tokenizer_kwargs({"filterz": 3})
    bad = tmp_path / "truncated"
    bad.write_bytes(open(path, "rb").read()[:1000])
    with pytest.raises(ValueError, match="truncated"):
        maskgit.read_params(str(bad))
    with pytest.raises(ValueError, match="reconstruction_loss"):
        keras_givt.VQGANTokenizer(**TINY, reconstruction_loss="l3")
