"""`IRevNetAdaptor`: big_vision's iRevNet flow (`big_vision.models.proj.givt.adaptor`).

Dimension letters: B batch, L tokens, C channels (num_channels), h/w token
grid (h = w = √L·…, square), F bottleneck width, ph/pw pixel-shuffle patch.

An invertible map on VAE latents (the "+A" of the GIVT paper): tokens
(B, L, C) are laid out on their square (h, w) grid, go through `num_blocks`
iRevNet blocks and back to tokens. Each block splits channels into halves
(x1, x2) (first / second half) and returns (x2, x1 + F(x2)) with

    F = [GN → ReLU] (not in block 0) → conv3x3 → GN → ReLU → conv3x3
        → dropout → GN → ReLU → conv3x3

(bias-free convs, padding 1; num_channels_bottleneck // 2 inner width;
every GroupNorm has min(32, num_channels // 2) groups — num_channels of the
*model*, not of the normalised tensor (checked against the fixtures) — eps
1e-6). `inverse` undoes `forward` exactly (up to float rounding).

With `pixel_shuffle_patch_size` (ph, pw) ≠ (1, 1), tokens are first
un-shuffled `b (h w) (c ph pw) -> b (h ph) (w pw) c` to the VAE's latent grid
(and shuffled back at the end), so `num_channels` is then the per-pixel
channel count. This part is NOT covered by the reference fixtures (they use
(1, 1)); it is our reading of big_vision and may differ.
"""

import math

import keras
from keras import ops

from keras_givt.models.vae.vae_layers import FlaxGroupNorm
from keras_givt.models.vae.vae_layers import flax_conv
from keras_givt.models.vae.vae_layers import pixel_shuffle
from keras_givt.models.vae.vae_layers import pixel_unshuffle

# === Layers ===


def _groups(num_channels):
    # big_vision: one group count for all norms, from the model's num_channels.
    return max(1, min(32, num_channels // 2))


@keras.saving.register_keras_serializable(package="keras_givt")
class IRevNetBlock(keras.layers.Layer):
    """One iRevNet block on (B, h, w, C) grids; `call` = forward, `inverse`.

    Args:
        num_channels: int. C (even).
        num_channels_bottleneck: int. big_vision's bottleneck arg; the
            inner conv width is `num_channels_bottleneck // 2`.
        first: bool. Block 0 has no leading GroupNorm + ReLU.
        dropout_rate: float. Dropout after the second conv.
    """

    def __init__(
        self, num_channels, num_channels_bottleneck, first=False, dropout_rate=0.0, **kwargs
    ):
        super().__init__(**kwargs)
        if num_channels % 2:
            raise ValueError(f"num_channels must be even; received {num_channels}.")
        self.num_channels = num_channels
        self.num_channels_bottleneck = num_channels_bottleneck
        self.first = first
        self.dropout_rate = dropout_rate
        half = num_channels // 2
        inner = num_channels_bottleneck // 2
        dt = self.dtype_policy
        groups = _groups(num_channels)
        self.gn_0 = None if first else FlaxGroupNorm(groups, dtype=dt, name="gn_0")
        self.conv_0 = flax_conv(inner, 3, False, "conv_0", dtype=dt)
        self.gn_1 = FlaxGroupNorm(groups, dtype=dt, name="gn_1")
        self.conv_1 = flax_conv(inner, 3, False, "conv_1", dtype=dt)
        self.dropout = keras.layers.Dropout(dropout_rate, dtype=dt, name="dropout")
        self.gn_2 = FlaxGroupNorm(groups, dtype=dt, name="gn_2")
        self.conv_2 = flax_conv(half, 3, False, "conv_2", dtype=dt)

    def build(self, input_shape):
        # input_shape: (B, h, w, C)
        half_shape = tuple(input_shape[:-1]) + (self.num_channels // 2,)
        inner_shape = tuple(input_shape[:-1]) + (self.num_channels_bottleneck // 2,)
        if self.gn_0 is not None:
            self.gn_0.build(half_shape)
        self.conv_0.build(half_shape)
        self.gn_1.build(inner_shape)
        self.conv_1.build(inner_shape)
        self.gn_2.build(inner_shape)
        self.conv_2.build(inner_shape)
        self.built = True

    def residual(self, x2, training=None):
        # x2: (B, h, w, C/2) -> (B, h, w, C/2)
        y = x2
        if self.gn_0 is not None:
            y = ops.relu(self.gn_0(y))
        y = self.conv_0(y)
        y = ops.relu(self.gn_1(y))
        y = self.conv_1(y)
        y = self.dropout(y, training=training)
        y = ops.relu(self.gn_2(y))
        return self.conv_2(y)

    def call(self, x, training=None):
        # (x1, x2) -> (x2, x1 + F(x2))
        half = self.num_channels // 2
        x1, x2 = x[..., :half], x[..., half:]
        return ops.concatenate([x2, x1 + self.residual(x2, training)], axis=-1)

    def inverse(self, y, training=None):
        # (y1, y2) = (x2, x1 + F(x2)) -> (y2 − F(y1), y1)
        half = self.num_channels // 2
        y1, y2 = y[..., :half], y[..., half:]
        return ops.concatenate([y2 - self.residual(y1, training), y1], axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_channels": self.num_channels,
                "num_channels_bottleneck": self.num_channels_bottleneck,
                "first": self.first,
                "dropout_rate": self.dropout_rate,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_givt")
class IRevNetAdaptor(keras.Model):
    """big_vision `adaptor.Model`: invertible flow on latent token sequences.

    `call(x)` == `forward(x)`; `inverse(forward(x)) ≈ x`.

    Args:
        num_blocks: int. iRevNet blocks.
        num_channels: int. Channels per grid position (even).
        num_channels_bottleneck: int. Bottleneck arg (inner width = // 2).
        pixel_shuffle_patch_size: (ph, pw). See the module docstring.
        dropout_rate: float. Dropout inside each block.
    """

    def __init__(
        self,
        num_blocks=4,
        num_channels=16,
        num_channels_bottleneck=64,
        pixel_shuffle_patch_size=(1, 1),
        dropout_rate=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_blocks = num_blocks
        self.num_channels = num_channels
        self.num_channels_bottleneck = num_channels_bottleneck
        self.pixel_shuffle_patch_size = tuple(int(p) for p in pixel_shuffle_patch_size)
        self.dropout_rate = dropout_rate
        self.blocks = [
            IRevNetBlock(
                num_channels,
                num_channels_bottleneck,
                first=(i == 0),
                dropout_rate=dropout_rate,
                dtype=self.dtype_policy,
                name=f"modules_{i}",
            )
            for i in range(num_blocks)
        ]

    def _to_grid(self, x):
        # x: (B, L, C·ph·pw) -> (B, h·ph, w·pw, C)
        ph, pw = self.pixel_shuffle_patch_size
        num_tokens = x.shape[1]
        side = int(round(math.sqrt(num_tokens * ph * pw)))
        if side * side != num_tokens * ph * pw or side % ph or side % pw:
            raise ValueError(
                f"IRevNetAdaptor needs a square token grid; received {num_tokens} tokens "
                f"with pixel_shuffle_patch_size {(ph, pw)}."
            )
        return pixel_unshuffle(x, (ph, pw), (side // ph, side // pw))

    def _to_tokens(self, x):
        return pixel_shuffle(x, self.pixel_shuffle_patch_size)

    def build(self, input_shape):
        ph, pw = self.pixel_shuffle_patch_size
        num_tokens = input_shape[1] if input_shape[1] is not None else 1
        side = int(round(math.sqrt(num_tokens * ph * pw)))
        grid = (input_shape[0], side, side, self.num_channels)
        for block in self.blocks:
            if not block.built:
                block.build(grid)
        self.built = True

    def forward(self, x, training=None):
        """x (B, L, C·ph·pw) -> (B, L, C·ph·pw)."""
        if not self.built:
            self.build(tuple(x.shape))
        x = self._to_grid(ops.cast(x, self.compute_dtype))
        for block in self.blocks:
            x = block(x, training=training)
        return self._to_tokens(x)

    def inverse(self, x, training=None):
        """Inverse of `forward`."""
        if not self.built:
            self.build(tuple(x.shape))
        x = self._to_grid(ops.cast(x, self.compute_dtype))
        for block in reversed(self.blocks):
            x = block.inverse(x, training=training)
        return self._to_tokens(x)

    def call(self, x, training=None):
        return self.forward(x, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "num_blocks": self.num_blocks,
            "num_channels": self.num_channels,
            "num_channels_bottleneck": self.num_channels_bottleneck,
            "pixel_shuffle_patch_size": list(self.pixel_shuffle_patch_size),
            "dropout_rate": self.dropout_rate,
        }
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)
