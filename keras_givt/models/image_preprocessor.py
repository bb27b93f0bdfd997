"""`ImagePreprocessor`: raw images -> exactly what a task's image model expects.

Dimension letters: B batch, H/W image size, C channels.

A keras-hub style preprocessor (a serializable Keras layer, attached to a task
as `task.preprocessor`, saved and loaded with it and carried by the bundled
presets). `fit`/`evaluate` map it over every batch (in the `tf.data`
pipeline) before the model sees it; it can also be called directly.

Input ranges of the model families (what the preprocessor produces):

| family | image model | images the model takes |
|---|---|---|
| `GIVTCausal`, `GIVTMaskGIT` | β-VAE (`BetaVAE`) | float32 in [-1, 1] |
| `MaskGITImageGenerator` | VQGAN (`VQGANTokenizer`) | float32 in [0, 1] |
| `GIVTUViM` | ViT image encoder | float32 in [-1, 1] (`input_size`, RGB) |

The bundled Fashion-MNIST presets (`givt_causal_fashion_mnist`,
`givt_maskgit_fashion_mnist`, `vq_maskgit_fashion_mnist`) were trained on
28x28 gray images center-padded with black to 32x32 and tiled to RGB
(`keras_givt.datasets.preprocessing`, `resize_mode="pad"`); their
preprocessor does the same, so raw uint8 Fashion-MNIST images go straight into
`fit`.
"""

import numbers

import keras
import numpy as np

from keras_givt.datasets.preprocessing import check_resize_mode
from keras_givt.datasets.preprocessing import standardize_image_size

# Input ranges `input_range` accepts besides "auto", by name.
INPUT_RANGES = {
    "uint8": (0.0, 255.0),
    "0_255": (0.0, 255.0),
    "0_1": (0.0, 1.0),
    "-1_1": (-1.0, 1.0),
}
OUTPUT_RANGES = ((-1.0, 1.0), (0.0, 1.0))
# Slack of the range checks (resampling and float round-off overshoot a bit).
RANGE_TOLERANCE = 1e-3


def _check_range(name, value, choices):
    try:
        pair = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        pair = None
    if pair is None or pair not in choices:
        raise ValueError(
            f"`{name}` must be one of {[list(c) for c in choices]}. Received: {name}={value!r}"
        )
    return pair


def _standardize_input_range(input_range):
    if isinstance(input_range, str):
        if input_range == "auto":
            return "auto"
        if input_range in INPUT_RANGES:
            return INPUT_RANGES[input_range]
        raise ValueError(
            '`input_range` must be "auto", one of '
            f"{sorted(INPUT_RANGES)} or a (low, high) pair among (0, 255), (0, 1), (-1, 1). "
            f"Received: input_range={input_range!r}"
        )
    return _check_range("input_range", input_range, ((0.0, 255.0), (0.0, 1.0), (-1.0, 1.0)))


def infer_input_range(low, high, is_integer, tolerance=RANGE_TOLERANCE):
    """The (low, high) range images with these extremes are in, or None.

    Integer images are uint8 pixels (0..255). Floats: any negative value means
    [-1, 1]; otherwise max <= 1 means [0, 1] and max <= 255 means 0..255.
    Returns None when no known range holds the values (or they are not finite).
    """
    if not (np.isfinite(low) and np.isfinite(high)):
        return None
    if is_integer:
        return (0.0, 255.0) if low >= 0 and high <= 255 else None
    if low < -tolerance:
        return (-1.0, 1.0) if low >= -1.0 - tolerance and high <= 1.0 + tolerance else None
    if high <= 1.0 + tolerance:
        return (0.0, 1.0)
    if high <= 255.0 + tolerance:
        return (0.0, 255.0)
    return None


@keras.saving.register_keras_serializable(package="keras_givt")
class ImagePreprocessor(keras.layers.Layer):
    """Converts raw images into the model's image convention.

    Takes batches of images of any size (B, H, W, C) with C = 1 or 3, or gray
    batches (B, H, W); uint8 (0..255) or float (0..255, [0, 1] or [-1, 1]).
    Returns float32 (B, `image_size`, `channels`) images in `output_range`:
    gray is tiled to RGB (RGB averaged to gray when `channels=1`), values are
    rescaled, and the image is brought to `image_size` by `resize_mode`.

    Called with `(x, y)` as in `fit` (`x` images or a dict with `"images"`),
    it returns what the task's `fit` takes: with `pack_labels=True` (the GIVT
    and discrete MaskGIT tasks) `{"images": ..., "labels": y}`; otherwise
    `(images, y)` (UViM: `y` are the label maps). Other dict entries
    (`"latents"`, `"tokens"`, `"labels"`, masks) pass through unchanged.

    It refuses what cannot be meant with a `ValueError` naming the argument
    and the value: a rank other than 3 or 4, a rank-3 batch whose last axis
    looks like channels (a single (H, W, C) image: add a batch axis), 2 or
    4+ channels, non-numeric or bool images, NaN/inf, and values outside every
    known range (e.g. floats in [-5, 300]). Eager calls raise it directly;
    inside a `tf.data` pipeline the same check runs on the host for each
    batch and the task's `fit`/`evaluate` re-raise it as that `ValueError`.

    Args:
        image_size: int or (height, width). The model's image size.
        channels: 1 or 3. The model's image channels.
        resize_mode: "pad" (images not larger than `image_size` are
            center-padded with black, no interpolation, e.g. 28x28 ->
            32x32 with a 2-pixel border; larger ones are first shrunk to fit,
            keeping their aspect ratio, with antialiased bilinear
            resampling) or "resize" (bilinear, antialiased, to `image_size`).
        output_range: (-1, 1) (β-VAE, UViM) or (0, 1) (VQGAN).
        input_range: "auto" (default: integer images are 0..255; for floats
            see `infer_input_range`, decided per batch), or a fixed range:
            "uint8"/"0_255"/(0, 255), "0_1"/(0, 1), "-1_1"/(-1, 1); values
            outside it are refused.
        pack_labels: bool. Whether `(images, labels)` becomes
            `{"images", "labels"}` (True) or stays `(images, y)` (False).

    Example:
    ```python
    pre = keras_givt.ImagePreprocessor(32, channels=3, resize_mode="pad")
    pre(np.zeros((8, 28, 28), "uint8")).shape     # (8, 32, 32, 3), in [-1, 1]
    model = keras_givt.GIVTCausal.from_preset("givt_causal_fashion_mnist")
    model.fit(tf.data.Dataset.from_tensor_slices((x_uint8, y)).batch(64))
    ```
    """

    def __init__(
        self,
        image_size,
        channels=3,
        resize_mode="pad",
        output_range=(-1.0, 1.0),
        input_range="auto",
        pack_labels=True,
        **kwargs,
    ):
        image_size = standardize_image_size(image_size)
        if isinstance(channels, bool) or channels not in (1, 3):
            raise ValueError(f"`channels` must be 1 or 3. Received: channels={channels!r}")
        check_resize_mode(resize_mode)
        output_range = _check_range("output_range", output_range, OUTPUT_RANGES)
        input_range = _standardize_input_range(input_range)
        if not isinstance(pack_labels, bool):
            raise TypeError(f"`pack_labels` must be a bool. Received: pack_labels={pack_labels!r}")
        super().__init__(**kwargs)
        # Take tf tensors (tf.data) and numpy as they are.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.image_size = image_size
        self.channels = int(channels)
        self.resize_mode = resize_mode
        self.output_range = output_range
        self.input_range = input_range
        self.pack_labels = pack_labels
        self.built = True

    # --- Checks (host side, numpy) -------------------------------------------

    def check_images(self, images, name="images"):
        """Checks a numpy batch; returns its (low, high) input range.

        Raises a `ValueError` naming `name` for anything that cannot be an
        image batch this preprocessor converts.
        """
        images = np.asarray(images)
        shape = tuple(images.shape)
        if images.dtype == bool or not (
            np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)
        ):
            raise ValueError(
                f"`{name}` must be uint8 or float images. Received: {name} of dtype {images.dtype}"
            )
        if images.ndim == 3 and shape[-1] in (1, 3):
            raise ValueError(
                f"`{name}` of rank 3 must be a (B, H, W) batch of gray images; shape {shape} "
                "looks like a single (H, W, C) image: add a batch axis "
                f"(`images[None]`). Received: {name}.shape={shape}"
            )
        if images.ndim not in (3, 4):
            raise ValueError(
                f"`{name}` must be a (B, H, W, C) or (B, H, W) batch of images. "
                f"Received: {name}.shape={shape}"
            )
        if images.ndim == 4 and shape[-1] not in (1, 3):
            raise ValueError(
                f"`{name}` must have 1 (gray) or 3 (RGB) channels. Received: {name}.shape={shape}"
            )
        if min(shape[1:3], default=0) < 1 or shape[0] < 1:
            raise ValueError(f"`{name}` must not be empty. Received: {name}.shape={shape}")
        is_integer = np.issubdtype(images.dtype, np.integer)
        values = images.astype("float64", copy=False)
        finite = np.isfinite(values)
        if not finite.all():
            raise ValueError(
                f"`{name}` must be finite; {int((~finite).sum())} of {values.size} values are "
                f"NaN or inf. Received: {name} with values "
                f"{np.unique(values[~finite])[:4].tolist()}"
            )
        low, high = float(values.min()), float(values.max())
        return self._resolve_range(name, low, high, is_integer, images.dtype)

    def _resolve_range(self, name, low, high, is_integer, dtype):
        tol = RANGE_TOLERANCE
        if self.input_range == "auto":
            found = infer_input_range(low, high, is_integer, tol)
            if found is None:
                raise ValueError(
                    f"`{name}` must be uint8 pixels (0..255) or floats in [0, 255], [0, 1] or "
                    f"[-1, 1]; values in [{low:g}, {high:g}] fit none of them. Received: {name} "
                    f"of dtype {dtype} with min={low:g}, max={high:g}"
                )
            return found
        lo, hi = self.input_range
        if low < lo - tol or high > hi + tol:
            raise ValueError(
                f"`{name}` must be in [{lo:g}, {hi:g}] (this preprocessor's `input_range`). "
                f"Received: {name} of dtype {dtype} with min={low:g}, max={high:g}"
            )
        return (lo, hi)

    # --- Conversion (TensorFlow ops; eager or inside tf.data) -----------------

    def _convert_tf(self, images, in_low, in_high):
        import tensorflow as tf

        x = tf.cast(images, tf.float32)
        if x.shape.rank == 3:
            x = x[..., None]
        out_low, out_high = self.output_range
        # Rescale [in_low, in_high] -> [out_low, out_high].
        scale = (out_high - out_low) / (in_high - in_low)
        x = (x - in_low) * scale + out_low
        in_channels = x.shape[-1]
        if in_channels != self.channels:
            if in_channels == 1:
                x = tf.concat([x] * self.channels, axis=-1)
            else:
                x = tf.reduce_mean(x, axis=-1, keepdims=True)
        height, width = self.image_size
        if self.resize_mode == "resize":
            x = tf.image.resize(x, (height, width), method="bilinear", antialias=True)
        else:
            x = self._fit_and_pad(x, height, width, out_low)
        x = tf.clip_by_value(x, out_low, out_high)
        return tf.ensure_shape(x, (None, height, width, self.channels))

    @staticmethod
    def _fit_and_pad(x, height, width, pad_value):
        """Shrinks images larger than (height, width) to fit (aspect kept), then center-pads."""
        import tensorflow as tf

        shape = tf.shape(x)
        h, w = shape[1], shape[2]
        ratio = tf.minimum(
            tf.minimum(tf.cast(height, tf.float32) / tf.cast(h, tf.float32), 1.0),
            tf.cast(width, tf.float32) / tf.cast(w, tf.float32),
        )

        def shrink():
            new_h = tf.maximum(1, tf.cast(tf.round(tf.cast(h, tf.float32) * ratio), tf.int32))
            new_w = tf.maximum(1, tf.cast(tf.round(tf.cast(w, tf.float32) * ratio), tf.int32))
            new_h, new_w = tf.minimum(new_h, height), tf.minimum(new_w, width)
            return tf.image.resize(x, tf.stack([new_h, new_w]), method="bilinear", antialias=True)

        x = tf.cond(ratio < 1.0, shrink, lambda: x)
        shape = tf.shape(x)
        pad_h = height - shape[1]
        pad_w = width - shape[2]
        paddings = [
            [0, 0],
            [pad_h // 2, pad_h - pad_h // 2],
            [pad_w // 2, pad_w - pad_w // 2],
            [0, 0],
        ]
        return tf.pad(x, paddings, constant_values=pad_value)

    def _convert_graph(self, images, name, where):
        """Inside a tf graph: the host-side check (numpy) then the conversion."""
        import tensorflow as tf

        from keras_givt.models.training_checks import mark

        def check(value, where_value):
            prefix = where_value.numpy().decode()
            try:
                low, high = self.check_images(value.numpy(), name)
            except ValueError as e:
                raise ValueError(mark(f"{prefix}: {e}" if prefix else str(e))) from None
            return np.asarray([low, high], "float32")

        where = tf.constant("") if where is None else where
        bounds = tf.py_function(check, [images, where], tf.float32)
        bounds.set_shape((2,))
        return self._convert_tf(images, bounds[0], bounds[1])

    def convert(self, images, name="images", where=None):
        """Converts one batch of images.

        Eager: checks and converts on the host and returns a backend tensor.
        Inside a tf graph (a `tf.data` map): returns a tf tensor; the check
        runs on the host for each batch (`where`, a string tensor, prefixes
        its message).
        """
        if _in_tf_graph(images):
            return self._convert_graph(images, name, where)
        array = np.asarray(keras.ops.convert_to_numpy(images))
        try:
            low, high = self.check_images(array, name)
        except ValueError as e:
            if where is None:
                raise
            raise ValueError(f"{_where_text(where)}: {e}") from None
        out = self._convert_tf(array, low, high)
        return keras.ops.convert_to_tensor(out.numpy())

    # --- Layer -----------------------------------------------------------

    def __call__(self, *args, **kwargs):
        # Unpack `(x, y)` / `(x, y, sample_weight)` dataset elements.
        if len(args) == 1 and type(args[0]) is tuple and len(args[0]) in (2, 3) and not kwargs:
            args = args[0]
        return super().__call__(*args, **kwargs)

    def call(self, x, y=None, sample_weight=None, where=None):
        """Converts `x` (images, or a dict with `"images"`); see the class docstring.

        `where` (str or string tensor, optional) names the batch in errors.
        """
        if isinstance(x, dict):
            out = dict(x)
            if "images" in out:
                out["images"] = self.convert(out["images"], "x['images']", where)
        else:
            out = self.convert(x, "images" if where is None else "x", where)
        if self.pack_labels and y is not None:
            if not isinstance(out, dict):
                out = {"images": out}
            if "labels" in out:
                raise ValueError(
                    "Labels were given twice: as `y` and as x['labels']. Pass one of them."
                )
            out["labels"] = y
            y = None
        if y is None and sample_weight is None:
            return out
        return keras.utils.pack_x_y_sample_weight(out, y, sample_weight)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(self.image_size) + (self.channels,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_size": list(self.image_size),
                "channels": self.channels,
                "resize_mode": self.resize_mode,
                "output_range": list(self.output_range),
                "input_range": (
                    self.input_range
                    if isinstance(self.input_range, str)
                    else list(self.input_range)
                ),
                "pack_labels": self.pack_labels,
            }
        )
        return config


def _where_text(where):
    return where if isinstance(where, str) else where.numpy().decode()


def _in_tf_graph(x):
    """Whether `x` is a symbolic TensorFlow tensor (a tf.data map / tf.function)."""
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover - TensorFlow is a dependency.
        return False
    return tf.is_tensor(x) and not tf.executing_eagerly()


def default_image_preprocessor(image_model, output_range, resize_mode="pad", pack_labels=True):
    """An `ImagePreprocessor` for an image model that records its (H, W, C).

    Returns None when the model's image size is unknown.
    """
    size = getattr(image_model, "image_size", None)
    if not size or len(size) != 3 or not all(isinstance(v, numbers.Integral) for v in size):
        return None
    return ImagePreprocessor(
        (int(size[0]), int(size[1])),
        channels=int(size[2]) if int(size[2]) in (1, 3) else 3,
        resize_mode=resize_mode,
        output_range=output_range,
        pack_labels=pack_labels,
    )
