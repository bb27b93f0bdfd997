"""keras_givt: GIVT and friends for Keras 3 (JAX, TensorFlow, PyTorch)."""

from keras_givt import layers
from keras_givt.models.givt.givt_backbone import GIVTBackbone
from keras_givt.models.givt.givt_causal import GIVTCausal
from keras_givt.models.givt.givt_maskgit import GIVTMaskGIT

__version__ = "0.1.0"

__all__ = ["GIVTBackbone", "GIVTCausal", "GIVTMaskGIT", "layers", "__version__"]
