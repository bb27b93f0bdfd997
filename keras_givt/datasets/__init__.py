"""Offline image data sets as numpy arrays or tf.data pipelines.

Every pipeline yields `{"images": float32 (B, H, W, C) in [-1, 1],
"labels": int32 (B,)}` (B batch, H height, W width, C channels).
"""

from keras_givt.datasets.idx import read_idx
from keras_givt.datasets.image_folder import image_folder_dataset
from keras_givt.datasets.mnist import DATA_DIR_ENV
from keras_givt.datasets.mnist import FASHION_MNIST_CLASS_NAMES
from keras_givt.datasets.mnist import MNIST_CLASS_NAMES
from keras_givt.datasets.mnist import arrays_dataset
from keras_givt.datasets.mnist import fashion_mnist_dataset
from keras_givt.datasets.mnist import load_fashion_mnist
from keras_givt.datasets.mnist import load_mnist
from keras_givt.datasets.mnist import mnist_dataset

__all__ = [
    "DATA_DIR_ENV",
    "FASHION_MNIST_CLASS_NAMES",
    "MNIST_CLASS_NAMES",
    "arrays_dataset",
    "fashion_mnist_dataset",
    "image_folder_dataset",
    "load_fashion_mnist",
    "load_mnist",
    "mnist_dataset",
    "read_idx",
]
