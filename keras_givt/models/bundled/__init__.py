"""Small GIVT models trained with the `keras-givt` CLI and shipped inside the package.

Each bundled model is a keras-hub preset folder next to this file
(`<name>/`: config.json, task.json, metadata.json, weights, and a
`model_card.json` with the training command, time and scores). They load
offline: `keras_givt.GIVTCausal.from_preset("givt_causal_fashion_mnist")`
once `register_bundled_presets()` has run (keras_givt/__init__.py) and
`preset_utils.resolve_preset` returns `entry["path"]` for entries that have one.
"""

import json
import os

BUNDLED_DIR = os.path.dirname(os.path.abspath(__file__))

# name -> task class name
BUNDLED = {
    "givt_causal_fashion_mnist": "GIVTCausal",
    "givt_maskgit_fashion_mnist": "GIVTMaskGIT",
    "givt_uvim_mnist_panoptic": "GIVTUViM",
    # Discrete baseline: VQGAN tokens + MaskGIT (`keras-givt train-maskgit-vq`).
    "vq_maskgit_fashion_mnist": "MaskGITImageGenerator",
}


def preset_path(name):
    """The preset folder of bundled model `name`."""
    if name not in BUNDLED:
        raise ValueError(f"Unknown bundled preset {name!r}; available: {sorted(BUNDLED)}.")
    return os.path.join(BUNDLED_DIR, name)


def model_card(name):
    """The `model_card.json` of a bundled model ({} if it is not shipped)."""
    path = os.path.join(preset_path(name), "model_card.json")
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def registry_entries():
    """`{name: {"metadata", "task", "path"}}` for the bundled models that are present."""
    entries = {}
    for name, task in BUNDLED.items():
        path = preset_path(name)
        if not os.path.isfile(os.path.join(path, "task.json")):
            continue  # Not shipped in this build.
        card = model_card(name)
        metadata = {
            "description": card.get("description", f"Bundled {task} on Fashion-MNIST."),
            "params": card.get("params", 0),
            "path": "givt",
            "model_card": card,
        }
        entries[name] = {"metadata": metadata, "task": task, "path": path}
    return entries


def register_bundled_presets():
    """Adds the bundled models to `keras_givt.utils.preset_utils.PRESETS`."""
    from keras_givt.utils import keras_hub_registry
    from keras_givt.utils.preset_utils import register_presets

    register_presets(registry_entries())
    # keras-hub's loaders find every preset that has a local folder by name.
    keras_hub_registry.register_all()
