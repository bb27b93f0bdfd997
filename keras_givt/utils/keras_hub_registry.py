"""keras-hub finds keras_givt's presets by name.

keras-hub's own loaders (`keras_hub.models.Backbone.from_preset(name)`,
`keras_hub.models.Task.from_preset(name)`) look a name up in keras-hub's
built-in preset table and then read a keras-hub preset folder. keras_givt's
presets come in two kinds:

- bundled models (shipped inside the package as keras-hub preset folders):
  registered at import, so keras-hub loads them by name straight away;
- big_vision / MaskGIT checkpoints: published in their own formats, so they
  need keras_givt's converter once (`keras_givt.GIVTCausal.from_preset(name)`
  downloads and converts them into the Keras cache). A converted preset is
  registered as soon as its folder exists (at import, or right after the
  conversion), after which keras-hub finds it by name too.

The VAE and VQGAN tokenizers (`BetaVAE`, `VQGANTokenizer`) are plain
`keras.Model`s, not keras-hub `Backbone`s, so keras-hub's loaders do not take
them; load them with their own `from_preset`.
"""

import os

# keras_givt task class name -> the backbone class keras-hub checks the
# preset's config.json against (resolved lazily: importing the models here
# would import Keras models into `keras_givt.utils`).
_TASK_MODULES = {
    "GIVTCausal": "keras_givt.models.givt.givt_causal",
    "GIVTMaskGIT": "keras_givt.models.givt.givt_maskgit",
    "GIVTUViM": "keras_givt.models.uvim.givt_uvim",
    "MaskGITImageGenerator": "keras_givt.models.vq_maskgit.maskgit_image_generator",
}


def _task_class(class_name):
    import importlib

    module = _TASK_MODULES.get(class_name)
    if module is None:
        return None
    return getattr(importlib.import_module(module), class_name)


def preset_folder(name, entry):
    """The local keras-hub preset folder of a registered preset, or None.

    Args:
        name: the preset name.
        entry: its entry in `keras_givt.utils.preset_utils.PRESETS`.
    """
    from keras_givt.utils import preset_utils

    if "path" in entry:
        folder = entry["path"]
    else:
        folder = os.path.join(preset_utils.cache_root(), name)
    return folder if os.path.isfile(os.path.join(folder, "config.json")) else None


def register_preset(name, entry):
    """Makes keras-hub resolve `name` to its local folder; False if it has none.

    Args:
        name: the preset name.
        entry: its entry in `keras_givt.utils.preset_utils.PRESETS`.
    """
    from keras_hub.src.utils import preset_utils as hub_preset_utils

    folder = preset_folder(name, entry)
    task_cls = _task_class(entry.get("class"))
    if folder is None or task_cls is None:
        return False
    hub_entry = {"metadata": dict(entry.get("metadata", {})), "kaggle_handle": folder}
    hub_preset_utils.register_presets({name: hub_entry}, task_cls.backbone_cls)
    return True


def register_all():
    """Registers every keras_givt preset that has a local folder; returns their names."""
    from keras_givt.utils import preset_utils

    return [name for name, entry in preset_utils.PRESETS.items() if register_preset(name, entry)]
