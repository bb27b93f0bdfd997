"""The perceptual feature network of the autoencoder training recipe.

Dimension letters: B batch, H/W image size, C image channels, F_i channels
of feature level i.

**Choice.** The perceptual term of `keras_givt.models.autoencoder_losses`
compares images through the features of a small frozen CNN
(`"fashion_mnist_features"`, shipped here, 455 KB) rather than through a
parameter-free loss (multi-scale SSIM, Laplacian-pyramid L1):

- Blur is what L2 + β·KL leaves behind, and a pixel-local loss of any
  kind (L1 on pyramid bands, SSIM's local means/variances) still rewards the
  conditional average of an uncertain edge or texture, only with another
  averaging rule. Features of a trained classifier respond to the *presence*
  of edges, stripes and fabric texture wherever they are, so a blurred
  texture is far from the real one in feature space even where it is close
  in pixels — the reason LPIPS-style losses sharpen autoencoders.
- Per CPU second it is cheap: three levels of two 3×3 convs with 16/32/64
  channels (about 9.5 M multiply-adds per 32×32 image, 72 k conv params;
  the 41 k-param dense head is used only in training): on the bundled
  β-VAE architecture at batch 32 (jax, busy 2-core CPU) a train step costs
  0.94 CPU-s with it against 0.83 without, where the discriminator adds
  about 0.75 more. (The choice is argued, not measured against a
  parameter-free loss on FD-CNN.)
- It is **not** the FD-CNN classifier (`keras_givt.metrics.fd_cnn`) and was
  not trained on its features: other architecture (six 3×3 convs in three
  average-pooled levels, the features taken from the conv levels, no dense
  hidden layer, against FD-CNN's two convs + max-pooling + a 128-unit dense
  feature layer), other input (32×32 padded images in [0, 1], gray = channel mean,
  against FD-CNN's 28×28 in [−1, 1]), other seed, trained by
  `tools/train_perceptual_net.py` on the Fashion-MNIST training split only.
  Its test accuracy and the exact command are in
  `data/fashion_mnist_features.json`.

The network: images (B, H, W, C) in [0, 1] → gray g = mean over C, mapped to
[−1, 1] → three levels (level i > 0 starts with 2×2 average pooling) of
conv3×3 → ReLU → conv3×3 → ReLU. Each level's output divided by its RMS on
the training images (a frozen constant per level, so every level weighs
about the same) is one perceptual feature map (B, H/2^i, W/2^i, F_i);
`classify` adds a dense layer on the flattened last level of a 32×32 image
→ 10 logits (used only to train it). The features take any H, W and C (C is
averaged), so 28×28 and 1-channel models use it too.
"""

import json
import os

import keras
from keras import ops

from keras_givt.utils.validation import check_choice

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
PERCEPTUAL_NETWORKS = ("fashion_mnist_features",)


def weights_path(name):
    """Path of the shipped weights of the perceptual network `name`."""
    check_choice("perceptual_network", name, PERCEPTUAL_NETWORKS)
    return os.path.join(DATA_DIR, f"{name}.weights.npz")


def info_path(name):
    """Path of the JSON record (accuracy, training command) of the network `name`."""
    check_choice("perceptual_network", name, PERCEPTUAL_NETWORKS)
    return os.path.join(DATA_DIR, f"{name}.json")


@keras.saving.register_keras_serializable(package="keras_givt")
class PerceptualFeatureNetwork(keras.Model):
    """A small VGG-style CNN: images in [0, 1] → a list of feature maps.

    Args:
        widths: list of int. Channels F_i of each level (each level after
            the first halves H and W).
        num_classes: int. Logits of the classification head (training only).

    Example:
    ```python
    net = keras_givt.models.perceptual_network.load_perceptual_network(
        "fashion_mnist_features"
    )
    features = net(images)  # [(B, 32, 32, 16), (B, 16, 16, 32), (B, 8, 8, 64)]
    ```
    """

    def __init__(self, widths=(16, 32, 64), num_classes=10, **kwargs):
        super().__init__(**kwargs)
        # === Layers ===
        self.convs = []
        for i, width in enumerate(widths):
            for j in range(2):
                self.convs.append(
                    keras.layers.Conv2D(
                        width,
                        3,
                        padding="same",
                        name=f"level_{i}_conv_{j}",
                        dtype=self.dtype_policy,
                    )
                )
        self.head = keras.layers.Dense(num_classes, name="logits", dtype=self.dtype_policy)
        # Per-level RMS of the features on the training images (set by the trainer).
        self.feature_rms = self.add_weight(
            shape=(len(widths),),
            initializer="ones",
            trainable=False,
            name="feature_rms",
        )
        # === Config ===
        self.widths = [int(w) for w in widths]
        self.num_classes = int(num_classes)

    def build(self, input_shape):
        channels = 1  # The input is averaged to one gray channel.
        for i, width in enumerate(self.widths):
            for j in range(2):
                self.convs[2 * i + j].build((None, None, None, channels))
                channels = width
        # The head reads the flattened last level of a 32x32 image (training only).
        self.head.build((None, channels * (32 // 2 ** (len(self.widths) - 1)) ** 2))
        self.built = True

    def raw_features(self, images):
        """Un-normalized level outputs [(B, H/2^i, W/2^i, F_i)] of images (B, H, W, C)."""
        x = ops.cast(images, self.compute_dtype)
        x = 2.0 * ops.mean(x, axis=-1, keepdims=True) - 1.0  # (B, H, W, 1) in [-1, 1]
        levels = []
        for i in range(len(self.widths)):
            if i:
                x = ops.average_pool(x, 2, 2, padding="same")
            x = ops.relu(self.convs[2 * i](x))
            x = ops.relu(self.convs[2 * i + 1](x))
            levels.append(x)
        return levels

    def call(self, images):
        levels = self.raw_features(images)
        rms = ops.cast(self.feature_rms, self.compute_dtype)
        return [level / rms[i] for i, level in enumerate(levels)]

    def classify(self, images):
        """Logits (B, num_classes) of images (B, 32, 32, C) in [0, 1]."""
        last = self.raw_features(images)[-1]  # (B, 8, 8, F_2)
        return self.head(ops.reshape(last, (ops.shape(last)[0], -1)))

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "widths": self.widths,
            "num_classes": self.num_classes,
        }


def build_perceptual_network(name="perceptual_network", **kwargs):
    """An untrained `PerceptualFeatureNetwork`, built for (B, 32, 32, 3) images."""
    net = PerceptualFeatureNetwork(name=name, **kwargs)
    net.build((None, 32, 32, 3))
    return net


def _named_weights(net):
    """`{"<layer>/<index>" or "feature_rms": variable}`: stable keys of the weights file."""
    named = {"feature_rms": net.feature_rms}
    for layer in net.convs + [net.head]:
        for i, variable in enumerate(layer.weights):
            named[f"{layer.name}/{i}"] = variable
    return named


def save_weights_npz(net, path):
    """Writes the weights of `net` to the .npz file `path` (written aside, then renamed)."""
    import numpy as np

    arrays = {k: np.asarray(ops.convert_to_numpy(v)) for k, v in _named_weights(net).items()}
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load_perceptual_network(name):
    """The shipped, frozen perceptual network `name` (see `PERCEPTUAL_NETWORKS`).

    Raises:
        ValueError: `name` is unknown, or the weights file does not match.
    """
    import numpy as np

    path = weights_path(name)
    with open(info_path(name)) as f:
        config = json.load(f)["config"]
    net = build_perceptual_network(name=name, **config)
    with np.load(path) as data:
        keys = _named_weights(net)
        if set(keys) != set(data.files):
            raise ValueError(
                f"The weights file {path!r} does not match perceptual_network={name!r}: "
                f"file has {sorted(data.files)}, the network {sorted(keys)}."
            )
        for key, variable in keys.items():
            variable.assign(data[key])
    net.trainable = False
    return net
