"""`IRevNetAdaptor`: big_vision's iRevNet flow (`big_vision.models.proj.givt.adaptor`).

Dimension letters: B batch, L tokens, C channels (num_channels), h/w token
grid, F bottleneck width, ph/pw pixel-shuffle patch.

An invertible map on VAE latents (the "+A" of the GIVT paper): tokens
(B, L, C) are laid out on their (h, w) token grid (`b (h w) c -> b h w c`),
go through `num_blocks` iRevNet blocks and back to tokens. Each block splits
channels into halves (x1, x2) (first / second half) and returns
(x2, x1 + F(x2)) with

    F = [GN → ReLU] (not in block 0) → conv3x3 → GN → ReLU → conv3x3
        → dropout → GN → ReLU → conv3x3

(bias-free convs, padding 1; num_channels_bottleneck // 2 inner width;
every GroupNorm has min(32, num_channels // 2) groups — num_channels of the
*model*, not of the normalised tensor (checked against the fixtures) — eps
1e-6). `inverse` undoes `forward` exactly (up to float rounding).

The token grid is big_vision's `cnn.get_h_w_pixelshuffle(L, (ph, pw))`:
s = ⌊√(L·ph·pw)⌋, h = s // ph, w = s // pw, and L must equal h·w (the VAE's
latent grid is s × s before its space-to-depth). The tokens are NOT
un-shuffled: `num_channels` is the token width (C·ph·pw of the VAE), and with
(ph, pw) ≠ (1, 1) the grid is not square (e.g. (1, 2), L = 8: 4 × 2). Checked
against the `adaptor_pixelshuffle` reference fixture.
"""

import math

import keras
from keras import ops

from keras_givt.layers.output_spec import OutputSpecFromShapes
from keras_givt.layers.rng_bit_dropout import RngBitDropout
from keras_givt.models.vae.vae_layers import FlaxGroupNorm
from keras_givt.models.vae.vae_layers import flax_conv
from keras_givt.utils import validation

# === Layers ===


def token_grid(num_tokens, pixel_shuffle_patch_size):
    """big_vision `cnn.get_h_w_pixelshuffle`: the (h, w) token grid of L tokens.

    Args:
        num_tokens: int. L, the number of latent tokens.
        pixel_shuffle_patch_size: (ph, pw) of the VAE's space-to-depth.

    Returns:
        (h, w) with h·w = L and h·ph = w·pw.

    Raises:
        ValueError: if no such grid exists (big_vision's assertion).
    """
    ph, pw = (int(p) for p in pixel_shuffle_patch_size)
    num_tokens = int(num_tokens)
    side = math.isqrt(num_tokens * ph * pw)
    h, w = side // ph, side // pw
    if h * w != num_tokens:
        raise ValueError(
            f"{num_tokens} tokens do not form a token grid h x w with h*{ph} == w*{pw} "
            f"(big_vision's get_h_w_pixelshuffle) for pixel_shuffle_patch_size={(ph, pw)}."
        )
    return h, w


def _groups(num_channels):
    # big_vision: one group count for all norms, from the model's num_channels.
    return max(1, min(32, num_channels // 2))


@keras.saving.register_keras_serializable(package="keras_givt")
class IRevNetBlock(OutputSpecFromShapes, keras.layers.Layer):
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
        num_channels = validation.check_positive_int("num_channels", num_channels)
        num_channels_bottleneck = validation.check_positive_int(
            "num_channels_bottleneck", num_channels_bottleneck
        )
        dropout_rate = validation.check_rate("dropout_rate", dropout_rate)
        if num_channels % 2:
            raise ValueError(f"`num_channels` must be even. Received: num_channels={num_channels}")
        if num_channels_bottleneck < 2:
            raise ValueError(
                "`num_channels_bottleneck` must be >= 2 (inner width = // 2). "
                f"Received: num_channels_bottleneck={num_channels_bottleneck}"
            )
        super().__init__(**kwargs)
        self.num_channels = num_channels
        self.num_channels_bottleneck = num_channels_bottleneck
        self.first = bool(first)
        self.dropout_rate = dropout_rate
        half = num_channels // 2
        inner = num_channels_bottleneck // 2
        dt = self.dtype_policy
        groups = _groups(num_channels)
        self.gn_0 = None if first else FlaxGroupNorm(groups, dtype=dt, name="gn_0")
        self.conv_0 = flax_conv(inner, 3, False, "conv_0", dtype=dt)
        self.gn_1 = FlaxGroupNorm(groups, dtype=dt, name="gn_1")
        self.conv_1 = flax_conv(inner, 3, False, "conv_1", dtype=dt)
        self.dropout = RngBitDropout(dropout_rate, dtype=dt, name="dropout")
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
class IRevNetAdaptor(OutputSpecFromShapes, keras.Model):
    """big_vision `adaptor.Model`: invertible flow on latent token sequences.

    `call(x)` == `forward(x)`; `inverse(forward(x)) ≈ x`.

    Args:
        num_blocks: int >= 1. iRevNet blocks.
        num_channels: even int > 0. Channels per token (the token width).
        num_channels_bottleneck: int >= 2. Bottleneck arg (inner width = // 2).
        pixel_shuffle_patch_size: (ph, pw), two ints > 0: the VAE's
            space-to-depth patch; sets the token grid (module docstring).
        dropout_rate: float in [0, 1). Dropout inside each block.
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
        num_blocks = validation.check_positive_int("num_blocks", num_blocks)
        num_channels = validation.check_positive_int("num_channels", num_channels)
        if num_channels % 2:
            raise ValueError(f"`num_channels` must be even. Received: num_channels={num_channels}")
        pixel_shuffle_patch_size = validation.check_int_pair(
            "pixel_shuffle_patch_size", pixel_shuffle_patch_size
        )
        num_channels_bottleneck = validation.check_positive_int(
            "num_channels_bottleneck", num_channels_bottleneck
        )
        dropout_rate = validation.check_rate("dropout_rate", dropout_rate)
        super().__init__(**kwargs)
        self.num_blocks = num_blocks
        self.num_channels = num_channels
        self.num_channels_bottleneck = num_channels_bottleneck
        self.pixel_shuffle_patch_size = pixel_shuffle_patch_size
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

    def _grid(self, num_tokens, channels):
        if num_tokens is None:
            raise ValueError("IRevNetAdaptor needs a static number of tokens.")
        if channels is not None and channels != self.num_channels:
            raise ValueError(
                f"IRevNetAdaptor(num_channels={self.num_channels}) received tokens with "
                f"{channels} channels."
            )
        return token_grid(num_tokens, self.pixel_shuffle_patch_size)

    def _to_grid(self, x):
        # x: (B, L, C) -> (B, h, w, C)   (`b (h w) c -> b h w c`)
        h, w = self._grid(x.shape[1], x.shape[2])
        return ops.reshape(x, (ops.shape(x)[0], h, w, self.num_channels))

    def _to_tokens(self, x):
        # (B, h, w, C) -> (B, h·w, C)
        h, w = x.shape[1], x.shape[2]
        return ops.reshape(x, (ops.shape(x)[0], h * w, x.shape[3]))

    def build(self, input_shape):
        # Convs and norms do not depend on the grid size; without a static
        # token count any valid grid builds the same weights.
        num_tokens = input_shape[1]
        if num_tokens is None:
            h = w = 1
        else:
            h, w = self._grid(num_tokens, input_shape[2])
        grid = (input_shape[0], h, w, self.num_channels)
        for block in self.blocks:
            if not block.built:
                block.build(grid)
        self.built = True

    def forward(self, x, training=None):
        """x (B, L, C) -> (B, L, C)."""
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
