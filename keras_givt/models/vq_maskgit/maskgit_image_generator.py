"""`MaskGITImageGenerator`: discrete MaskGIT (VQGAN tokens + bidirectional transformer).

Dimension letters: B batch, H/W/C image, h/w token grid, L = h·w tokens,
K codebook size, S decoding steps.

Training (`fit`, MaskGIT's recipe): the frozen tokenizer turns images in
[0, 1] into codes (or the batch gives `"tokens"` directly). Per example
r ~ U[0, 1); `n = max(1, ceil(L · max(cos(π/2 · r), min_masking_rate)))`
random positions are replaced by the mask token; the loss is the
label-smoothed cross-entropy over the K codes, averaged over the masked
positions only. With `label_dropout > 0` the class token is replaced by the
mask token ("no class") with that probability, which enables
classifier-free guidance at sampling time.

Generation: MaskGIT's parallel decoding (`samplers.discrete_masked`),
compiled once per (batch shape, number of steps, schedule, CFG on/off) on
every backend; temperatures and the CFG weight are tensors, so changing them
does not retrace. Editing: `inpaint` regenerates the tokens under a pixel
mask (inpainting, outpainting, class-conditional box regeneration with
another label) and keeps every other token; the known pixels come back
unchanged (`paste_back=True`).

Image range: `generate`/`inpaint` take and return images in [-1, 1], the
convention of every task in the package (GIVT's included); pass
`image_range=(0, 1)` for the VQGAN's own [0, 1] range (what these methods
returned before). `fit`, `encode_images` and `decode_tokens` work in [0, 1].
"""

import keras
import numpy as np
from keras import ops

from keras_givt.models import training_checks
from keras_givt.models.generation_task import GenerationTask
from keras_givt.models.masked_editing import MaskedEditing
from keras_givt.models.optimizers import PerVariableAdamW
from keras_givt.models.vq_maskgit.maskgit_backbone import MaskGITBackbone
from keras_givt.samplers.config import DiscreteMaskedSamplingConfig
from keras_givt.samplers.discrete_masked import discrete_maskgit_decode
from keras_givt.samplers.schedules import maskgit_mask_ratio
from keras_givt.utils import validation
from keras_givt.utils.validation import check_probability


@keras.saving.register_keras_serializable(package="keras_givt")
class MaskGITImageGenerator(MaskedEditing, GenerationTask):
    """Class-conditional (or unconditional) discrete MaskGIT.

    Args:
        backbone: a `keras_givt.MaskGITBackbone`.
        tokenizer: a `keras_givt.VQGANTokenizer` (frozen), or None to train
            and sample tokens only.
        label_smoothing: float. Label smoothing of the cross-entropy (MaskGIT 0.1).
        label_dropout: float. Probability of dropping the class for CFG.
        min_masking_rate: float. Lower bound of the training mask ratio.
        seed: int or None. Seed of the task's `SeedGenerator`.
        sampling_defaults: the preset's `generate` defaults: a dict or a
            `keras_givt.samplers.config.DiscreteMaskedSamplingConfig`.

    Example:
    ```python
    backbone = keras_givt.MaskGITBackbone(
        codebook_size=64, num_classes=10, seq_len=16, hidden_size=32,
        num_layers=2, num_heads=2, intermediate_size=64,
    )
    model = keras_givt.MaskGITImageGenerator(backbone, tokenizer, label_dropout=0.1)
    model.fit({"images": images, "labels": labels}, epochs=1)
    images = model.generate(labels=[1, 2], num_steps=8, seed=0)
    ```
    """

    backbone_cls = MaskGITBackbone
    preprocessor_cls = None
    nested_models = ("tokenizer",)
    batch_description = (
        "MaskGITImageGenerator takes dicts with 'images' (B, H, W, C) in [0, 1] or "
        "'tokens' (B, L) (+ 'labels')"
    )
    sampling_config_class = DiscreteMaskedSamplingConfig
    masked_generate_name = "discrete_maskgit"
    token_dtype = "int32"
    inpaint_token_ranks = (2, 3)
    inpaint_token_description = "(B, L) tokens"
    # `encode_images`/`decode_tokens` (the VQGAN) work in [0, 1]; `generate`/
    # `inpaint` images follow `GenerationTask.default_image_range`, [-1, 1].
    native_image_range = (0.0, 1.0)

    def __init__(
        self,
        backbone,
        tokenizer=None,
        preprocessor=None,
        label_smoothing=0.1,
        label_dropout=0.0,
        min_masking_rate=0.0,
        seed=None,
        sampling_defaults=None,
        compile=True,
        **kwargs,
    ):
        check_probability("label_smoothing", label_smoothing)
        check_probability("label_dropout", label_dropout)
        check_probability("min_masking_rate", min_masking_rate)
        if tokenizer is not None and tokenizer.codebook_size != backbone.codebook_size:
            raise ValueError(
                f"The tokenizer has codebook_size={tokenizer.codebook_size} but the backbone "
                f"expects {backbone.codebook_size}."
            )
        super().__init__(backbone, preprocessor, seed, sampling_defaults, **kwargs)
        # === Layers ===
        self.tokenizer = tokenizer
        training_checks.freeze(tokenizer)  # Frozen on every backend.
        # === Config ===
        self.label_smoothing = label_smoothing
        self.label_dropout = label_dropout
        self.min_masking_rate = min_masking_rate
        self.built = True
        if compile:
            self.compile()

    @property
    def token_grid(self):
        return self._square_token_grid(" token grid")

    # --- Data --------------------------------------------------------------

    def tokens_from_inputs(self, inputs):
        """`(tokens (B, L) int32, labels (B,) int32)` of a fit batch (-1: no class)."""
        tokens, labels = self._tokens_and_labels(
            inputs, "tokens", "int32", conditional=self.backbone.num_classes > 0
        )
        tokens = ops.reshape(tokens, (ops.shape(tokens)[0], -1))
        if labels is None:
            labels = ops.full((ops.shape(tokens)[0],), -1, "int32")
        return tokens, labels

    def encode_images(self, images):
        """Code indices (B, L) int32 of images (B, H, W, C) in [0, 1]."""
        if self.tokenizer is None:
            raise ValueError("This task has no tokenizer: pass `tokenizer=` or feed 'tokens'.")
        ids = self.tokenizer.encode_to_indices(images)
        return ops.stop_gradient(ops.reshape(ids, (ops.shape(ids)[0], -1)))

    def decode_tokens(self, tokens):
        """Images (B, H, W, C) in [0, 1] from tokens (B, L)."""
        if self.tokenizer is None:
            raise ValueError(
                "This task has no tokenizer to decode images: use `return_tokens=True`."
            )
        h, w = self.token_grid
        tokens = ops.reshape(ops.cast(tokens, "int32"), (-1, h, w))
        return ops.clip(self.tokenizer.decode_from_indices(tokens), 0.0, 1.0)

    # --- Training --------------------------------------------------------------

    def training_mask(self, batch_size):
        """MaskGIT's random training mask (B, L) bool (True = masked)."""
        L = self.backbone.seq_len
        r = keras.random.uniform((batch_size,), seed=self.seed_generator)
        ratio = ops.maximum(maskgit_mask_ratio(r, L, "cosine"), self.min_masking_rate)
        num = ops.clip(ops.ceil(ratio * L), 1.0, float(L))  # (B,)
        scores = keras.random.uniform((batch_size, L), seed=self.seed_generator)
        sorted_scores = ops.concatenate(
            [ops.sort(scores, axis=-1), ops.full((batch_size, 1), 2.0)], axis=-1
        )
        cut = ops.take_along_axis(sorted_scores, ops.cast(num, "int32")[:, None], axis=-1)
        return scores < cut  # Exactly `num` masked per row.

    def call(self, inputs, training=False):
        tokens, labels = self.tokens_from_inputs(inputs)
        batch = ops.shape(tokens)[0]
        if "mask" in inputs:
            mask = ops.cast(inputs["mask"], "bool")
        else:
            mask = self.training_mask(batch)
        if training and self.label_dropout > 0:
            drop = keras.random.uniform((batch,), seed=self.seed_generator) < self.label_dropout
            labels = ops.where(drop, -1, labels)
        masked = ops.where(mask, -1, tokens)
        logits = self.backbone.token_logits(masked, labels, training=training)  # (B, L, K)
        return {"logits": logits, "tokens": tokens, "mask": mask}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        logits = ops.cast(y_pred["logits"], "float32")
        k = self.backbone.codebook_size
        target = ops.one_hot(y_pred["tokens"], k, dtype="float32")
        eps = self.label_smoothing
        target = target * (1.0 - eps) + eps / k
        nll = -ops.sum(target * ops.log_softmax(logits, axis=-1), axis=-1)  # (B, L)
        weight = ops.cast(y_pred["mask"], "float32")
        loss = ops.sum(nll * weight) / ops.maximum(ops.sum(weight), 1.0)
        return self._with_layer_losses(loss)

    loss_description = "the label-smoothed cross-entropy of the masked tokens"

    def check_batch(self, batch, where):
        """Checks a preprocessed fit/evaluate batch (numpy) before the model sees it.

        Accepts a dict with `"tokens"` (B, L) or (B, h, w) ints in
        [0, codebook_size) or `"images"` (B, H, W, C) floats in [0, 1] at the
        tokenizer's size, plus `"labels"` (B,) ints in [0, num_classes) for
        class-conditional models (and an optional `"mask"` (B, L) of bools);
        no `y`.
        """
        name = type(self).__name__
        x = training_checks.input_dict(
            where,
            name,
            batch,
            "'tokens' (B, L) or 'images' (B, H, W, C) in [0, 1], 'labels' (B,)",
            preprocessor_args="..., output_range=(0, 1)",
        )
        bb = self.backbone
        allowed = {"tokens", "images", "labels", "mask"}
        training_checks.check_input_keys(where, name, x, allowed, ("tokens", "images"))
        if "tokens" in x:
            data = np.asarray(x["tokens"])
            flat = data.reshape(data.shape[0], -1) if data.ndim >= 2 else data
            training_checks.check_array(
                where,
                "x['tokens']",
                flat,
                shape=(None, bb.seq_len),
                kind="int",
                low=0,
                high=bb.codebook_size,
            )
        else:
            if self.tokenizer is None:
                raise ValueError(
                    f"{where}: x['images'] needs a tokenizer (`tokenizer=`); this {name} has "
                    "none: pass x['tokens']."
                )
            image_size = getattr(self.tokenizer, "image_size", None)
            data = training_checks.check_input_images(where, x["images"], image_size, 0.0, 1.0)
        batch_size = data.shape[0]
        training_checks.check_input_labels(
            where, name, x, bb.num_classes, batch_size, f"num_classes={bb.num_classes}"
        )
        if "mask" in x:
            training_checks.check_array(
                where,
                "x['mask']",
                np.asarray(x["mask"]).reshape(batch_size, -1),
                shape=(batch_size, bb.seq_len),
                kind="bool",
            )

    def _default_optimizer(self):
        """AdamW(1e-4, weight decay 0.045 as MaskGIT, clipnorm 1)."""
        return PerVariableAdamW(1e-4, weight_decay=0.045, beta_2=0.96, global_clipnorm=1.0)

    # --- Generation -------------------------------------------------------------

    def generate_step(self, inputs, use_cfg, num_steps, schedule, greedy=False):
        bb = self.backbone
        labels = inputs["labels"]
        cfg_weight = inputs["cfg_weight"]

        def logits_fn(cur):
            if not use_cfg:
                return bb.token_logits(cur, labels)
            both = bb.token_logits(
                ops.concatenate([cur, cur], axis=0),
                ops.concatenate([labels, ops.full(ops.shape(labels), -1, "int32")], axis=0),
            )
            b = ops.shape(cur)[0]
            lc, lu = ops.cast(both[:b], "float32"), ops.cast(both[b:], "float32")
            return lc + cfg_weight * (lc - lu)

        return discrete_maskgit_decode(
            logits_fn,
            inputs["tokens"],
            num_steps,
            self.seed_generator,
            schedule=schedule,
            choice_temperature=inputs["choice_temperature"],
            temperature=inputs["temperature"],
            greedy=greedy,
        )

    def _blank_tokens(self, batch):
        return np.full((batch, self.backbone.seq_len), -1, "int32")

    def _masked_inputs(self, tokens, token_mask, labels, sampling, use_cfg):
        # Unknown tokens are the mask token, -1.
        start = ops.where(ops.convert_to_tensor(token_mask), -1, tokens)
        return {
            "tokens": ops.convert_to_tensor(start, "int32"),
            "labels": ops.convert_to_tensor(labels, "int32"),
            "choice_temperature": ops.convert_to_tensor(sampling.choice_temperature, "float32"),
            "temperature": ops.convert_to_tensor(
                sampling.temperature if not sampling.greedy else 1.0, "float32"
            ),
            "cfg_weight": ops.convert_to_tensor(
                float(sampling.cfg_weight) if use_cfg else 0.0, "float32"
            ),
        }

    def _check_cfg_support(self, cfg_weight):
        """Guidance needs a class-conditional model trained with label dropout."""
        if self.label_dropout <= 0 or self.backbone.num_classes == 0:
            raise ValueError(
                "`cfg_weight` needs a class-conditional model trained with label dropout "
                f"(label_dropout > 0); received cfg_weight={cfg_weight!r} with "
                f"label_dropout={self.label_dropout}."
            )

    def _num_classes(self):
        return self.backbone.num_classes or None

    def _unconditional_label(self):
        if self.label_dropout <= 0:
            raise ValueError(
                "This model is class-conditional and was not trained with label dropout "
                "(label_dropout=0), so it cannot sample without a class: pass `labels`. "
                "Received: labels=None"
            )
        return -1

    def _unconditional_labels(self, batch):
        # The class token of -1 is the mask token ("no class"), also the input
        # of an unconditional (num_classes=0) model.
        label = -1 if self._num_classes() is None else self._unconditional_label()
        return np.full((batch,), label, "int32")

    def generate(
        self,
        labels=None,
        num_samples=None,
        seed=None,
        sampling=None,
        return_tokens=False,
        return_num_masked=False,
        image_range=None,
        **overrides,
    ):
        """Generates images (or tokens) with MaskGIT's parallel decoding.

        Every argument is checked on the host once per call, before any
        work; a bad value raises a ValueError/TypeError naming it.

        Args:
            labels: one label or a 1-D sequence of labels: int ids in
                [0, num_classes) (integer-valued floats accepted) or class
                names when the model has `class_names` (the bundled
                `vq_maskgit_fashion_mnist`: e.g. `["Sneaker", "Bag"]`).
                None = unconditional: needs `num_samples` and a model trained
                with label dropout (the "no class" token), or `num_classes=0`.
            num_samples: positive int B when `labels` is one class or None.
            seed: int for reproducibility.
            sampling: a `keras_givt.samplers.config.DiscreteMaskedSamplingConfig`
                (or a dict of its fields); its unset fields take the
                preset's `sampling_defaults`.
            return_tokens: bool. Return (B, L) tokens instead of images.
            return_num_masked: bool. Also return (B, S), the masked count
                after each step.
            image_range: (-1, 1) (default: the convention of every task's
                `generate`/`inpaint`, GIVT's included) or (0, 1) (the
                VQGAN's own range, this method's output before). The range
                of the returned images.
            **overrides: sampling fields, over `sampling` and the preset's
                defaults (None: not set):
                `num_steps`: positive int S (default 12, MaskGIT's ImageNet
                256 setting).
                `schedule`: "cosine" (default), "uniform", "pow<k>" (k > 0),
                "log", "exp".
                `choice_temperature`: finite float >= 0, the Gumbel scale of
                the confidence, annealed by (1 − ratio) (MaskGIT 4.5).
                `temperature`: finite float >= 0, the sampling temperature of
                the logits; 0 is greedy decoding (the argmax code everywhere).
                `cfg_weight`: finite float w of `l_c + w (l_c − l_u)` (0 =
                off; needs label dropout and labels). keras-hub's
                `guidance_scale = 1 + w` is accepted as an alias.
        """
        return self._generate_masked(
            labels,
            num_samples,
            seed,
            sampling,
            overrides,
            return_tokens,
            return_num_masked,
            image_range,
        )

    def inpaint(
        self,
        images,
        mask,
        labels=None,
        seed=None,
        sampling=None,
        return_tokens=False,
        return_num_masked=False,
        paste_back=True,
        image_range=None,
        **overrides,
    ):
        """Regenerates the masked region, keeping every other token.

        Every argument is checked on the host once per call, before any
        work; a bad value raises a ValueError/TypeError naming it.

        Args:
            images: (B, H, W, C) float images in `image_range` ([-1, 1] by
                default), or (B, L) / (B, h, w) token ids in [0, codebook_size).
            mask: which part to regenerate: True / 1 = regenerate, False / 0
                = keep (bool, or numbers that are all 0 or 1). A (B, H, W)
                pixel mask with images ((H, W) applies to every image;
                (B, H, W, 1) accepted; a token is regenerated when any of its
                pixels is), or a (B, L) / (B, h, w) token mask with token
                inputs. All False: the input comes back unchanged; all True:
                plain generation. Outpainting = the mask outside the kept
                region; class-conditional editing = a box and another `labels`.
            labels: one label or B labels (ids or class names); None: no
                class (as `generate`).
            seed, sampling, **overrides: as `generate` (`num_steps`,
                `schedule`, `choice_temperature`, `temperature`,
                `cfg_weight`).
            return_tokens: bool. Return the (B, L) tokens.
            return_num_masked: bool. Also return (B, S) masked counts.
            paste_back: bool. True (default): the returned images hold the
                input's known pixels unchanged (bit-identical to the float32
                input), the decode only where `mask` is True; False: the raw
                decode of all tokens.
            image_range: (-1, 1) (default) or (0, 1): the range of `images`
                and of the returned images.
        Returns:
            Images (or tokens); tokens outside the mask are the input's own
            codes.
        """
        return self._inpaint_masked(
            images,
            mask,
            labels,
            seed,
            sampling,
            overrides,
            return_tokens,
            return_num_masked,
            paste_back,
            image_range,
            lambda: self.token_grid,
        )

    # --- Editing -----------------------------------------------------------

    def _encode_for_inpaint(self, images):
        return self.encode_images(images)

    def _inpaint_token_inputs(self, tokens, mask):
        tokens = validation.check_finite_array("images", tokens, dtype="float64")
        k = self.backbone.codebook_size
        if np.any(tokens != np.round(tokens)) or np.any((tokens < 0) | (tokens >= k)):
            raise ValueError(
                f"`images` as tokens must be integer code ids in [0, {k}). Received: "
                f"images={validation._show(tokens)}"
            )
        batch = tokens.shape[0]
        tokens = tokens.astype("int32").reshape(batch, -1)
        token_mask = validation.check_binary_mask("mask", mask)
        if token_mask.shape == (tokens.shape[1],):
            token_mask = np.broadcast_to(token_mask, tokens.shape)
        if token_mask.size == tokens.size:
            token_mask = token_mask.reshape(batch, -1)
        return ops.convert_to_tensor(tokens), token_mask

    # --- Config ----------------------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "label_smoothing": self.label_smoothing,
                "label_dropout": self.label_dropout,
                "min_masking_rate": self.min_masking_rate,
            }
        )
        return config
