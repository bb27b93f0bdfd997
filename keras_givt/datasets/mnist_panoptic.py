"""A real, offline panoptic-segmentation task: MNIST digits on a canvas.

Dimension letters: N examples, S canvas side, k digits per canvas.

Each example pastes k ∈ [`min_digits`, `max_digits`] MNIST digits (scaled
from 28×28 to `digit_size`² by area averaging) at random positions on an
S×S black canvas (a digit pasted later covers earlier ones where its stroke
is). Targets, per pixel:
- semantics: 0 = background (stuff), 1 + digit class on the digit's stroke
  pixels (intensity > `stroke_threshold`) — 11 classes;
- instances: 0 = background, j = the j-th pasted digit (1..k), ids in
  pasting order.
Images are the canvas in [−1, 1], replicated to 3 channels. Examples are a
deterministic function of (`split`, `seed`); train and test canvases use the
MNIST train and test digits respectively.
"""

import numpy as np

from keras_givt.datasets.mnist import load_mnist
from keras_givt.utils.validation import check_positive_int

NUM_SEMANTIC_CLASSES = 11  # background + 10 digits


def _downscale(digits, size):
    """(N, 28, 28) uint8 -> (N, size, size) float in [0, 1] (area average)."""
    x = digits.astype("float32") / 255.0
    if size == 28:
        return x
    # Area averaging via an explicit (28, size) pooling matrix.
    edges = np.linspace(0, 28, size + 1)
    m = np.zeros((28, size), "float32")
    for j in range(size):
        for i in range(28):
            m[i, j] = max(0.0, min(i + 1, edges[j + 1]) - max(i, edges[j]))
    m /= m.sum(axis=0, keepdims=True)
    return np.einsum("nhw,hH,wW->nHW", x, m, m)


def make_mnist_panoptic(
    split="train",
    num_examples=1000,
    canvas_size=32,
    digit_size=16,
    min_digits=2,
    max_digits=3,
    stroke_threshold=0.5,
    seed=0,
    data_dir=None,
):
    """Builds the MNIST panoptic task.

    Returns:
        `(images, label_maps)`: float32 `(N, S, S, 3)` in [−1, 1] and int32
        `(N, S, S, 2)` (semantics, instances).

    Example:
    ```python
    images, maps = make_mnist_panoptic("test", num_examples=100)
    maps[..., 0].max() <= 10, maps[..., 1].max() <= 3
    ```
    """
    check_positive_int("num_examples", num_examples)
    check_positive_int("canvas_size", canvas_size)
    check_positive_int("digit_size", digit_size)
    if digit_size > canvas_size:
        raise ValueError(
            f"`digit_size` ({digit_size}) must not exceed `canvas_size` ({canvas_size})."
        )
    if not 1 <= min_digits <= max_digits:
        raise ValueError(
            f"Need 1 <= min_digits <= max_digits; received min_digits={min_digits}, "
            f"max_digits={max_digits}."
        )
    digits, labels = load_mnist(split, data_dir=data_dir)
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    canvas = np.zeros((num_examples, canvas_size, canvas_size), "float32")
    sem = np.zeros((num_examples, canvas_size, canvas_size), "int32")
    inst = np.zeros((num_examples, canvas_size, canvas_size), "int32")
    counts = rng.integers(min_digits, max_digits + 1, size=num_examples)
    picks = rng.integers(0, len(digits), size=(num_examples, max_digits))
    small = _downscale(digits[np.unique(picks)], digit_size)
    index = {int(p): i for i, p in enumerate(np.unique(picks))}
    span = canvas_size - digit_size + 1
    for n in range(num_examples):
        for j in range(counts[n]):
            p = int(picks[n, j])
            d = small[index[p]]
            y, x = rng.integers(0, span, size=2)
            window = (slice(y, y + digit_size), slice(x, x + digit_size))
            canvas[n][window] = np.maximum(canvas[n][window], d)
            stroke = d > stroke_threshold
            sem[n][window] = np.where(stroke, 1 + labels[p], sem[n][window])
            inst[n][window] = np.where(stroke, j + 1, inst[n][window])
    images = np.repeat((canvas * 2.0 - 1.0)[..., None], 3, axis=-1)
    return images, np.stack([sem, inst], axis=-1)
