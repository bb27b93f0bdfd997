"""big_vision CNN β-VAE tokenizer."""

from keras_givt.models.vae.beta_vae import BetaVAE
from keras_givt.models.vae.vae_layers import CNNDecoder
from keras_givt.models.vae.vae_layers import CNNEncoder
from keras_givt.models.vae.vae_layers import FlaxGroupNorm
from keras_givt.models.vae.vae_layers import ResBlock
from keras_givt.models.vae.vae_presets import backbone_presets
