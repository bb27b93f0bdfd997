"""The top-level `keras_givt` namespace: every exported name, lazy import, preset registration."""

import os
import subprocess
import sys

import keras
import pytest

import keras_givt
from tests.paths import ROOT

EXPECTED_CLASSES = {
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
}
SUBPACKAGES = ("layers", "mixture", "models", "samplers", "metrics", "datasets")


@pytest.mark.parametrize("name", sorted(EXPECTED_CLASSES))
def test_top_level_classes(name):
    cls = getattr(keras_givt, name)
    assert isinstance(cls, type) and issubclass(cls, (keras.layers.Layer, keras.Model))
    assert cls.__module__ == EXPECTED_CLASSES[name]
    assert name in keras_givt.__all__ and name in dir(keras_givt)


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_top_level_subpackages(name):
    module = getattr(keras_givt, name)
    assert module.__name__ == f"keras_givt.{name}"
    assert name in keras_givt.__all__


def test_star_import_and_version():
    namespace = {}
    exec("from keras_givt import *", namespace)
    for name in list(EXPECTED_CLASSES) + list(SUBPACKAGES) + ["__version__"]:
        assert name in namespace, name
    assert keras_givt.__version__.count(".") == 2
    assert keras_givt.mixture.GaussianMixtureHead is not None
    assert keras_givt.datasets.load_mnist is not None and keras_givt.metrics.FDCNN is not None
    with pytest.raises(AttributeError, match="no_such_name"):
        keras_givt.no_such_name


def _fresh(code, **env_vars):
    env = dict(os.environ, PYTHONPATH=ROOT, **env_vars)
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def test_lazy_import_is_light_and_presets_register_on_first_use():
    # The console script's mode (KERAS_GIVT_LAZY_IMPORT=1, see keras_givt_cli.py): no backend
    # is loaded by `import keras_givt`; touching a model class loads and registers everything.
    out = _fresh(
        "import sys, keras_givt\n"
        "heavy = [m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules]\n"
        "m = keras_givt.GIVTCausal.presets\n"
        "from keras_givt.utils import preset_utils\n"
        "n = len(preset_utils.PRESETS)\n"
        "print(heavy, n, 'givt_causal_fashion_mnist' in m, 'givt_causal_imagenet256' in m)",
        KERAS_GIVT_LAZY_IMPORT="1",
    )
    heavy, n, bundled, converted = out.rsplit(" ", 3)
    assert heavy == "[]", out  # no backend imported by `import keras_givt`
    assert int(n) >= 18 and bundled == "True" and converted == "True", out


def test_plain_import_registers_every_preset():
    out = _fresh(
        "import keras_givt\n"
        "from keras_givt.utils import preset_utils\n"
        "print(len(preset_utils.PRESETS), 'vq_maskgit_fashion_mnist' in preset_utils.PRESETS)"
    )
    n, bundled = out.split(" ")
    assert int(n) >= 18 and bundled == "True", out


def test_presets_registered_when_a_model_module_is_imported_first():
    # No top-level access at all: importing a model module directly still registers the presets
    # (the registration waits until that import chain has finished).
    out = _fresh(
        "from keras_givt.models.vqvae.vqgan_tokenizer import VQGANTokenizer\n"
        "from keras_givt.utils import preset_utils\n"
        "print(sorted(k for k in preset_utils.PRESETS if k.startswith(('vqgan', 'givt_causal'))))"
    )
    for name in (
        "vqgan_tokenizer_imagenet256",
        "givt_causal_imagenet256",
        "givt_causal_fashion_mnist",
    ):
        assert name in out, out
