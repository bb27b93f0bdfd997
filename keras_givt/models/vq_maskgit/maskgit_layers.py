"""Layers of MaskGIT's BERT-style transformer (`maskgit.nets.maskgit_transformer`).

Dimension letters: B batch, S sequence length (1 class token + L image
tokens), E hidden size, H heads, Dh = E/H head dim, F intermediate size,
V vocabulary size.

Numerics as MaskGIT (flax): LayerNorm epsilon 1e-12 with the E[x²] − E[x]²
variance, tanh-approximate GELU, post-LN blocks, attention weights laid out
as flax `SelfAttention` (query/key/value kernels (E, H, Dh), output kernel
(H, Dh, E)), logits scaled by 1/√Dh. Attention-probability dropout and
hidden dropout only when training.
"""

import math

import keras
from keras import ops

from keras_givt.layers.output_spec import OutputSpecFromShapes
from keras_givt.layers.rng_bit_dropout import RngBitDropout
from keras_givt.layers.transformer_block import FlaxLayerNorm
from keras_givt.layers.transformer_block import softmax_attention
from keras_givt.utils import validation

LAYERNORM_EPSILON = 1e-12


def _init():
    # MaskGIT: truncated normal(0.02) for every kernel and embedding.
    return keras.initializers.TruncatedNormal(stddev=0.02)


@keras.saving.register_keras_serializable(package="keras_givt")
class MaskGITTransformerLayer(OutputSpecFromShapes, keras.layers.Layer):
    """Post-LN block: LN(x + Drop(Attn(x))), then LN(h + Drop(MLP(h))).

    Args:
        num_heads: int. H.
        intermediate_size: int. F.
        hidden_dropout: float. Dropout after attention and after the MLP.
        attention_dropout: float. Dropout of the attention probabilities.
    """

    def __init__(
        self, num_heads, intermediate_size, hidden_dropout=0.1, attention_dropout=0.1, **kwargs
    ):
        # Numeric arguments: finite, in range, numpy scalars accepted.
        num_heads = validation.check_positive_int("num_heads", num_heads)
        intermediate_size = validation.check_positive_int("intermediate_size", intermediate_size)
        hidden_dropout = validation.check_rate("hidden_dropout", hidden_dropout)
        attention_dropout = validation.check_rate("attention_dropout", attention_dropout)
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.hidden_dropout = hidden_dropout
        self.attention_dropout = attention_dropout
        dt = self.dtype_policy
        self.attention_ln = FlaxLayerNorm(LAYERNORM_EPSILON, dtype=dt, name="attention_output_ln")
        self.mlp_ln = FlaxLayerNorm(LAYERNORM_EPSILON, dtype=dt, name="layer_output_ln")
        self.intermediate = keras.layers.Dense(
            intermediate_size, kernel_initializer=_init(), dtype=dt, name="intermediate_output"
        )
        self.dropout = RngBitDropout(hidden_dropout, dtype=dt)
        self.attention_probs_dropout = RngBitDropout(attention_dropout, dtype=dt)

    def build(self, input_shape):
        # input_shape: (B, S, E)
        dim = input_shape[-1]
        if dim % self.num_heads:
            raise ValueError(f"hidden size {dim} is not divisible by num_heads={self.num_heads}.")
        h, dh = self.num_heads, dim // self.num_heads
        for name in ("query", "key", "value"):
            setattr(
                self,
                f"{name}_kernel",
                self.add_weight(name=f"{name}_kernel", shape=(dim, h, dh), initializer=_init()),
            )
            setattr(
                self,
                f"{name}_bias",
                self.add_weight(name=f"{name}_bias", shape=(h, dh), initializer="zeros"),
            )
        self.out_kernel = self.add_weight(
            name="out_kernel", shape=(h, dh, dim), initializer=_init()
        )
        self.out_bias = self.add_weight(name="out_bias", shape=(dim,), initializer="zeros")
        self.attention_ln.build(input_shape)
        self.mlp_ln.build(input_shape)
        self.intermediate.build(input_shape)
        self.output_dense = keras.layers.Dense(
            dim, kernel_initializer=_init(), dtype=self.dtype_policy, name="layer_output"
        )
        self.output_dense.build(tuple(input_shape[:-1]) + (self.intermediate_size,))
        self.built = True

    def call(self, x, training=False):
        # x: (B, S, E)
        q = ops.einsum("bse,ehd->bshd", x, self.query_kernel) + self.query_bias  # (B, S, H, Dh)
        k = ops.einsum("bse,ehd->bshd", x, self.key_kernel) + self.key_bias
        v = ops.einsum("bse,ehd->bshd", x, self.value_kernel) + self.value_bias
        dh = q.shape[-1]
        q = q / ops.cast(math.sqrt(dh), q.dtype)
        att = softmax_attention(
            q, k, v, self.attention_probs_dropout, training, x.dtype
        )  # (B, S, H, Dh)
        att = ops.einsum("bqhd,hde->bqe", att, self.out_kernel) + self.out_bias  # (B, S, E)
        att = self.dropout(att, training=training)
        h = self.attention_ln(att + x)
        y = self.intermediate(h)  # (B, S, F)
        y = ops.gelu(y, approximate=True)
        y = self.dropout(self.output_dense(y), training=training)
        return self.mlp_ln(y + h)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "intermediate_size": self.intermediate_size,
                "hidden_dropout": self.hidden_dropout,
                "attention_dropout": self.attention_dropout,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_givt")
class MaskGITEmbedding(OutputSpecFromShapes, keras.layers.Layer):
    """Word + learned position embeddings, LayerNorm, dropout.

    Token id −1 (MaskGIT's mask token) selects the last row (V − 1).
    `attend(h)` gives `h · Wᵀ` (the tied MLM output projection).

    Args:
        vocab_size: int. V.
        hidden_size: int. E.
        max_position_embeddings: int. Longest sequence S.
        dropout: float.
    """

    def __init__(self, vocab_size, hidden_size, max_position_embeddings, dropout=0.1, **kwargs):
        # Numeric arguments: finite, in range, numpy scalars accepted.
        vocab_size = validation.check_positive_int("vocab_size", vocab_size)
        hidden_size = validation.check_positive_int("hidden_size", hidden_size)
        max_position_embeddings = validation.check_positive_int(
            "max_position_embeddings", max_position_embeddings
        )
        dropout = validation.check_rate("dropout", dropout)
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_position_embeddings = max_position_embeddings
        self.dropout_rate = dropout
        self.ln = FlaxLayerNorm(LAYERNORM_EPSILON, dtype=self.dtype_policy, name="embeddings_ln")
        self.dropout = RngBitDropout(dropout, dtype=self.dtype_policy)

    def build(self, input_shape):
        self.word_embeddings = self.add_weight(
            name="word_embeddings", shape=(self.vocab_size, self.hidden_size), initializer=_init()
        )
        self.position_embeddings = self.add_weight(
            name="position_embeddings",
            shape=(self.max_position_embeddings, self.hidden_size),
            initializer=_init(),
        )
        self.ln.build(tuple(input_shape) + (self.hidden_size,))
        self.built = True

    def call(self, token_ids, training=False):
        # token_ids: (B, S) int; −1 -> V − 1.
        ids = ops.cast(token_ids, "int32")
        ids = ops.where(ids < 0, ids + self.vocab_size, ids)
        x = ops.take(self.word_embeddings, ids, axis=0)  # (B, S, E)
        length = ops.shape(ids)[1]
        x = x + self.position_embeddings[None, :length]
        return self.dropout(self.ln(x), training=training)

    def attend(self, h):
        # h: (B, S, E) -> (B, S, V)
        return ops.matmul(h, ops.transpose(ops.cast(self.word_embeddings, h.dtype)))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.hidden_size,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "hidden_size": self.hidden_size,
                "max_position_embeddings": self.max_position_embeddings,
                "dropout": self.dropout_rate,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_givt")
class MaskGITMLMHead(OutputSpecFromShapes, keras.layers.Layer):
    """Dense → GELU → LayerNorm → tied projection onto the word embeddings + bias.

    Args:
        embedding: the `MaskGITEmbedding` whose word table is tied.
    """

    def __init__(self, embedding, **kwargs):
        super().__init__(**kwargs)
        # A closure, so the shared table is tracked (and saved) once, by its owner.
        self._embedding = lambda: embedding
        self.vocab_size = embedding.vocab_size
        dt = self.dtype_policy
        self.dense = keras.layers.Dense(
            embedding.hidden_size, kernel_initializer=_init(), dtype=dt, name="mlm_dense"
        )
        self.ln = FlaxLayerNorm(LAYERNORM_EPSILON, dtype=dt, name="mlm_ln")

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.ln.build(input_shape)
        self.bias = self.add_weight(name="mlm_bias", shape=(self.vocab_size,), initializer="zeros")
        self.built = True

    def call(self, h):
        # h: (B, S, E) -> logits (B, S, V)
        h = self.ln(ops.gelu(self.dense(h), approximate=True))
        return self._embedding().attend(h) + ops.cast(self.bias, h.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.vocab_size,)
