"""The GIVT backbone: a decoder-only transformer over real-valued tokens.

Dimension letters: B batch, L sequence length (`seq_len`), D token dim
(`out_dim`), E width (`emb_dim`), H heads, K mixture components, M
num_logits, N number of decoder layers.

The backbone maps VAE latents `tokens (B, L, D)` (+ `labels (B,)`, +
`input_mask (B, L)` for style 'masked') to mixture logits `(B, L, M)`
(big_vision's `givt.Model.decode` up to and including `LogitsDense`).

With `num_layers > 0` (UViM's encoder-decoder GIVT) the backbone also takes
`image (B, Hi, Wi, 3)`: big_vision's `encode` (patch conv `EmbedPatches`,
learned `pos_embedding_encoder`, a ViT encoder with biases and a final
LayerNorm) gives `encoded (B, P, E)` with P = (Hi/ph)·(Wi/pw) patches, and
every decoder block cross-attends to it (also in KV-cache decoding).
`backbone.distribution(logits, ...)` turns them into a per-token Gaussian
mixture. Style 'ar' is causal: logits at position i predict token i from
tokens < i; style 'masked' is bidirectional and predicts the masked tokens.
Generation runs the backbone through a `samplers.decoder.Decoder` (`prefill`,
`call_with_cache`, the forward pass), or through its plain-torch twin
`torch_generation.TorchDecoder` on torch; the backbone itself is keras.ops only.
"""

import contextlib
import numbers

import keras
import numpy as np
from keras import ops
from keras_hub.src.utils.python_utils import classproperty

from keras_givt.models.preset_backbone import PresetBackbone
from keras_givt.mixture.head import HEAD_INITS
from keras_givt.mixture.head import GaussianMixtureHead
from keras_givt.mixture.head import head_initializers
from keras_givt.mixture.head import num_logits as _num_logits
from keras_givt.models.givt.givt_embedding import GIVTEmbedding
from keras_givt.models.givt.givt_embedding import label_table
from keras_givt.layers.transformer_block import FlatDense
from keras_givt.layers.transformer_block import FlaxLayerNorm
from keras_givt.layers.transformer_block import GIVTDecoderBlock
from keras_givt.layers.vit_encoder import PatchViTEncoder
from keras_givt.utils.tensor_utils import is_concrete
from keras_givt.utils import validation
from keras_givt.utils.tensor_utils import to_numpy
from keras_givt.utils.validation import check_choice
from keras_givt.utils.validation import check_positive_int


@keras.saving.register_keras_serializable(package="keras_givt")
class GIVTBackbone(PresetBackbone):
    """GIVT decoder-only transformer with a Gaussian-mixture output.

    Argument names follow big_vision's `givt.Model` fields.

    Args:
        seq_len: int. L, number of latent tokens.
        out_dim: int. D, the token (codeword) dimension.
        num_labels: int or None. Number of classes; None = unconditional.
        emb_dim: int. E.
        num_decoder_layers: int. N.
        num_heads: int. H (divides E).
        mlp_dim: int. MLP width.
        num_mixtures: int. K.
        per_channel_mixtures: bool. Per-channel 1-D mixtures (True) or one
            MV-diagonal mixture per token (False).
        multivariate: bool. One full-covariance normal (needs K = 1).
        fix_square_plus: bool. Correct squareplus (default True; big_vision's
            default is the buggy False, which the converter keeps for its
            configs: see `conversion.big_vision.GIVT_DEFAULTS`).
        scale_tol: float. Lower clamp for scales.
        style: "ar" (causal) or "masked" (MaskGIT-style, bidirectional).
        mask_style: "replace" or "concat" (style "masked").
        drop_labels_probability: float. Label-dropout rate used by the tasks
            for classifier-free guidance; > 0 adds the NOLABEL table row.
        min_masking_rate_training: float. Lowest mask ratio in masked
            training (used by `GIVTMaskGIT`).
        dec_dropout_rate: float. Dropout in the decoder blocks.
        zero_embedding_init: bool. Zero-init the label table.
        head_init: "symmetry_breaking" (default) or "zeros": how the logits
            layer starts. big_vision zero-initialises it, which leaves the K
            mixture components identical forever (identical gradients); the
            default gives it a small random kernel and spreads the components'
            locations (`keras_givt.mixture.head.initial_logits_bias`). Loaded
            weights (presets, converted checkpoints) replace either.
        num_layers: int. Layers of the image encoder (0: decoder-only GIVT).
        input_size: (Hi, Wi) image size of the encoder (num_layers > 0).
        patches: (ph, pw) encoder patch size (num_layers > 0).
        enc_dropout_rate: float. Dropout in the image encoder.
        remat: bool. Rematerialize each decoder block (gradient
            checkpointing, `keras.RematScope`): its activations are
            recomputed in the backward pass instead of kept, which cuts the
            training memory to about one block's activations plus the block
            inputs, at the cost of one more forward pass. The numbers are the
            same with and without. On JAX the recomputation is keras_givt's
            own (`keras_givt/layers/remat.py`): Keras' `jax.checkpoint` saves
            nothing on XLA's CPU compiler. Default False.
        dtype: dtype policy for the weights and computation (the mixture
            maths always runs in float32).

    Example:
    ```python
    backbone = keras_givt.GIVTBackbone(
        seq_len=16, out_dim=4, num_labels=10, emb_dim=32,
        num_decoder_layers=2, num_heads=2, mlp_dim=64, num_mixtures=3,
    )
    tokens = np.random.randn(2, 16, 4).astype("float32")
    logits = backbone({"tokens": tokens, "labels": np.array([1, 7])})
    nll = -backbone.distribution(logits).log_prob(tokens)  # (2, 16, 4)
    ```
    """

    def __init__(
        self,
        seq_len,
        out_dim,
        num_labels=1000,
        emb_dim=512,
        num_decoder_layers=6,
        num_heads=8,
        mlp_dim=2048,
        num_mixtures=4,
        per_channel_mixtures=True,
        multivariate=False,
        fix_square_plus=True,
        scale_tol=1e-6,
        style="ar",
        mask_style="replace",
        drop_labels_probability=0.0,
        min_masking_rate_training=0.3,
        dec_dropout_rate=0.0,
        zero_embedding_init=False,
        head_init="symmetry_breaking",
        num_layers=0,
        input_size=None,
        patches=None,
        enc_dropout_rate=0.0,
        remat=False,
        dtype=None,
        **kwargs,
    ):
        seq_len = check_positive_int("seq_len", seq_len)
        out_dim = check_positive_int("out_dim", out_dim)
        num_labels = check_positive_int("num_labels", num_labels, allow_none=True)
        emb_dim = check_positive_int("emb_dim", emb_dim)
        num_decoder_layers = check_positive_int("num_decoder_layers", num_decoder_layers)
        num_heads = check_positive_int("num_heads", num_heads)
        mlp_dim = check_positive_int("mlp_dim", mlp_dim)
        num_mixtures = check_positive_int("num_mixtures", num_mixtures)
        check_choice("style", style, ("ar", "masked"))
        check_choice("mask_style", mask_style, ("replace", "concat"))
        check_choice("head_init", head_init, HEAD_INITS)
        scale_tol = validation.check_float("scale_tol", scale_tol, 0.0, min_inclusive=False)
        drop_labels_probability = validation.check_float(
            "drop_labels_probability", drop_labels_probability, 0.0, 1.0
        )
        min_masking_rate_training = validation.check_float(
            "min_masking_rate_training", min_masking_rate_training, 0.0, 1.0
        )
        dec_dropout_rate = validation.check_rate("dec_dropout_rate", dec_dropout_rate)
        enc_dropout_rate = validation.check_rate("enc_dropout_rate", enc_dropout_rate)
        num_layers = validation.check_int("num_layers", 0 if num_layers is None else num_layers, 0)
        for name, flag in (
            ("per_channel_mixtures", per_channel_mixtures),
            ("multivariate", multivariate),
            ("fix_square_plus", fix_square_plus),
            ("zero_embedding_init", zero_embedding_init),
            ("remat", remat),
        ):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"`{name}` must be a bool. Received: {name}={flag!r}")
        num_patches = None
        if num_layers > 0:
            input_size, patches = _pair("input_size", input_size), _pair("patches", patches)
            if input_size[0] % patches[0] or input_size[1] % patches[1]:
                raise ValueError(
                    f"`input_size` must be divisible by `patches`; received "
                    f"input_size={input_size}, patches={patches}."
                )
            num_patches = (input_size[0] // patches[0]) * (input_size[1] // patches[1])
        if emb_dim % num_heads:
            raise ValueError(
                f"`emb_dim` must be divisible by `num_heads`; received emb_dim={emb_dim}, "
                f"num_heads={num_heads}."
            )

        # === Layers ===
        self.embedding = GIVTEmbedding(
            out_dim=out_dim,
            emb_dim=emb_dim,
            seq_len=seq_len,
            num_labels=num_labels,
            style=style,
            mask_style=mask_style,
            drop_labels_probability=drop_labels_probability,
            zero_embedding_init=zero_embedding_init,
            dtype=dtype,
            name="embedding",
        )
        # With `remat`, Keras wraps each block's `call` (`Layer.__call__`) in
        # `keras.remat` (jax.checkpoint / tf.recompute_grad / torch
        # checkpoint); the blocks' sublayers are not named in the scope, so
        # they run plainly inside their block's recomputation. Without
        # `remat` no scope is entered (a caller's own RematScope applies).
        block_names = [f"decoder_block_{i}" for i in range(num_decoder_layers)]
        scope = (
            keras.RematScope(mode="list_of_layers", layer_names=block_names)
            if remat
            else contextlib.nullcontext()
        )
        with scope:
            self.decoder_blocks = [
                GIVTDecoderBlock(
                    hidden_dim=emb_dim,
                    num_heads=num_heads,
                    mlp_dim=mlp_dim,
                    dropout_rate=dec_dropout_rate,
                    causal=style == "ar",
                    cross_attention=num_layers > 0,
                    dtype=dtype,
                    name=block_names[i],
                )
                for i in range(num_decoder_layers)
            ]
        self.image_encoder = None
        if num_layers > 0:
            self.image_encoder = PatchViTEncoder(
                patches,
                num_patches,
                num_layers=num_layers,
                hidden_dim=emb_dim,
                num_heads=num_heads,
                mlp_dim=mlp_dim,
                dropout_rate=enc_dropout_rate,
                dtype=dtype,
                name="image_encoder",
            )
        self.decoder_norm = FlaxLayerNorm(1e-6, use_bias=True, dtype=dtype, name="decoder_norm")
        kernel_init, bias_init = head_initializers(
            head_init, out_dim, num_mixtures, per_channel_mixtures, multivariate
        )
        self.logits_dense = FlatDense(
            _num_logits(out_dim, num_mixtures, per_channel_mixtures, multivariate),
            kernel_initializer=kernel_init,
            bias_initializer=bias_init,
            dtype=dtype,
            name="logits_dense",
        )
        self.head = GaussianMixtureHead(
            out_dim=out_dim,
            num_mixtures=num_mixtures,
            per_channel_mixtures=per_channel_mixtures,
            multivariate=multivariate,
            fix_square_plus=fix_square_plus,
            scale_tol=scale_tol,
            dtype="float32",
            name="gaussian_mixture_head",
        )

        # === Functional Model ===
        inputs = {"tokens": keras.Input(shape=(seq_len, out_dim), name="tokens")}
        if num_labels is not None:
            inputs["labels"] = keras.Input(shape=(), dtype="int32", name="labels")
        if style == "masked":
            inputs["input_mask"] = keras.Input(shape=(seq_len,), dtype="bool", name="input_mask")
        if num_layers > 0:
            inputs["image"] = keras.Input(shape=tuple(input_size) + (3,), name="image")
        outputs = self._forward(
            inputs["tokens"], inputs.get("labels"), inputs.get("input_mask"), inputs.get("image")
        )
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        # === Config ===
        self.seq_len = seq_len
        self.out_dim = out_dim
        self.num_labels = num_labels
        self.emb_dim = emb_dim
        self.num_decoder_layers = num_decoder_layers
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.num_mixtures = num_mixtures
        self.per_channel_mixtures = per_channel_mixtures
        self.multivariate = multivariate
        self.fix_square_plus = fix_square_plus
        self.scale_tol = scale_tol
        self.style = style
        self.mask_style = mask_style
        self.drop_labels_probability = drop_labels_probability
        self.min_masking_rate_training = min_masking_rate_training
        self.dec_dropout_rate = dec_dropout_rate
        self.zero_embedding_init = zero_embedding_init
        self.head_init = head_init
        self.num_layers = num_layers
        self.input_size = None if input_size is None else list(input_size)
        self.patches = None if patches is None else list(patches)
        self.enc_dropout_rate = enc_dropout_rate
        self.remat = bool(remat)
        self.num_patches = num_patches
        self.special_ids = label_table(num_labels, style, mask_style, drop_labels_probability)
        self.num_logits = self.head.num_logits

    # --- Forward passes -------------------------------------------------

    def encode(self, image, training=None):
        """`encoded (B, P, E)` of `image (B, Hi, Wi, 3)` (encoder-decoder GIVT)."""
        if self.image_encoder is None:
            raise ValueError("This backbone has no image encoder (num_layers=0).")
        return self.image_encoder(image, training=training)

    def _forward(
        self, tokens, labels=None, input_mask=None, image=None, training=None, return_reps=False
    ):
        encoded = None if image is None else self.encode(image, training=training)
        return self.decode(tokens, labels, input_mask, encoded, training, return_reps)

    def decode(
        self, tokens, labels=None, input_mask=None, encoded=None, training=None, return_reps=False
    ):
        """Logits `(B, L, M)` from tokens (+ labels, mask, `encoded (B, P, E)`).

        big_vision's `Model.decode`; with an image encoder, `encoded` comes
        from `encode(image)` (computed once, e.g. for several label maps).
        """
        self._check_encoded(encoded)
        x = self.embedding(tokens, labels, input_mask)  # (B, L[+1], E)
        reps = {}
        for i, block in enumerate(self.decoder_blocks):
            x = block(x, encoded, training=training)
            if return_reps:
                reps[f"block{i}_rep"] = ops.mean(x, axis=1)
        x = self.decoder_norm(x)
        if return_reps:
            reps["pre_logits"] = ops.mean(x, axis=1)
        if self.embedding.style == "masked":
            x = x[:, 1:]  # Drop the label position.
        logits = self.logits_dense(x)  # (B, L, M)
        if return_reps:
            return logits, reps
        return logits

    def call(self, inputs, training=None, mask=None):
        self._check_inputs(inputs)
        return super().call(inputs, training=training, mask=mask)

    def call_with_reps(self, inputs, training=False):
        """Logits plus big_vision's `return_reps` extras.

        Returns `(logits, reps)` with `reps["block{i}_rep"]` the sequence
        mean of block i's output and `reps["pre_logits"]` the sequence mean
        after the final LayerNorm, each (B, E).
        """
        self._check_inputs(inputs)
        return self._forward(
            inputs["tokens"],
            inputs.get("labels"),
            inputs.get("input_mask"),
            inputs.get("image"),
            training=training,
            return_reps=True,
        )

    # --- KV cache ---------------------------------------------------------

    def build_cache(self, batch_size, dtype=None):
        """A zero KV cache `(N, 2, B, H, L, E/H)`.

        Layer-major with heads before positions: one layer's keys (or
        values) are a contiguous `(B, H, L, E/H)` block that cached
        attention reads without copying or transposing (the
        `(B, .., L, H, ..)` layout made AR sampling on CPU 2.2x slower).
        """
        shape = (
            self.num_decoder_layers,
            2,
            batch_size,
            self.num_heads,
            self.seq_len,
            self.emb_dim // self.num_heads,
        )
        return ops.zeros(shape, dtype=dtype or self.compute_dtype)

    def _decode_step(self, x, cache, cache_update_index, encoded=None, training=None):
        # x (B, T, E) without positions; cache (N, 2, B, H, L, Dh); encoded (B, P, E).
        self._check_encoded(encoded)
        t = ops.shape(x)[1]
        x = x + self.embedding.positions(cache_update_index, t)
        for i, block in enumerate(self.decoder_blocks):
            x, cache = block.call_with_cache(
                x, cache, cache_update_index, layer_index=i, encoded=encoded, training=training
            )
        x = self.decoder_norm(x)
        return self.logits_dense(x), cache

    def prefill(self, labels, cache, batch_size=None, encoded=None):
        """Runs the label/[BOS] token at position 0 ('ar' style).

        Args:
            labels: (B,) int labels (may hold the NOLABEL id), or None for an
                unconditional model (then pass `batch_size`).
            cache: the KV cache from `build_cache`.
            encoded: (B, P, E) from `encode(image)` (encoder-decoder only).
        Returns:
            `(logits (B, 1, M), cache)`: the prediction for token 0.
        """
        self._require_ar("prefill")
        if labels is None and batch_size is None:
            batch_size = ops.shape(cache)[2]
        x = ops.expand_dims(self.embedding.embed_labels(labels, batch_size), 1)
        return self._decode_step(x, cache, 0, encoded)

    def call_with_cache(self, tokens, cache, cache_update_index, encoded=None):
        """Feeds tokens to the cached decoder ('ar' style).

        Args:
            tokens: (B, T, D) the tokens at positions
                `cache_update_index - 1 .. cache_update_index + T - 2`
                (the AR input at position p is token p - 1).
            cache: (N, 2, B, H, L, E/H).
            cache_update_index: int scalar ≥ 1, the first position written.
            encoded: (B, P, E), the encoded image (encoder-decoder only;
                the same at every step).
        Returns:
            `(logits (B, T, M), cache)`; `logits[:, j]` predicts token
            `cache_update_index + j`.
        """
        self._require_ar("call_with_cache")
        x = self.embedding.token_embedding(tokens)
        return self._decode_step(x, cache, cache_update_index, encoded)

    # --- Distribution ----------------------------------------------------

    def distribution(self, logits, temperature_scales=None, temperature_probs=None, use_tfp=None):
        """The per-token Gaussian mixture for `logits (..., M)`.

        A TFP `MixtureSameFamily` / `MultivariateNormalTriL` on jax and
        tensorflow, the `keras_givt.mixture.distributions` twin on torch (or
        with `use_tfp=False`). float32 under any dtype policy.
        """
        return self.head.distribution(logits, temperature_scales, temperature_probs, use_tfp)

    def log_prob(self, logits, tokens, temperature_scales=None, temperature_probs=None):
        """float32 log-density of `tokens` under `logits` (keras.ops, any backend)."""
        return self.head.log_prob(logits, tokens, temperature_scales, temperature_probs)

    def drop_labels(self, labels, drop):
        """Replaces `labels` by the NOLABEL id where `drop (B,)` is True."""
        if "nolabel" not in self.special_ids:
            raise ValueError(
                "This backbone has no NOLABEL row: build it with "
                "`drop_labels_probability > 0` to use label dropout / CFG."
            )
        nolabel = ops.cast(self.special_ids["nolabel"], "int32")
        return ops.where(ops.cast(drop, "bool"), nolabel, ops.cast(labels, "int32"))

    # --- Distribution (keras.distribution) ---------------------------------

    @staticmethod
    def get_layout_map(
        device_mesh, model_parallel_dim_name="model", data_parallel_dim_name="batch"
    ):
        """A `keras.distribution.LayoutMap` sharding the weights over `model`.

        Attention heads, the MLP hidden dimension and the embedding width are
        split over the model axis; everything small is replicated.

        Example:
        ```python
        mesh = keras.distribution.DeviceMesh((2, 4), ["batch", "model"], devices)
        layout_map = GIVTBackbone.get_layout_map(mesh)
        with keras.distribution.ModelParallel(layout_map=layout_map,
                                              batch_dim_name="batch").scope():
            backbone = GIVTBackbone(...)
        ```
        """
        names = device_mesh.axis_names
        if model_parallel_dim_name not in names:
            raise ValueError(
                f"`model_parallel_dim_name` {model_parallel_dim_name!r} is not an axis "
                f"of the mesh; received axis names {names}."
            )
        model = model_parallel_dim_name
        layout_map = keras.distribution.LayoutMap(device_mesh)
        layout_map["embedding/label_embedding/embeddings"] = (None, model)
        layout_map["embedding/token_embedding/kernel"] = (None, model)
        layout_map["embedding/position_embedding"] = (None, model)
        layout_map[r"decoder_block_\d+/(self|cross)_attention/(query|key|value)/kernel"] = (
            None,
            model,
            None,
        )
        layout_map[r"decoder_block_\d+/(self|cross)_attention/out/kernel"] = (model, None, None)
        layout_map[r"decoder_block_\d+/mlp_dense_0/kernel"] = (None, model)
        layout_map[r"decoder_block_\d+/mlp_dense_0/bias"] = (model,)
        layout_map[r"decoder_block_\d+/mlp_dense_1/kernel"] = (model, None)
        layout_map["logits_dense/kernel"] = (model, None)
        # Image encoder (encoder-decoder GIVT).
        layout_map[r"encoder_block_\d+/attention/(query|key|value)/kernel"] = (None, model, None)
        layout_map[r"encoder_block_\d+/attention/out/kernel"] = (model, None, None)
        layout_map[r"encoder_block_\d+/mlp_dense_0/kernel"] = (None, model)
        layout_map[r"encoder_block_\d+/mlp_dense_1/kernel"] = (model, None)
        return layout_map

    # --- Presets ------------------------------------------------------------

    @classproperty
    def presets(cls):
        """Built-in GIVT presets (their backbones load with `from_preset` too)."""
        from keras_givt.utils import preset_utils

        return {
            k: v["metadata"]
            for k, v in preset_utils.PRESETS.items()
            if v["class"] in ("GIVTCausal", "GIVTMaskGIT", "GIVTBackbone")
        }

    # --- Validation --------------------------------------------------------

    def _check_encoded(self, encoded):
        if self.image_encoder is not None and encoded is None:
            raise ValueError(
                "This backbone has an image encoder (num_layers > 0): pass `image` "
                "(or `encoded=backbone.encode(image)`)."
            )
        if self.image_encoder is None and encoded is not None:
            raise ValueError(
                "This backbone has no image encoder (num_layers=0): do not pass `encoded`."
            )

    def _require_ar(self, what):
        if self.style != "ar":
            raise ValueError(f"`{what}` needs style='ar'; this backbone has style={self.style!r}.")

    def _check_inputs(self, inputs):
        if not isinstance(inputs, dict) or "tokens" not in inputs:
            raise TypeError(
                "GIVTBackbone expects a dict with 'tokens' (B, L, D)"
                + (", 'labels' (B,)" if self.num_labels is not None else "")
                + (", 'input_mask' (B, L)" if self.style == "masked" else "")
                + f"; received {type(inputs).__name__}."
            )
        shape = tuple(inputs["tokens"].shape)
        if (
            len(shape) != 3
            or shape[1] not in (None, self.seq_len)
            or shape[2]
            not in (
                None,
                self.out_dim,
            )
        ):
            raise ValueError(
                f"`tokens` must have shape (B, {self.seq_len}, {self.out_dim}); "
                f"received shape {shape}."
            )
        if self.num_labels is not None:
            if "labels" not in inputs:
                raise ValueError("This backbone is class-conditional: pass `labels` (B,).")
            labels = inputs["labels"]
            if is_concrete(labels):
                values = to_numpy(labels)
                # Labels may also be special rows (e.g. NOLABEL for CFG).
                hi = self.special_ids["num_rows"]
                if values.size and (values.min() < 0 or values.max() >= hi):
                    raise ValueError(
                        f"`labels` must be in [0, {self.num_labels}) (or a special id < {hi}); "
                        f"received values in [{values.min()}, {values.max()}]."
                    )
        if self.num_layers > 0 and "image" not in inputs:
            raise ValueError(
                f"This backbone has an image encoder: pass `image` (B, {self.input_size[0]}, "
                f"{self.input_size[1]}, 3)."
            )
        if self.style == "masked" and "input_mask" not in inputs:
            raise ValueError("style='masked' needs `input_mask` (B, L) bool, True = masked.")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "seq_len": self.seq_len,
                "out_dim": self.out_dim,
                "num_labels": self.num_labels,
                "emb_dim": self.emb_dim,
                "num_decoder_layers": self.num_decoder_layers,
                "num_heads": self.num_heads,
                "mlp_dim": self.mlp_dim,
                "num_mixtures": self.num_mixtures,
                "per_channel_mixtures": self.per_channel_mixtures,
                "multivariate": self.multivariate,
                "fix_square_plus": self.fix_square_plus,
                "scale_tol": self.scale_tol,
                "style": self.style,
                "mask_style": self.mask_style,
                "drop_labels_probability": self.drop_labels_probability,
                "min_masking_rate_training": self.min_masking_rate_training,
                "dec_dropout_rate": self.dec_dropout_rate,
                "zero_embedding_init": self.zero_embedding_init,
                "head_init": self.head_init,
                "num_layers": self.num_layers,
                "input_size": self.input_size,
                "patches": self.patches,
                "enc_dropout_rate": self.enc_dropout_rate,
                "remat": self.remat,
            }
        )
        return config


def _pair(name, value):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value, value)
    try:
        return validation.check_int_pair(name, value)
    except (TypeError, ValueError):
        raise ValueError(
            f"`{name}` must be a pair of positive ints (needed when num_layers > 0); "
            f"received {name}={value!r}."
        )
