"""Generic layers used by more than one model family.

GIVT's mixture head and densities live in `keras_givt.mixture`; the GIVT
input embedding in `keras_givt.models.givt.givt_embedding`.
"""

from keras_givt.layers.transformer_block import FlaxLayerNorm
from keras_givt.layers.transformer_block import GIVTAttention
from keras_givt.layers.transformer_block import GIVTDecoderBlock
from keras_givt.layers.vector_quantizer import VectorQuantizer
