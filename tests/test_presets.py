"""The big_vision-URL preset path, exercised on local files in the published formats."""

import os
import shutil

import numpy as np
import pytest
from keras import ops

import keras_givt
from keras_givt.conversion import download
from keras_givt.conversion import registry
from keras_givt.models.givt import givt_presets
from keras_givt.models.vae.beta_vae import BetaVAE
from keras_givt.utils import preset_utils
from tests import helpers

GIVT_FIXTURE = "givt_ar_mvdiag_cfg_scan"  # scanned layout, as published
VAE_FIXTURE = "vae_malib_pixelshuffle"  # legacy flax msgpack, as published


@pytest.fixture
def local_preset(tmp_path, monkeypatch):
    """A preset whose URLs are file:// copies of fixture files; cache in tmp."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    src = tmp_path / "published"
    src.mkdir()
    shutil.copy(
        os.path.join(helpers.fixture_dir(GIVT_FIXTURE), "params.npz"), src / "givt_tiny_params.npz"
    )
    shutil.copy(
        os.path.join(helpers.fixture_dir(VAE_FIXTURE), "params_malib"), src / "vae_tiny_params"
    )
    entry = {
        "metadata": {"description": "test", "params": 0, "path": "givt"},
        "task": "GIVTCausal",
        "files": {
            "givt": (src / "givt_tiny_params.npz").as_uri(),
            "vae": (src / "vae_tiny_params").as_uri(),
        },
        "model_kwargs": helpers.fixture_entry(GIVT_FIXTURE)["model_kwargs"],
        "vae_config": helpers.fixture_entry(VAE_FIXTURE)["model_kwargs"],
        "sampling_defaults": {"temperature": 0.95, "cfg_weight": 0.4},
    }
    name = "test_givt_causal_tiny"
    preset_utils.register_presets({name: entry})
    yield name, src, tmp_path
    preset_utils.PRESETS.pop(name, None)


def _fixture_arrays(name):
    d = helpers.fixture_dir(name)
    return dict(np.load(os.path.join(d, "inputs.npz"))), dict(
        np.load(os.path.join(d, "outputs.npz"))
    )


def test_from_preset_downloads_converts_and_caches(local_preset):
    name, src, tmp = local_preset
    model = keras_givt.GIVTCausal.from_preset(name)
    assert model.sampling_defaults == {"temperature": 0.95, "cfg_weight": 0.4}
    inputs, outputs = _fixture_arrays(GIVT_FIXTURE)
    logits = model.backbone({"tokens": inputs["sequence"], "labels": inputs["labels"]})
    np.testing.assert_allclose(
        ops.convert_to_numpy(logits), outputs["logits"], atol=1e-4, rtol=1e-4
    )
    vin, vout = _fixture_arrays(VAE_FIXTURE)
    mu, _ = model.vae.encode(vin["images"])
    np.testing.assert_allclose(ops.convert_to_numpy(mu), vout["mu"], atol=1e-4, rtol=1e-4)
    cache = os.path.join(preset_utils.cache_root(), name)
    assert {"config.json", "task.json", "model.weights.h5"} <= set(os.listdir(cache))
    # Converted once: the published files are no longer needed.
    shutil.rmtree(src)
    again = keras_givt.GIVTCausal.from_preset(name)
    np.testing.assert_allclose(
        ops.convert_to_numpy(again.vae.encode(vin["images"])[0]), vout["mu"], atol=1e-4, rtol=1e-4
    )
    backbone = keras_givt.GIVTBackbone.from_preset(name)
    assert backbone.num_decoder_layers == 2


def test_truncated_checkpoint_is_a_clear_error_and_caches_nothing(local_preset):
    name, src, tmp = local_preset
    data = (src / "vae_tiny_params").read_bytes()
    (src / "vae_tiny_params").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="vae_tiny_params"):
        keras_givt.GIVTCausal.from_preset(name)
    assert not os.path.exists(os.path.join(preset_utils.cache_root(), name))
    root = preset_utils.cache_root()
    assert not os.path.exists(root) or os.listdir(root) == []
    # The bad download was dropped from the cache: a fixed file converts.
    shutil.copy(
        os.path.join(helpers.fixture_dir(VAE_FIXTURE), "params_malib"), src / "vae_tiny_params"
    )
    assert keras_givt.GIVTCausal.from_preset(name).vae is not None


def test_offline_error_names_the_url(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    url = "https://storage.invalid/big_vision/givt/nothing_params.npz"
    with pytest.raises(ValueError, match=r"storage\.invalid.*load it locally"):
        download.fetch(url)


def test_builtin_presets_are_listed():
    assert set(keras_givt.GIVTCausal.presets) == {
        "givt_causal_imagenet256",
        "givt_causal_fashion_mnist",
    }
    assert {"givt_maskgit_imagenet256", "givt_maskgit_imagenet512"} <= set(
        keras_givt.GIVTMaskGIT.presets
    )
    for entry in givt_presets.givt_presets.values():
        for url in entry["files"].values():
            assert url.startswith("https://storage.googleapis.com/big_vision/givt/")
    assert len([k for k, v in preset_utils.PRESETS.items() if v["class"] == "BetaVAE"]) == 5


def test_vae_preset_path(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    src = tmp_path / "vae_params"
    shutil.copy(os.path.join(helpers.fixture_dir(VAE_FIXTURE), "params_malib"), src)
    config = helpers.fixture_entry(VAE_FIXTURE)["model_kwargs"]
    entries = {
        "test_vae_tiny": {
            "metadata": {},
            "task": "BetaVAE",
            "files": {"vae": src.as_uri()},
            "config": config,
        }
    }
    preset_utils.register_presets(entries)
    assert preset_utils.PRESETS["test_vae_tiny"]["build"] == preset_utils.PUBLISHED_BUILDER
    try:
        vae = BetaVAE.from_preset("test_vae_tiny")
        vin, vout = _fixture_arrays(VAE_FIXTURE)
        np.testing.assert_allclose(
            ops.convert_to_numpy(vae.encode(vin["images"])[0]), vout["mu"], atol=1e-4, rtol=1e-4
        )
    finally:
        preset_utils.PRESETS.pop("test_vae_tiny")


def test_published_presets_have_one_entry_shape_and_a_converter():
    published = {k: v for k, v in preset_utils.PRESETS.items() if "path" not in v}
    assert len(published) == 14, sorted(published)
    for name, entry in published.items():
        assert {"metadata", "task", "class", "files", "build"} <= set(entry), name
        assert entry["class"] == entry["task"] and entry["task"] in registry.BUILDERS, name
        assert entry["build"] == preset_utils.PUBLISHED_BUILDER, name
    assert preset_utils.import_callable(preset_utils.PUBLISHED_BUILDER) is registry.build_preset
    with pytest.raises(ValueError, match="module:function"):
        preset_utils.import_callable("no_colon_here")


def test_fetch_passes_local_paths_and_rewrites_gs(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    local = tmp_path / "params.npz"
    local.write_bytes(b"x")
    assert download.fetch(str(local)) == str(local)
    assert download.https_url("gs://big_vision/givt/a.npz") == (
        "https://storage.googleapis.com/big_vision/givt/a.npz"
    )
    copy = download.fetch(local.as_uri())  # file:// URLs are fetched into the cache.
    assert copy.startswith(str(tmp_path / "home")) and open(copy, "rb").read() == b"x"
