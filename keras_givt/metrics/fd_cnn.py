"""FD-CNN: a Fréchet distance on the features of a small project-trained CNN.

Dimension letters: N examples, B batch, H height, W width, C channels,
F feature dim (128), K classes (10).

No ImageNet InceptionV3 weights install offline, so sample quality is scored
with the penultimate-layer features of a small classifier trained once on
the data set itself (`tools/train_fd_cnn.py`, fixed seed) and shipped frozen
with the package, with the feature statistics of the real test set. It is
**not** comparable with published FID numbers; always report it as
"FD-CNN (<data set>)".

The classifier: `Conv(32, 3x3, relu) - MaxPool(2) - Conv(64, 3x3, relu) -
MaxPool(2) - Dense(128, relu) = features - Dense(10) = logits`, input
(28, 28, 1) in [-1, 1].

Input handling (`prepare_images`): images are float in [-1, 1] (uint8
arrays are mapped with `p / 127.5 - 1`), shaped (N, H, W) or (N, H, W, C)
with C in {1, 3}. RGB is averaged to gray (unweighted mean). With
`input_mode="crop"` (default) images larger than 28x28 are center-cropped,
which exactly undoes `resize_mode="pad"` of `keras_givt.datasets` (e.g.
32x32 padded by 2 pixels); smaller images are an error. With
`input_mode="resize"` any size is resized to 28x28 (bilinear, antialiased),
for data that was resized rather than padded.
"""

import os

import keras
import numpy as np
from keras import ops

from keras_givt.metrics.frechet import frechet_distance
from keras_givt.metrics.frechet import gaussian_statistics
from keras_givt.utils.validation import check_choice
from keras_givt.utils.validation import check_positive_int

DATASETS = ("fashion_mnist", "mnist")
INPUT_MODES = ("crop", "resize")
INPUT_SIZE = 28
FEATURE_DIM = 128
NUM_CLASSES = 10
DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def default_weights_path(dataset):
    """Path of the shipped frozen classifier weights for `dataset`."""
    check_choice("dataset", dataset, DATASETS)
    return os.path.join(DATA_DIR, f"fd_cnn_{dataset}.weights.npz")


def default_stats_path(dataset):
    """Path of the shipped test-set statistics for `dataset`."""
    check_choice("dataset", dataset, DATASETS)
    return os.path.join(DATA_DIR, f"fd_cnn_{dataset}_test_stats.npz")


def build_fd_cnn_classifier(name="fd_cnn"):
    """The FD-CNN classifier (untrained), a functional `keras.Model`.

    Input `(B, 28, 28, 1)` in [-1, 1]; outputs `{"features": (B, 128),
    "logits": (B, 10)}`. Layer names (`conv1`, `conv2`, `features`,
    `logits`) are the keys of the shipped weights file.

    Example:

    ```python
    model = build_fd_cnn_classifier()
    out = model(np.zeros((2, 28, 28, 1), "float32"))
    out["features"].shape  # (2, 128)
    ```
    """
    fmt = "channels_last"
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 1), name="images")
    x = keras.layers.Conv2D(
        32, 3, padding="same", activation="relu", data_format=fmt, name="conv1"
    )(inputs)
    x = keras.layers.MaxPooling2D(2, data_format=fmt, name="pool1")(x)
    x = keras.layers.Conv2D(
        64, 3, padding="same", activation="relu", data_format=fmt, name="conv2"
    )(x)
    x = keras.layers.MaxPooling2D(2, data_format=fmt, name="pool2")(x)
    x = keras.layers.Flatten(data_format=fmt, name="flatten")(x)
    features = keras.layers.Dense(FEATURE_DIM, activation="relu", name="features")(x)
    logits = keras.layers.Dense(NUM_CLASSES, name="logits")(features)
    return keras.Model(inputs, {"features": features, "logits": logits}, name=name)


def save_weights_npz(model, path):
    """Write `{"<layer>/<variable>": array}` to `path` (temp file, then rename)."""
    arrays = {}
    for layer in model.layers:
        for variable in layer.weights:
            arrays[f"{layer.name}/{variable.name}"] = np.asarray(ops.convert_to_numpy(variable))
    _savez_atomic(path, arrays)


def load_weights_npz(model, path):
    """Assign the arrays of a `save_weights_npz` file to `model`'s layers, by name."""
    with np.load(path) as data:
        arrays = dict(data)
    used = set()
    for layer in model.layers:
        for variable in layer.weights:
            key = f"{layer.name}/{variable.name}"
            if key not in arrays:
                raise ValueError(
                    f"Weights file {path!r} has no array {key!r}; it has {sorted(arrays)}."
                )
            value = arrays[key]
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(
                    f"Weights file {path!r}: {key!r} has shape {value.shape}, the model expects "
                    f"{tuple(variable.shape)}."
                )
            variable.assign(value.astype(variable.dtype))
            used.add(key)
    unused = sorted(set(arrays) - used)
    if unused:
        raise ValueError(f"Weights file {path!r} has arrays the model does not use: {unused}.")


def _savez_atomic(path, arrays):
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def prepare_images(images, input_mode="crop"):
    """Bring images to the classifier's input `(B, 28, 28, 1)` float32 in [-1, 1].

    Args:
        images: array or tensor `(B, H, W)` or `(B, H, W, C)`, C in {1, 3},
            float in [-1, 1] or uint8 in [0, 255].
        input_mode: `"crop"` (center-crop to 28x28; H, W >= 28) or
            `"resize"` (bilinear, antialiased resize to 28x28).

    Returns:
        A float32 tensor `(B, 28, 28, 1)`.

    Example:

    ```python
    x = prepare_images(np.zeros((4, 32, 32, 3), "float32"))  # (4, 28, 28, 1)
    ```
    """
    check_choice("input_mode", input_mode, INPUT_MODES)
    if isinstance(images, np.ndarray) and images.dtype == np.uint8:
        images = images.astype("float32") / 127.5 - 1.0
    x = ops.cast(ops.convert_to_tensor(images), "float32")
    if len(x.shape) == 3:
        x = x[..., None]
    if len(x.shape) != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(
            f"`images` must have shape (B, H, W) or (B, H, W, C) with C in (1, 3); received shape {tuple(x.shape)}."
        )
    if x.shape[-1] == 3:
        x = ops.mean(x, axis=-1, keepdims=True)
    height, width = x.shape[1], x.shape[2]
    if input_mode == "resize":
        if (height, width) != (INPUT_SIZE, INPUT_SIZE):
            x = ops.image.resize(
                x, (INPUT_SIZE, INPUT_SIZE), interpolation="bilinear", antialias=True
            )
        return x
    if height < INPUT_SIZE or width < INPUT_SIZE:
        raise ValueError(
            f"`images` must be at least {INPUT_SIZE}x{INPUT_SIZE} with input_mode='crop'; received "
            f"{height}x{width}. Use input_mode='resize' for smaller images."
        )
    top, left = (height - INPUT_SIZE) // 2, (width - INPUT_SIZE) // 2
    return x[:, top : top + INPUT_SIZE, left : left + INPUT_SIZE, :]


def _iterate_batches(images, batch_size):
    """Yield image batches from an array/tensor, or from an iterable of batches.

    Iterable elements may be arrays, `(images, labels)` tuples or dicts with
    an `"images"` key (e.g. a `keras_givt.datasets` tf.data pipeline).
    """
    if hasattr(images, "shape") and hasattr(images, "__getitem__"):
        n = images.shape[0]
        for start in range(0, n, batch_size):
            yield images[start : start + batch_size]
        return
    if isinstance(images, (list, tuple)) and not all(isinstance(e, dict) for e in images):
        # A list of arrays is ambiguous (images or batches?): ask for an array.
        raise TypeError(
            "`images` must be an array/tensor (N, H, W[, C]) or an iterable of batches (e.g. a "
            f"tf.data.Dataset); received a {type(images).__name__}. Stack it with np.stack first."
        )
    for element in images:
        if isinstance(element, dict):
            element = element["images"]
        elif isinstance(element, (tuple, list)):
            element = element[0]
        if hasattr(element, "numpy"):
            element = element.numpy()
        yield element


def consistency_from_predictions(predicted, labels):
    """`{"mean", "per_class"}` accuracy of `predicted` (N,) against `labels` (N,)."""
    predicted = np.asarray(predicted).reshape(-1)
    labels = np.asarray(labels)
    if labels.shape != predicted.shape or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"`labels` must be {predicted.shape[0]} integer classes, one per image; received "
            f"shape {labels.shape}, dtype {labels.dtype}."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(
            f"`labels` must be in [0, {NUM_CLASSES}); received values in "
            f"[{labels.min()}, {labels.max()}]."
        )
    hits = predicted == labels
    per_class = [
        float(hits[labels == c].mean()) if np.any(labels == c) else None for c in range(NUM_CLASSES)
    ]
    return {"mean": float(hits.mean()) if hits.size else None, "per_class": per_class}


class FDCNN:
    """The frozen FD-CNN classifier with its shipped reference statistics.

    Args:
        dataset: `"fashion_mnist"` or `"mnist"`: selects the shipped weights
            (`keras_givt/metrics/data/fd_cnn_<dataset>.weights.npz`) and the
            test-set statistics (`fd_cnn_<dataset>_test_stats.npz`).
        input_mode: `"crop"` (default) or `"resize"`; see `prepare_images`.
        batch_size: int, images per classifier call.
        weights_path: optional path overriding the shipped weights file.
        stats_path: optional path overriding the shipped statistics file.

    The statistics file holds `mu` (128,), `sigma` (128, 128) (float64, of the
    10,000 test images), `floor` (FD of 10,000 real train images vs. those
    statistics: what a perfect generator scores, up to sampling noise),
    `accuracy` (classifier test accuracy), `noise_fd` (FD of uniform noise)
    and `class_histogram` (predicted classes of the test set).

    The FD estimate is biased upwards at small N: score 10,000 samples to
    compare with `floor` (measured on 10,000 images). With fewer samples,
    compare models at the same N (e.g. 1,000 real MNIST train images score
    about 2.1, vs. a 10k floor of 0.32).

    Example:

    ```python
    fd = keras_givt.metrics.FDCNN("fashion_mnist")
    samples = model.generate(...)        # (N, 32, 32, 1) in [-1, 1], padded
    fd.distance(samples), fd.floor       # e.g. 3.1 vs. 0.06
    fd.class_histogram(samples)          # mode dropping check, (10,) counts
    fd.class_consistency(samples, labels)["mean"]  # vs. fd.accuracy on real images
    ```
    """

    def __init__(
        self,
        dataset="fashion_mnist",
        input_mode="crop",
        batch_size=500,
        weights_path=None,
        stats_path=None,
    ):
        check_choice("dataset", dataset, DATASETS)
        check_choice("input_mode", input_mode, INPUT_MODES)
        check_positive_int("batch_size", batch_size)
        self.dataset = dataset
        self.input_mode = input_mode
        self.batch_size = batch_size
        self.weights_path = weights_path or default_weights_path(dataset)
        self.stats_path = stats_path or default_stats_path(dataset)
        for name, path in (("weights_path", self.weights_path), ("stats_path", self.stats_path)):
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"FD-CNN file missing: `{name}`={path!r}. The package ships it in "
                    f"keras_givt/metrics/data/; regenerate it with "
                    f"`python tools/train_fd_cnn.py --dataset {dataset}`."
                )
        self.classifier = build_fd_cnn_classifier()
        load_weights_npz(self.classifier, self.weights_path)
        self.classifier.trainable = False
        with np.load(self.stats_path) as data:
            self._stats = {k: data[k] for k in data.files}

    # Reference statistics.
    @property
    def reference_statistics(self):
        """`{"mu", "sigma"}` of the test-set features (float64)."""
        return {"mu": self._stats["mu"], "sigma": self._stats["sigma"]}

    @property
    def floor(self):
        """FD of 10k real train images vs. the test statistics (real-data floor)."""
        return float(self._stats["floor"])

    def floor_at(self, num_examples, seed=0, data_dir=None):
        """FD of `num_examples` random real train images vs. the test statistics.

        The real-data floor at the sample count of a score: FD is biased
        upwards at small N, so a score on N samples is read against
        `floor_at(N)`, not against the 10k `floor`. Needs the data set
        installed (see `keras_givt.datasets`).
        """
        from keras_givt.datasets.mnist import _load

        check_positive_int("num_examples", num_examples)
        images, _ = _load(self.dataset, "train", data_dir)
        if num_examples < 2 or num_examples > len(images):
            raise ValueError(
                f"`num_examples` must be in [2, {len(images)}]; received num_examples={num_examples}."
            )
        idx = np.random.default_rng(seed).choice(len(images), num_examples, replace=False)
        return self.distance(images[np.sort(idx)])

    @property
    def accuracy(self):
        """The classifier's accuracy on the test set, measured at training time."""
        return float(self._stats["accuracy"])

    @property
    def noise_distance(self):
        """FD of 10k uniform-noise images vs. the test statistics (a ceiling reference)."""
        return float(self._stats["noise_fd"])

    # Features and predictions.
    def _outputs(self, images):
        features, logits = [], []
        for batch in _iterate_batches(images, self.batch_size):
            x = prepare_images(batch, self.input_mode)
            out = self.classifier.predict_on_batch(ops.convert_to_numpy(x))
            features.append(np.asarray(out["features"]))
            logits.append(np.asarray(out["logits"]))
        if not features:
            raise ValueError("`images` is empty.")
        return np.concatenate(features), np.concatenate(logits)

    def features(self, images):
        """Penultimate-layer features `(N, 128)` float32 of `images`.

        `images`: array/tensor `(N, H, W[, C])` in [-1, 1] (see
        `prepare_images`) or an iterable of batches (arrays, tuples or
        `{"images": ...}` dicts, e.g. a tf.data pipeline).
        """
        return self._outputs(images)[0]

    def predict_labels(self, images):
        """Argmax classes `(N,)` int64 of `images`."""
        return np.argmax(self._outputs(images)[1], axis=-1)

    def statistics(self, images):
        """`{"mu": (128,), "sigma": (128, 128)}` float64 of the features of `images` (N >= 2)."""
        return gaussian_statistics(self.features(images))

    def distance(self, images):
        """FD-CNN of `images` (or of a `{"mu", "sigma"}` dict) vs. the shipped test statistics."""
        stats = images if isinstance(images, dict) and "mu" in images else self.statistics(images)
        return frechet_distance(stats, self.reference_statistics)

    @staticmethod
    def distance_between(stats_a, stats_b):
        """Fréchet distance between two `{"mu", "sigma"}` dicts."""
        return frechet_distance(stats_a, stats_b)

    def class_consistency(self, images, labels):
        """How often the classifier names the class a sample was generated for.

        Returns `{"mean": float, "per_class": [float] * 10}`: the accuracy of the
        classifier's argmax on `images` against `labels` (the conditioning
        classes), overall and per class (None for a class with no sample).
        Compare with `accuracy`, the classifier's accuracy on the real test
        images (87.8% on Fashion-MNIST): a generator whose samples are as
        recognisable as real ones scores about that.

        Args:
            images: (N, H, W[, C]) in [-1, 1] (see `prepare_images`).
            labels: (N,) int, the class each image was generated for.
        """
        return consistency_from_predictions(self.predict_labels(images), labels)

    def score(self, images, labels=None):
        """FD-CNN, class histogram and (with `labels`) class consistency in one classifier pass.

        Returns `{"fd_cnn", "class_histogram"}` (+ `"class_consistency"`,
        `"class_consistency_per_class"` when `labels` is given).
        """
        features, logits = self._outputs(images)
        predicted = np.argmax(logits, axis=-1)
        out = {
            "fd_cnn": float(
                frechet_distance(gaussian_statistics(features), self.reference_statistics)
            ),
            "class_histogram": np.bincount(predicted, minlength=NUM_CLASSES).tolist(),
        }
        if labels is not None:
            consistency = consistency_from_predictions(predicted, labels)
            out["class_consistency"] = consistency["mean"]
            out["class_consistency_per_class"] = consistency["per_class"]
        return out

    def class_histogram(self, images, normalize=False):
        """Counts `(10,)` of the classifier's argmax classes (mode dropping check).

        With `normalize=True` returns frequencies summing to 1. Compare with
        `reference_class_histogram` (the test set's predicted classes).
        """
        counts = np.bincount(self.predict_labels(images), minlength=NUM_CLASSES)
        return counts / counts.sum() if normalize else counts

    @property
    def reference_class_histogram(self):
        """Counts `(10,)` of the predicted classes of the 10,000 test images."""
        return self._stats["class_histogram"]
