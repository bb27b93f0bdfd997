"""GIVT-Causal: autoregressive generation of VAE latents.

Dimension letters: B batch, L tokens, D token dim, H/W/C image.
"""

import keras
import numpy as np
from keras import ops

from keras_givt.models.givt.givt_task import GIVTTask
from keras_givt.samplers.ar_sampler import ar_generate


@keras.saving.register_keras_serializable(package="keras_givt")
class GIVTCausal(GIVTTask):
    """GIVT-Causal task: `fit` on images or latents, `generate` with a KV cache.

    Args:
        backbone: a `keras_givt.GIVTBackbone` with `style="ar"`.
        vae: optional VAE with `encode(images) -> (mu, logvar)` and
            `decode(z) -> images` (frozen; needed for images in/out).
        adaptor: optional invertible flow on the latents (`forward`/`inverse`).
        seed: int or None. Seed of the task's `SeedGenerator` (latent
            sampling, label dropout, generation).

    Example:
    ```python
    backbone = keras_givt.GIVTBackbone(
        seq_len=16, out_dim=4, num_labels=10, emb_dim=32, num_decoder_layers=2,
        num_heads=2, mlp_dim=64, num_mixtures=1, per_channel_mixtures=False,
        drop_labels_probability=0.1,
    )
    model = keras_givt.GIVTCausal(backbone)
    model.fit({"latents": latents, "labels": labels}, batch_size=32, epochs=1)
    z = model.generate(labels=[3, 5], seed=0, temperature=0.95, cfg_weight=0.4,
                       return_latents=True)                      # (2, 16, 4)
    ```
    """

    def __init__(self, backbone, vae=None, adaptor=None, preprocessor=None, seed=None, **kwargs):
        if backbone.style != "ar":
            raise ValueError(
                f"GIVTCausal needs a backbone with style='ar'; received style={backbone.style!r}."
            )
        super().__init__(backbone, vae=vae, adaptor=adaptor, preprocessor=preprocessor, seed=seed, **kwargs)

    def call(self, inputs, training=False):
        tokens, labels = self.latents_from_inputs(inputs)
        labels = self.drop_labels_for_training(labels, training)
        logits = self.backbone(self._backbone_inputs(tokens, labels), training=training)
        return {"logits": logits, "tokens": tokens}

    def generate_step(self, inputs, use_cfg, beam_size, fan_size, stochastic_beams):
        """The compiled body: `inputs` dict of tensors -> (tokens, log_prob)."""
        labels = inputs.get("labels")
        batch = ops.shape(inputs["prefix"])[0]
        return ar_generate(
            self.backbone,
            labels,
            batch,
            self.seed_generator,
            temperature=inputs["temperature"],
            temperature_probs=inputs["temperature_probs"],
            cfg_weight=inputs["cfg_weight"] if use_cfg else None,
            prefix=inputs["prefix"],
            prefix_len=inputs["prefix_len"],
            beam_size=beam_size,
            fan_size=fan_size,
            stochastic_beams=stochastic_beams,
        )

    def generate(
        self,
        labels=None,
        num_samples=None,
        seed=None,
        temperature=None,
        temperature_probs=None,
        cfg_weight=None,
        beam_size=1,
        fan_size=1,
        stochastic_beams=False,
        prefix=None,
        return_latents=False,
        return_log_probs=False,
    ):
        """Samples images (or latents) autoregressively.

        Args:
            labels: int or (B,) ints (class-conditional models).
            num_samples: B, for unconditional models or to repeat one label.
            seed: int for reproducible samples; None continues the task's
                seed generator.
            temperature: multiplies the mixture scales (big_vision's
                `temperature_scales`).
            temperature_probs: multiplies the mixture logits (inverse
                temperature of the component choice).
            cfg_weight: density-based CFG weight w (None or 0: no guidance).
                Needs a backbone with `drop_labels_probability > 0`.
            beam_size, fan_size: beam search with K beams of F sampled
                candidates each (1, 1: plain sampling).
            stochastic_beams: keep K candidates sampled without replacement
                by score instead of the top K.
            prefix: (B, P, D) latents fixing the first P tokens (image
                completion; e.g. `model.encode_images(images, sample=False)[:, :P]`).
            return_latents: return the (B, L, D) latents instead of images.
            return_log_probs: also return the (B,) log-density of the
                generated (non-prefix) tokens under the sampling density.

        Arguments left to None take the preset's `sampling_defaults`
        (e.g. t=0.95, CFG 0.4 for `givt_causal_imagenet256`), else 1.0 /
        no guidance. Changing a numeric argument (temperature, CFG weight, ...) does not
        retrace; the function is compiled once per mode and batch size.
        """
        bb = self.backbone
        temperature = self._default("temperature", temperature, 1.0)
        temperature_probs = self._default("temperature_probs", temperature_probs, 1.0)
        cfg_weight = self._default("cfg_weight", cfg_weight, None)
        labels, batch = self._normalize_labels(labels, num_samples)
        for name, value in (("beam_size", beam_size), ("fan_size", fan_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an int >= 1; received {name}={value!r}.")
        use_cfg = self._check_cfg(cfg_weight)
        prefix_arr = np.zeros((batch, bb.seq_len, bb.out_dim), "float32")
        prefix_len = 0
        if prefix is not None:
            prefix = self._prefix_tokens(prefix)
            if prefix.shape[0] != batch or prefix.shape[1] > bb.seq_len or prefix.shape[2] != bb.out_dim:
                raise ValueError(
                    f"`prefix` must have shape ({batch}, P <= {bb.seq_len}, {bb.out_dim}); "
                    f"received {prefix.shape}."
                )
            prefix_len = prefix.shape[1]
            prefix_arr[:, :prefix_len] = prefix
        self._set_seed(seed)
        inputs = {
            "prefix": ops.convert_to_tensor(prefix_arr),
            "prefix_len": ops.convert_to_tensor(prefix_len, "int32"),
            "temperature": ops.convert_to_tensor(temperature, "float32"),
            "temperature_probs": ops.convert_to_tensor(temperature_probs, "float32"),
            "cfg_weight": ops.convert_to_tensor(cfg_weight if use_cfg else 0.0, "float32"),
        }
        if labels is not None:
            inputs["labels"] = ops.convert_to_tensor(labels, "int32")
        key = ("ar", use_cfg, beam_size, fan_size, bool(stochastic_beams))
        fn = self._compile_generate(
            key,
            lambda x: self.generate_step(x, use_cfg, beam_size, fan_size, bool(stochastic_beams)),
        )
        tokens, log_probs = fn(inputs)
        out = tokens if return_latents else self.decode_tokens(tokens)
        return (out, log_probs) if return_log_probs else out

    def _prefix_tokens(self, prefix):
        prefix = keras.ops.convert_to_numpy(prefix).astype("float32")
        if prefix.ndim != 3:
            raise ValueError(f"`prefix` must be (B, P, D) latents; received shape {prefix.shape}.")
        return prefix
