"""keras_givt: GIVT and friends for Keras 3 (JAX, TensorFlow, PyTorch)."""

from keras_givt import layers
from keras_givt.models.givt.givt_backbone import GIVTBackbone
from keras_givt.models.givt.givt_causal import GIVTCausal
from keras_givt.models.givt.givt_maskgit import GIVTMaskGIT
from keras_givt.models.uvim.givt_uvim import GIVTUViM
from keras_givt.models.uvim.vit_vae import ViTVAE
from keras_givt.models.maskgit.maskgit_backbone import MaskGITBackbone
from keras_givt.models.maskgit.maskgit_image_generator import MaskGITImageGenerator
from keras_givt.models.vqvae.vqgan_tokenizer import VQGANTokenizer

__version__ = "0.1.0"

__all__ = [
    "GIVTBackbone",
    "GIVTCausal",
    "GIVTMaskGIT",
    "GIVTUViM",
    "ViTVAE",
    "MaskGITBackbone",
    "MaskGITImageGenerator",
    "VQGANTokenizer",
    "layers",
    "__version__",
]

from keras_givt.models.givt.givt_presets import registry_entries as _givt_presets  # noqa: E402
from keras_givt.utils.preset_utils import register_presets as _register  # noqa: E402

from keras_givt.models.vae.vae_presets import registry_entries as _vae_presets  # noqa: E402

from keras_givt.models.vqvae.vqvae_presets import registry_entries as _vq_presets  # noqa: E402
from keras_givt.models.maskgit.maskgit_presets import registry_entries as _maskgit_presets  # noqa: E402

_register(_givt_presets())
_register(_vae_presets())
_register(_vq_presets())
_register(_maskgit_presets())

from keras_givt.models.uvim.uvim_presets import registry_entries as _uvim_presets  # noqa: E402

_register(_uvim_presets())

from keras_givt.models.bundled import register_bundled_presets as _register_bundled  # noqa: E402

_register_bundled()
