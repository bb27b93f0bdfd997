"""Shared machinery of the GIVT tasks (training on images or latents, compiled generation).

Dimension letters: B batch, H/W image size, C channels, L tokens, D token dim.
"""

import keras
from keras import ops
from keras_hub.models import Task
from keras_hub.src.utils.python_utils import classproperty

from keras_givt.models.givt.givt_backbone import GIVTBackbone
from keras_givt.models.givt.givt_loss import givt_nll
from keras_givt.utils import preset_utils


class GIVTTask(Task):
    """Base class of `GIVTCausal` and `GIVTMaskGIT`.

    Holds a `GIVTBackbone`, an optional frozen VAE (images <-> latents) and an
    optional adaptor (an invertible flow on the latents), all nested in the
    config. `fit` takes dicts with `"latents" (B, L, D)` or `"images"
    (B, H, W, C)` in [-1, 1] (encoded by the VAE, one latent sample per step),
    plus `"labels" (B,)` for class-conditional models.
    """

    backbone_cls = GIVTBackbone
    preprocessor_cls = None

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
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        super().__init__(compile=False, **kwargs)
        # Assign again now that tracking is on (torch routes attributes set
        # before `__init__` around Keras' layer tracking).
        self.backbone = backbone
        self.vae = vae
        self.adaptor = adaptor
        if vae is not None:
            vae.trainable = False
        self.seed_generator = keras.random.SeedGenerator(seed, name="task_seed_generator")
        # === Config ===
        self.seed = seed
        self.sampling_defaults = dict(sampling_defaults or {})
        self.generate_functions = {}
        self.built = True  # Every sub-model is built at construction.
        if compile:
            self.compile()

    # --- Data -----------------------------------------------------------

    def latents_from_inputs(self, inputs):
        """`(tokens (B, L, D), labels or None)` from a fit/evaluate batch."""
        if not isinstance(inputs, dict):
            raise TypeError(
                "GIVT tasks take dicts with 'latents' (B, L, D) or 'images' (B, H, W, C) "
                f"(+ 'labels'); received {type(inputs).__name__}."
            )
        if "latents" in inputs:
            tokens = ops.cast(inputs["latents"], "float32")
        elif "images" in inputs:
            tokens = self.encode_images(inputs["images"])
        else:
            raise ValueError(
                f"Expected a 'latents' or 'images' entry; received keys {sorted(inputs)}."
            )
        labels = inputs.get("labels")
        if self.backbone.num_labels is not None and labels is None:
            raise ValueError("This model is class-conditional: the batch needs 'labels'.")
        if labels is not None:
            labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
        return tokens, labels

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

    def compile(self, optimizer="auto", **kwargs):
        """Adam(3e-4, global clipnorm 1) by default; the loss is the model's NLL."""
        if optimizer == "auto":
            optimizer = keras.optimizers.Adam(3e-4, global_clipnorm=1.0)
        kwargs.pop("loss", None)
        super().compile(optimizer=optimizer, **kwargs)
        self.generate_functions = {}

    # --- Compiled generation ----------------------------------------------

    # torch on CPU: intra-op threads used by `generate` (None: torch's
    # default). Token-by-token decoding is a chain of small products; on a CPU
    # shared with other busy processes, 1 avoids OpenMP hand-off stalls.
    torch_generate_threads = None

    def _compile_generate(self, key, step_fn):
        """`step_fn(inputs) -> outputs` compiled once per `key` (and input shapes).

        jax: `jax.jit` with the backbone weights and the seed state passed
        explicitly; tensorflow: `tf.function(jit_compile=True)`; torch: eager
        under `torch.no_grad()`, KV-cache writes in place, and on CPU with
        `torch_generate_threads` intra-op threads.
        """
        if key in self.generate_functions:
            return self.generate_functions[key]
        backend = keras.config.backend()
        if backend == "torch":
            import torch

            from keras_givt.utils.tensor_utils import inplace_cache_updates

            threads = getattr(self, "torch_generate_threads", None)

            def fn(inputs):
                # On CPU, per-token decoding is a chain of small ops where
                # OpenMP thread hand-offs cost more than they gain.
                before = torch.get_num_threads()
                set_threads = threads is not None and not torch.cuda.is_available()
                if set_threads:
                    torch.set_num_threads(min(threads, before))
                try:
                    with torch.no_grad(), inplace_cache_updates():
                        return step_fn(inputs)
                finally:
                    if set_threads:
                        torch.set_num_threads(before)

        elif backend == "tensorflow":
            import tensorflow as tf

            fn = tf.function(step_fn, jit_compile=True, reduce_retracing=True)
        else:
            import jax

            variables = list(self.backbone.variables)
            seed_state = self.seed_generator.state

            @jax.jit
            def compiled(values, seed_value, inputs):
                mapping = list(zip(variables, values)) + [(seed_state, seed_value)]
                with keras.StatelessScope(state_mapping=mapping) as scope:
                    out = step_fn(inputs)
                return out, scope.get_current_value(seed_state)

            def fn(inputs):
                values = [v.value for v in variables]
                out, new_seed = compiled(values, seed_state.value, inputs)
                seed_state.assign(new_seed)
                return out

        self.generate_functions[key] = fn
        return fn

    def _set_seed(self, seed):
        if seed is None:
            return
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"`seed` must be an int or None; received {seed!r}.")
        state = self.seed_generator.state
        state.assign(ops.cast(ops.convert_to_tensor([seed, 0]), state.dtype))

    def _check_cfg(self, cfg_weight):
        """Whether density-based CFG is on; checks the backbone supports it."""
        use_cfg = cfg_weight is not None and float(cfg_weight) != 0.0
        if not use_cfg:
            return False
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
        return True

    def _normalize_labels(self, labels, num_samples):
        if self.backbone.num_labels is None:
            if labels is not None:
                raise ValueError("This model is unconditional: do not pass `labels`.")
            if num_samples is None:
                raise ValueError("Pass `num_samples` for an unconditional model.")
            return None, int(num_samples)
        if labels is None:
            raise ValueError("This model is class-conditional: pass `labels`.")
        labels = keras.ops.convert_to_numpy(labels).astype("int32").reshape(-1)
        if num_samples is not None:
            if labels.size == 1:
                labels = labels.repeat(int(num_samples))
            elif labels.size != num_samples:
                raise ValueError(
                    f"`num_samples` ({num_samples}) must match the number of labels "
                    f"({labels.size}) or labels must be a single class."
                )
        bad = (labels < 0) | (labels >= self.backbone.num_labels)
        if bad.any():
            raise ValueError(
                f"`labels` must be in [0, {self.backbone.num_labels}); received "
                f"{labels[bad].tolist()}."
            )
        return labels, int(labels.size)

    def _default(self, name, value, fallback):
        """An explicit argument, else the preset's sampling default, else `fallback`."""
        if value is not None:
            return value
        return self.sampling_defaults.get(name, fallback)

    # --- Presets -----------------------------------------------------------

    @classproperty
    def presets(cls):
        """Built-in presets of this task (big_vision checkpoints and bundled models)."""
        return {
            k: v["metadata"] for k, v in preset_utils.PRESETS.items() if v["class"] == cls.__name__
        }

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """Loads a preset: a built-in name, a keras-hub handle or a local directory.

        Built-in presets backed by big_vision URLs are downloaded with
        `keras.utils.get_file` and converted once into a keras-hub preset
        directory in the Keras cache.
        """
        return super().from_preset(
            preset_utils.resolve_preset(preset), load_weights=load_weights, **kwargs
        )

    # --- Config ------------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vae": None if self.vae is None else keras.layers.serialize(self.vae),
                "adaptor": None if self.adaptor is None else keras.layers.serialize(self.adaptor),
                "seed": self.seed,
                "sampling_defaults": self.sampling_defaults,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("vae", "adaptor"):
            if isinstance(config.get(key), dict):
                config[key] = keras.layers.deserialize(config[key])
        return super().from_config(config)
