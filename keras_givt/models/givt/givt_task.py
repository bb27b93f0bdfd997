"""Shared machinery of the GIVT tasks (training on images or latents, VAE, CFG checks).

Compiled generation, seeding and presets come from `GenerationTask`.

Dimension letters: B batch, H/W image size, C channels, L tokens, D token dim.
"""

import keras
from keras import ops

from keras_givt.models.generation_task import GenerationTask
from keras_givt.models.givt.givt_backbone import GIVTBackbone
from keras_givt.models.givt.givt_loss import givt_nll


class GIVTTask(GenerationTask):
    """Base class of `GIVTCausal` and `GIVTMaskGIT`.

    Holds a `GIVTBackbone`, an optional frozen VAE (images <-> latents) and an
    optional adaptor (an invertible flow on the latents), all nested in the
    config. `fit` takes dicts with `"latents" (B, L, D)` or `"images"
    (B, H, W, C)` in [-1, 1] (encoded by the VAE, one latent sample per step),
    plus `"labels" (B,)` for class-conditional models.
    """

    backbone_cls = GIVTBackbone
    preprocessor_cls = None
    nested_models = ("vae", "adaptor")
    batch_description = (
        "GIVT tasks take dicts with 'latents' (B, L, D) or 'images' (B, H, W, C) (+ 'labels')"
    )

    def __init__(
        self,
        backbone,
        vae=None,
        adaptor=None,
        preprocessor=None,
        seed=None,
        sampling_defaults=None,
        compile=True,
        **kwargs,
    ):
        super().__init__(backbone, preprocessor, seed, sampling_defaults, **kwargs)
        # === Layers ===
        self.vae = vae
        self.adaptor = adaptor
        if vae is not None:
            vae.trainable = False
        self.built = True  # Every sub-model is built at construction.
        if compile:
            self.compile()

    # --- Data -----------------------------------------------------------

    def latents_from_inputs(self, inputs):
        """`(tokens (B, L, D), labels or None)` from a fit/evaluate batch."""
        return self._tokens_and_labels(
            inputs, "latents", "float32", conditional=self.backbone.num_labels is not None
        )

    def encode_images(self, images, sample=True):
        """VAE latents of `images` (B, H, W, C) in [-1, 1] (+ adaptor)."""
        if self.vae is None:
            raise ValueError(
                "This task has no VAE: pass `vae=` to encode images, or feed 'latents'."
            )
        mu, logvar = self.vae.encode(images)
        z = mu
        if sample:
            eps = keras.random.normal(ops.shape(mu), dtype="float32", seed=self.seed_generator)
            z = ops.cast(mu, "float32") + ops.exp(0.5 * ops.cast(logvar, "float32")) * eps
        if self.adaptor is not None:
            z = self.adaptor.forward(z)
        return ops.stop_gradient(ops.cast(z, "float32"))

    def decode_tokens(self, tokens):
        """Images from latent tokens (adaptor inverse, then VAE decode)."""
        if self.adaptor is not None:
            tokens = self.adaptor.inverse(tokens)
        if self.vae is None:
            raise ValueError("This task has no VAE to decode images: use `return_latents=True`.")
        return self.vae.decode(tokens)

    def drop_labels_for_training(self, labels, training):
        """Label dropout for classifier-free guidance (applied when training)."""
        p = self.backbone.drop_labels_probability
        if labels is None or not training or p <= 0:
            return labels
        u = keras.random.uniform(ops.shape(labels), seed=self.seed_generator)
        return self.backbone.drop_labels(labels, u < p)

    def _backbone_inputs(self, tokens, labels, input_mask=None):
        feed = {"tokens": tokens}
        if self.backbone.num_labels is not None:
            feed["labels"] = labels
        if input_mask is not None:
            feed["input_mask"] = input_mask
        return feed

    # --- Training --------------------------------------------------------

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = givt_nll(self.backbone, y_pred["logits"], y_pred["tokens"], y_pred.get("input_mask"))
        losses = self.losses
        if losses:
            loss = loss + ops.sum(ops.stack([ops.cast(v, "float32") for v in losses]))
        return loss

    def _default_optimizer(self):
        """Adam(3e-4, global clipnorm 1); the loss is the model's NLL."""
        return keras.optimizers.Adam(3e-4, global_clipnorm=1.0)

    # --- Generation -----------------------------------------------------------

    def _check_cfg_support(self, cfg_weight):
        """Density-based CFG needs the NOLABEL row and a supported head."""
        bb = self.backbone
        if "nolabel" not in bb.special_ids:
            raise ValueError(
                "`cfg_weight` needs a backbone trained with label dropout "
                "(`drop_labels_probability > 0`, which adds the NOLABEL row)."
            )
        head = bb.head
        if not (
            head.head_type == "mv_diag"
            or (head.head_type == "per_channel" and head.num_mixtures == 1)
        ):
            raise ValueError(
                "Density-based CFG needs an MV-diagonal mixture head or a single-"
                f"component per-channel head (as in big_vision); received cfg_weight="
                f"{cfg_weight!r} with head_type={head.head_type!r}, K={head.num_mixtures}."
            )

    def _normalize_labels(self, labels, num_samples):
        num_labels = self.backbone.num_labels
        if num_labels is None:
            if labels is not None:
                raise ValueError("This model is unconditional: do not pass `labels`.")
            if num_samples is None:
                raise ValueError("Pass `num_samples` for an unconditional model.")
            return None, int(num_samples)
        if labels is None:
            raise ValueError("This model is class-conditional: pass `labels`.")
        labels = self._label_array(labels, num_samples, num_labels)
        return labels, int(labels.size)
