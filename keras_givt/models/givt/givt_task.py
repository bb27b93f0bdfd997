"""Shared machinery of the GIVT tasks (training on images or latents, VAE, CFG checks).

Compiled generation, seeding and presets come from `GenerationTask`.

Dimension letters: B batch, H/W image size, C channels, L tokens, D token dim.
"""

import keras
import numpy as np
from keras import ops

from keras_givt.models.generation_task import GenerationTask
from keras_givt.models.givt.givt_backbone import GIVTBackbone
from keras_givt.models.givt.givt_loss import givt_nll
from keras_givt.models.givt.torch_generation import TorchDecoder
from keras_givt.models import training_checks
from keras_givt.models.optimizers import PerVariableAdam
from keras_givt.samplers.decoder import Decoder


class GIVTTask(GenerationTask):
    """Base class of `GIVTCausal` and `GIVTMaskGIT`.

    Holds a `GIVTBackbone`, an optional frozen VAE (images <-> latents) and an
    optional adaptor (an invertible flow on the latents), all nested in the
    config. `fit` takes dicts with `"latents" (B, L, D)` or `"images"
    (B, H, W, C)` in [-1, 1] (encoded by the VAE, one latent sample per step),
    plus `"labels" (B,)` for class-conditional models. With a
    `preprocessor` (`keras_givt.ImagePreprocessor`; the bundled presets
    carry one) `fit` also takes `(images, labels)` of raw uint8 or float
    images of any size. Every batch is checked before the model sees it
    (`check_batch`).
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
        # Frozen on every backend (the adaptor is a fixed flow here too).
        training_checks.freeze(vae)
        training_checks.freeze(adaptor)
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

    loss_description = "the GIVT mixture negative log-likelihood of the latents"

    def check_batch(self, batch, where):
        """Checks a preprocessed fit/evaluate batch (numpy) before the model sees it.

        Accepts a dict with `"latents"` (B, L, D) finite floats or `"images"`
        (B, H, W, C) floats in [-1, 1] at the VAE's size, plus `"labels"`
        (B,) ints in [0, num_labels) for class-conditional models (and
        `"input_mask"` (B, L) bools for masked models); no `y`.
        """
        name = type(self).__name__
        x = training_checks.input_dict(
            where,
            name,
            batch,
            "'latents' (B, L, D) or 'images' (B, H, W, C) in [-1, 1], 'labels' (B,)",
        )
        bb = self.backbone
        allowed = {"latents", "images", "labels"} | (
            {"input_mask"} if bb.style == "masked" else set()
        )
        training_checks.check_input_keys(where, name, x, allowed, ("latents", "images"))
        if "latents" in x:
            data = np.asarray(x["latents"])
            check = training_checks.check_array
            check(where, "x['latents']", data, shape=(None, bb.seq_len, bb.out_dim))
        else:
            if self.vae is None:
                raise ValueError(
                    f"{where}: x['images'] needs a VAE (`vae=`) to encode them; this {name} has "
                    "none: pass x['latents']."
                )
            image_size = getattr(self.vae, "image_size", None)
            data = training_checks.check_input_images(where, x["images"], image_size, -1.0, 1.0)
        batch_size = data.shape[0]
        training_checks.check_input_labels(
            where, name, x, bb.num_labels, batch_size, f"num_labels={bb.num_labels}"
        )
        if "input_mask" in x:
            training_checks.check_array(
                where,
                "x['input_mask']",
                x["input_mask"],
                shape=(batch_size, bb.seq_len),
                kind="bool",
            )

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = givt_nll(self.backbone, y_pred["logits"], y_pred["tokens"], y_pred.get("input_mask"))
        return self._with_layer_losses(loss)

    def _default_optimizer(self):
        """Adam(3e-4, global clipnorm 1); the loss is the model's NLL."""
        return PerVariableAdam(3e-4, global_clipnorm=1.0)

    # --- Generation -----------------------------------------------------------

    def _make_decoder(self):
        """The decoder `generate_step` hands the samplers: the plain-torch
        `TorchDecoder` on torch where it applies (`TorchDecoder.supports`),
        else the Keras `Decoder`.

        Called once per build of the compiled generation step: once per
        trace on jax/tensorflow, once per `generate` call on torch (eager), so
        a `TorchDecoder` and what it prepares live for one generation.
        """
        if TorchDecoder.supports(self.backbone):
            return TorchDecoder(self.backbone)
        return Decoder(self.backbone)

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
