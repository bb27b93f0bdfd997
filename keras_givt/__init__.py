"""keras_givt: GIVT and friends for Keras 3 (JAX, TensorFlow, PyTorch).

`import keras_givt` imports every model class (so Keras deserialisation finds
them) and registers every preset (big_vision URLs and the models bundled in the
package), with keras-hub's loaders too: after it,
`keras_hub.models.Backbone.from_preset("givt_causal_fashion_mnist")` works.
It imports nothing of `keras_givt.conversion` (the checkpoint converters,
which import the models, never the other way round): they load when a
published preset is first converted.

The `keras-givt` console script (`keras_givt_cli.py`) sets
`KERAS_GIVT_LAZY_IMPORT=1` while it imports the package: the classes and
subpackages then load on first use (PEP 562 `__getattr__`), so `--help` and
usage errors answer without importing Keras or a backend; the CLI loads
everything (`_load_all`) once the arguments are checked.
"""

import importlib
import os

__version__ = "0.1.0"

# Top-level name -> module that defines it.
_CLASSES = {
    "GIVTBackbone": "keras_givt.models.givt.givt_backbone",
    "GIVTCausal": "keras_givt.models.givt.givt_causal",
    "GIVTMaskGIT": "keras_givt.models.givt.givt_maskgit",
    "GIVTUViM": "keras_givt.models.uvim.givt_uvim",
    "ViTVAE": "keras_givt.models.uvim.vit_vae",
    "MaskGITBackbone": "keras_givt.models.vq_maskgit.maskgit_backbone",
    "MaskGITImageGenerator": "keras_givt.models.vq_maskgit.maskgit_image_generator",
    "VQGANTokenizer": "keras_givt.models.vqvae.vqgan_tokenizer",
    "BetaVAE": "keras_givt.models.vae.beta_vae",
    "IRevNetAdaptor": "keras_givt.models.adaptor.irevnet_adaptor",
    "ImagePreprocessor": "keras_givt.models.image_preprocessor",
}
_SUBPACKAGES = ("layers", "mixture", "models", "samplers", "metrics", "datasets")

__all__ = sorted(_CLASSES) + list(_SUBPACKAGES) + ["__version__"]

# The presets: data-only tables of the published checkpoints (module, dict), registered in
# this order (a later entry of the same name wins), then the bundled models. Their
# converter (`keras_givt.conversion.registry`) is imported only when a published preset
# is first converted: `import keras_givt` imports nothing of `keras_givt.conversion`.
_PRESET_TABLES = (
    ("keras_givt.models.givt.givt_presets", "givt_presets"),
    ("keras_givt.models.vae.vae_presets", "backbone_presets"),
    ("keras_givt.models.vqvae.vqvae_presets", "backbone_presets"),
    ("keras_givt.models.vq_maskgit.maskgit_presets", "maskgit_presets"),
    ("keras_givt.models.uvim.uvim_presets", "uvim_presets"),
)
_state = {"registered": False, "registering": False, "loaded": False}


def _register_presets():
    """Registers every preset once (idempotent)."""
    if _state["registered"] or _state["registering"]:
        return
    _state["registering"] = True
    try:
        from keras_givt.utils.preset_utils import register_presets

        for module, table in _PRESET_TABLES:
            register_presets(getattr(importlib.import_module(module), table))
        from keras_givt.models.bundled import register_bundled_presets

        register_bundled_presets()
        _state["registered"] = True
    finally:
        _state["registering"] = False


def _load_all():
    """Imports everything `keras_givt` exported before it became lazy, and registers the presets."""
    if _state["loaded"]:
        return
    for module in _CLASSES.values():
        importlib.import_module(module)
    for name in _SUBPACKAGES:
        importlib.import_module(f"keras_givt.{name}")
    _register_presets()
    _state["loaded"] = True


def __getattr__(name):
    if name in _CLASSES:
        _load_all()
        value = getattr(importlib.import_module(_CLASSES[name]), name)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        _load_all()
        return importlib.import_module(f"keras_givt.{name}")
    raise AttributeError(f"module 'keras_givt' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


LAZY_IMPORT_ENV = "KERAS_GIVT_LAZY_IMPORT"
if os.environ.get(LAZY_IMPORT_ENV) != "1":
    _load_all()
