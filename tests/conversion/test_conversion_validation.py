"""Checkpoint converters refuse corrupt files, NaN/inf arrays, wrong dtypes and
shapes, naming the file and the array (nothing is assigned)."""

import json
import os

import numpy as np
import pytest

from keras_givt.conversion import big_vision
from keras_givt.conversion import big_vision_vae
from keras_givt.conversion import msgpack_reader
from tests import helpers


def _givt(name="givt_ar_perchannel"):
    cdir = helpers.fixture_dir(name)
    params = big_vision.read_npz(os.path.join(cdir, "params.npz"))
    backbone = big_vision.givt_backbone_from_big_vision_config(
        helpers.fixture_entry(name)["model_kwargs"]
    )
    return backbone, params


def _snapshot(model):
    return [np.asarray(w).copy() for w in model.weights]


def _unchanged(model, before):
    for w, b in zip(model.weights, before):
        np.testing.assert_array_equal(np.asarray(w), b)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_array_is_refused_and_named(bad):
    backbone, params = _givt()
    name = "decoder/EncDecBlock1/MLP/Dense_0/kernel"
    params[name] = params[name].copy()
    params[name][3, 5] = bad
    before = _snapshot(backbone)
    with pytest.raises(ValueError) as info:
        big_vision.load_givt_params(backbone, params)
    msg = str(info.value)
    assert repr(name) in msg and "(3, 5)" in msg and repr(np.float32(bad)) in msg
    assert ("1 NaN" in msg) == (bad != bad)
    _unchanged(backbone, before)


def test_nonfinite_in_npz_file_names_file_and_array(tmp_path):
    adaptor = big_vision_vae.build_adaptor(
        dict(
            num_blocks=2,
            num_channels=6,
            num_channels_bottleneck=12,
            pixel_shuffle_patch_size=(1, 2),
        ),
        code_len=8,
    )
    cdir = helpers.fixture_dir("adaptor_pixelshuffle")
    params = big_vision.read_npz(os.path.join(cdir, "params.npz"))
    params["modules_1/gn_2/scale"] = np.full((6,), np.inf, "float32")
    path = tmp_path / "adaptor_params.npz"
    np.savez(path, **params)
    before = _snapshot(adaptor)
    with pytest.raises(ValueError) as info:
        big_vision_vae.load_adaptor_params(adaptor, str(path))
    msg = str(info.value)
    assert "'modules_1/gn_2/scale'" in msg and "6 inf" in msg and str(path) in msg
    _unchanged(adaptor, before)


def test_shape_mismatch_names_array_and_both_shapes(tmp_path):
    backbone, params = _givt()
    params["EmbedTargets/kernel"] = np.zeros((5, 7), "float32")
    path = tmp_path / "p.npz"
    np.savez(path, **params)
    with pytest.raises(ValueError) as info:
        big_vision.load_givt_params(backbone, str(path))
    msg = str(info.value)
    want = tuple(backbone.embedding.token_embedding.kernel.shape)
    assert "'EmbedTargets/kernel'" in msg and "(5, 7)" in msg and str(want) in msg
    assert str(path) in msg


def test_non_numeric_array_is_refused():
    backbone, params = _givt()
    params["decoder/LayerNorm/bias"] = np.array(["a"] * params["decoder/LayerNorm/bias"].size)
    with pytest.raises(TypeError, match=r"'decoder/LayerNorm/bias'.*dtype <U1"):
        big_vision.load_givt_params(backbone, params)


def test_truncated_npz_names_file(tmp_path):
    src = os.path.join(helpers.fixture_dir("givt_ar_perchannel"), "params.npz")
    data = open(src, "rb").read()
    path = tmp_path / "truncated.npz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError) as info:
        big_vision.read_npz(path)
    msg = str(info.value)
    assert str(path) in msg and "truncated or corrupt" in msg and f"{len(data) // 2} bytes" in msg


def test_missing_npz_is_not_called_corrupt(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="nope.npz.*does not exist"):
        big_vision.read_npz(path)


def test_truncated_msgpack_names_file(tmp_path):
    src = os.path.join(helpers.fixture_dir("vae_malib_pixelshuffle"), "params_malib")
    data = open(src, "rb").read()
    path = tmp_path / "vae_truncated.msgpack"
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(ValueError) as info:
        msgpack_reader.read_msgpack(path)
    assert str(path) in str(info.value) and "truncated or corrupt" in str(info.value)


def test_nonfinite_vae_msgpack_array_is_refused(tmp_path):
    # A malib (msgpack) VAE whose EMA params hold a NaN: refused, array named.
    cdir = helpers.fixture_dir("vae_malib_pixelshuffle")
    with open(os.path.join(cdir, "config.json")) as f:
        config = json.load(f)
    vae = big_vision_vae.build_vae(config["model_kwargs"])
    params = big_vision_vae.read_vae_params(os.path.join(cdir, "params_malib"))
    name = sorted(k for k in params if k.endswith("kernel"))[0]
    params[name] = params[name].copy()
    params[name].flat[0] = np.nan
    with pytest.raises(ValueError, match=rf"'{name}'.*1 NaN"):
        big_vision_vae.load_vae_params(vae, params)
