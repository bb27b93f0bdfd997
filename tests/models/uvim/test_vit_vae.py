import json
import os

import keras
import numpy as np
import pytest
from keras import ops

from keras_givt import ViTVAE
from keras_givt.conversion import big_vision_uvim
from keras_givt.models.uvim.resize import linear_resize_matrix
from keras_givt.models.uvim.resize import resize_grid
from tests.conftest import FIXTURES_DIR
from tests.models.uvim import helpers
from tools import parity

UVIM_FIXTURES = os.path.join(FIXTURES_DIR, "big_vision_uvim")


def _index():
    with open(os.path.join(UVIM_FIXTURES, "index.json")) as f:
        return json.load(f)["configs"]


# `make test` also runs tools/check_big_vision_fixtures.py on every config and
# backend; the ViT VAE configs are `large` here to avoid running them twice.
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.large) if n.startswith("vit_vae") else n
        for n in sorted(_index())
    ],
)
def test_big_vision_uvim_fixture_parity(name):
    """Every output of big_vision's ViT VAE / encoder-decoder GIVT fixtures."""
    cdir = os.path.join(UVIM_FIXTURES, name)
    want = dict(np.load(os.path.join(cdir, "outputs.npz")))
    got = parity.run_config(cdir, _index()[name], want)
    for key, value in want.items():
        assert key in got, key
        np.testing.assert_allclose(got[key], value, atol=1e-5, rtol=1e-4, err_msg=key)


def test_resize_matrix_known_answers():
    # Downsampling 4 -> 2 widens the triangle kernel by 2 (antialiasing):
    # output 0 samples at 0.5 with weights (0.75, 0.75, 0.25, 0) / 1.75.
    np.testing.assert_allclose(
        linear_resize_matrix(4, 2)[:, 0], [3 / 7, 3 / 7, 1 / 7, 0], rtol=1e-6
    )
    np.testing.assert_allclose(linear_resize_matrix(5, 5), np.eye(5))
    # Upsampling 2 -> 4: sources at -0.25, 0.25, 0.75, 1.25 (edges clamp).
    np.testing.assert_allclose(
        linear_resize_matrix(2, 4), [[1, 0.75, 0.25, 0], [0, 0.25, 0.75, 1]], rtol=1e-6
    )
    x = np.arange(2 * 4 * 6 * 3, dtype="float32").reshape(2, 4, 6, 3)
    y = ops.convert_to_numpy(resize_grid(x, (2, 3)))
    assert y.shape == (2, 2, 3, 3)
    np.testing.assert_allclose(y.mean(), x.mean(), rtol=1e-5)


def test_encode_decode_shapes_and_channel_order():
    vae = helpers.tiny_vae(inout_specs={"instances": (1, 3), "semantics": (0, 5)})
    x = np.stack([np.full((2, 16, 16), 4), np.full((2, 16, 16), 1)], -1)
    onehot = ops.convert_to_numpy(vae.one_hot(x))
    assert onehot.shape == (2, 16, 16, 8)
    np.testing.assert_array_equal(onehot[0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 1])  # spec order
    mu, logvar = vae.encode(x)
    assert tuple(mu.shape) == tuple(logvar.shape) == (2, 4, 4)
    logits = vae.decode(mu)
    assert list(logits) == ["instances", "semantics"]
    assert tuple(logits["semantics"].shape) == (2, 16, 16, 5)
    maps = ops.convert_to_numpy(vae.decode_to_maps(mu))  # channel order: semantics, instances
    assert maps.shape == (2, 16, 16, 2) and maps[..., 0].max() < 5 and maps[..., 1].max() < 3
    resized = helpers.tiny_vae(bottleneck_resize=True, code_len=9)  # 4x4 grid -> 3x3 codes
    assert tuple(resized.encode(x)[0].shape) == (2, 9, 4)
    assert tuple(resized.decode_raw(np.zeros((1, 9, 4), "float32")).shape) == (1, 16, 16, 8)
    with pytest.raises(ValueError, match="square"):
        helpers.tiny_vae(bottleneck_resize=True, code_len=8)
    with pytest.raises(ValueError, match="inout_specs"):
        helpers.tiny_vae(inout_specs={"semantics": 5})


def test_vae_training_lowers_loss_and_config_round_trip():
    keras.utils.set_random_seed(0)
    vae = helpers.tiny_vae(bottleneck_resize=False)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    _, maps = helpers.panoptic_data()
    before = vae.evaluate(maps, batch_size=16, verbose=0, return_dict=True)
    vae.fit(maps, batch_size=16, epochs=6, verbose=0)
    after = vae.evaluate(maps, batch_size=16, verbose=0, return_dict=True)
    assert after["loss"] < before["loss"] - 0.25, (before, after)
    assert after["reconstruction_loss"] < before["reconstruction_loss"]
    clone = ViTVAE.from_config(vae.get_config())
    assert clone.count_params() == vae.count_params()


def test_scanned_checkpoint_layout(tmp_path):
    """Scanned (layer axis 0) and per-layer npz files load to the same model."""
    vae = helpers.tiny_vae(enc_depth=2)
    rng = np.random.default_rng(0)
    params = {
        name: rng.normal(size=shape).astype("float32")
        for name, (_, shape) in big_vision_uvim.vit_vae_weight_map(vae).items()
    }
    scanned = {k: v for k, v in params.items() if "encoderblock_" not in k}
    for prefix, depth in (("encoder", 2), ("decoder", 1)):
        names = {k.split("/", 2)[2] for k in params if k.startswith(f"{prefix}/encoderblock_")}
        for rest in names:
            scanned[f"{prefix}/encoderblock/{rest}"] = np.stack(
                [params[f"{prefix}/encoderblock_{i}/{rest}"] for i in range(depth)]
            )
    path = str(tmp_path / "vae.npz")
    np.savez(path, **{"params/" + k: v for k, v in scanned.items()})
    x = np.zeros((1, 16, 16, 2), "int32")
    big_vision_uvim.load_vit_vae_params(vae, params)
    want = ops.convert_to_numpy(vae.encode(x)[0])
    other = helpers.tiny_vae(enc_depth=2)
    big_vision_uvim.load_vit_vae_params(other, path)
    np.testing.assert_allclose(ops.convert_to_numpy(other.encode(x)[0]), want, rtol=1e-6)
    bad = dict(params)
    bad["decoder_stem/kernel"] = np.zeros((3, 32), "float32")
    with pytest.raises(ValueError, match="decoder_stem/kernel"):
        big_vision_uvim.load_vit_vae_params(other, bad)
