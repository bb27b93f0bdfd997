"""BetaVAE: shapes, sampling, config/saving, checkpoint errors, training."""

import os

import keras
import numpy as np
import pytest
from keras import ops

from keras_givt.conversion import big_vision_vae
from keras_givt.models.vae import BetaVAE
from keras_givt.models.vae import backbone_presets
from keras_givt.utils.tensor_utils import to_numpy
from tests.conftest import BIG_VISION_FIXTURES

ODD = dict(
    codeword_dim=3,
    code_len=24,
    filters=32,
    num_res_blocks=1,
    channel_multipliers=[1, 2],
    malib_ckpt=True,
    pixel_shuffle_patch_size=(2, 1),
)


def _images(b=2, s=16, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=(b, s, s, 3)).astype("float32")


def test_encode_decode_shapes_odd_config():
    vae = BetaVAE(**ODD)
    x = _images(2, 16)
    mu, logvar = vae.encode(x)
    # 16x16 -> 8x8 latent grid, shuffle (2, 1) -> 4*8 = 32 tokens of 3*2*1 dims.
    assert tuple(mu.shape) == (2, 32, 6) and tuple(logvar.shape) == (2, 32, 6)
    assert vae.latent_grid_shape(32) == (4, 8)
    y = vae.decode(mu)
    assert tuple(y.shape) == (2, 16, 16, 3)
    y = to_numpy(y)
    assert y.min() >= -1.0 and y.max() <= 1.0
    assert tuple(vae(x).shape) == (2, 16, 16, 3)
    assert to_numpy(vae.kl(mu, logvar)).shape == (2,)
    assert to_numpy(logvar).max() <= 20.0


def test_conv_downsample_and_weight_names():
    vae = BetaVAE(
        codeword_dim=2,
        filters=32,
        num_res_blocks=1,
        channel_multipliers=[1, 2, 2],
        conv_downsample=True,
    )
    vae.build_for_image_size(16)
    names = set(big_vision_vae.vae_weight_map(vae))
    # stem, 2 strided downsample convs, head.
    assert {"cnn_encoder/Conv_0/kernel", "cnn_encoder/Conv_1/bias"} <= names
    assert "cnn_encoder/Conv_3/kernel" in names
    assert "cnn_encoder/Conv_0/bias" not in names
    assert "cnn_decoder/Conv_3/bias" in names and "cnn_decoder/ResBlock_3/Conv_2/kernel" in names
    assert tuple(vae.encode(_images(1, 16))[0].shape) == (1, 16, 2)


def test_sample_seeded_and_kl():
    vae = BetaVAE(**ODD)
    mu = ops.zeros((2, 4, 3))
    logvar = ops.zeros((2, 4, 3))
    a = to_numpy(vae.sample(mu, logvar, seed=1))
    b = to_numpy(vae.sample(mu, logvar, seed=1))
    np.testing.assert_array_equal(a, b)
    c = to_numpy(vae.sample(mu, logvar))
    d = to_numpy(vae.sample(mu, logvar))
    assert not np.allclose(c, d)  # the SeedGenerator advances
    np.testing.assert_allclose(to_numpy(vae.kl(mu, logvar)), 0.0, atol=1e-7)
    m = np.full((1, 2, 2), 2.0, "float32")
    lv = np.full((1, 2, 2), np.log(3.0), "float32")
    want = 4 * 0.5 * (4.0 + 3.0 - 1.0 - np.log(3.0))
    np.testing.assert_allclose(to_numpy(vae.kl(m, lv)), [want], rtol=1e-6)


def test_config_round_trip_and_keras_save(tmp_path):
    vae = BetaVAE(**ODD, beta=0.5, reconstruction_loss="xent", seed=3)
    x = _images(1, 16)
    y = to_numpy(vae(x))
    config = vae.get_config()
    clone = BetaVAE.from_config(config)
    assert clone.get_config() == config
    path = os.path.join(tmp_path, "vae.keras")
    vae.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, BetaVAE)
    assert loaded.get_config() == config
    np.testing.assert_allclose(to_numpy(loaded(x)), y, atol=1e-6)


def test_checkpoint_errors_name_the_array(tmp_path):
    cdir = os.path.join(BIG_VISION_FIXTURES, "vae_plain")
    kwargs = dict(
        codeword_dim=4, code_len=256, filters=32, num_res_blocks=1, channel_multipliers=[1, 2]
    )
    vae = big_vision_vae.build_vae(kwargs, image_size=32)
    params = big_vision_vae.read_vae_params(os.path.join(cdir, "params.npz"))
    bad = dict(params)
    bad["cnn_encoder/Conv_1/bias"] = np.zeros((9,), "float32")
    with pytest.raises(ValueError, match=r"cnn_encoder/Conv_1/bias.*\(9,\).*\(8,\)"):
        big_vision_vae.load_vae_params(vae, bad)
    missing = dict(params)
    del missing["cnn_decoder/ResBlock_2/Conv_2/kernel"]
    with pytest.raises(ValueError, match="missing array 'cnn_decoder/ResBlock_2/Conv_2/kernel'"):
        big_vision_vae.load_vae_params(vae, missing)
    extra = dict(params, **{"cnn_encoder/Foo/kernel": np.zeros(2)})
    with pytest.raises(ValueError, match="unexpected array 'cnn_encoder/Foo/kernel'"):
        big_vision_vae.load_vae_params(vae, extra)


def test_load_beta_vae_msgpack_and_offline_url(tmp_path):
    cdir = os.path.join(BIG_VISION_FIXTURES, "vae_malib_pixelshuffle")
    config = dict(
        codeword_dim=4,
        code_len=128,
        filters=32,
        num_res_blocks=1,
        channel_multipliers=[1],
        malib_ckpt=True,
        pixel_shuffle_patch_size=[1, 2],
    )
    vae = big_vision_vae.load_beta_vae(os.path.join(cdir, "params_malib"), config)
    want = np.load(os.path.join(cdir, "outputs.npz"))
    x = np.load(os.path.join(cdir, "inputs.npz"))["images"]
    np.testing.assert_allclose(to_numpy(vae.encode(x)[0]), want["mu"], atol=1e-5, rtol=1e-4)
    url = "https://storage.invalid/big_vision/givt/not_a_file_params"
    with pytest.raises(ValueError, match="storage.invalid.*local file"):
        big_vision_vae.load_beta_vae(url, config)


def test_presets_form():
    assert len(backbone_presets) == 5
    for name, preset in backbone_presets.items():
        assert preset["task"] == "BetaVAE" and set(preset["files"]) == {"vae"}
        assert preset["files"]["vae"].startswith("https://storage.googleapis.com/big_vision/givt/")
        assert set(preset["metadata"]) == {"description", "params", "path"}
        vae = BetaVAE(**preset["config"])  # the config is constructible
        assert vae.codeword_dim == 16 and vae.downsampling_factor == 16
        assert vae.default_image_size() == 256  # 16x16 tokens, 16x downsampling


def _digit_images(n=16):
    """Real tiny images: sklearn's 8x8 digits, as RGB in [-1, 1]."""
    from sklearn.datasets import load_digits

    images = load_digits().images[:n].astype("float32") / 8.0 - 1.0  # (n, 8, 8)
    return np.repeat(images[..., None], 3, axis=-1)


def test_training_lowers_loss():
    keras.utils.set_random_seed(0)
    vae = BetaVAE(
        codeword_dim=4,
        code_len=16,
        filters=32,
        num_res_blocks=1,
        channel_multipliers=[1],
        beta=1e-3,
        seed=0,
    )
    x = _digit_images(16)
    # jit_compile=False: compile time dominates such a tiny run on TF.
    jit = keras.config.backend() == "jax"
    vae.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=jit)
    hist = vae.fit(x, batch_size=8, epochs=10, verbose=0, shuffle=False)  # 20 steps
    h = hist.history
    assert {"loss", "reconstruction_loss", "kl_loss"} <= set(h)
    assert h["reconstruction_loss"][-1] < 0.5 * h["reconstruction_loss"][0], h
    assert h["loss"][-1] < h["loss"][0]


def test_mixed_precision_policy():
    vae = BetaVAE(
        codeword_dim=4,
        code_len=16,
        filters=32,
        num_res_blocks=1,
        channel_multipliers=[1, 2],
        dtype="mixed_bfloat16",
    )
    mu, logvar = vae.encode(_images(1, 8))
    assert keras.backend.standardize_dtype(mu.dtype) == "bfloat16"
    assert vae.encoder.res_blocks[0].conv_0.kernel.dtype == "float32"
    assert keras.backend.standardize_dtype(vae.kl(mu, logvar).dtype) == "float32"
