"""A small StyleGAN-style discriminator (the kind MaskGIT's VQGAN trains with).

Dimension letters: B batch, H/W image size, C channels.

conv3x3 → leaky ReLU, then one residual down block per entry of
`channel_multipliers` (conv3x3 → lrelu → 2×2 avg-pool → conv3x3 → lrelu,
plus a 1×1 conv of the pooled input, summed and scaled by 1/√2), then
conv3x3 → lrelu → flatten → dense → lrelu → dense(1): one logit per image.
(StyleGAN2's blur kernels, minibatch-stddev and equalized learning rate are
left out; the loss functions live in `vqgan_tokenizer.py`.)
"""

import math

import keras
from keras import ops


def _lrelu(x):
    return ops.leaky_relu(x, 0.2)


@keras.saving.register_keras_serializable(package="keras_givt")
class StyleGANDiscriminator(keras.Model):
    """Image (B, H, W, C) in [0, 1] -> real/fake logit (B,).

    Args:
        filters: int. Channels of the first level.
        channel_multipliers: list of int. One ×2-downsampling block each.
        dense_units: int. Width of the hidden dense layer.

    Example:
    ```python
    disc = keras_givt.models.vqvae.StyleGANDiscriminator(filters=16)
    logits = disc(images)  # (B,)
    ```
    """

    def __init__(self, filters=64, channel_multipliers=(1, 2, 4, 4), dense_units=256, **kwargs):
        super().__init__(**kwargs)
        # === Layers ===
        conv = lambda f, k, name, bias=True: keras.layers.Conv2D(  # noqa: E731
            f, k, padding="same", use_bias=bias, name=name, dtype=self.dtype_policy
        )
        self.stem = conv(filters, 3, "stem")
        self.blocks = []
        for i, mult in enumerate(channel_multipliers):
            f = filters * mult
            self.blocks.append(
                (
                    conv(f, 3, f"block_{i}_conv_0"),
                    conv(f, 3, f"block_{i}_conv_1"),
                    conv(f, 1, f"block_{i}_skip", bias=False),
                )
            )
        # Keras tracks layers in lists, not tuples of lists: flatten for tracking.
        self.block_layers = [layer for block in self.blocks for layer in block]
        self.out_conv = conv(filters * channel_multipliers[-1], 3, "out_conv")
        self.dense = keras.layers.Dense(dense_units, name="dense", dtype=self.dtype_policy)
        self.logit = keras.layers.Dense(1, name="logit", dtype=self.dtype_policy)
        # === Config ===
        self.filters = filters
        self.channel_multipliers = list(channel_multipliers)
        self.dense_units = dense_units

    def call(self, images):
        # images: (B, H, W, C)
        x = _lrelu(self.stem(ops.cast(images, self.compute_dtype)))
        for conv_0, conv_1, skip in self.blocks:
            h = _lrelu(conv_0(x))
            h = ops.average_pool(h, 2, 2, padding="same")
            h = _lrelu(conv_1(h))
            s = skip(ops.average_pool(x, 2, 2, padding="same"))
            x = (h + s) * (1.0 / math.sqrt(2.0))
        x = _lrelu(self.out_conv(x))  # (B, h, w, C')
        x = ops.reshape(x, (ops.shape(x)[0], -1))
        x = _lrelu(self.dense(x))
        return ops.cast(self.logit(x)[:, 0], "float32")  # (B,)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "filters": self.filters,
            "channel_multipliers": self.channel_multipliers,
            "dense_units": self.dense_units,
        }
