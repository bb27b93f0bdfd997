"""big_vision `models/vit.py` Encoder: pre-LN ViT blocks with biases.

Dimension letters: B batch, P sequence length (patches), E width, H heads,
Dh = E / H, F MLP width, N number of blocks.

Used by UViM: the ViT VAE's encoder and decoder, and the image encoder of
the encoder-decoder GIVT. Semantics (`Encoder1DBlock`, `MlpBlock`):
- `x + Dropout(MHDPA(LayerNorm_0(x)))`, then `x + MLP(LayerNorm_1(x))`;
- LayerNorms **with** bias, epsilon 1e-6, flax's fast variance;
- attention with biases on q/k/v (`(H, Dh)`) and out (`(E,)`), queries
  scaled by 1/√Dh, no mask;
- MLP `Dense_0 -> gelu (tanh) -> Dropout -> Dense_1 -> Dropout`;
- a final `encoder_norm` LayerNorm after the last block.

The big_vision weight names of these layers live with the converter
(`keras_givt.conversion.big_vision.vit_encoder_weight_map`).
"""

import keras
from keras import ops

from keras_givt.layers.output_spec import OutputSpecFromShapes
from keras_givt.layers.rng_bit_dropout import RngBitDropout
from keras_givt.layers.transformer_block import FlaxLayerNorm
from keras_givt.layers.transformer_block import PreLNTransformerBlock
from keras_givt.layers.transformer_block import check_block_arguments
from keras_givt.utils import validation


@keras.saving.register_keras_serializable(package="keras_givt")
class ViTEncoderBlock(PreLNTransformerBlock):
    """One big_vision ViT `Encoder1DBlock`.

    Args:
        hidden_dim: int. E.
        num_heads: int. H (divides E).
        mlp_dim: int. F.
        dropout_rate: float. Dropout after attention and in the MLP.
        layer_norm_epsilon: float.

    Example:
    ```python
    block = ViTEncoderBlock(hidden_dim=32, num_heads=2, mlp_dim=64)
    y = block(np.zeros((2, 16, 32), "float32"))  # (2, 16, 32)
    ```
    """

    def __init__(
        self, hidden_dim, num_heads, mlp_dim, dropout_rate=0.0, layer_norm_epsilon=1e-6, **kwargs
    ):
        # The base class checks the hyperparameters (`check_block_arguments`).
        super().__init__(hidden_dim, num_heads, mlp_dim, dropout_rate, layer_norm_epsilon, **kwargs)

        # === Layers ===
        # LayerNorms and attention with biases; no attention-weight dropout.
        self.pre_attention_norm, self.attention, self.attention_dropout = self._attention_sublayers(
            "pre_attention_norm",
            "attention",
            "attention_dropout",
            use_bias=True,
            attention_dropout_rate=0.0,
        )
        self._add_mlp_sublayers(norm_bias=True)
        self.output_dropout = RngBitDropout(
            self.dropout_rate, dtype=self.dtype_policy, name="output_dropout"
        )

    def build(self, input_shape):
        self.pre_attention_norm.build(input_shape)
        self.attention.build(input_shape)
        self._build_mlp(input_shape)
        self.built = True

    def call(self, x, training=None):
        # x (B, P, E)
        x = self._attention_residual(
            x, self.pre_attention_norm, self.attention, self.attention_dropout, training
        )
        return x + self.output_dropout(self._mlp(x, training), training=training)


@keras.saving.register_keras_serializable(package="keras_givt")
class ViTEncoder(OutputSpecFromShapes, keras.layers.Layer):
    """A stack of `ViTEncoderBlock`s and the final `encoder_norm`.

    Args:
        num_layers: int. N (0 gives just the final LayerNorm).
        hidden_dim: int. E.
        num_heads: int. H.
        mlp_dim: int. F.
        dropout_rate: float.
        layer_norm_epsilon: float.

    Example:
    ```python
    encoder = ViTEncoder(num_layers=2, hidden_dim=32, num_heads=2, mlp_dim=64)
    y = encoder(np.zeros((2, 16, 32), "float32"))  # (2, 16, 32)
    ```
    """

    def __init__(
        self,
        num_layers,
        hidden_dim,
        num_heads,
        mlp_dim,
        dropout_rate=0.0,
        layer_norm_epsilon=1e-6,
        **kwargs,
    ):
        # Numeric arguments: finite, in range, numpy scalars accepted.
        num_layers = validation.check_int("num_layers", num_layers, 0)
        hidden_dim, num_heads, mlp_dim, dropout_rate, layer_norm_epsilon = check_block_arguments(
            hidden_dim, num_heads, mlp_dim, dropout_rate, layer_norm_epsilon
        )
        super().__init__(**kwargs)
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.dropout_rate = dropout_rate
        self.layer_norm_epsilon = layer_norm_epsilon
        # === Layers ===
        self.blocks = [
            ViTEncoderBlock(
                **self._block_kwargs(), dtype=self.dtype_policy, name=f"encoder_block_{i}"
            )
            for i in range(num_layers)
        ]
        self.encoder_norm = FlaxLayerNorm(
            layer_norm_epsilon, use_bias=True, dtype=self.dtype_policy, name="encoder_norm"
        )

    def build(self, input_shape):
        for block in self.blocks:
            block.build(input_shape)
        self.encoder_norm.build(input_shape)
        self.built = True

    def call(self, x, training=None):
        for block in self.blocks:
            x = block(x, training=training)
        return self.encoder_norm(x)

    def _block_kwargs(self):
        """Each block's hyperparameters (also this layer's, with `num_layers`)."""
        return {
            "hidden_dim": self.hidden_dim,
            "num_heads": self.num_heads,
            "mlp_dim": self.mlp_dim,
            "dropout_rate": self.dropout_rate,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        }

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"num_layers": self.num_layers, **self._block_kwargs()})
        return config


@keras.saving.register_keras_serializable(package="keras_givt")
class PatchViTEncoder(OutputSpecFromShapes, keras.layers.Layer):
    """Patch embedding + learned positions + `ViTEncoder` (big_vision ViT body).

    `images (B, H, W, C) -> (B, P, E)` with P = (H/ph)·(W/pw): a conv with
    kernel = stride = patch size (VALID, with bias), flattened row-major,
    plus learned position embeddings `(P, E)` (init N(0, 1/√E)), then the
    encoder blocks and the final LayerNorm.

    Args:
        patch_size: (ph, pw).
        num_patches: int. P (fixes the position table).
        num_layers, hidden_dim, num_heads, mlp_dim, dropout_rate: as
            `ViTEncoder`.

    Example:
    ```python
    enc = PatchViTEncoder((8, 8), 16, num_layers=1, hidden_dim=32, num_heads=2, mlp_dim=64)
    y = enc(np.zeros((2, 32, 32, 3), "float32"))  # (2, 16, 32)
    ```
    """

    def __init__(
        self,
        patch_size,
        num_patches,
        num_layers,
        hidden_dim,
        num_heads,
        mlp_dim,
        dropout_rate=0.0,
        **kwargs,
    ):
        # Numeric arguments: finite, in range, numpy scalars accepted.
        validation.check_int_pair("patch_size", patch_size)
        num_patches = validation.check_positive_int("num_patches", num_patches)
        num_layers = validation.check_int("num_layers", num_layers, 0)
        hidden_dim, num_heads, mlp_dim, dropout_rate, _ = check_block_arguments(
            hidden_dim, num_heads, mlp_dim, dropout_rate
        )
        super().__init__(**kwargs)
        self.patch_size = tuple(int(p) for p in patch_size)
        self.num_patches = int(num_patches)
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.dropout_rate = dropout_rate
        # === Layers ===
        self.patch_embedding = keras.layers.Conv2D(
            hidden_dim,
            self.patch_size,
            strides=self.patch_size,
            padding="valid",
            dtype=self.dtype_policy,
            name="patch_embedding",
        )
        self.dropout = RngBitDropout(dropout_rate, dtype=self.dtype_policy, name="dropout")
        self.encoder = ViTEncoder(
            num_layers,
            hidden_dim,
            num_heads,
            mlp_dim,
            dropout_rate,
            dtype=self.dtype_policy,
            name="encoder",
        )

    def build(self, input_shape):
        self.patch_embedding.build(input_shape)
        self.position_embedding = self.add_weight(
            name="position_embedding",
            shape=(self.num_patches, self.hidden_dim),
            initializer=keras.initializers.RandomNormal(stddev=self.hidden_dim**-0.5),
        )
        self.encoder.build((input_shape[0], self.num_patches, self.hidden_dim))
        self.built = True

    def embed(self, images):
        """images (B, H, W, C) -> patch embeddings + positions (B, P, E)."""
        x = self.patch_embedding(ops.cast(images, self.compute_dtype))  # (B, h, w, E)
        x = ops.reshape(x, (-1, self.num_patches, self.hidden_dim))
        return x + ops.cast(self.position_embedding, self.compute_dtype)

    def call(self, images, training=None):
        x = self.dropout(self.embed(images), training=training)
        return self.encoder(x, training=training)  # (B, P, E)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_patches, self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "patch_size": list(self.patch_size),
                "num_patches": self.num_patches,
                "num_layers": self.num_layers,
                "hidden_dim": self.hidden_dim,
                "num_heads": self.num_heads,
                "mlp_dim": self.mlp_dim,
                "dropout_rate": self.dropout_rate,
            }
        )
        return config
