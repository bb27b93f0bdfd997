"""A tf.data pipeline over a folder of images, one subfolder per class.

Dimension letters: B batch, H height, W width, C channels.

Layout: `root/<class_name>/*.{png,jpg,jpeg}` (case-insensitive extensions,
subfolders of a class folder included). Class names are sorted and
numbered 0, 1, ...; files are decoded with `tf.io.decode_image`, so the
pipeline runs entirely inside tf.data.
"""

import os

from keras_givt.datasets import preprocessing
from keras_givt.utils import validation
from keras_givt.utils.validation import check_positive_int

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def list_image_folder(root):
    """Scan `root/<class>/...` and return `(paths, labels, class_names)`.

    Paths are sorted within each class, classes are sorted by name.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise ValueError(f"`root` must be an existing directory; received root={root!r}.")
    class_names = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    paths, labels = [], []
    for label, name in enumerate(class_names):
        found = []
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, name)):
            dirnames.sort()
            found += [
                os.path.join(dirpath, f) for f in filenames if f.lower().endswith(IMAGE_EXTENSIONS)
            ]
        found.sort()
        paths += found
        labels += [label] * len(found)
    if not paths:
        raise ValueError(
            f"No images ({', '.join(IMAGE_EXTENSIONS)}) found in class subfolders of root={root!r}; "
            "expected the layout root/<class_name>/<image file>."
        )
    for path in paths:
        check_image_file(path)
    return paths, labels, class_names


# Content signatures `tf.io.decode_image` accepts (the extension is not trusted).
_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_OTHER = (b"GIF87a", b"GIF89a", b"BM")


def check_image_file(path):
    """Raises a `ValueError` naming `path` if it cannot be a decodable image.

    Reads only the first and last bytes: the file must start with a PNG,
    JPEG, GIF or BMP signature, a PNG must end with its IEND chunk and a
    JPEG hold its end-of-image marker near the end, so renamed non-images,
    empty and truncated files are caught before the tf.data pipeline (whose
    decode errors do not name the file). Corruption inside otherwise
    well-formed files is only found when the pipeline decodes them.

    Args:
        path: str, the image file.
    """
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(16)
            f.seek(max(0, size - 1024))
            tail = f.read()
    except OSError as e:
        raise ValueError(f"Image file {path!r} cannot be read: {e}") from e
    if size == 0:
        reason = "the file is empty"
    elif head.startswith(_PNG):
        reason = None if b"IEND" in tail[-12:] else "truncated PNG (no IEND chunk at the end)"
    elif head.startswith(_JPEG):
        reason = None if b"\xff\xd9" in tail else "truncated JPEG (no end-of-image marker)"
    elif head.startswith(_OTHER):
        reason = None
    else:
        reason = f"not a PNG/JPEG/GIF/BMP image (it starts with {head[:8]!r})"
    if reason is not None:
        raise ValueError(
            f"Image file {path!r} does not decode: {reason} ({size} bytes). "
            "Remove or replace it."
        )


def image_folder_dataset(
    root,
    image_size,
    batch_size=64,
    shuffle=True,
    seed=None,
    channels=3,
    resize_mode="resize",
    pad_value=-1.0,
    drop_remainder=False,
    repeat=False,
):
    """A batched tf.data pipeline over `root/<class_name>/*.png|jpg`.

    Args:
        root: str or path-like, the folder with one subfolder per class.
            Class ids follow the sorted subfolder names.
        image_size: int or `(height, width)`: the model's resolution.
        batch_size: int, examples per batch.
        shuffle: bool, shuffle the file order (default True).
        seed: optional int for a reproducible shuffle order.
        channels: 1 or 3. Files are decoded to this many channels
            (`tf.io.decode_image(channels=...)`: gray is replicated to RGB,
            RGB is converted to gray with the luma weights).
        resize_mode: `"resize"` (default; bilinear, antialiased, aspect ratio
            not kept) or `"pad"` (center-pad with `pad_value` / center-crop).
        pad_value: float in [-1, 1] units used by `"pad"` (default -1.0).
        drop_remainder: bool, drop the last incomplete batch.
        repeat: bool, repeat forever (reshuffling each epoch).

    Returns:
        A `tf.data.Dataset` of `{"images": float32 (B, H, W, C) in [-1, 1],
        "labels": int32 (B,)}`, with a `class_names` attribute (list of str).

    Example:

    ```python
    ds = keras_givt.datasets.image_folder_dataset("flowers/", image_size=64, batch_size=32)
    ds.class_names  # ["daisy", "roses", ...]
    ```
    """
    import tensorflow as tf

    image_size = preprocessing.standardize_image_size(image_size)
    batch_size = check_positive_int("batch_size", batch_size)
    pad_value = validation.check_float("pad_value", pad_value, -1.0, 1.0)
    seed = validation.check_int("seed", seed, min_value=0, allow_none=True)
    preprocessing.check_channels(channels)
    preprocessing.check_resize_mode(resize_mode)
    paths, labels, class_names = list_image_folder(root)

    def _load(path, label):
        image = tf.io.decode_image(
            tf.io.read_file(path), channels=channels, expand_animations=False
        )
        image = tf.ensure_shape(image, (None, None, channels))
        image = preprocessing.preprocess_image(image, image_size, resize_mode, channels, pad_value)
        return {"images": image, "labels": label}

    dataset = tf.data.Dataset.from_tensor_slices((paths, tf.constant(labels, tf.int32)))
    if shuffle:
        # Shuffle the (cheap) file names, then decode.
        dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.map(_load, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
    dataset.class_names = class_names
    return dataset
