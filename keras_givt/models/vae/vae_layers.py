"""Layers of big_vision's CNN β-VAE (`big_vision.models.proj.givt.cnn`).

Dimension letters: B batch, H/W image (or feature map) height/width, C
channels, G norm groups, h/w latent grid height/width, D codeword dim,
L = h·w latent tokens.

Semantics follow big_vision (itself the MaskGIT VQGAN CNN):
- GroupNorm: flax defaults, 32 groups, epsilon 1e-6, two-pass variance
  E[(x − E[x])²], statistics in float32.
- ResBlock: GN → act → conv3x3 → GN → act → conv3x3, all convs bias-free;
  when the channel count changes the 1×1 shortcut conv is applied to the
  **main-branch output** (the block input is dropped): `y + conv1x1(y)`.
- Down: 2×2 average pool, stride 2, TF-style 'same' (or a 4×4 stride-2 conv
  with bias when `conv_downsample`); up: nearest ×2 then a 3×3 conv with bias.
"""

import keras
from keras import ops

from keras_givt.layers.output_spec import OutputSpecFromShapes
from keras_givt.utils import validation

ACTIVATIONS = {
    "swish": lambda x: x * ops.sigmoid(x),
    "silu": lambda x: x * ops.sigmoid(x),
    "relu": lambda x: ops.relu(x),
}


def get_activation(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"Unsupported activation_fn {name!r}; supported: {sorted(ACTIVATIONS)}.")
    return ACTIVATIONS[name]


def flax_conv(filters, kernel_size, use_bias, name, strides=1, dtype=None):
    """A `Conv2D` laid out like flax's `nn.Conv` (kernel (kh, kw, in, out), 'SAME')."""
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=use_bias,
        kernel_initializer="lecun_normal",
        bias_initializer="zeros",
        dtype=dtype,
        name=name,
    )


# === Layers ===


@keras.saving.register_keras_serializable(package="keras_givt")
class FlaxGroupNorm(OutputSpecFromShapes, keras.layers.Layer):
    """GroupNorm with flax's numerics (float32 stats, two-pass variance).

    Args:
        num_groups: int. Number of channel groups; must divide the channels.
        epsilon: float. Added to the variance (flax default 1e-6).
    """

    def __init__(self, num_groups=32, epsilon=1e-6, **kwargs):
        # Numeric arguments: finite, in range, numpy scalars accepted.
        num_groups = validation.check_positive_int("num_groups", num_groups)
        epsilon = validation.check_float("epsilon", epsilon, 0.0, min_inclusive=False)
        super().__init__(**kwargs)
        self.num_groups = num_groups
        self.epsilon = epsilon

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels % self.num_groups:
            raise ValueError(
                f"{self.name}: {channels} channels are not divisible by "
                f"num_groups={self.num_groups}."
            )
        self.scale = self.add_weight(name="scale", shape=(channels,), initializer="ones")
        self.bias = self.add_weight(name="bias", shape=(channels,), initializer="zeros")
        self.built = True

    def call(self, x):
        # x: (B, ..., C)
        shape = ops.shape(x)
        channels = x.shape[-1]
        g = self.num_groups
        x32 = ops.cast(x, "float32")
        xg = ops.reshape(x32, (shape[0], -1, g, channels // g))  # (B, N, G, C/G)
        mean = ops.mean(xg, axis=(1, 3), keepdims=True)
        var = ops.mean(ops.square(xg - mean), axis=(1, 3), keepdims=True)
        y = (xg - mean) * ops.rsqrt(var + self.epsilon)
        y = ops.reshape(y, shape)
        y = y * ops.cast(self.scale, "float32") + ops.cast(self.bias, "float32")
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"num_groups": self.num_groups, "epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package="keras_givt")
class ResBlock(OutputSpecFromShapes, keras.layers.Layer):
    """big_vision / MaskGIT CNN residual block (see the module docstring).

    Args:
        filters: int. Output channels.
        activation_fn: str. "swish" (default), "silu" or "relu".
        num_groups: int. GroupNorm groups.
    """

    def __init__(self, filters, activation_fn="swish", num_groups=32, **kwargs):
        # Numeric arguments: finite, in range, numpy scalars accepted.
        filters = validation.check_positive_int("filters", filters)
        num_groups = validation.check_positive_int("num_groups", num_groups)
        super().__init__(**kwargs)
        self.filters = filters
        self.activation_fn = activation_fn
        self.num_groups = num_groups
        self._act = get_activation(activation_fn)
        self.norm_0 = FlaxGroupNorm(num_groups, dtype=self.dtype_policy, name="group_norm_0")
        self.conv_0 = flax_conv(filters, 3, False, "conv_0", dtype=self.dtype_policy)
        self.norm_1 = FlaxGroupNorm(num_groups, dtype=self.dtype_policy, name="group_norm_1")
        self.conv_1 = flax_conv(filters, 3, False, "conv_1", dtype=self.dtype_policy)
        self.shortcut = None

    def build(self, input_shape):
        # input_shape: (B, H, W, C_in)
        self.norm_0.build(input_shape)
        self.conv_0.build(input_shape)
        out_shape = tuple(input_shape[:-1]) + (self.filters,)
        self.norm_1.build(out_shape)
        self.conv_1.build(out_shape)
        if input_shape[-1] != self.filters:
            self.shortcut = flax_conv(
                self.filters, 1, False, "conv_shortcut", dtype=self.dtype_policy
            )
            self.shortcut.build(out_shape)
        self.built = True

    def call(self, x):
        # x: (B, H, W, C_in) -> (B, H, W, filters)
        y = self.conv_0(self._act(self.norm_0(x)))
        y = self.conv_1(self._act(self.norm_1(y)))
        if self.shortcut is not None:
            # big_vision: the shortcut conv sees the main-branch output.
            return y + self.shortcut(y)
        return x + y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "activation_fn": self.activation_fn,
                "num_groups": self.num_groups,
            }
        )
        return config


def _avg_pool_2x2(x):
    # x: (B, H, W, C) -> (B, ceil(H/2), ceil(W/2), C)
    return ops.average_pool(x, pool_size=2, strides=2, padding="same")


def _upsample_nearest_2x(x):
    # x: (B, H, W, C) -> (B, 2H, 2W, C)
    return ops.repeat(ops.repeat(x, 2, axis=1), 2, axis=2)


class CNNStack(keras.layers.Layer):
    """Base of `CNNEncoder` and `CNNDecoder`: their shared arguments and layers.

    A subclass checks its own arguments, calls `__init__`, then creates its
    layers in order: `stem_conv`, the `ResBlock`s (`_add_res_block`, named
    `res_block_<k>` in order), its resampling convs, and last
    `_add_output_layers` (`group_norm` and `out_conv`); `call` ends with
    `_output`.

    Args:
        filters: int. Base channel count.
        num_res_blocks: int. ResBlocks per resolution (and in the middle).
        channel_multipliers: list of int. One resolution level each.
        activation_fn: str. Activation name.
    """

    def __init__(
        self, filters, num_res_blocks, channel_multipliers, activation_fn="swish", **kwargs
    ):
        # Numeric arguments: finite, in range, numpy scalars accepted.
        filters = validation.check_positive_int("filters", filters)
        num_res_blocks = validation.check_int("num_res_blocks", num_res_blocks, 0)
        validation.check_int_list("channel_multipliers", channel_multipliers)
        super().__init__(**kwargs)
        self.filters = filters
        self.num_res_blocks = num_res_blocks
        self.channel_multipliers = list(channel_multipliers)
        self.activation_fn = activation_fn
        self._act = get_activation(activation_fn)

    def _add_res_block(self, channels):
        """Appends a `ResBlock` of `channels` outputs to `res_blocks`."""
        k = len(self.res_blocks)
        self.res_blocks.append(
            ResBlock(channels, self.activation_fn, dtype=self.dtype_policy, name=f"res_block_{k}")
        )

    def _add_output_layers(self, channels, kernel_size):
        """Sets `norm` (GroupNorm, 32 groups) and `out_conv` (with bias)."""
        self.norm = FlaxGroupNorm(32, dtype=self.dtype_policy, name="group_norm")
        self.out_conv = flax_conv(channels, kernel_size, True, "out_conv", dtype=self.dtype_policy)

    def _output(self, x):
        """`out_conv(act(norm(x)))`."""
        return self.out_conv(self._act(self.norm(x)))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "num_res_blocks": self.num_res_blocks,
                "channel_multipliers": self.channel_multipliers,
                "activation_fn": self.activation_fn,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_givt")
class CNNEncoder(CNNStack):
    """big_vision `cnn.Encoder`: images (B, H, W, 3) -> (B, h, w, embedding_dim).

    Args:
        filters: int. Base channel count.
        num_res_blocks: int. ResBlocks per resolution (and in the middle).
        channel_multipliers: list of int. One resolution level each; all but
            the last end with a ×2 downsampling.
        embedding_dim: int. Output channels (2·codeword_dim for the VAE).
        conv_downsample: bool. 4×4 stride-2 conv instead of average pooling.
        activation_fn: str. Activation name.

    Example:
    ```python
    encoder = CNNEncoder(32, 1, [1, 2], embedding_dim=8)
    y = encoder(np.zeros((2, 16, 16, 3), "float32"))  # (2, 8, 8, 8)
    ```
    """

    def __init__(
        self,
        filters,
        num_res_blocks,
        channel_multipliers,
        embedding_dim,
        conv_downsample=False,
        activation_fn="swish",
        **kwargs,
    ):
        embedding_dim = validation.check_positive_int("embedding_dim", embedding_dim)
        super().__init__(filters, num_res_blocks, channel_multipliers, activation_fn, **kwargs)
        self.embedding_dim = embedding_dim
        self.conv_downsample = conv_downsample
        filters = self.filters
        self.stem_conv = flax_conv(filters, 3, False, "stem_conv", dtype=self.dtype_policy)
        self.res_blocks = []
        self.downsample_convs = []
        n = len(self.channel_multipliers)
        for i, mult in enumerate(self.channel_multipliers):
            for _ in range(self.num_res_blocks):
                self._add_res_block(filters * mult)
            if i < n - 1 and conv_downsample:
                j = len(self.downsample_convs)
                self.downsample_convs.append(
                    flax_conv(
                        filters * mult,
                        4,
                        True,
                        f"downsample_conv_{j}",
                        strides=2,
                        dtype=self.dtype_policy,
                    )
                )
        for _ in range(self.num_res_blocks):
            self._add_res_block(filters * self.channel_multipliers[-1])
        self._add_output_layers(embedding_dim, 1)

    def call(self, x):
        # x: (B, H, W, C)
        x = self.stem_conv(x)  # (B, H, W, filters)
        n = len(self.channel_multipliers)
        k = 0
        for i in range(n):
            for _ in range(self.num_res_blocks):
                x = self.res_blocks[k](x)
                k += 1
            if i < n - 1:
                if self.conv_downsample:
                    x = self.downsample_convs[i](x)
                else:
                    x = _avg_pool_2x2(x)
        for _ in range(self.num_res_blocks):
            x = self.res_blocks[k](x)
            k += 1
        return self._output(x)  # (B, h, w, embedding_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"embedding_dim": self.embedding_dim, "conv_downsample": self.conv_downsample}
        )
        return config


@keras.saving.register_keras_serializable(package="keras_givt")
class CNNDecoder(CNNStack):
    """big_vision `cnn.Decoder`: latents (B, h, w, D) -> images (B, H, W, output_dim).

    Args:
        filters: int. Base channel count.
        num_res_blocks: int. ResBlocks in the middle and per resolution.
        channel_multipliers: list of int. Levels, walked in reverse; all but
            the first level end with nearest ×2 upsampling + 3×3 conv.
        output_dim: int. Output channels (3).
        activation_fn: str. Activation name.

    Example:
    ```python
    decoder = CNNDecoder(32, 1, [1, 2])
    images = decoder(np.zeros((2, 8, 8, 4), "float32"))  # (2, 16, 16, 3)
    ```
    """

    def __init__(
        self,
        filters,
        num_res_blocks,
        channel_multipliers,
        output_dim=3,
        activation_fn="swish",
        **kwargs,
    ):
        output_dim = validation.check_positive_int("output_dim", output_dim)
        super().__init__(filters, num_res_blocks, channel_multipliers, activation_fn, **kwargs)
        self.output_dim = output_dim
        n = len(self.channel_multipliers)
        top = self.filters * self.channel_multipliers[-1]
        self.stem_conv = flax_conv(top, 3, True, "stem_conv", dtype=self.dtype_policy)
        self.res_blocks = []
        for _ in range(self.num_res_blocks):
            self._add_res_block(top)
        self.upsample_convs = []
        for i in reversed(range(n)):
            f = self.filters * self.channel_multipliers[i]
            for _ in range(self.num_res_blocks):
                self._add_res_block(f)
            if i > 0:
                self.upsample_convs.append(
                    flax_conv(
                        f,
                        3,
                        True,
                        f"upsample_conv_{len(self.upsample_convs)}",
                        dtype=self.dtype_policy,
                    )
                )
        self._add_output_layers(output_dim, 3)

    def call(self, x, return_features=False):
        """Images (B, H, W, output_dim); with `return_features`, also the input
        (B, H, W, F) of `out_conv` (the adaptive adversarial weight needs it)."""
        # x: (B, h, w, D)
        x = self.stem_conv(x)
        k = 0
        for _ in range(self.num_res_blocks):
            x = self.res_blocks[k](x)
            k += 1
        u = 0
        for i in reversed(range(len(self.channel_multipliers))):
            for _ in range(self.num_res_blocks):
                x = self.res_blocks[k](x)
                k += 1
            if i > 0:
                x = self.upsample_convs[u](_upsample_nearest_2x(x))
                u += 1
        if not return_features:
            return self._output(x)  # (B, H, W, output_dim)
        features = self._act(self.norm(x))  # (B, H, W, F)
        return self.out_conv(features), features

    def get_config(self):
        config = super().get_config()
        config.update({"output_dim": self.output_dim})
        return config


def pixel_shuffle(x, patch_size):
    """`b (h ph) (w pw) c -> b (h w) (c ph pw)` (c slowest). x: (B, H, W, C)."""
    ph, pw = patch_size
    shape = ops.shape(x)
    hh, ww, c = x.shape[1], x.shape[2], x.shape[3]
    hh = shape[1] if hh is None else hh
    ww = shape[2] if ww is None else ww
    x = ops.reshape(x, (shape[0], hh // ph, ph, ww // pw, pw, c))
    x = ops.transpose(x, (0, 1, 3, 5, 2, 4))  # (B, h, w, C, ph, pw)
    return ops.reshape(x, (shape[0], (hh // ph) * (ww // pw), c * ph * pw))


def pixel_unshuffle(x, patch_size, grid_shape):
    """`b (h w) (c ph pw) -> b (h ph) (w pw) c`. x: (B, L, C·ph·pw); grid (h, w)."""
    ph, pw = patch_size
    h, w = grid_shape
    shape = ops.shape(x)
    c = x.shape[-1] // (ph * pw)
    x = ops.reshape(x, (shape[0], h, w, c, ph, pw))
    x = ops.transpose(x, (0, 1, 4, 2, 5, 3))  # (B, h, ph, w, pw, C)
    return ops.reshape(x, (shape[0], h * ph, w * pw, c))
