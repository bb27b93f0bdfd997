"""GIVT input embedding: label table, token projection, masking, positions.

Dimension letters: B batch, L sequence length, D token dim, E width,
R label-table rows.

big_vision (`givt.Model.decode`):
- labels index a table `EmbedLabels (R, E)`; an unconditional model uses
  row 0 for every example. Special rows follow the labels (see
  `label_table`).
- tokens go through `EmbedTargets`, a Dense D -> E with bias.
- 'ar': input = [label, tok_0 .. tok_{L-2}] (L positions).
- 'masked': input = [label, tok_0 .. tok_{L-1}] (L + 1 positions); masked
  tokens are replaced by the MASK row ('replace'), or ('concat') the even
  channels of a MASK/NOMASK embedding are concatenated with the even
  channels of the token embedding (REPLACE row where masked).
- learned position embeddings are added to the whole input.
"""

import math

import keras
from keras import ops

from keras_givt.layers.output_spec import OutputSpecFromShapes
from keras_givt.layers.transformer_block import FlatDense
from keras_givt.utils import validation


def label_table(num_labels, style="ar", mask_style="replace", drop_labels_probability=0.0):
    """Special label ids and the number of rows of big_vision's label table.

    Special ids count up from `num_labels or 0` in this order: MASK
    (style 'masked'), NOMASK and REPLACE (mask_style 'concat'), NOLABEL
    (`drop_labels_probability > 0`). The table has
    `(num_labels or 1) + num_special` rows. (With `num_labels=None` the first
    special id is 0 and shares row 0 with the unconditional [BOS] label, as in
    big_vision.)
    """
    ids = {}
    nxt = num_labels or 0
    if style == "masked":
        ids["mask"] = nxt
        nxt += 1
        if mask_style == "concat":
            ids["nomask"] = nxt
            ids["replace"] = nxt + 1
            nxt += 2
    if drop_labels_probability > 0:
        ids["nolabel"] = nxt
        nxt += 1
    ids["num_rows"] = (num_labels or 1) + len(ids)
    return ids


@keras.saving.register_keras_serializable(package="keras_givt")
class GIVTEmbedding(OutputSpecFromShapes, keras.layers.Layer):
    """Embeds GIVT inputs into the (B, L[+1], E) decoder input.

    Args:
        out_dim: int. D.
        emb_dim: int. E.
        seq_len: int. L.
        num_labels: int or None. Number of classes (None: unconditional).
        style: "ar" or "masked".
        mask_style: "replace" or "concat" (style "masked").
        drop_labels_probability: float. > 0 adds the NOLABEL row.
        zero_embedding_init: bool. Zero-init the label table.

    Example:
    ```python
    emb = GIVTEmbedding(out_dim=4, emb_dim=32, seq_len=16, num_labels=10)
    x = emb(np.zeros((2, 16, 4), "float32"), np.array([1, 2]))  # (2, 16, 32)
    ```
    """

    def __init__(
        self,
        out_dim,
        emb_dim,
        seq_len,
        num_labels=None,
        style="ar",
        mask_style="replace",
        drop_labels_probability=0.0,
        zero_embedding_init=False,
        **kwargs,
    ):
        # Numeric arguments: finite, in range, numpy scalars accepted.
        out_dim = validation.check_positive_int("out_dim", out_dim)
        emb_dim = validation.check_positive_int("emb_dim", emb_dim)
        seq_len = validation.check_positive_int("seq_len", seq_len)
        num_labels = validation.check_positive_int("num_labels", num_labels, allow_none=True)
        drop_labels_probability = validation.check_float(
            "drop_labels_probability", drop_labels_probability, 0.0, 1.0
        )
        super().__init__(**kwargs)
        self.out_dim = out_dim
        self.emb_dim = emb_dim
        self.seq_len = seq_len
        self.num_labels = num_labels
        self.style = style
        self.mask_style = mask_style
        self.drop_labels_probability = drop_labels_probability
        self.zero_embedding_init = zero_embedding_init
        if style == "masked" and mask_style == "concat" and emb_dim % 2:
            raise ValueError(
                f"`mask_style='concat'` needs an even `emb_dim`; received emb_dim={emb_dim}."
            )
        self.special_ids = label_table(num_labels, style, mask_style, drop_labels_probability)
        self.num_positions = seq_len + 1 if style == "masked" else seq_len

        # === Layers ===
        self.label_embedding = keras.layers.Embedding(
            self.special_ids["num_rows"],
            emb_dim,
            embeddings_initializer=(
                "zeros" if zero_embedding_init else keras.initializers.RandomNormal(stddev=1.0)
            ),
            dtype=self.dtype_policy,
            name="label_embedding",
        )
        self.token_embedding = FlatDense(
            emb_dim,
            kernel_initializer=keras.initializers.TruncatedNormal(
                stddev=math.sqrt(1.0 / out_dim) / 0.87962566103423978
            ),
            dtype=self.dtype_policy,
            name="token_embedding",
        )

    def build(self, tokens_shape=None, labels_shape=None, input_mask_shape=None):
        self.label_embedding.build((None,))
        self.token_embedding.build((None, None, self.out_dim))
        self.position_embedding = self.add_weight(
            name="position_embedding",
            shape=(self.num_positions, self.emb_dim),
            initializer=keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(self.emb_dim)),
        )
        self.built = True

    def _row(self, name):
        return self.label_embedding.embeddings[self.special_ids[name]]

    def embed_labels(self, labels, batch_size=None):
        """(B, E) label embeddings; `labels=None` (unconditional) uses row 0."""
        if labels is None:
            labels = ops.zeros((batch_size,), "int32")
        return self.label_embedding(ops.cast(labels, "int32"))

    def positions(self, start, length):
        """Position embeddings for positions `start .. start+length-1`, (length, E)."""
        pos = ops.cast(self.position_embedding, self.compute_dtype)
        return ops.slice(pos, [start, 0], [length, self.emb_dim])

    def call(self, tokens, labels=None, input_mask=None):
        # tokens (B, L, D); labels (B,) int or None; input_mask (B, L) bool, True = masked.
        batch = ops.shape(tokens)[0]
        tok = self.token_embedding(tokens)  # (B, L, E)
        lab = ops.expand_dims(self.embed_labels(labels, batch), 1)  # (B, 1, E)
        if self.style == "ar":
            x = ops.concatenate([lab, tok[:, :-1]], axis=1)  # (B, L, E)
        else:
            if input_mask is None:
                raise ValueError("style='masked' needs an `input_mask` (B, L) bool.")
            m = ops.expand_dims(ops.cast(input_mask, "bool"), -1)  # (B, L, 1)
            mask_row = ops.cast(self._row("mask"), tok.dtype)
            if self.mask_style == "replace":
                tok = ops.where(m, mask_row, tok)
            else:
                replaced = ops.where(m, ops.cast(self._row("replace"), tok.dtype), tok)
                nomask_row = ops.cast(self._row("nomask"), tok.dtype)
                mask_emb = ops.where(m, mask_row, nomask_row)
                tok = ops.concatenate([mask_emb[..., ::2], replaced[..., ::2]], axis=-1)
            x = ops.concatenate([lab, tok], axis=1)  # (B, L + 1, E)
        return x + self.positions(0, ops.shape(x)[1])

    def compute_output_shape(self, tokens_shape, labels_shape=None, input_mask_shape=None):
        length = tokens_shape[1]
        if self.style == "masked" and length is not None:
            length += 1
        return (tokens_shape[0], length, self.emb_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "out_dim": self.out_dim,
                "emb_dim": self.emb_dim,
                "seq_len": self.seq_len,
                "num_labels": self.num_labels,
                "style": self.style,
                "mask_style": self.mask_style,
                "drop_labels_probability": self.drop_labels_probability,
                "zero_embedding_init": self.zero_embedding_init,
            }
        )
        return config
