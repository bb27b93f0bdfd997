"""keras_givt: GIVT and friends for Keras 3 (JAX, TensorFlow, PyTorch)."""

from keras_givt import layers
from keras_givt.models.givt.givt_backbone import GIVTBackbone
from keras_givt.models.givt.givt_causal import GIVTCausal

__version__ = "0.1.0"

__all__ = ["GIVTBackbone", "GIVTCausal", "layers", "__version__"]
