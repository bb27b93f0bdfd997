"""Discrete MaskGIT (Chang et al., CVPR 2022) over VQGAN tokens."""

from keras_givt.models.vq_maskgit.maskgit_backbone import MaskGITBackbone
from keras_givt.models.vq_maskgit.maskgit_image_generator import MaskGITImageGenerator
