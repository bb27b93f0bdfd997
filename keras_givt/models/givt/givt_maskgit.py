"""GIVT-MaskGIT: masked training and parallel decoding of VAE latents, with editing.

Dimension letters: B batch, L tokens, D token dim, H/W/C image, S steps.
"""

import keras
import numpy as np
from keras import ops

from keras_givt.models.givt.givt_task import GIVTTask
from keras_givt.samplers.mask_schedules import bottom_k_mask
from keras_givt.samplers.mask_schedules import training_mask_counts
from keras_givt.samplers.mask_schedules import mask_ratio
from keras_givt.samplers.maskgit_sampler import maskgit_generate


@keras.saving.register_keras_serializable(package="keras_givt")
class GIVTMaskGIT(GIVTTask):
    """GIVT-MaskGIT task: masked `fit`, parallel `generate`, `inpaint`.

    Training follows big_vision: per example a kept fraction r ~ U[0, 1 − m)
    (m = the backbone's `min_masking_rate_training`) is mapped through the
    cosine schedule, and ⌈ratio · L⌉ positions, chosen uniformly, are masked, and the NLL is averaged over the masked
    positions only. Labels are dropped with `drop_labels_probability` for CFG.

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

    inpaint_token_ranks = (3,)
    inpaint_token_description = "(B, L, D) latents"

    def __init__(self, backbone, vae=None, adaptor=None, preprocessor=None, seed=None, **kwargs):
        if backbone.style != "masked":
            raise ValueError(
                "GIVTMaskGIT needs a backbone with style='masked'; received "
                f"style={backbone.style!r}."
            )
        super().__init__(backbone, vae=vae, adaptor=adaptor, preprocessor=preprocessor, seed=seed, **kwargs)

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

    def generate_step(self, inputs, use_cfg, num_steps, schedule):
        return maskgit_generate(
            self.backbone,
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
        )

    def _run(self, labels, tokens, unknown, num_steps, schedule, choice_temperature,
             temperature, temperature_probs, cfg_weight, seed):
        num_steps = self._default("num_steps", num_steps, 16)
        schedule = self._default("schedule", schedule, "cosine")
        choice_temperature = self._default("choice_temperature", choice_temperature, 1.0)
        temperature = self._default("temperature", temperature, 1.0)
        temperature_probs = self._default("temperature_probs", temperature_probs, 1.0)
        cfg_weight = self._default("cfg_weight", cfg_weight, None)
        self._check_num_steps(num_steps)
        mask_ratio(0.5, schedule)  # Validates the schedule name.
        use_cfg = self._check_cfg(cfg_weight)
        inputs = {
            "tokens": ops.convert_to_tensor(tokens, "float32"),
            "unknown": ops.convert_to_tensor(unknown, "bool"),
            "choice_temperature": ops.convert_to_tensor(choice_temperature, "float32"),
            "temperature": ops.convert_to_tensor(temperature, "float32"),
            "temperature_probs": ops.convert_to_tensor(temperature_probs, "float32"),
            "cfg_weight": ops.convert_to_tensor(cfg_weight if use_cfg else 0.0, "float32"),
        }
        if labels is not None:
            inputs["labels"] = ops.convert_to_tensor(labels, "int32")
        return self._generate_compiled("maskgit", inputs, seed, use_cfg, num_steps, schedule)

    def generate(
        self,
        labels=None,
        num_samples=None,
        num_steps=None,
        schedule=None,
        choice_temperature=None,
        temperature=None,
        temperature_probs=None,
        cfg_weight=None,
        seed=None,
        return_latents=False,
        return_num_masked=False,
    ):
        """Generates images (or latents) in `num_steps` parallel steps.

        Args:
            labels, num_samples: as `GIVTCausal.generate`.
            num_steps: S (default 16).
            schedule: "cosine" (big_vision, default), "pow:N", "linear" or
                "arccos".
            choice_temperature: Gumbel noise scale of the confidence,
                annealed by (1 − ratio) (big_vision's t_C; 35 at 256²;
                default 1).
            Arguments left to None take the preset's `sampling_defaults`.
            temperature, temperature_probs, cfg_weight: as GIVT-Causal.
            seed: int for reproducibility.
            return_latents: return (B, L, D) latents instead of images.
            return_num_masked: also return (B, S), the masked count after
                each step.
        """
        labels, batch = self._normalize_labels(labels, num_samples)
        bb = self.backbone
        tokens = np.zeros((batch, bb.seq_len, bb.out_dim), "float32")
        unknown = np.ones((batch, bb.seq_len), bool)
        out, counts = self._run(labels, tokens, unknown, num_steps, schedule,
                                choice_temperature, temperature, temperature_probs, cfg_weight, seed)
        return self._generation_outputs(out, counts, return_latents, return_num_masked)

    def inpaint(
        self,
        images,
        mask,
        labels=None,
        num_steps=None,
        schedule=None,
        choice_temperature=None,
        temperature=None,
        temperature_probs=None,
        cfg_weight=None,
        seed=None,
        return_latents=False,
        token_grid=None,
    ):
        """Regenerates the masked region of real images, keeping the rest.

        Args:
            images: (B, H, W, C) in [-1, 1], or (B, L, D) latents.
            mask: (B, H, W) pixel mask (True = regenerate), or (B, L) token
                mask when `images` are latents. Outpainting is the same call
                with the mask outside the kept region; class-conditional
                editing passes another `labels`.
            token_grid: (h, w) of the latent grid; default square √L × √L.
        Returns:
            Images (or latents); unmasked tokens are bit-identical to the
            encoding of the input (the posterior mean).
        """
        tokens, token_mask = self._inpaint_tokens(
            images,
            mask,
            lambda: token_grid or self._square_token_grid(": pass `token_grid=(h, w)`"),
        )
        if labels is not None or self.backbone.num_labels is not None:
            labels, _ = self._normalize_labels(labels, int(tokens.shape[0]))
        out, _ = self._run(labels, tokens, token_mask, num_steps, schedule, choice_temperature,
                           temperature, temperature_probs, cfg_weight, seed)
        return out if return_latents else self.decode_tokens(out)

    # --- Editing -----------------------------------------------------------

    def _encode_for_inpaint(self, images):
        return self.encode_images(images, sample=False)  # The posterior mean.

    def _inpaint_token_inputs(self, latents, mask):
        return ops.cast(latents, "float32"), ops.convert_to_tensor(mask, "bool")
