"""keras_givt: GIVT and friends for Keras 3 (JAX, TensorFlow, PyTorch).

`import keras_givt` is light: Keras (and with it the backend) is imported on
first use of a model class or subpackage (`keras_givt.GIVTCausal`,
`keras_givt.layers`, ...), PEP 562 style, so the `keras-givt` command line
answers `--help` and usage errors without loading a backend. The presets
(big_vision URLs and the models bundled in the package) are registered in
`keras_givt.utils.preset_utils.PRESETS` as soon as any `keras_givt` import
that loaded `preset_utils` has finished, whichever module was imported first.
"""

import importlib
import importlib.abc
import importlib.machinery
import sys

__version__ = "0.1.0"

# Top-level name -> module that defines it.
_CLASSES = {
    "GIVTBackbone": "keras_givt.models.givt.givt_backbone",
    "GIVTCausal": "keras_givt.models.givt.givt_causal",
    "GIVTMaskGIT": "keras_givt.models.givt.givt_maskgit",
    "GIVTUViM": "keras_givt.models.uvim.givt_uvim",
    "ViTVAE": "keras_givt.models.uvim.vit_vae",
    "MaskGITBackbone": "keras_givt.models.maskgit.maskgit_backbone",
    "MaskGITImageGenerator": "keras_givt.models.maskgit.maskgit_image_generator",
    "VQGANTokenizer": "keras_givt.models.vqvae.vqgan_tokenizer",
    "BetaVAE": "keras_givt.models.vae.vae_backbone",
    "IRevNetAdaptor": "keras_givt.models.adaptor.irevnet_adaptor",
    "ImagePreprocessor": "keras_givt.models.image_preprocessor",
    "ImagePreprocessor": "keras_givt.models.image_preprocessor",
}
_SUBPACKAGES = ("layers", "models", "samplers", "metrics", "datasets")

__all__ = sorted(_CLASSES) + list(_SUBPACKAGES) + ["__version__"]

# Registries of presets, registered in this order (a later entry of the same
# name wins, as when they were registered eagerly here).
_PRESET_REGISTRIES = (
    "keras_givt.models.givt.givt_presets",
    "keras_givt.models.vae.vae_presets",
    "keras_givt.models.vqvae.vqvae_presets",
    "keras_givt.models.maskgit.maskgit_presets",
    "keras_givt.models.uvim.uvim_presets",
)
_PRESET_UTILS = "keras_givt.utils.preset_utils"
_state = {"registered": False, "registering": False, "depth": 0, "loaded": False}


def _register_presets():
    """Registers every preset once (idempotent)."""
    if _state["registered"] or _state["registering"]:
        return
    _state["registering"] = True
    try:
        from keras_givt.utils.preset_utils import register_presets

        for name in _PRESET_REGISTRIES:
            register_presets(importlib.import_module(name).registry_entries())
        from keras_givt.models.bundled import register_bundled_presets

        register_bundled_presets()
        _state["registered"] = True
    finally:
        _state["registering"] = False


class _PostImportHook(importlib.abc.MetaPathFinder):
    """Registers the presets once the outermost `keras_givt.*` import that loaded `preset_utils` ends.

    Registration imports the model packages; running it in the middle of an
    import chain could meet half-initialised modules, so it waits until no
    `keras_givt` module is executing any more.
    """

    def find_spec(self, fullname, path, target=None):
        if not fullname.startswith("keras_givt.") or _state["registered"]:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_maybe_register(module):
            _state["depth"] += 1
            try:
                exec_module(module)
            finally:
                _state["depth"] -= 1
            if _state["depth"] == 0 and _PRESET_UTILS in sys.modules:
                _register_presets()

        spec.loader.exec_module = exec_and_maybe_register
        return spec


if not any(isinstance(f, _PostImportHook) for f in sys.meta_path):
    sys.meta_path.insert(0, _PostImportHook())


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
