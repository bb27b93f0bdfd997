"""tf.data image preprocessing shared by the data set loaders.

Dimension letters: B batch, H height, W width, C channels.

Every pipeline yields `{"images": float32 (B, H, W, C) in [-1, 1],
"labels": int32 (B,)}`: uint8 pixels `p` map to `p / 127.5 - 1`, then the
image is brought to the model's resolution:

- `resize_mode="pad"`: center-pad with `pad_value` (default -1.0, the black
  background of MNIST-like data) and center-crop where the image is larger,
  so 28x28 becomes 32x32 with a 2-pixel border and no interpolation.
- `resize_mode="resize"`: bilinear resize (antialiased) to the target size.
"""

import numbers

RESIZE_MODES = ("pad", "resize")


def standardize_image_size(image_size, name="image_size"):
    """`int` or `(height, width)` -> `(height, width)` with clear errors."""
    if isinstance(image_size, bool):
        raise TypeError(
            f"`{name}` must be an int or a (height, width) tuple; received {image_size!r}."
        )
    if isinstance(image_size, numbers.Integral):
        image_size = (int(image_size), int(image_size))
    if not isinstance(image_size, (tuple, list)) or len(image_size) != 2:
        raise TypeError(
            f"`{name}` must be an int or a (height, width) tuple; received {name}={image_size!r}."
        )
    for value in image_size:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
            raise ValueError(f"`{name}` must hold positive ints; received {name}={image_size!r}.")
    return int(image_size[0]), int(image_size[1])


def check_channels(channels):
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 or 3; received channels={channels!r}.")


def check_resize_mode(resize_mode):
    if resize_mode not in RESIZE_MODES:
        raise ValueError(
            f"`resize_mode` must be one of {RESIZE_MODES}; received resize_mode={resize_mode!r}."
        )


def _pad_or_crop(image, height, width, pad_value):
    """Center-crop / center-pad a ([B,] H, W, C) tensor to ([B,] height, width, C)."""
    import tensorflow as tf

    shape = tf.shape(image)
    h, w = shape[-3], shape[-2]
    # Crop (no-op when the image is not larger).
    top = tf.maximum(h - height, 0) // 2
    left = tf.maximum(w - width, 0) // 2
    image = image[..., top : top + tf.minimum(h, height), left : left + tf.minimum(w, width), :]
    # Pad (no-op when the image is not smaller).
    pad_h = tf.maximum(height - h, 0)
    pad_w = tf.maximum(width - w, 0)
    paddings = [[0, 0]] * (image.shape.rank - 3) + [
        [pad_h // 2, pad_h - pad_h // 2],
        [pad_w // 2, pad_w - pad_w // 2],
        [0, 0],
    ]
    return tf.pad(image, paddings, constant_values=pad_value)


def preprocess_image(image, image_size, resize_mode="pad", channels=1, pad_value=-1.0):
    """uint8 image(s) ([B,] H, W, C_in) -> float32 ([B,] height, width, channels) in [-1, 1].

    `C_in` must be 1 or 3: gray is tiled to 3 channels, RGB is averaged to
    1 channel (an unweighted mean, which is what the FD-CNN metric also uses).
    """
    import tensorflow as tf

    height, width = image_size
    image = tf.cast(image, tf.float32) / 127.5 - 1.0
    in_channels = image.shape[-1]
    if in_channels != channels:
        if in_channels == 1:
            image = tf.concat([image] * channels, axis=-1)
        else:
            image = tf.reduce_mean(image, axis=-1, keepdims=True)
    if resize_mode == "pad":
        image = _pad_or_crop(image, height, width, pad_value)
    else:
        image = tf.image.resize(image, (height, width), method="bilinear", antialias=True)
        image = tf.clip_by_value(image, -1.0, 1.0)
    return tf.ensure_shape(image, (None,) * (image.shape.rank - 3) + (height, width, channels))


def batch_pipeline(dataset, batch_size, shuffle, seed, shuffle_buffer, drop_remainder, repeat):
    """Shuffle / repeat / batch / prefetch an element-wise dataset."""
    import tensorflow as tf

    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE)
