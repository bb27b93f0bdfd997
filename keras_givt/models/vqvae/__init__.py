"""MaskGIT's VQGAN tokenizer (VQ-VAE with a GAN loss)."""

from keras_givt.models.vqvae.stylegan_discriminator import StyleGANDiscriminator
from keras_givt.models.vqvae.vqgan_tokenizer import DeadCodeRestart
from keras_givt.models.vqvae.vqgan_tokenizer import VQGANTokenizer
