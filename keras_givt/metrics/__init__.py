"""Offline sample-quality metrics: bits/dim (also of GIVT latents) and FD-CNN.

FD-CNN is a Fréchet distance on the 128-d features of a small classifier the
project trains on the data set itself; it is not comparable with published
FID numbers (no ImageNet InceptionV3 weights are available offline).
"""

from keras_givt.metrics.bits_per_dim import bits_per_dim
from keras_givt.metrics.bits_per_dim import latent_bits_per_dim
from keras_givt.metrics.depth_metrics import depth_metrics
from keras_givt.metrics.fd_cnn import FDCNN
from keras_givt.metrics.fd_cnn import build_fd_cnn_classifier
from keras_givt.metrics.fd_cnn import prepare_images
from keras_givt.metrics.frechet import frechet_distance
from keras_givt.metrics.frechet import gaussian_statistics
from keras_givt.metrics.panoptic_quality import PanopticQuality
from keras_givt.metrics.panoptic_quality import panoptic_quality

__all__ = [
    "FDCNN",
    "PanopticQuality",
    "bits_per_dim",
    "depth_metrics",
    "build_fd_cnn_classifier",
    "frechet_distance",
    "gaussian_statistics",
    "latent_bits_per_dim",
    "panoptic_quality",
    "prepare_images",
]
