import os

import numpy as np
import pytest
from keras import ops

import keras_givt
from keras_givt import GIVTUViM
from keras_givt.conversion import big_vision
from keras_givt.conversion import big_vision_uvim
from keras_givt.models.uvim import uvim_presets
from keras_givt.utils import preset_utils
from tests.models.uvim import helpers


def _scan(params, prefix, depth, axis, sep):
    """Per-layer big_vision names -> the scanned layout of the published files."""
    out = {k: v for k, v in params.items() if not k.startswith(f"{prefix}{sep}")}
    rests = {k.split("/", 2)[2] for k in params if k.startswith(f"{prefix}{sep}0/")}
    for rest in rests:
        out[f"{prefix}/{rest}"] = np.stack(
            [params[f"{prefix}{sep}{i}/{rest}"] for i in range(depth)], axis=axis
        )
    return out


def _export(weight_map):
    return {
        name: np.asarray(ops.convert_to_numpy(var), "float32").reshape(shape)
        for name, (var, shape) in weight_map.items()
    }


def _published_files(tmp_path, vae, backbone):
    vae_params = _scan(
        _export(big_vision_uvim.vit_vae_weight_map(vae)),
        "encoder/encoderblock",
        vae.enc_depth,
        0,
        "_",
    )
    vae_params = _scan(vae_params, "decoder/encoderblock", vae.dec_depth, 0, "_")
    givt_params = _export(big_vision.givt_weight_map(backbone))
    givt_params = _scan(givt_params, "decoder/EncDecBlock", backbone.num_decoder_layers, 1, "")
    givt_params = _scan(givt_params, "encoder/encoderblock", backbone.num_layers, 0, "_")
    assert "decoder/EncDecBlock/SelfAttn/query/kernel" in givt_params
    assert "encoder/encoderblock/MlpBlock_0/Dense_0/kernel" in vae_params
    paths = {"vae": str(tmp_path / "vae.npz"), "givt": str(tmp_path / "givt.npz")}
    np.savez(paths["vae"], **vae_params)
    np.savez(paths["givt"], **givt_params)
    return paths


def test_published_presets_are_registered():
    names = set(GIVTUViM.presets)
    assert {"givt_uvim_coco_panoptic", "givt_uvim_nyu_depth"} <= names
    for name in ("givt_uvim_coco_panoptic", "givt_uvim_nyu_depth"):
        entry = preset_utils.PRESETS[name]
        assert set(entry["files"]) == {"givt", "vae"}
        for url in entry["files"].values():
            assert url.startswith(
                "https://storage.googleapis.com/big_vision/givt/"
            ) and url.endswith(".npz")


def test_preset_from_local_files_in_published_format(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    vae = helpers.tiny_vae(enc_depth=2, dec_depth=1)
    backbone = helpers.tiny_backbone()
    rng = np.random.default_rng(0)
    for w in vae.weights + backbone.weights:
        w.assign((0.2 * rng.normal(size=w.shape)).astype("float32"))
    paths = _published_files(tmp_path, vae, backbone)
    # The preset's config only names what the shapes cannot tell; every
    # shape-visible field is read from the files (the big configs are wrong here).
    entry = dict(uvim_presets.uvim_presets["givt_uvim_coco_panoptic"])
    entry["vae_config"] = dict(
        entry["vae_config"], inout_specs={"semantics": [0, 5], "instances": [1, 3]}, code_len=4
    )
    name = "test_tiny_uvim_panoptic"
    preset_utils.register_presets({name: entry})
    try:
        directory = preset_utils.resolve_preset(name, files=paths)
        assert os.path.exists(os.path.join(directory, "config.json"))
        model = GIVTUViM.from_preset(name)
    finally:
        preset_utils.PRESETS.pop(name)
    assert model.task_type == "panoptic" and model.sampling_defaults["beam_size"] == 4
    assert model.backbone.num_mixtures == 2 and model.backbone.per_channel_mixtures is False
    x = np.stack([rng.integers(0, 5, (1, 16, 16)), rng.integers(0, 3, (1, 16, 16))], -1)
    np.testing.assert_allclose(
        ops.convert_to_numpy(model.vae.encode(x)[0]),
        ops.convert_to_numpy(vae.encode(x)[0]),
        rtol=1e-5,
        atol=1e-5,
    )
    image = rng.uniform(-1, 1, (1, 16, 16, 3)).astype("float32")
    tokens = rng.normal(size=(1, 4, 4)).astype("float32")
    np.testing.assert_allclose(
        ops.convert_to_numpy(model.backbone({"tokens": tokens, "image": image})),
        ops.convert_to_numpy(backbone({"tokens": tokens, "image": image})),
        rtol=1e-5,
        atol=1e-5,
    )


def test_preset_class_count_mismatch_is_reported(tmp_path):
    vae = helpers.tiny_vae()
    params = _export(big_vision_uvim.vit_vae_weight_map(vae))
    config = dict(uvim_presets.uvim_presets["givt_uvim_nyu_depth"]["vae_config"])
    with pytest.raises(ValueError, match="input classes"):
        big_vision_uvim.infer_vit_vae_config(params, config)
    assert keras_givt.GIVTUViM is GIVTUViM


def test_bundled_mnist_panoptic_preset_loads():
    model = GIVTUViM.from_preset("givt_uvim_mnist_panoptic")
    assert model.task_type == "panoptic" and model.backbone.input_size == [32, 32]
    assert "PQ" in GIVTUViM.presets["givt_uvim_mnist_panoptic"]["description"]
    # Its VAE reconstructs a label map with a digit-shaped stroke.
    maps = np.zeros((1, 32, 32, 2), "int32")
    maps[0, 8:24, 14:17] = [2, 1]  # a "1" (class 1 + 1), instance 1
    out = model.decode_latents(model.vae.encode(maps)[0])
    assert (out["semantics"] == maps[..., 0]).mean() > 0.9
