"""GIVT-MaskGIT: masked training and parallel decoding of VAE latents, with editing.

Dimension letters: B batch, L tokens, D token dim, H/W/C image, S steps.
"""

import keras
import numpy as np
from keras import ops

from keras_givt.models.givt.givt_task import GIVTTask
from keras_givt.models.masked_editing import MaskedEditing
from keras_givt.samplers.config import MaskedSamplingConfig
from keras_givt.samplers.schedules import bottom_k_mask
from keras_givt.samplers.schedules import training_mask_counts
from keras_givt.samplers.schedules import mask_ratio
from keras_givt.samplers.masked import maskgit_generate
from keras_givt.utils import validation


@keras.saving.register_keras_serializable(package="keras_givt")
class GIVTMaskGIT(MaskedEditing, GIVTTask):
    """GIVT-MaskGIT task: masked `fit`, parallel `generate`, `inpaint`.

    Training follows big_vision: per example a kept fraction r ~ U[0, 1 − m)
    (m = the backbone's `min_masking_rate_training`) is mapped through the
    cosine schedule, ⌈ratio · L⌉ positions, chosen uniformly, are masked, and
    the NLL is averaged over the masked positions only. Labels are dropped with `drop_labels_probability` for CFG.

    Args:
        backbone: a `keras_givt.GIVTBackbone` with `style="masked"`.
        vae: optional VAE (`encode`, `decode`), frozen.
        adaptor: optional invertible flow on the latents.
        seed: int or None, seed of the task's `SeedGenerator`.

    Example:
    ```python
    backbone = keras_givt.GIVTBackbone(
        seq_len=16, out_dim=4, num_labels=10, emb_dim=32, num_decoder_layers=2,
        num_heads=2, mlp_dim=64, style="masked", mask_style="concat",
        per_channel_mixtures=False, drop_labels_probability=0.1,
    )
    model = keras_givt.GIVTMaskGIT(backbone)
    model.fit({"latents": latents, "labels": labels}, epochs=1)
    z = model.generate(labels=[1, 2], num_steps=8, seed=0, return_latents=True)
    ```
    """

    sampling_config_class = MaskedSamplingConfig
    masked_generate_name = "maskgit"
    token_dtype = "float32"
    inpaint_token_ranks = (3,)
    inpaint_token_description = "(B, L, D) latents"

    def __init__(self, backbone, vae=None, adaptor=None, preprocessor=None, seed=None, **kwargs):
        if backbone.style != "masked":
            raise ValueError(
                "GIVTMaskGIT needs a backbone with style='masked'; received "
                f"style={backbone.style!r}."
            )
        super().__init__(
            backbone, vae=vae, adaptor=adaptor, preprocessor=preprocessor, seed=seed, **kwargs
        )

    def training_mask(self, batch_size):
        """big_vision's random training mask, (B, L) bool (True = masked).

        As `givt.Model.get_input_mask_training`: keep ~ U[0, 1 − m) with
        m = `min_masking_rate_training`, ratio = cosine(keep) (so ratio >
        cos(π/2 · (1 − m)), ≈ 0.454 for m = 0.3), and ⌈ratio · L⌉ positions,
        chosen uniformly, are masked (`training_mask_counts`).
        """
        L = self.backbone.seq_len
        max_keep = 1.0 - float(self.backbone.min_masking_rate_training)
        keep = keras.random.uniform((batch_size,), maxval=max_keep, seed=self.seed_generator)
        num = training_mask_counts(keep, L, "cosine")  # (B, 1)
        scores = keras.random.uniform((batch_size, L), seed=self.seed_generator)
        # The `num` lowest random scores are masked (a uniform random subset).
        return bottom_k_mask(scores, num)

    def call(self, inputs, training=False):
        tokens, labels = self.latents_from_inputs(inputs)
        labels = self.drop_labels_for_training(labels, training)
        if "input_mask" in inputs:
            input_mask = ops.cast(inputs["input_mask"], "bool")
        else:
            input_mask = self.training_mask(ops.shape(tokens)[0])
        logits = self.backbone(self._backbone_inputs(tokens, labels, input_mask), training=training)
        return {"logits": logits, "tokens": tokens, "input_mask": input_mask}

    def generate_step(self, inputs, use_cfg, num_steps, schedule, greedy=False):
        return maskgit_generate(
            self._make_decoder(),
            inputs.get("labels"),
            inputs["tokens"],
            inputs["unknown"],
            num_steps,
            self.seed_generator,
            schedule=schedule,
            choice_temperature=inputs["choice_temperature"],
            temperature=inputs["temperature"],
            temperature_probs=inputs["temperature_probs"],
            cfg_weight=inputs["cfg_weight"] if use_cfg else None,
            greedy=greedy,
        )

    def _blank_tokens(self, batch):
        bb = self.backbone
        return np.zeros((batch, bb.seq_len, bb.out_dim), "float32")

    def _masked_inputs(self, tokens, token_mask, labels, sampling, use_cfg):
        inputs = {
            "tokens": ops.convert_to_tensor(tokens, "float32"),
            "unknown": ops.convert_to_tensor(token_mask, "bool"),
            "choice_temperature": ops.convert_to_tensor(sampling.choice_temperature, "float32"),
            "temperature": ops.convert_to_tensor(sampling.temperature, "float32"),
            "temperature_probs": ops.convert_to_tensor(sampling.temperature_probs, "float32"),
            "cfg_weight": ops.convert_to_tensor(
                float(sampling.cfg_weight) if use_cfg else 0.0, "float32"
            ),
        }
        if labels is not None:
            inputs["labels"] = ops.convert_to_tensor(labels, "int32")
        return inputs

    def generate(
        self,
        labels=None,
        num_samples=None,
        seed=None,
        sampling=None,
        return_latents=False,
        return_num_masked=False,
        image_range=None,
        **overrides,
    ):
        """Generates images (or latents) in `num_steps` parallel steps.

        Every argument is checked on the host once per call, before any
        work; a bad value raises a ValueError/TypeError naming it.

        Args:
            labels, num_samples: as `GIVTCausal.generate` (ids or class
                names; `labels=None` with `num_samples=N` samples
                unconditionally through the NOLABEL row).
            seed: int for reproducibility.
            sampling: a `keras_givt.samplers.config.MaskedSamplingConfig`
                (or a dict of its fields); its unset fields take the
                preset's `sampling_defaults`.
            return_latents: bool. Return (B, L, D) latents instead of images.
            return_num_masked: bool. Also return (B, S), the masked count
                after each step.
            image_range: (-1, 1) (default) or (0, 1): the range of the
                returned images.
            **overrides: sampling fields, over `sampling` and the preset's
                defaults (None: not set):
                `num_steps`: positive int S (default 16).
                `schedule`: "cosine" (big_vision, default), "pow:N" (N > 0),
                "linear" or "arccos".
                `choice_temperature`: finite float >= 0, the Gumbel noise
                scale of the confidence, annealed by (1 − ratio) (big_vision's
                t_C; 35 at 256²; default 1; 0 = reveal the most confident
                first).
                `temperature`: finite float >= 0 (0: greedy, as
                `GIVTCausal.generate`).
                `temperature_probs`: finite float > 0.
                `cfg_weight`: finite float (keras-hub's `guidance_scale = 1 +
                cfg_weight` is accepted as an alias).
        """
        return self._generate_masked(
            labels,
            num_samples,
            seed,
            sampling,
            overrides,
            return_latents,
            return_num_masked,
            image_range,
            return_tokens_name="return_latents",
        )

    def inpaint(
        self,
        images,
        mask,
        labels=None,
        seed=None,
        sampling=None,
        return_latents=False,
        token_grid=None,
        paste_back=True,
        image_range=None,
        return_num_masked=False,
        **overrides,
    ):
        """Regenerates the masked region of real images, keeping the rest.

        Every argument is checked on the host once per call, before any
        work; a bad value raises a ValueError/TypeError naming it.

        Args:
            images: (B, H, W, C) float images in `image_range` ([-1, 1] by
                default), or (B, L, D) latents.
            mask: which part to regenerate: True / 1 = regenerate, False / 0
                = keep (bool, or numbers that are all 0 or 1). A (B, H, W)
                pixel mask ((H, W) applies to every image; (B, H, W, 1) is
                accepted) with images, a (B, L) token mask with latents. A
                token is regenerated when any of its pixels is. All False:
                the input comes back unchanged (nothing is sampled); all
                True: plain generation. Outpainting is the same call with the
                mask outside the kept region; class-conditional editing
                passes another `labels`.
            labels: one label or B labels (ids or class names); None on a
                class-conditional model edits without a class (NOLABEL row).
            seed, sampling, **overrides: as `generate` (`num_steps`,
                `schedule`, `choice_temperature`, `temperature`,
                `temperature_probs`, `cfg_weight`).
            return_latents: bool. Return the (B, L, D) latents.
            token_grid: (h, w) of the latent grid; default square √L × √L.
            paste_back: bool. True (default): the returned images hold the
                input's known pixels unchanged (bit-identical to the float32
                input) and the decode only where `mask` is True; False: the
                raw decode of all tokens (known pixels change by the VAE's
                reconstruction error).
            image_range: (-1, 1) (default) or (0, 1): the range of `images`
                and of the returned images.
            return_num_masked: bool. Also return (B, S), the masked count
                after each step.
        Returns:
            Images (or latents); unmasked tokens are bit-identical to the
            encoding of the input (the posterior mean).
        """
        if token_grid is not None:
            token_grid = validation.check_int_pair("token_grid", token_grid)
        return self._inpaint_masked(
            images,
            mask,
            labels,
            seed,
            sampling,
            overrides,
            return_latents,
            return_num_masked,
            paste_back,
            image_range,
            lambda: token_grid or self._square_token_grid(": pass `token_grid=(h, w)`"),
            return_tokens_name="return_latents",
        )

    # --- Editing -----------------------------------------------------------

    def _encode_for_inpaint(self, images):
        return self.encode_images(images, sample=False)  # The posterior mean.

    def _inpaint_token_inputs(self, latents, mask):
        latents = validation.check_finite_array("images", latents)
        bb = self.backbone
        if latents.shape[1:] != (bb.seq_len, bb.out_dim):
            raise ValueError(
                f"`images` as latents must be (B, {bb.seq_len}, {bb.out_dim}). Received: "
                f"images with shape {latents.shape}"
            )
        token_mask = validation.check_binary_mask("mask", mask)
        if token_mask.shape == (bb.seq_len,):
            token_mask = np.broadcast_to(token_mask, (latents.shape[0], bb.seq_len))
        return latents, token_mask
