"""`MaskGITBackbone`: MaskGIT's bidirectional transformer over discrete VQ tokens.

Dimension letters: B batch, L = h·w image tokens, S = 1 + L, E hidden size,
K codebook size, C classes, V = K + C + 1 vocabulary.

Token ids (MaskGIT's layout): image codes 0 … K−1, class c as K + c (the
first position of the sequence), and the mask token V − 1 (MaskGIT feeds −1,
which indexes the same last row; both are accepted). `token_ids (B, S)` →
`logits (B, S, V)`: word + position embeddings → LayerNorm → dropout →
`num_layers` post-LN blocks → MLM head (dense, GELU, LayerNorm, projection
onto the tied word embeddings + bias).
"""

import keras
from keras import ops
from keras_hub.src.utils.python_utils import classproperty

from keras_givt.models.preset_backbone import PresetBackbone
from keras_givt.models.vq_maskgit.maskgit_layers import MaskGITEmbedding
from keras_givt.models.vq_maskgit.maskgit_layers import MaskGITMLMHead
from keras_givt.models.vq_maskgit.maskgit_layers import MaskGITTransformerLayer
from keras_givt.utils.validation import check_positive_int
from keras_givt.utils import validation


@keras.saving.register_keras_serializable(package="keras_givt")
class MaskGITBackbone(PresetBackbone):
    """MaskGIT's BERT-style transformer (`maskgit.nets.maskgit_transformer.Transformer`).

    Args:
        codebook_size: int. K, number of VQ codes.
        num_classes: int. C (0 for an unconditional model: the first
            position then always holds the mask token).
        seq_len: int. L, image tokens (h·w); position table of size L + 1.
        hidden_size: int. E.
        num_layers: int. Transformer blocks.
        num_heads: int. Attention heads (divides E).
        intermediate_size: int. MLP width.
        dropout: float. Hidden dropout (MaskGIT `hidden_dropout_prob`).
        attention_dropout: float. Attention-probability dropout.

    Example:
    ```python
    backbone = keras_givt.MaskGITBackbone(
        codebook_size=64, num_classes=10, seq_len=16, hidden_size=32,
        num_layers=2, num_heads=2, intermediate_size=64,
    )
    ids = np.concatenate([np.full((2, 1), 64 + 3), np.full((2, 16), -1)], 1)
    logits = backbone(ids)  # (2, 17, 75)
    ```
    """

    def __init__(
        self,
        codebook_size,
        num_classes,
        seq_len,
        hidden_size=768,
        num_layers=24,
        num_heads=16,
        intermediate_size=3072,
        dropout=0.1,
        attention_dropout=0.1,
        dtype=None,
        **kwargs,
    ):
        # Numeric arguments: finite, in range, numpy scalars accepted.
        codebook_size = validation.check_positive_int("codebook_size", codebook_size)
        num_classes = validation.check_int("num_classes", num_classes, 0)
        seq_len = validation.check_positive_int("seq_len", seq_len)
        hidden_size = validation.check_positive_int("hidden_size", hidden_size)
        num_layers = validation.check_positive_int("num_layers", num_layers)
        num_heads = validation.check_positive_int("num_heads", num_heads)
        intermediate_size = validation.check_positive_int("intermediate_size", intermediate_size)
        dropout = validation.check_rate("dropout", dropout)
        attention_dropout = validation.check_rate("attention_dropout", attention_dropout)
        check_positive_int("codebook_size", codebook_size)
        check_positive_int("seq_len", seq_len)
        check_positive_int("hidden_size", hidden_size)
        check_positive_int("num_layers", num_layers)
        check_positive_int("num_heads", num_heads)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"`num_classes` must be an int >= 0; received {num_classes!r}.")
        if hidden_size % num_heads:
            raise ValueError(
                f"`hidden_size` ({hidden_size}) must be divisible by `num_heads` ({num_heads})."
            )
        vocab_size = codebook_size + num_classes + 1
        # === Layers ===
        self.embedding = MaskGITEmbedding(
            vocab_size, hidden_size, seq_len + 1, dropout, dtype=dtype, name="embedding"
        )
        self.transformer_layers = [
            MaskGITTransformerLayer(
                num_heads,
                intermediate_size,
                dropout,
                attention_dropout,
                dtype=dtype,
                name=f"transformer_layer_{i}",
            )
            for i in range(num_layers)
        ]
        self.mlm_head = MaskGITMLMHead(self.embedding, dtype=dtype, name="mlm_head")

        # === Functional Model ===
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        x = self.embedding(token_ids)  # (B, S, E)
        for layer in self.transformer_layers:
            x = layer(x)
        logits = self.mlm_head(x)  # (B, S, V)
        super().__init__(inputs=token_ids, outputs=logits, dtype=dtype, **kwargs)

        # === Config ===
        self.codebook_size = codebook_size
        self.num_classes = num_classes
        self.seq_len = seq_len
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.vocab_size = vocab_size
        self.mask_token_id = vocab_size - 1

    def class_token(self, labels):
        """First-position ids (B,) of class `labels`; −1 labels give the mask
        token (the "no class" input of classifier-free guidance)."""
        labels = ops.cast(labels, "int32")
        return ops.where(labels < 0, self.mask_token_id, labels + self.codebook_size)

    def token_logits(self, image_tokens, labels, training=False):
        """Logits over the K codes, (B, L, K), for `image_tokens (B, L)`
        (−1 = masked) after the class token of `labels (B,)`."""
        first = ops.expand_dims(self.class_token(labels), 1)
        ids = ops.concatenate([first, ops.cast(image_tokens, "int32")], axis=1)
        logits = self(ids, training=training)
        return logits[:, 1:, : self.codebook_size]

    @classproperty
    def presets(cls):
        """Built-in MaskGIT presets (their backbones load with `from_preset` too)."""
        from keras_givt.utils import preset_utils

        return {
            k: v["metadata"]
            for k, v in preset_utils.PRESETS.items()
            if v["class"] in ("MaskGITImageGenerator", "MaskGITBackbone")
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "codebook_size": self.codebook_size,
                "num_classes": self.num_classes,
                "seq_len": self.seq_len,
                "hidden_size": self.hidden_size,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "intermediate_size": self.intermediate_size,
                "dropout": self.dropout,
                "attention_dropout": self.attention_dropout,
            }
        )
        return config
