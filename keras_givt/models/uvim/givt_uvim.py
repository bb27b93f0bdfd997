"""GIVT-UViM: dense prediction (panoptic segmentation, depth) with GIVT.

Dimension letters: B batch, Hi/Wi image size, H/W label-map size, C
label-map channels, L tokens, D token dim, P image patches, E width.

UViM's two stages (big_vision `configs/proj/givt/`):
1. a `ViTVAE` compresses label maps `(B, H, W, C)` into latents `(B, L, D)`
   (trained first, frozen here);
2. an encoder-decoder `GIVTBackbone` (`num_layers > 0`) models the latents
   autoregressively, cross-attending to the encoded image.

Training (`fit(images, label_maps)`): the VAE encodes the label map and one
latent sample z = mu + exp(logvar/2)·ε is drawn per step; the loss is the
GIVT NLL of z given the image. Prediction (`generate` / `predict`): AR
sampling with beam search (big_vision's defaults: panoptic 4 beams × fan 8
at temperature 0.85, depth 2 beams × fan 8 at 0.9), VAE decode, argmax per
pixel; depth bins are mapped back to metres.
"""

import keras
import numpy as np
from keras import ops

from keras_givt.models.givt.givt_loss import givt_nll
from keras_givt.models.givt.givt_task import GIVTTask
from keras_givt.models.uvim import dense_targets
from keras_givt.samplers.config import ARSamplingConfig
from keras_givt.samplers.autoregressive import ar_generate
from keras_givt.utils import validation

TASK_TYPES = ("panoptic", "depth", "label_map")
_SAMPLING_DEFAULTS = {
    "panoptic": {"temperature": 0.85, "beam_size": 4, "fan_size": 8},
    "depth": {"temperature": 0.9, "beam_size": 2, "fan_size": 8},
    "label_map": {"temperature": 1.0, "beam_size": 1, "fan_size": 1},
}


@keras.saving.register_keras_serializable(package="keras_givt")
class GIVTUViM(GIVTTask):
    """Dense prediction with a ViT VAE over label maps and an image-conditioned GIVT.

    Args:
        backbone: a `GIVTBackbone` with `style="ar"`, `num_labels=None` and an
            image encoder (`num_layers > 0`, `input_size`, `patches`).
        vae: a `ViTVAE` whose latents match the backbone (`code_len ==
            seq_len`, `codeword_dim == out_dim`). Frozen.
        task_type: "panoptic" (outputs `semantics` and `instances` maps;
            VAE specs `semantics`/`instances`), "depth" (one spec of
            `num_bins` classes; targets and outputs in metres) or
            "label_map" (raw class maps).
        min_depth, max_depth: float. Depth range of the bins ("depth").
        seed: int or None. Seed of the task's `SeedGenerator` (latent
            sampling in training, generation).
        sampling_defaults: a dict or an `ARSamplingConfig` (without
            `cfg_weight`) overriding the generation defaults
            (`temperature`, `temperature_probs`, `beam_size`, `fan_size`,
            `stochastic_beams`).

    Example:
    ```python
    vae = keras_givt.ViTVAE({"semantics": (0, 11), "instances": (1, 4)}, input_size=(32, 32),
                            patch_size=(8, 8), code_len=4, codeword_dim=8, width=64,
                            enc_depth=2, dec_depth=2, mlp_dim=128, num_heads=4)
    backbone = keras_givt.GIVTBackbone(
        seq_len=4, out_dim=8, num_labels=None, emb_dim=64, num_decoder_layers=2,
        num_heads=4, mlp_dim=128, num_mixtures=4, num_layers=2,
        input_size=(32, 32), patches=(8, 8),
    )
    model = keras_givt.GIVTUViM(backbone, vae, task_type="panoptic")
    model.fit(images, label_maps, batch_size=16, epochs=1)   # label_maps (B, 32, 32, 2)
    out = model.generate(images[:4], seed=0)   # {"semantics", "instances"}: (4, 32, 32)
    ```
    """

    sampling_config_class = ARSamplingConfig
    unused_sampling_fields = ("cfg_weight",)  # No labels to guide towards.

    def __init__(
        self,
        backbone,
        vae,
        task_type="panoptic",
        min_depth=dense_targets.MIN_DEPTH,
        max_depth=dense_targets.MAX_DEPTH,
        preprocessor=None,
        seed=None,
        sampling_defaults=None,
        **kwargs,
    ):
        if task_type not in TASK_TYPES:
            raise ValueError(f"`task_type` must be one of {TASK_TYPES}; received {task_type!r}.")
        if backbone.style != "ar" or backbone.num_layers == 0 or backbone.num_labels is not None:
            raise ValueError(
                "GIVTUViM needs an unconditional ('num_labels=None') style='ar' GIVTBackbone "
                "with an image encoder (num_layers > 0); received style="
                f"{backbone.style!r}, num_layers={backbone.num_layers}, "
                f"num_labels={backbone.num_labels}."
            )
        if vae is None:
            raise ValueError("GIVTUViM needs `vae` (a ViTVAE over label maps).")
        if vae.code_len != backbone.seq_len or vae.codeword_dim != backbone.out_dim:
            raise ValueError(
                "The VAE latents must match the backbone tokens: received VAE (code_len="
                f"{vae.code_len}, codeword_dim={vae.codeword_dim}) and backbone (seq_len="
                f"{backbone.seq_len}, out_dim={backbone.out_dim})."
            )
        specs = vae.inout_specs
        if task_type == "panoptic" and set(specs) != {"semantics", "instances"}:
            raise ValueError(
                "task_type='panoptic' needs VAE `inout_specs` with 'semantics' and 'instances'; "
                f"received {sorted(specs)}."
            )
        if task_type == "depth" and len(specs) != 1:
            raise ValueError(
                f"task_type='depth' needs a VAE with one output (the depth bins); received {sorted(specs)}."
            )
        defaults = dict(_SAMPLING_DEFAULTS[task_type])
        defaults.update(self._sampling_defaults_dict(sampling_defaults))
        super().__init__(
            backbone,
            vae=vae,
            preprocessor=preprocessor,
            seed=seed,
            sampling_defaults=defaults,
            **kwargs,
        )
        # === Config ===
        self.task_type = task_type
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)

    # --- Targets ----------------------------------------------------------

    @property
    def num_depth_bins(self):
        return next(iter(self.vae.inout_specs.values()))[1]

    def targets_to_label_map(self, targets):
        """Training targets -> the VAE's integer label map (B, H, W, C).

        panoptic / label_map: `(B, H, W, C)` class indices as they are;
        depth: metres `(B, H, W)` or `(B, H, W, 1)`, quantised into bins.
        """
        targets = ops.convert_to_tensor(targets)
        if self.task_type == "depth":
            if len(targets.shape) == 3:
                targets = ops.expand_dims(targets, -1)
            return dense_targets.quantize_depth(
                targets, self.min_depth, self.max_depth, self.num_depth_bins
            )
        if len(targets.shape) != 4:
            raise ValueError(
                f"Label maps must be (B, H, W, C) class indices; received shape {tuple(targets.shape)}."
            )
        return targets

    def encode_label_maps(self, label_maps, sample=True):
        """VAE latents (B, L, D) of integer label maps (a sample, or mu)."""
        mu, logvar = self.vae.encode(label_maps)
        z = ops.cast(mu, "float32")
        if sample:
            eps = keras.random.normal(ops.shape(mu), dtype="float32", seed=self.seed_generator)
            z = z + ops.exp(0.5 * ops.cast(logvar, "float32")) * eps
        return ops.stop_gradient(z)

    def _images(self, x):
        if isinstance(x, dict):
            if "images" not in x:
                raise ValueError(f"Expected an 'images' entry; received keys {sorted(x)}.")
            x = x["images"]
        return x

    # --- Training ----------------------------------------------------------

    def check_batch(self, batch, where):
        """Checks a preprocessed fit/evaluate batch (numpy) before the model sees it.

        Accepts `(images, targets)`: images (B, Hi, Wi, 3) floats in [-1, 1]
        at the backbone's `input_size` (or a dict with `"images"`), targets
        as `fit` takes them (label maps (B, H, W, C) of class indices at the
        VAE's size; depth (B, H, W[, 1]) metres; or a dict with `"latents"`
        (B, L, D)).
        """
        from keras_givt.models import training_checks

        x, y, _ = keras.utils.unpack_x_y_sample_weight(batch)
        if isinstance(x, dict):
            unknown = sorted(set(x) - {"images"})
            if unknown or "images" not in x:
                raise ValueError(
                    f"{where}: GIVTUViM takes images (B, H, W, 3) or {{'images': ...}}. "
                    f"Received keys: {sorted(x)}"
                )
            x = x["images"]
        if y is None:
            raise ValueError(
                f"{where}: GIVTUViM.fit needs (images, targets) pairs; the batch has no targets. "
                f"Received: {training_checks.describe(batch)}"
            )
        images = np.asarray(x)
        h, w = self.backbone.input_size
        training_checks.check_array(
            where,
            "x",
            images,
            shape=(None, h, w, 3),
            kind="image",
            low=-1.0,
            high=1.0,
            hint=training_checks.image_range_hint(images, -1.0, 1.0),
        )
        batch_size = images.shape[0]
        bb = self.backbone
        if isinstance(y, dict):
            if sorted(y) != ["latents"]:
                raise ValueError(
                    f"{where}: dict targets must be {{'latents': (B, L, D)}}. Received keys: {sorted(y)}"
                )
            training_checks.check_array(
                where, "y['latents']", y["latents"], shape=(batch_size, bb.seq_len, bb.out_dim)
            )
            return
        targets = np.asarray(y)
        vh, vw = self.vae.input_size
        if self.task_type == "depth":
            if targets.ndim == 4 and targets.shape[-1] == 1:
                targets = targets[..., 0]
            training_checks.check_array(where, "y", targets, shape=(batch_size, vh, vw))
            return
        specs = self.vae.inout_specs
        channels = max(channel for channel, _ in specs.values()) + 1
        training_checks.check_array(
            where, "y", targets, shape=(batch_size, vh, vw, channels), kind="int"
        )
        for name, (channel, num_classes) in specs.items():
            training_checks.check_array(
                where,
                f"y[..., {channel}] ({name})",
                targets[..., channel],
                kind="int",
                low=0,
                high=num_classes,
            )

    def call(self, inputs, training=False):
        """images (B, Hi, Wi, 3) in [-1, 1] -> {"encoded": (B, P, E)}."""
        images = self._images(inputs)
        return {"encoded": self.backbone.encode(images, training=training)}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """GIVT NLL of the label map's latents given the image.

        `y` is the label map (see `targets_to_label_map`) or a dict with
        precomputed `"latents"` (B, L, D).
        """
        if y is None:
            raise ValueError(
                "GIVTUViM.fit needs (images, label_maps) pairs: pass `y` (the label maps)."
            )
        if isinstance(y, dict) and "latents" in y:
            tokens = ops.cast(y["latents"], "float32")
        else:
            tokens = self.encode_label_maps(self.targets_to_label_map(y))
        logits = self.backbone.decode(tokens, encoded=y_pred["encoded"], training=training)
        loss = givt_nll(self.backbone, logits, tokens)
        return self._with_layer_losses(loss)

    # --- Generation ----------------------------------------------------------

    def generate_step(self, inputs, beam_size, fan_size, stochastic_beams, greedy=False):
        """The compiled body: images -> (tokens (B, L, D), log_prob (B,))."""
        images = inputs["images"]
        encoded = self.backbone.encode(images, training=False)
        return ar_generate(
            self._make_decoder(),
            None,
            ops.shape(images)[0],
            self.seed_generator,
            temperature=inputs["temperature"],
            temperature_probs=inputs["temperature_probs"],
            beam_size=beam_size,
            fan_size=fan_size,
            stochastic_beams=stochastic_beams,
            encoded=encoded,
            greedy=greedy,
        )

    def generate(
        self,
        images,
        seed=None,
        sampling=None,
        return_latents=False,
        return_logits=False,
        image_range=None,
        **overrides,
    ):
        """Predicts dense outputs for `images (B, Hi, Wi, 3)` (or one (Hi, Wi, 3) image).

        Every argument is checked on the host once per call, before any
        work; a bad value raises a ValueError/TypeError naming it.

        Args:
            images: finite float images in `image_range` ([-1, 1] by default).
            seed: int for reproducible predictions.
            sampling: a `keras_givt.samplers.config.ARSamplingConfig` (or a
                dict of its fields) without `cfg_weight`; its unset fields
                take `sampling_defaults`.
            return_latents: bool. Also return `"latents"` (B, L, D).
            return_logits: bool. Also return the VAE's per-pixel logits
                (`"logits/<name>"`).
            image_range: (-1, 1) (default, the input range of the encoder) or
                (0, 1): the range of `images`.
            **overrides: sampling fields, over `sampling` and the defaults
                (None: not set):
                `temperature`: finite float >= 0 multiplying the mixture
                scales (0: greedy, as `GIVTCausal.generate`).
                `temperature_probs`: finite float > 0 multiplying the mixture
                logits.
                `beam_size`, `fan_size`: positive ints K <= F, beam search (K
                beams × F candidates).
                `stochastic_beams`: bool. Sample the surviving beams (Gumbel
                top-k).

        Unset sampling fields take `sampling_defaults` (big_vision's UViM
        settings). Returns a dict of NumPy arrays: panoptic
        `{"semantics", "instances"}` (B, H, W) int32; depth `{"depth"}`
        (B, H, W) metres; label_map `{"label_map"}` (B, H, W, C).
        """
        flags = {"return_latents": return_latents, "return_logits": return_logits}
        sampling, _, seed, image_range, return_latents, return_logits = self._check_call_arguments(
            "generate", sampling, overrides, seed, image_range, **flags
        )
        images = self._images(images)
        if np.ndim(images) == 3:
            images = np.asarray(keras.ops.convert_to_numpy(images))[None]
        images = self._check_images(images, image_range)
        images = self._to_native(images, image_range)
        bb = self.backbone
        expected = tuple(bb.input_size) + (3,)
        if images.shape[1:] != expected:
            raise ValueError(
                f"`images` must have shape (B, {expected[0]}, {expected[1]}, 3); received "
                f"{images.shape}. Received: images with shape {images.shape}"
            )
        tokens, _ = self._run(images, sampling, seed)
        out = self.decode_latents(tokens, return_logits=return_logits)
        if return_latents:
            out["latents"] = keras.ops.convert_to_numpy(tokens)
        return out

    def _run(self, images, sampling, seed=None):
        """`(tokens (B, L, D), log_probs (B,))` of native-range `images` (B, Hi, Wi, 3).

        `sampling` is an `ARSamplingConfig` (unset fields take the built-in
        defaults).
        """
        sampling = sampling.resolved()
        inputs = {
            "images": ops.convert_to_tensor(images),
            "temperature": ops.convert_to_tensor(sampling.temperature, "float32"),
            "temperature_probs": ops.convert_to_tensor(sampling.temperature_probs, "float32"),
        }
        mode = (sampling.beam_size, sampling.fan_size, sampling.stochastic_beams)
        mode += (True,) if sampling.greedy else ()
        return self._generate_compiled("uvim", inputs, seed, *mode)

    def decode_latents(self, latents, return_logits=False):
        """Latents (B, L, D) -> the task's outputs (dict of NumPy arrays)."""
        logits = self.vae.decode(ops.convert_to_tensor(latents, "float32"))
        to_np = keras.ops.convert_to_numpy
        if self.task_type == "panoptic":
            out = {
                name: to_np(ops.cast(ops.argmax(logits[name], axis=-1), "int32"))
                for name in ("semantics", "instances")
            }
        elif self.task_type == "depth":
            bins = ops.argmax(next(iter(logits.values())), axis=-1)
            out = {
                "depth": to_np(
                    dense_targets.dequantize_depth(
                        bins, self.min_depth, self.max_depth, self.num_depth_bins
                    )
                )
            }
        else:
            out = {"label_map": to_np(self.vae.decode_to_maps(latents))}
        if return_logits:
            out.update({"logits/" + k: to_np(v) for k, v in logits.items()})
        return out

    def predict(self, x, batch_size=32, verbose="auto", seed=None, **generate_kwargs):
        """`generate` over `x` (images, NumPy or tensor) in batches of `batch_size`."""
        batch_size = validation.check_int("batch_size", batch_size, 1)
        self._sampling_keywords("generate", generate_kwargs)  # Unknown keywords fail first.
        images = validation.check_finite_array("x", self._images(x))
        self._set_seed(seed)
        chunks = []
        n = images.shape[0]
        bar = keras.utils.Progbar(n, verbose=0 if verbose == 0 else 1) if n > batch_size else None
        for start in range(0, n, batch_size):
            chunks.append(self.generate(images[start : start + batch_size], **generate_kwargs))
            if bar is not None:
                bar.update(min(start + batch_size, n))
        return {k: np.concatenate([c[k] for c in chunks], axis=0) for k in chunks[0]}

    def get_config(self):
        config = super().get_config()
        config.update(
            {"task_type": self.task_type, "min_depth": self.min_depth, "max_depth": self.max_depth}
        )
        return config
