"""keras-hub finds keras_givt's presets by name; the README's preset table is current."""

import os
import sys

import keras
import keras_hub
import numpy as np

import keras_givt
from keras_givt.utils import keras_hub_registry, preset_utils
from tests.paths import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))

import preset_table  # noqa: E402


def _weights(model):
    return [np.asarray(keras.ops.convert_to_numpy(v)) for v in model.weights]


def test_keras_hub_backbone_loads_bundled_preset_by_name():
    backbone = keras_hub.models.Backbone.from_preset("givt_causal_fashion_mnist")
    assert isinstance(backbone, keras_givt.GIVTBackbone)
    reference = keras_givt.GIVTCausal.from_preset("givt_causal_fashion_mnist").backbone
    got, want = _weights(backbone), _weights(reference)
    assert len(got) == len(want) > 0
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_every_bundled_preset_is_known_to_keras_hub():
    from keras_hub.src.utils import preset_utils as hub_preset_utils

    bundled = [n for n, e in preset_utils.PRESETS.items() if "path" in e]
    assert bundled
    for name in bundled:
        assert hub_preset_utils.BUILTIN_PRESETS[name]["kaggle_handle"] == (
            preset_utils.PRESETS[name]["path"]
        )


def test_converted_preset_is_registered_once_its_folder_exists(tmp_path, monkeypatch):
    from keras_hub.src.utils import preset_utils as hub_preset_utils

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    name = "givt_causal_imagenet256"
    entry = preset_utils.PRESETS[name]
    # Not converted yet: nothing to point keras-hub at.
    assert keras_hub_registry.register_preset(name, entry) is False
    # A converted preset folder (here a tiny stand-in saved like the converter does).
    backbone = keras_givt.GIVTBackbone(
        seq_len=4,
        out_dim=2,
        num_labels=3,
        emb_dim=16,
        num_decoder_layers=1,
        num_heads=2,
        mlp_dim=32,
        num_mixtures=2,
    )
    folder = os.path.join(preset_utils.cache_root(), name)
    keras_givt.GIVTCausal(backbone).save_to_preset(folder)
    try:
        assert keras_hub_registry.register_preset(name, entry) is True
        assert hub_preset_utils.BUILTIN_PRESETS[name]["kaggle_handle"] == folder
        loaded = keras_hub.models.Backbone.from_preset(name)
        assert isinstance(loaded, keras_givt.GIVTBackbone)
        assert loaded.get_config()["emb_dim"] == 16
    finally:
        hub_preset_utils.BUILTIN_PRESETS.pop(name, None)
        for presets in hub_preset_utils.BUILTIN_PRESETS_FOR_BACKBONE.values():
            presets.pop(name, None)


def test_readme_preset_table_is_current():
    table = preset_table.readme_table(os.path.join(ROOT, "README.md"))
    assert table is not None, "README.md lost its preset-table markers"
    assert (
        table == preset_table.table()
    ), "README.md's preset table is stale: regenerate it with `python tools/preset_table.py`"


def test_every_class_with_from_preset_lists_its_presets():
    import inspect

    listed = set()
    for name in keras_givt.__all__:
        cls = getattr(keras_givt, name)
        if inspect.isclass(cls) and hasattr(cls, "from_preset"):
            presets = cls.presets
            assert isinstance(presets, dict) and presets, name
            for preset, metadata in presets.items():
                assert preset in preset_utils.PRESETS, (name, preset)
                assert metadata.get("description"), (name, preset)
            listed.update(presets)
    assert listed == set(preset_utils.PRESETS)


def test_plain_import_registers_classes_and_presets(tmp_path):
    """A fresh process: `import keras_givt` alone lets Keras and keras-hub find everything."""
    import subprocess

    saved = tmp_path / "task.keras"
    backbone = keras_givt.GIVTBackbone(
        seq_len=4,
        out_dim=2,
        num_labels=3,
        emb_dim=16,
        num_decoder_layers=1,
        num_heads=2,
        mlp_dim=32,
        num_mixtures=2,
    )
    keras_givt.GIVTCausal(backbone).save(str(saved))
    code = (
        "import sys, keras, keras_hub, keras_givt\n"
        f"task = keras.saving.load_model({str(saved)!r})\n"
        "assert type(task).__name__ == 'GIVTCausal', type(task)\n"
        "b = keras_hub.models.Backbone.from_preset('givt_causal_fashion_mnist')\n"
        "assert type(b).__name__ == 'GIVTBackbone', type(b)\n"
        "print('ok')\n"
    )
    env = dict(os.environ, PYTHONPATH=ROOT, KERAS_BACKEND=keras.config.backend())
    env.pop("KERAS_GIVT_LAZY_IMPORT", None)
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]
