"""`GenerationTask`: what the image-generation tasks share.

The GIVT tasks (`GIVTTask` and its subclasses) and the discrete
`MaskGITImageGenerator` hold a backbone, optional frozen image models
(VAE/adaptor, VQGAN tokenizer), a `SeedGenerator` and a preset's sampling
defaults (read as a `keras_givt.samplers.config` object, `task.sampling`);
they sample with a function compiled once per mode. The two MaskGIT tasks
add the masked pipeline and `inpaint` of `models.masked_editing`. Every
`generate`/`inpaint` checks its shared arguments with `_check_call_arguments`
and its labels with `_call_labels`; `fit` batches of dicts go through the
checks of `training_checks`.

Dimension letters: B batch, H/W/C image, h/w token grid, L = h·w tokens.
"""

import keras
import numpy as np
from keras import ops
from keras_hub.models import Task
from keras_hub.src.utils.python_utils import classproperty

from keras_givt.models import fit_arrays
from keras_givt.models import image_preprocessor  # noqa: F401 (registers ImagePreprocessor)
from keras_givt.samplers.config import SamplingConfig
from keras_givt.utils import preset_utils
from keras_givt.utils import validation
from keras_givt.utils.heap import release_freed_heap


class GenerationTask(Task):
    """Base class of `GIVTTask` and `MaskGITImageGenerator`.

    Holds the backbone, the task's `SeedGenerator`, the preset's sampling
    defaults (`sampling_defaults`, a dict; `sampling`, the same as a config
    of the task's `sampling_config_class`) and the `generate` functions
    compiled so far. A subclass calls
    `super().__init__(backbone, ...)`, then sets its sub-models (the
    optional ones named in `nested_models` are serialized in the config),
    marks itself built and compiles.

    Args:
        backbone: the task's `keras_hub.models.Backbone`.
        preprocessor: None (batches go to the model as they are) or a
            `keras_givt.ImagePreprocessor` (or any Keras preprocessing layer),
            mapped over every `fit`/`evaluate` batch: raw images -> the
            model's image convention, `(images, labels)` -> dicts.
        seed: int or None. Seed of the task's `SeedGenerator`.
        sampling_defaults: the preset's `generate` defaults: a dict (as presets
            and saved configs hold them; keys of other tasks are kept and
            ignored) or a config of the task's `sampling_config_class`.
    """

    # Attributes holding optional sub-models, serialized in the config.
    nested_models = ()
    # How `fit` batches look (the message when a batch is not a dict).
    batch_description = "Generation tasks take dicts of arrays"
    # The `keras_givt.samplers.config` class of the task's sampling settings.
    sampling_config_class = None
    # Fields of that config the task's `generate` does not take.
    unused_sampling_fields = ()

    def __init__(self, backbone, preprocessor=None, seed=None, sampling_defaults=None, **kwargs):
        class_names = kwargs.pop("class_names", None)
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        super().__init__(compile=False, **kwargs)
        # Assign again now that tracking is on (torch routes attributes set
        # before `__init__` around Keras' layer tracking).
        self.backbone = backbone
        self.seed_generator = keras.random.SeedGenerator(seed, name="task_seed_generator")
        # === Config ===
        self.seed = seed
        self.sampling_defaults = self._sampling_defaults_dict(sampling_defaults)
        self.generate_functions = {}
        self.class_names = class_names  # Optional names of the classes (labels by name).

    # --- Data ------------------------------------------------------------

    def _tokens_and_labels(self, inputs, tokens_key, dtype, conditional):
        """`(tokens, labels (B,) int32 or None)` of a fit/evaluate batch.

        The tokens are `inputs[tokens_key]` cast to `dtype`, else
        `encode_images(inputs["images"])`; `conditional` models need
        `inputs["labels"]`.
        """
        if not isinstance(inputs, dict):
            raise TypeError(f"{self.batch_description}; received {type(inputs).__name__}.")
        if tokens_key in inputs:
            tokens = ops.cast(inputs[tokens_key], dtype)
        elif "images" in inputs:
            tokens = self.encode_images(inputs["images"])
        else:
            raise ValueError(
                f"Expected a {tokens_key!r} or 'images' entry; received keys {sorted(inputs)}."
            )
        labels = inputs.get("labels")
        if labels is None:
            if conditional:
                raise ValueError("This model is class-conditional: the batch needs 'labels'.")
            return tokens, None
        return tokens, ops.reshape(ops.cast(labels, "int32"), (-1,))

    def _label_array(self, labels, num_samples, num_classes):
        """`labels` as an int32 numpy (B,), checked to lie in [0, num_classes).

        Labels are ids (integer-valued numbers) or, when the task has
        `class_names`, names. One label is repeated `num_samples` times;
        otherwise `num_samples` (when given) must be the number of labels.
        """
        labels = validation.check_labels("labels", labels, num_classes, self.class_names)
        num_samples = validation.check_int("num_samples", num_samples, 1, allow_none=True)
        if num_samples is not None:
            if labels.size == 1:
                labels = labels.repeat(num_samples)
            elif labels.size != num_samples:
                raise ValueError(
                    f"`num_samples` ({num_samples}) must match the number of labels "
                    f"({labels.size}) or labels must be a single class. Received: "
                    f"num_samples={num_samples}, labels={labels.tolist()}"
                )
        return labels

    # --- Training --------------------------------------------------------
    # `fit`/`evaluate` run every batch through the preprocessor and
    # `check_batch` on the host (`training_checks.checked_dataset`), pull
    # the first batch through before Keras traces anything, and stop on a
    # non-finite loss with the last good weights restored
    # (`training_checks.NonFiniteLossGuard`).

    def _default_optimizer(self):
        """The optimizer of `compile(optimizer="auto")`."""
        raise NotImplementedError

    # What `compile` says when given a `loss`/`metrics` (the task's own loss).
    loss_description = "its own loss"

    def _with_layer_losses(self, loss):
        """`loss` plus the layers' `add_loss` terms (in float32), if any."""
        losses = self.losses
        if losses:
            loss = loss + ops.sum(ops.stack([ops.cast(v, "float32") for v in losses]))
        return loss

    def compile(self, optimizer="auto", loss=None, metrics=None, **kwargs):
        """Compiles with the task's own loss (`compute_loss`).

        Args:
            optimizer: "auto" (the task's default optimizer,
                `_default_optimizer`), or a Keras optimizer (instance,
                name or config).
            loss: None or "auto" only: the task trains on its own loss; any
                other value is refused with a `ValueError`.
            metrics: None or [] only: the batches carry no targets to compare
                predictions with (the task's loss is reported as `loss`);
                anything else is refused with a `ValueError`.
            **kwargs: other `keras.Model.compile` arguments (e.g.
                `jit_compile`, `steps_per_execution`); `loss_weights` and
                `weighted_metrics` are refused like `loss`/`metrics`.
        """
        name = type(self).__name__
        if loss is not None and not (isinstance(loss, str) and loss == "auto"):
            raise ValueError(
                f"`loss` cannot be set: {name} trains on {self.loss_description} "
                "(`compute_loss`); leave `loss` unset (or 'auto'), or subclass and override "
                f"`compute_loss`. Received: loss={loss!r}"
            )
        if metrics is not None and not (isinstance(metrics, (list, tuple, dict)) and not metrics):
            raise ValueError(
                f"`metrics` are not supported: {name}'s batches carry no targets to compare "
                "predictions with; its loss is reported as `loss`. Received: "
                f"metrics={metrics!r}"
            )
        for arg in ("loss_weights", "weighted_metrics"):
            if kwargs.get(arg) is not None:
                raise ValueError(
                    f"`{arg}` is not supported: {name} trains on {self.loss_description}. "
                    f"Received: {arg}={kwargs[arg]!r}"
                )
            kwargs.pop(arg, None)
        if isinstance(optimizer, str) and optimizer == "auto":
            optimizer = self._default_optimizer()
        super().compile(optimizer=optimizer, **kwargs)
        self.generate_functions = {}

    def check_batch(self, batch, where):
        """Checks one preprocessed batch (numpy) before it reaches the model.

        Raises a `ValueError` starting with `where` and naming the entry and
        the value. Subclasses check structure, shapes, dtypes, value ranges
        and labels; the base class accepts everything.
        """

    def preprocess_samples(self, x, y=None, sample_weight=None, where=None):
        """`preprocessor(x, y, sample_weight)`, or the batch as it is without one."""
        if getattr(self, "_samples_preprocessed", False) or self.preprocessor is None:
            return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)
        from keras_givt.models.image_preprocessor import ImagePreprocessor

        if isinstance(self.preprocessor, ImagePreprocessor):
            return self.preprocessor(x, y=y, sample_weight=sample_weight, where=where)
        return super().preprocess_samples(x, y, sample_weight)

    def _checked(self, dataset, role):
        from keras_givt.models import training_checks

        return training_checks.checked_dataset(
            dataset, self.preprocess_samples, self.check_batch, role
        )

    def _batched_dataset(self, x, y, sample_weight, batch_size, shuffle):
        """A batched `tf.data.Dataset` of `x`/`(x, y)` arrays or a dataset; None otherwise."""
        import tensorflow as tf

        from keras_givt.models import training_checks

        if isinstance(x, tf.data.Dataset):
            if y is not None or sample_weight is not None:
                raise ValueError(
                    "`y` and `sample_weight` must be None when `x` is a dataset (its elements "
                    f"carry them). Received: y={training_checks.describe(y)}, "
                    f"sample_weight={training_checks.describe(sample_weight)}"
                )
            return x
        if not (fit_arrays.is_array_dict(x) or fit_arrays.is_array(x)):
            return None
        arrays = fit_arrays.flat_arrays(x, y, sample_weight)
        # Plain Python on the structure: no AutoGraph (which re-reads the source).
        unflatten = tf.autograph.experimental.do_not_convert(fit_arrays.unflatten)
        if shuffle is None:
            return fit_arrays.ordered_dataset(arrays, batch_size or 32).map(unflatten)
        return fit_arrays.array_dataset(arrays, batch_size or 32, shuffle).map(unflatten)

    def make_train_function(self, force=False):
        if self.train_function is None or force:
            # Once per train function, not per step (a step's freed temporaries
            # would be re-faulted every step): the build's freed blocks would stay
            # resident under the step's peak (`utils.heap`). GIVT-Causal 256 with
            # remat on torch, batch 2: 6.89 -> 6.37 GiB in a script that builds and
            # trains; in `published_sizes.py` 6.37 -> 6.30-6.34 GiB.
            release_freed_heap()
        return super().make_train_function(force)

    def train_step(self, *args, **kwargs):
        # `(data)`, or `(state, data)` on jax: the backend trainer's own signature.
        logs = super().train_step(*args, **kwargs)
        if keras.config.backend() == "torch":
            # Keras' torch trainer zeroes the gradients (`.grad`, one parameter
            # size) only after the next step's forward pass, so they would peak
            # with that pass's activations: free them now.
            self.zero_grad(set_to_none=True)
        return logs

    def fit(
        self,
        x=None,
        y=None,
        batch_size=None,
        epochs=1,
        shuffle=True,
        validation_split=None,
        validation_data=None,
        sample_weight=None,
        callbacks=None,
        **kwargs,
    ):
        """`keras.Model.fit` with the task's preprocessing and checks.

        Args:
            x: a dict of arrays (`{"latents" or "images" or "tokens",
                "labels", ...}`), images (with `y`), or a batched
                `tf.data.Dataset` of dicts or `(images, labels)` pairs; with a
                `preprocessor` (the bundled presets carry one) raw uint8 or
                float images of any size work. Other inputs (generators,
                `PyDataset`) go to Keras unchecked.
            y: labels (GIVT, MaskGIT) or targets (UViM) when `x` are arrays.
            shuffle: arrays are reshuffled every epoch when True (Keras'
                default; keras-hub's array batching ignored it), seeded by
                `keras.utils.set_random_seed`.
            validation_split: the last fraction of the arrays, as in Keras.
            Other arguments as `keras.Model.fit`.

        Every batch goes through the preprocessor and `check_batch` on the
        host; the first one before Keras traces anything, so a wrong batch
        raises a `ValueError` naming it and leaves the model untouched. A
        non-finite loss stops training with a `NonFiniteLossError` naming
        the step, with the weights and optimizer state of the step before
        restored.
        """
        from keras_givt.models import training_checks

        val_batch_size = batch_size or 32
        if (
            validation_split
            and validation_data is None
            and (fit_arrays.is_array_dict(x) or fit_arrays.is_array(x))
        ):
            arrays = fit_arrays.flat_arrays(x, y, sample_weight)
            arrays, held_out = fit_arrays.split_last(arrays, validation_split)
            x, y, sample_weight = fit_arrays.unflatten_numpy(arrays)
            validation_data = fit_arrays.unflatten_numpy(held_out)
            validation_split = None
        train = self._batched_dataset(x, y, sample_weight, batch_size, shuffle)
        if train is not None:
            x, y, sample_weight, batch_size = self._checked(train, "training"), None, None, None
        if validation_data is not None:
            val_x, val_y, val_sw = fit_arrays.unpack_validation(validation_data)
            val = self._batched_dataset(val_x, val_y, val_sw, val_batch_size, None)
            if val is not None:
                validation_data = self._checked(val, "validation")
        callbacks = list(callbacks or [])
        if not any(isinstance(c, training_checks.NonFiniteLossGuard) for c in callbacks):
            callbacks.append(training_checks.NonFiniteLossGuard())
        if self.optimizer is None:
            self.compile()
        with training_checks.translate_data_errors():
            if train is not None:
                next(iter(x))  # The first batch, checked before anything is traced.
            saved = _jax_values(self)
            self._samples_preprocessed = train is not None
            try:
                return super().fit(
                    x,
                    y,
                    batch_size=batch_size,
                    epochs=epochs,
                    shuffle=False if train is not None else shuffle,
                    validation_split=validation_split,
                    validation_data=validation_data,
                    sample_weight=sample_weight,
                    callbacks=callbacks,
                    **kwargs,
                )
            except BaseException:
                training_checks.restore_purged_jax_variables(saved)
                raise
            finally:
                self._samples_preprocessed = False

    def evaluate(self, x=None, y=None, batch_size=None, sample_weight=None, **kwargs):
        """`keras.Model.evaluate` with the task's preprocessing and batch checks (as `fit`)."""
        from keras_givt.models import training_checks

        if kwargs.get("_use_cached_eval_dataset", False):
            return super().evaluate(
                x, y, batch_size=batch_size, sample_weight=sample_weight, **kwargs
            )
        data = self._batched_dataset(x, y, sample_weight, batch_size, None)
        if data is not None:
            x, y, sample_weight, batch_size = self._checked(data, "evaluation"), None, None, None
        with training_checks.translate_data_errors():
            if data is not None:
                next(iter(x))
            saved = _jax_values(self)
            self._samples_preprocessed = data is not None
            try:
                return super().evaluate(
                    x, y, batch_size=batch_size, sample_weight=sample_weight, **kwargs
                )
            except BaseException:
                training_checks.restore_purged_jax_variables(saved)
                raise
            finally:
                self._samples_preprocessed = False

    # --- Summary -------------------------------------------------------------

    def summary(self, *args, **kwargs):
        """`keras.Model.summary`, with the output shapes of the nested image models.

        The frozen VAE / tokenizer / adaptor are built but never called
        symbolically, so Keras would print "?" for them; their output shape is
        computed once here (for an input of their recorded size) and shown.
        """
        patched = []
        for name in self.nested_models:
            layer = getattr(self, name, None)
            if layer is None or layer._inbound_nodes or hasattr(layer, "output_shape"):
                continue
            shape = self._summary_input_shape(layer)
            if shape is None:
                continue
            shape, dtype = shape
            try:
                out = layer.compute_output_spec(keras.KerasTensor(shape, dtype=dtype))
            except Exception:  # A shape we cannot show: leave Keras' "?".
                continue
            finally:
                layer._clear_losses()
            shapes = keras.tree.map_structure(lambda t: tuple(t.shape), out)
            patched.append((layer, layer._build_shapes_dict))
            layer._build_shapes_dict = {"input_shape": shape}
            object.__setattr__(layer, "compute_output_shape", lambda input_shape, s=shapes: s)
        try:
            return super().summary(*args, **kwargs)
        finally:
            for layer, build_shapes in patched:
                layer._build_shapes_dict = build_shapes
                object.__delattr__(layer, "compute_output_shape")

    def _summary_input_shape(self, layer):
        """`(shape, dtype)` a nested model is shown with in `summary`, or None."""
        size = getattr(layer, "image_size", None)
        if size and len(size) == 3:
            return (None,) + tuple(int(v) for v in size), "float32"
        specs = getattr(layer, "inout_specs", None)
        if specs and getattr(layer, "input_size", None):  # A label-map VAE (UViM).
            channels = max(channel for channel, _ in specs.values()) + 1
            return (None,) + tuple(layer.input_size) + (channels,), "int32"
        build_shape = (layer._build_shapes_dict or {}).get("input_shape")
        if build_shape is not None:
            return (None,) + tuple(build_shape[1:]), "float32"
        return None

    # --- Compiled generation ----------------------------------------------

    # torch on CPU: intra-op threads used by `generate`: an int >= 1, "auto"
    # (torch's own count when the other cores are free, fewer when other
    # processes keep them busy) or "torch" (leave torch's setting); None reads
    # KERAS_GIVT_TORCH_THREADS (default "auto"). Why and the measurements:
    # `keras_givt.utils.torch_threads`.
    torch_generate_threads = None

    def _compile_generate(self, key, step_fn):
        """`step_fn(inputs) -> outputs` compiled once per `key` (and input shapes).

        jax: `jax.jit` with the backbone weights and the seed state passed
        explicitly; tensorflow: `tf.function(jit_compile=True)`; torch: eager
        under `torch.no_grad()` (GIVT tasks decode with the plain-torch
        `TorchDecoder` there), and on CPU with the intra-op threads chosen by
        `utils.torch_threads.generation_threads(torch_generate_threads)`.
        """
        if key in self.generate_functions:
            return self.generate_functions[key]
        backend = keras.config.backend()
        if backend == "torch":
            import torch

            from keras_givt.utils.torch_threads import generation_threads

            def fn(inputs):
                with generation_threads(self.torch_generate_threads), torch.no_grad():
                    return step_fn(inputs)

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

    def _generate_compiled(self, name, inputs, seed, *mode):
        """Seeds, then runs `generate_step(inputs, *mode)` compiled once per mode."""
        self._set_seed(seed)
        fn = self._compile_generate((name, *mode), lambda x: self.generate_step(x, *mode))
        return fn(inputs)

    def _set_seed(self, seed):
        seed = validation.check_seed("seed", seed)
        if seed is None:
            return
        state = self.seed_generator.state
        state.assign(ops.cast(ops.convert_to_tensor([seed, 0]), state.dtype))

    def _check_cfg(self, cfg_weight):
        """Whether classifier-free guidance is on (`cfg_weight` not None or 0).

        When it is, `_check_cfg_support` checks that the model can guide.
        """
        cfg_weight = validation.check_float("cfg_weight", cfg_weight, allow_none=True)
        if cfg_weight is None or cfg_weight == 0.0:
            return False
        self._check_cfg_support(cfg_weight)
        return True

    def _check_cfg_support(self, cfg_weight):
        """Raises a `ValueError` when the model cannot use guidance."""

    def _check_unconditional_cfg(self, conditional, cfg_weight):
        """Refuses a `cfg_weight` (the call's own, not the preset's) without labels."""
        if not conditional and cfg_weight not in (None, 0.0):
            raise ValueError(
                "`cfg_weight` guides towards `labels`: pass `labels`, or no `cfg_weight` for "
                f"unconditional samples. Received: cfg_weight={cfg_weight!r}, labels=None"
            )

    # --- Sampling settings -------------------------------------------------
    # `sampling_defaults` (a dict, as presets and saved configs store it)
    # holds the preset's values. A `generate`/`inpaint` call layers:
    # built-in defaults < preset defaults < `sampling=` < keyword overrides.

    def _sampling_defaults_dict(self, defaults):
        """`sampling_defaults` (None, a dict or a config) as a dict of the set values."""
        if defaults is None:
            return {}
        if isinstance(defaults, SamplingConfig):
            return self._check_sampling_config("sampling_defaults", defaults).set_fields()
        if not isinstance(defaults, dict):
            raise TypeError(
                "`sampling_defaults` must be a dict or a "
                f"{self.sampling_config_class.__name__}. Received: "
                f"sampling_defaults={validation._show(defaults)} (of type "
                f"{type(defaults).__name__})"
            )
        return dict(defaults)

    @property
    def sampling(self):
        """The task's sampling settings: the preset's defaults over the built-in ones.

        A resolved config of `sampling_config_class` (every field set).
        Assigning a config replaces the preset's values of its fields by the
        config's set fields (`sampling_defaults` follows).
        """
        return self._merged_sampling({}).resolved()

    @sampling.setter
    def sampling(self, config):
        config = self._check_sampling_config("sampling", config)
        fields = config.field_names()
        kept = {k: v for k, v in self.sampling_defaults.items() if k not in fields}
        self.sampling_defaults = {**kept, **config.set_fields()}

    def _check_sampling_config(self, name, config):
        """`config` (a config of the task's class, or a dict of its fields), checked."""
        cls = self.sampling_config_class
        if isinstance(config, dict):
            config = cls.from_config(config)
        if not isinstance(config, cls):
            raise TypeError(
                f"`{name}` must be a {cls.__name__} (or a dict of its fields). Received: "
                f"{name}={validation._show(config)} (of type {type(config).__name__})"
            )
        for field in self.unused_sampling_fields:
            if getattr(config, field) is not None:
                raise ValueError(
                    f"{type(self).__name__} does not use `{field}`. Received: {name} with "
                    f"{field}={getattr(config, field)!r}"
                )
        return config

    def _merged_sampling(self, requested):
        """The preset's defaults (fields of the task's config) updated by `requested`."""
        cls = self.sampling_config_class
        names = [n for n in cls.field_names() if n not in self.unused_sampling_fields]
        preset = {k: v for k, v in self.sampling_defaults.items() if k in names and v is not None}
        return cls(**{**preset, **requested})

    def _sampling_for_call(self, method, sampling, kwargs):
        """`(settings, requested)` of one `generate`/`inpaint` call.

        Args:
            method: "generate" or "inpaint": the method whose signature and
                sampling fields are the valid keywords.
            sampling: None, a config of `sampling_config_class` or a dict
                of its fields.
            kwargs: the call's extra keywords: sampling fields (None = unset)
                and keras-hub aliases (`guidance_scale`). Unknown keywords
                raise Python's TypeError listing the valid ones.

        Returns:
            `settings`, the resolved config of the call (built-in defaults <
            preset defaults < `sampling` < keywords), and `requested`, the
            config of the call's own values only (`sampling` < keywords).
        """
        overrides = self._sampling_keywords(method, kwargs)
        requested = {}
        if sampling is not None:
            requested = self._check_sampling_config("sampling", sampling).set_fields()
        requested.update({k: v for k, v in overrides.items() if v is not None})
        requested = self.sampling_config_class(**requested)
        return self._merged_sampling(requested.set_fields()).resolved(), requested

    def _sampling_keywords(self, method, kwargs):
        """The sampling fields among the extra keywords `kwargs`, aliases mapped.

        The valid keywords are `method`'s parameters and the task's
        sampling fields; keras-hub's `guidance_scale` (`uncond + s·(cond −
        uncond)`) is `cfg_weight + 1`: it becomes `cfg_weight =
        guidance_scale − 1`.
        """
        import inspect

        params = [
            n
            for n, p in inspect.signature(getattr(self, method)).parameters.items()
            if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        fields = [
            n
            for n in self.sampling_config_class.field_names()
            if n not in self.unused_sampling_fields
        ]
        aliases = {a: t for a, t in self.keyword_aliases.items() if t in fields}
        validation.check_keywords(
            f"{type(self).__name__}.{method}", kwargs, params + fields, aliases
        )
        overrides = {k: v for k, v in kwargs.items() if k in fields}
        for alias, value in kwargs.items():
            if alias not in aliases:
                continue
            target = aliases[alias]
            if overrides.get(target) is not None:
                raise TypeError(
                    f"Pass either `{target}` or its alias `{alias}`, not both. Received: "
                    f"{target}={overrides[target]!r}, {alias}={value!r}"
                )
            if alias == "guidance_scale":
                value = validation.check_float("guidance_scale", value) - 1.0
            overrides[target] = value
        return overrides

    # --- Generation arguments ----------------------------------------------
    # `generate`/`inpaint` check every argument here, on the host, once per
    # call and before any work: errors name the argument as the user passed
    # it and show the value.

    # Public image convention of `generate`/`inpaint` (inputs and outputs) of
    # every task: float images in [-1, 1]. `image_range=(0, 1)` per call
    # gives (and takes) [0, 1] images instead.
    default_image_range = (-1.0, 1.0)
    image_ranges = ((-1.0, 1.0), (0.0, 1.0))
    # The range of the task's own `encode_images`/`decode_tokens`.
    native_image_range = (-1.0, 1.0)
    # keras-hub spellings accepted by `generate`/`inpaint`: alias -> argument.
    keyword_aliases = {"guidance_scale": "cfg_weight"}

    def _check_call_arguments(self, method, sampling, overrides, seed, image_range, **flags):
        """The arguments every `generate`/`inpaint` call has, checked in this order.

        Args:
            method: "generate" or "inpaint" (as `_sampling_for_call`).
            sampling, overrides: the call's `sampling` and extra keywords.
            seed: the call's `seed`.
            image_range: the call's `image_range` (None: the default).
            **flags: the call's bool arguments, by the name errors use.

        Returns:
            `(sampling, requested, seed, image_range, *flags)`: the settings
            and the call's own values (`_sampling_for_call`), the seed, the
            (lo, hi) range and the bools, in the order of `flags`.
        """
        sampling, requested = self._sampling_for_call(method, sampling, overrides)
        seed = validation.check_seed("seed", seed)
        flags = [validation.check_bool(name, value) for name, value in flags.items()]
        image_range = self._check_image_range(image_range)
        return (sampling, requested, seed, image_range, *flags)

    def _call_labels(self, labels, num_samples, sampling, requested, batch=None):
        """`(labels, B, sampling)` of a call whose settings are `sampling`.

        `_generation_labels(labels, num_samples, batch)`; without labels
        (unconditional samples) the call's own `cfg_weight` (`requested`) is
        refused and the preset's is dropped from `sampling`.
        """
        labels, batch, conditional = self._generation_labels(labels, num_samples, batch=batch)
        self._check_unconditional_cfg(conditional, requested.cfg_weight)
        if not conditional:
            sampling = sampling.replace(cfg_weight=None)
        return labels, batch, sampling

    @property
    def class_names(self):
        """Names of classes 0..C-1 (list of str) or None.

        Set from the preset's model card by `from_preset` (the bundled
        Fashion-MNIST presets), or by hand (`model.class_names = [...]`);
        `generate`/`inpaint` then accept names as `labels`.
        """
        return getattr(self, "_class_names", None)

    @class_names.setter
    def class_names(self, names):
        if names is not None:
            num_classes = self._num_classes()
            if isinstance(names, str) or not all(isinstance(n, str) for n in names):
                raise TypeError(
                    f"`class_names` must be a list of str. Received: class_names={names!r}"
                )
            names = list(names)
            if num_classes is None or len(names) != num_classes or len(set(names)) != len(names):
                raise ValueError(
                    f"`class_names` must be {num_classes} distinct names (one per class). "
                    f"Received: class_names={names!r}"
                )
        object.__setattr__(self, "_class_names", names)

    def _num_classes(self):
        """Number of classes C, or None for an unconditional model."""
        return getattr(self.backbone, "num_labels", None)

    def _unconditional_label(self):
        """The label id meaning "no class" (`labels=None`) of a conditional model.

        GIVT: the NOLABEL row of the label table, which exists when the
        backbone was trained with label dropout; otherwise a ValueError.
        """
        ids = getattr(self.backbone, "special_ids", {})
        if "nolabel" not in ids:
            raise ValueError(
                "This model is class-conditional and has no NOLABEL row (it was not trained "
                "with label dropout, `drop_labels_probability=0`), so it cannot sample "
                "unconditionally: pass `labels`. Received: labels=None"
            )
        return int(ids["nolabel"])

    def _unconditional_labels(self, batch):
        """Labels (B,) of an unconditional call (None: the model takes none)."""
        if self._num_classes() is None:
            return None
        return np.full((batch,), self._unconditional_label(), "int32")

    def _generation_labels(self, labels, num_samples, batch=None):
        """`(labels (B,) int32 numpy or None, B, conditional)` of a call.

        `labels=None` on a class-conditional model samples unconditionally
        (`_unconditional_labels`); `batch` (inpaint) fixes B.
        """
        num_samples = validation.check_int("num_samples", num_samples, 1, allow_none=True)
        if batch is not None:
            num_samples = batch
        num_classes = self._num_classes()
        if labels is not None:
            if num_classes is None:
                raise ValueError(
                    "This model is unconditional: `labels` must be None. Received: "
                    f"labels={validation._show(labels)}"
                )
            if batch is not None:
                arr = validation.check_labels("labels", labels, num_classes, self.class_names)
                if arr.size not in (1, batch):
                    raise ValueError(
                        f"`labels` must be one label or {batch} labels (one per image). "
                        f"Received: labels={arr.tolist()}"
                    )
            labels = self._label_array(labels, num_samples, num_classes)
            return labels, int(labels.size), True
        if num_samples is None:
            raise ValueError(
                "Pass `labels` (class ids or names) or `num_samples` (unconditional samples). "
                "Received: labels=None, num_samples=None"
            )
        return self._unconditional_labels(num_samples), num_samples, False

    def _check_image_range(self, image_range):
        """`image_range` (None: `default_image_range`) as a (lo, hi) float pair."""
        if image_range is None:
            return tuple(self.default_image_range)
        try:
            lo, hi = (float(v) for v in image_range)
        except (TypeError, ValueError):
            raise TypeError(
                f"`image_range` must be a pair such as (-1, 1) or (0, 1). Received: "
                f"image_range={image_range!r}"
            )
        if (lo, hi) not in self.image_ranges:
            raise ValueError(
                f"`image_range` must be one of {[tuple(r) for r in self.image_ranges]}. "
                f"Received: image_range={image_range!r}"
            )
        return lo, hi

    def _check_images(self, images, image_range, name="images"):
        """`images` (B, H, W, C) as float32 numpy, finite and inside `image_range`."""
        arr = validation.check_finite_array(name, images)
        if arr.ndim != 4:
            raise ValueError(
                f"`{name}` must be (B, H, W, C) images. Received: {name} with shape {arr.shape}"
            )
        lo, hi = image_range
        if arr.size and (arr.min() < lo - 1e-3 or arr.max() > hi + 1e-3):
            raise ValueError(
                f"`{name}` must be float images in [{lo:g}, {hi:g}] (`image_range`); received "
                f"values in [{arr.min():g}, {arr.max():g}]. Rescale them (uint8: x / 127.5 - 1 "
                f"for [-1, 1], x / 255 for [0, 1]) or pass the matching `image_range`."
            )
        return arr

    def _to_native(self, images, image_range):
        """Images in `image_range` -> the range of `encode_images`."""
        if tuple(image_range) == tuple(self.native_image_range):
            return images
        (lo, hi), (nlo, nhi) = image_range, self.native_image_range
        return (images - lo) * ((nhi - nlo) / (hi - lo)) + nlo

    def _decode_to_range(self, tokens, image_range):
        """`decode_tokens(tokens)` mapped into `image_range` (None: the default)."""
        image_range = self._check_image_range(image_range)
        x = self.decode_tokens(tokens)
        if tuple(image_range) == tuple(self.native_image_range):
            return x
        (lo, hi), (nlo, nhi) = image_range, self.native_image_range
        return (ops.cast(x, "float32") - nlo) * ((hi - lo) / (nhi - nlo)) + lo

    # --- Presets -----------------------------------------------------------

    def _task_weights_skip(self):
        # The backbone (its own file) and the optimizer: presets hold weights
        # only, so loading one never warns "Skipping variable loading for
        # optimizer" and never restores a stale step count / learning rate.
        skip = list(self.backbone._flatten_layers())
        if getattr(self, "optimizer", None) is not None:
            skip.append(self.optimizer)
        return skip

    def save_task_weights(self, filepath):
        """keras-hub's `save_task_weights`, without the optimizer state."""
        if not str(filepath).endswith(".weights.h5"):
            raise ValueError(
                f"The filename must end in `.weights.h5`. Received: filepath={filepath}"
            )
        if not self.has_task_weights():
            raise ValueError(f"Task {self} has no weights not in the `backbone`.")
        keras.saving.save_weights(self, filepath, objects_to_skip=self._task_weights_skip())

    def load_task_weights(self, filepath):
        """keras-hub's `load_task_weights`, ignoring any optimizer state in the
        file; a truncated file or one that does not fit this config raises a
        `ValueError` naming the file and the config."""
        if not str(filepath).endswith(".weights.h5"):
            raise ValueError(
                f"The filename must end in `.weights.h5`. Received: filepath={filepath}"
            )

        def load():
            keras.saving.load_weights(self, filepath, objects_to_skip=self._task_weights_skip())

        preset_utils.load_weights_checked(self, filepath, load)

    def compile_from_config(self, config):
        """Compiles from a saved compile config (`.keras` loading) through this
        class's own `compile`.

        Keras skips compiling a loaded model whose `compile` is overridden and
        warns "`compile()` was not called as part of model loading"; the
        task's `compile` accepts every argument Keras saves (loss and metrics
        stay unset), so it is called here instead.
        """
        config = keras.saving.deserialize_keras_object(config)
        config = {k: v for k, v in dict(config or {}).items() if v is not None}
        self.compile(**config)
        optimizer = getattr(self, "optimizer", None)
        if optimizer is None:
            return
        # Keras builds the optimizer here, so a file saved before any training
        # step (2 optimizer variables) warns "Skipping variable loading for
        # optimizer". Build it only when the saved state is that of a built one.
        load_own = optimizer.load_own_variables

        def load_own_variables(store):
            if not optimizer.built and self.built and len(store.keys()) > len(optimizer.variables):
                optimizer.build(self.trainable_variables)
            return load_own(store)

        optimizer.load_own_variables = load_own_variables

    @classproperty
    def presets(cls):
        """Built-in presets of this task (published checkpoints and bundled models)."""
        return {
            k: v["metadata"] for k, v in preset_utils.PRESETS.items() if v["class"] == cls.__name__
        }

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """Loads a preset: a built-in name, a keras-hub handle or a local directory.

        Built-in presets backed by published checkpoints (big_vision,
        MaskGIT) are downloaded with `keras.utils.get_file` and converted
        once into a keras-hub preset directory in the Keras cache.
        """
        path = preset_utils.resolve_preset(preset)
        model = super().from_preset(path, load_weights=load_weights, **kwargs)
        if isinstance(model, GenerationTask) and model.class_names is None:
            names = _model_card_class_names(path)
            if names is not None and len(names) == model._num_classes():
                model.class_names = names
        return model

    # --- Config ------------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        for name in self.nested_models:
            layer = getattr(self, name)
            config[name] = None if layer is None else keras.layers.serialize(layer)
        config.update({"seed": self.seed, "sampling_defaults": self.sampling_defaults})
        if self.class_names is not None:
            config["class_names"] = list(self.class_names)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in cls.nested_models:
            if isinstance(config.get(name), dict):
                config[name] = keras.layers.deserialize(config[name])
        return super().from_config(config)


def _model_card_class_names(path):
    """`class_names` of the `model_card.json` in preset folder `path` (None if absent)."""
    import json
    import os

    card_path = os.path.join(path, "model_card.json") if isinstance(path, str) else None
    if not card_path or not os.path.isfile(card_path):
        return None
    try:
        with open(card_path) as f:
            card = json.load(f)
    except (OSError, ValueError):
        return None
    names = card.get("class_names") or (card.get("data") or {}).get("class_names")
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        return names
    return None


def _jax_values(model):
    """jax: (variable, value) of the model's state, to undo a purge by a failed first step."""
    if keras.config.backend() != "jax":
        return []
    variables = list(model.variables) + list(model.metrics_variables)
    if model.optimizer is not None:
        variables += list(model.optimizer.variables)
    return [(v, v._value) for v in variables]
