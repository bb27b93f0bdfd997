"""GIVT-Causal: autoregressive generation of VAE latents.

Dimension letters: B batch, L tokens, D token dim, H/W/C image.
"""

import keras
import numpy as np
from keras import ops

from keras_givt.models.givt.givt_task import GIVTTask
from keras_givt.samplers.config import ARSamplingConfig
from keras_givt.samplers.autoregressive import ar_generate
from keras_givt.utils import validation


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
        sampling_defaults: the preset's `generate` defaults: a dict or a
            `keras_givt.samplers.config.ARSamplingConfig`.

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

    sampling_config_class = ARSamplingConfig

    def __init__(self, backbone, vae=None, adaptor=None, preprocessor=None, seed=None, **kwargs):
        if backbone.style != "ar":
            raise ValueError(
                f"GIVTCausal needs a backbone with style='ar'; received style={backbone.style!r}."
            )
        super().__init__(
            backbone, vae=vae, adaptor=adaptor, preprocessor=preprocessor, seed=seed, **kwargs
        )

    def call(self, inputs, training=False):
        tokens, labels = self.latents_from_inputs(inputs)
        labels = self.drop_labels_for_training(labels, training)
        logits = self.backbone(self._backbone_inputs(tokens, labels), training=training)
        return {"logits": logits, "tokens": tokens}

    def generate_step(self, inputs, use_cfg, beam_size, fan_size, stochastic_beams, greedy=False):
        """The compiled body: `inputs` dict of tensors -> (tokens, log_prob)."""
        labels = inputs.get("labels")
        batch = ops.shape(inputs["prefix"])[0]
        return ar_generate(
            self._make_decoder(),
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
            greedy=greedy,
        )

    def generate(
        self,
        labels=None,
        num_samples=None,
        seed=None,
        sampling=None,
        prefix=None,
        return_latents=False,
        return_log_probs=False,
        image_range=None,
        **overrides,
    ):
        """Samples images (or latents) autoregressively.

        Every argument is checked on the host once per call, before any
        work; a bad value raises a ValueError/TypeError naming it.

        Args:
            labels: class-conditional models: one label or a 1-D sequence of
                labels, each an int id in [0, num_labels) (integer-valued
                floats such as 3.0 accepted) or a class name when the model
                has `class_names` (e.g. `["Sneaker", "Bag"]` for the bundled
                Fashion-MNIST presets). None samples unconditionally through
                the NOLABEL row (models trained with label dropout; refused
                otherwise) and needs `num_samples`; guidance is then off.
            num_samples: positive int B, for unconditional sampling or to
                repeat one label B times.
            seed: int (numpy ints accepted) for reproducible samples; None
                continues the task's seed generator.
            sampling: a `keras_givt.samplers.config.ARSamplingConfig` (or a
                dict of its fields); its unset fields take the preset's
                `sampling_defaults`.
            prefix: (B, P, D) finite latents fixing the first P <= L tokens
                (image completion; e.g.
                `model.encode_images(images, sample=False)[:, :P]`).
            return_latents: bool. Return the (B, L, D) latents instead of images.
            return_log_probs: bool. Also return the (B,) log-density of the
                generated (non-prefix) tokens under the sampling density.
            image_range: (-1, 1) (default, the convention of every task's
                `generate`/`inpaint`) or (0, 1): the range of the returned images.
            **overrides: sampling fields, over `sampling` and the preset's
                defaults (None: not set):
                `temperature`: finite float >= 0 multiplying the mixture
                scales (big_vision's `temperature_scales`). 0 is greedy
                decoding: every token is the mean of its most probable
                mixture component (the mode of the guided normal with CFG),
                no randomness; beam scores then use the untempered density.
                `temperature_probs`: finite float > 0 multiplying the mixture
                logits (inverse temperature of the component choice).
                `cfg_weight`: finite float w of density-based CFG (None or 0:
                no guidance). Needs a backbone with `drop_labels_probability
                > 0` and labels. keras-hub's `guidance_scale=s` is accepted
                as `cfg_weight = s - 1` (s = 1: no guidance).
                `beam_size`, `fan_size`: positive ints K <= F: beam search
                with K beams of F sampled candidates each (1, 1: plain
                sampling).
                `stochastic_beams`: bool. Keep K candidates sampled without
                replacement by score instead of the top K.

        Unset sampling fields take the preset's `sampling_defaults` (e.g.
        t=0.95, CFG 0.4 for `givt_causal_imagenet256`), else 1.0 / no
        guidance / one beam. Changing a numeric argument (temperature, CFG
        weight, ...) does not retrace; the function is compiled once per
        mode and batch size.
        """
        flags = {"return_latents": return_latents, "return_log_probs": return_log_probs}
        sampling, requested, seed, image_range, return_latents, return_log_probs = (
            self._check_call_arguments("generate", sampling, overrides, seed, image_range, **flags)
        )
        if prefix is not None:
            prefix = self._prefix_tokens(prefix)
            if labels is None and num_samples is None:
                num_samples = int(prefix.shape[0])
        labels, batch, sampling = self._call_labels(labels, num_samples, sampling, requested)
        bb = self.backbone
        prefix_arr = np.zeros((batch, bb.seq_len, bb.out_dim), "float32")
        prefix_len = 0
        if prefix is not None:
            if (
                prefix.shape[0] != batch
                or prefix.shape[1] > bb.seq_len
                or prefix.shape[2] != bb.out_dim
            ):
                raise ValueError(
                    f"`prefix` must have shape ({batch}, P <= {bb.seq_len}, {bb.out_dim}); "
                    f"Received: prefix with shape {prefix.shape}"
                )
            prefix_len = prefix.shape[1]
            prefix_arr[:, :prefix_len] = prefix
        tokens, log_probs = self._run(labels, prefix_arr, prefix_len, sampling, seed)
        out = tokens if return_latents else self._decode_to_range(tokens, image_range)
        return (out, log_probs) if return_log_probs else out

    def _run(self, labels, prefix, prefix_len, sampling, seed=None):
        """`(tokens (B, L, D), log_probs (B,))` sampled after the first `prefix_len` tokens.

        Args:
            labels: (B,) int32 or None.
            prefix: (B, L, D) float32 latents, the first `prefix_len` fixed.
            prefix_len: int P.
            sampling: an `ARSamplingConfig` (unset fields take the built-in
                defaults); its `cfg_weight` is used as it is.
            seed: int or None.
        """
        sampling = sampling.resolved()
        use_cfg = self._check_cfg(sampling.cfg_weight)
        inputs = {
            "prefix": ops.convert_to_tensor(prefix),
            "prefix_len": ops.convert_to_tensor(prefix_len, "int32"),
            "temperature": ops.convert_to_tensor(sampling.temperature, "float32"),
            "temperature_probs": ops.convert_to_tensor(sampling.temperature_probs, "float32"),
            "cfg_weight": ops.convert_to_tensor(
                float(sampling.cfg_weight) if use_cfg else 0.0, "float32"
            ),
        }
        if labels is not None:
            inputs["labels"] = ops.convert_to_tensor(labels, "int32")
        mode = (use_cfg, sampling.beam_size, sampling.fan_size, sampling.stochastic_beams)
        mode += (True,) if sampling.greedy else ()
        return self._generate_compiled("ar", inputs, seed, *mode)

    def _prefix_tokens(self, prefix):
        prefix = validation.check_finite_array("prefix", prefix)
        if prefix.ndim != 3:
            raise ValueError(
                f"`prefix` must be (B, P, D) latents. Received: prefix with shape {prefix.shape}"
            )
        return prefix

    def score(self, latents, labels=None, scoring_mode="bits_per_dim"):
        """Scores latents under the model's density, as keras-hub's `CausalLM.score`.

        One teacher-forced forward pass: token i is scored given the tokens
        before it (and the label), under the untempered mixture, without label
        dropout or guidance. `latents` live in the model's token space: the
        VAE latents after the adaptor, as `encode_images(images, sample=False)`
        gives them. `keras_givt.metrics.latent_bits_per_dim` averages the
        score of a set of images.

        Args:
            latents: (B, L, D) float latents.
            labels: (B,) int class ids for a class-conditional model (required
                then); None for an unconditional one.
            scoring_mode: `"bits_per_dim"` (default): the (B,) negative
                log-likelihood of each example in bits per latent dimension,
                `-sum(log p) / (L * D * ln 2)` (`keras_givt.metrics.bits_per_dim`);
                `"log_prob"`: the (B, L) log-density of each token in nats
                (summed over its D channels).

        Returns:
            A float32 tensor, (B,) or (B, L).

        Example:
        ```python
        model = keras_givt.GIVTCausal.from_preset("givt_causal_fashion_mnist")
        z = model.encode_images(images, sample=False)            # (B, L, D)
        bpd = model.score(z, labels)                             # (B,)
        log_p = model.score(z, labels, scoring_mode="log_prob")  # (B, L)
        ```
        """
        from keras_givt.metrics.bits_per_dim import bits_per_dim

        if scoring_mode not in ("bits_per_dim", "log_prob"):
            raise ValueError(
                "`scoring_mode` must be 'bits_per_dim' or 'log_prob'; "
                f"Received: scoring_mode={scoring_mode!r}"
            )
        bb = self.backbone
        latents = ops.convert_to_tensor(latents, "float32")
        if len(latents.shape) != 3 or tuple(latents.shape[1:]) != (bb.seq_len, bb.out_dim):
            raise ValueError(
                f"`latents` must have shape (B, {bb.seq_len}, {bb.out_dim}); "
                f"Received: latents with shape {tuple(latents.shape)}"
            )
        feed = {"tokens": latents}
        if bb.num_labels is not None:
            if labels is None:
                raise ValueError("This model is class-conditional: pass `labels` to score.")
            feed["labels"] = ops.convert_to_tensor(labels, "int32")
        elif labels is not None:
            raise ValueError("This model is unconditional: pass `labels=None`.")
        logits = bb(feed, training=False)
        log_prob = bb.log_prob(logits, latents)  # (B, L), or (B, L, D) with per-channel mixtures
        if len(log_prob.shape) == 3:
            log_prob = ops.sum(log_prob, axis=-1)  # (B, L)
        if scoring_mode == "log_prob":
            return log_prob
        return bits_per_dim(-ops.sum(log_prob, axis=-1), bb.seq_len * bb.out_dim)  # (B,)
