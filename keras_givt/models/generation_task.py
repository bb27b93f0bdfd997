"""`GenerationTask`: what the image-generation tasks share.

The GIVT tasks (`GIVTTask` and its subclasses) and the discrete
`MaskGITImageGenerator` hold a backbone, optional frozen image models
(VAE/adaptor, VQGAN tokenizer), a `SeedGenerator` and a preset's sampling
defaults; they sample with a function compiled once per mode, and the two
MaskGIT tasks edit images by regenerating the tokens under a pixel mask.

Dimension letters: B batch, H/W/C image, h/w token grid, L = h·w tokens.
"""

import math

import keras
import numpy as np
from keras import ops
from keras_hub.models import Task
from keras_hub.src.utils.python_utils import classproperty

from keras_givt.models import image_preprocessor  # noqa: F401 (registers ImagePreprocessor)
from keras_givt.samplers.masked import pixel_mask_to_token_mask
from keras_givt.utils import preset_utils
from keras_givt.utils import validation


class GenerationTask(Task):
    """Base class of `GIVTTask` and `MaskGITImageGenerator`.

    Holds the backbone, the task's `SeedGenerator`, the preset's sampling
    defaults and the `generate` functions compiled so far. A subclass calls
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
        sampling_defaults: dict of `generate` defaults (e.g. from a preset).
    """

    # Attributes holding optional sub-models, serialized in the config.
    nested_models = ()
    # How `fit` batches look (the message when a batch is not a dict).
    batch_description = "Generation tasks take dicts of arrays"
    # `inpaint` inputs other than (B, H, W, C) images: their ranks and how
    # error messages name them.
    inpaint_token_ranks = ()
    inpaint_token_description = "tokens"

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
        self.sampling_defaults = dict(sampling_defaults or {})
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
        if not (_is_array_dict(x) or _is_array(x)):
            return None
        arrays = _flat_arrays(x, y, sample_weight)
        # Plain Python on the structure: no AutoGraph (which re-reads the source).
        unflatten = tf.autograph.experimental.do_not_convert(_unflatten)
        if shuffle is None:
            return _ordered_dataset(arrays, batch_size or 32).map(unflatten)
        return _array_dataset(arrays, batch_size or 32, shuffle).map(unflatten)

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
        if validation_split and validation_data is None and (_is_array_dict(x) or _is_array(x)):
            arrays = _flat_arrays(x, y, sample_weight)
            arrays, held_out = _split_last(arrays, validation_split)
            x, y, sample_weight = _unflatten_numpy(arrays)
            validation_data = _unflatten_numpy(held_out)
            validation_split = None
        train = self._batched_dataset(x, y, sample_weight, batch_size, shuffle)
        if train is not None:
            x, y, sample_weight, batch_size = self._checked(train, "training"), None, None, None
        if validation_data is not None:
            val_x, val_y, val_sw = _unpack_validation(validation_data)
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

    # torch on CPU: intra-op threads used by `generate` (None: torch's
    # default). On a quiet 2-core CPU two threads decode faster than one
    # (decoder steps 0.32 s against 0.45 s per AR benchmark generation); on a
    # CPU shared with other busy processes, 1 can avoid OpenMP hand-off stalls.
    torch_generate_threads = None

    def _compile_generate(self, key, step_fn):
        """`step_fn(inputs) -> outputs` compiled once per `key` (and input shapes).

        jax: `jax.jit` with the backbone weights and the seed state passed
        explicitly; tensorflow: `tf.function(jit_compile=True)`; torch: eager
        under `torch.no_grad()` (GIVT tasks decode with the plain-torch
        `TorchDecoder` there), and on CPU with `torch_generate_threads`
        intra-op threads.
        """
        if key in self.generate_functions:
            return self.generate_functions[key]
        backend = keras.config.backend()
        if backend == "torch":
            import torch

            threads = getattr(self, "torch_generate_threads", None)

            def fn(inputs):
                before = torch.get_num_threads()
                set_threads = threads is not None and not torch.cuda.is_available()
                if set_threads:
                    torch.set_num_threads(min(threads, before))
                try:
                    with torch.no_grad():
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

    def _default(self, name, value, fallback):
        """An explicit argument, else the preset's sampling default, else `fallback`."""
        if value is not None:
            return value
        return self.sampling_defaults.get(name, fallback)

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

    def _check_num_steps(self, num_steps):
        return validation.check_int("num_steps", num_steps, 1)

    def _generation_outputs(
        self, tokens, counts, return_tokens, return_num_masked, image_range=None
    ):
        """Images in `image_range` (or `tokens`), with the per-step masked `counts` when asked."""
        out = tokens if return_tokens else self._decode_to_range(tokens, image_range)
        return (out, counts) if return_num_masked else out

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

    def _resolve_keywords(self, method, kwargs, **values):
        """Maps keras-hub aliases in `kwargs` onto `values`; unknown keywords raise.

        `guidance_scale` (keras-hub's `uncond + s·(cond − uncond)`) is
        `cfg_weight + 1`: it becomes `cfg_weight = guidance_scale − 1`.
        Returns `values` updated.
        """
        if not kwargs:
            return values
        import inspect

        valid = [
            n
            for n, p in inspect.signature(getattr(self, method)).parameters.items()
            if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        aliases = {a: t for a, t in self.keyword_aliases.items() if t in valid}
        validation.check_keywords(f"{type(self).__name__}.{method}", kwargs, valid, aliases)
        for alias, value in kwargs.items():
            if alias not in aliases:
                continue
            target = aliases[alias]
            if values.get(target) is not None:
                raise TypeError(
                    f"Pass either `{target}` or its alias `{alias}`, not both. Received: "
                    f"{target}={values[target]!r}, {alias}={value!r}"
                )
            if alias == "guidance_scale":
                value = validation.check_float("guidance_scale", value) - 1.0
            values[target] = value
        return values

    def _check_temperature(self, temperature):
        """`(temperature float >= 0, greedy)`: temperature 0 is greedy decoding."""
        temperature = validation.check_float("temperature", temperature, 0.0)
        return temperature, temperature == 0.0

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

    # --- Editing -----------------------------------------------------------

    def _square_token_grid(self, hint=""):
        """(h, w) of a square grid of `backbone.seq_len` tokens (`hint` ends the error)."""
        seq_len = self.backbone.seq_len
        side = int(round(math.sqrt(seq_len)))
        if side * side != seq_len:
            raise ValueError(f"seq_len={seq_len} is not a square{hint}.")
        return side, side

    def _inpaint_tokens(self, images, mask, token_grid, image_range=None, check_batch=None):
        """`(tokens, token_mask (B, L) bool numpy, pixels, pixel_mask)` of an `inpaint` call.

        Images (B, H, W, C) in `image_range` are checked, encoded by
        `_encode_for_inpaint` and the pixel mask (B, H, W), (B, H, W, 1) or
        (H, W) (True / 1 = regenerate) mapped onto `token_grid()` (a token
        is regenerated when any of its pixels is); `pixels` (float32 numpy)
        and `pixel_mask` (B, H, W) bool are returned for pasting back. Token
        inputs (ranks `inpaint_token_ranks`) and their mask go through
        `_inpaint_token_inputs`; `pixels` and `pixel_mask` are then None.
        `check_batch(B)` (the call's remaining checks, e.g. labels) runs once
        the inputs are checked, before anything is encoded.
        """
        image_range = self._check_image_range(image_range)
        try:
            rank = len(images.shape)
        except (AttributeError, TypeError):
            rank = np.ndim(images)
        if rank == 4:
            pixels = self._check_images(images, image_range)
            pixel_mask = validation.check_binary_mask("mask", mask)
            b, height, width = pixels.shape[:3]
            if pixel_mask.shape == (height, width):
                pixel_mask = np.broadcast_to(pixel_mask, (b, height, width))
            elif pixel_mask.shape == (b, height, width, 1):
                pixel_mask = pixel_mask[..., 0]
            if pixel_mask.shape != (b, height, width):
                raise ValueError(
                    f"`mask` must be a ({b}, {height}, {width}) pixel mask (or ({height}, "
                    f"{width}), or ({b}, {height}, {width}, 1)) for images of shape "
                    f"{pixels.shape}, True / 1 = regenerate. Received: mask with shape "
                    f"{pixel_mask.shape}"
                )
            h, w = token_grid()
            if height % h or width % w:
                raise ValueError(
                    f"`images` of size {(height, width)} must be a multiple of the token grid "
                    f"{(h, w)}. Received: images with shape {pixels.shape}"
                )
            token_mask = np.asarray(
                ops.convert_to_numpy(pixel_mask_to_token_mask(pixel_mask, (h, w)))
            )
            if check_batch is not None:
                check_batch(b)
            if token_mask.any():
                native = self._to_native(pixels, image_range)
                tokens = self._encode_for_inpaint(ops.convert_to_tensor(native, "float32"))
            else:
                tokens = None  # Everything is known: nothing to encode.
            return tokens, token_mask, pixels, pixel_mask
        if rank in self.inpaint_token_ranks:
            tokens, token_mask = self._inpaint_token_inputs(images, mask)
        else:
            raise ValueError(
                f"`images` must be (B, H, W, C) images or {self.inpaint_token_description}. "
                f"Received: images with shape {tuple(np.shape(images))}"
            )
        token_mask = np.asarray(ops.convert_to_numpy(token_mask)).astype(bool)
        batch = int(tokens.shape[0])
        seq_len = self.backbone.seq_len
        if tuple(token_mask.shape) != (batch, seq_len):
            raise ValueError(
                f"The token mask must be ({batch}, {seq_len}); received {tuple(token_mask.shape)}."
                f" Received: mask with shape {tuple(token_mask.shape)}"
            )
        if check_batch is not None:
            check_batch(batch)
        return tokens, token_mask, None, None

    def _paste_back(self, decoded, pixels, pixel_mask):
        """The input `pixels` where `pixel_mask` is False, `decoded` elsewhere."""
        if tuple(decoded.shape) != tuple(pixels.shape):
            raise ValueError(
                f"The decoded images {tuple(decoded.shape)} do not have the input's shape "
                f"{pixels.shape}: pass `paste_back=False` to get the raw decode."
            )
        keep = ops.convert_to_tensor(~pixel_mask[..., None])
        return ops.where(keep, ops.convert_to_tensor(pixels), ops.cast(decoded, "float32"))

    def _encode_for_inpaint(self, images):
        """Tokens of the float32 images (B, H, W, C) that `inpaint` edits."""
        raise NotImplementedError

    def _inpaint_token_inputs(self, x, mask):
        """`(tokens, token_mask)` of token inputs to `inpaint`."""
        raise NotImplementedError

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


def _is_array_dict(x):
    """A dict of in-memory arrays (numpy or backend tensors), not a dataset."""
    if not isinstance(x, dict) or not x:
        return False
    return all(hasattr(v, "shape") and hasattr(v, "__array__") for v in x.values())


def _split_last(arrays, fraction):
    """Keras' `validation_split`: the last `fraction` of the examples."""
    if not 0 < fraction < 1:
        raise ValueError(f"`validation_split` must be in (0, 1); received {fraction!r}.")
    n = len(next(iter(arrays.values())))
    cut = int(n * (1.0 - fraction))
    return {k: v[:cut] for k, v in arrays.items()}, {k: v[cut:] for k, v in arrays.items()}


def _array_dataset(arrays, batch_size, shuffle):
    """Batches of `arrays` in a new random order each epoch (or in order)."""
    import tensorflow as tf

    sizes = {k: len(v) for k, v in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"All arrays must have the same number of examples; received {sizes}.")
    n = next(iter(sizes.values()))
    tensors = {k: tf.constant(v) for k, v in arrays.items()}
    index = tf.data.Dataset.range(n)
    if shuffle:
        index = index.shuffle(n, reshuffle_each_iteration=True)
    # Gathering whole batches keeps one copy of the arrays (no shuffle buffer
    # of examples).
    index = index.batch(batch_size)
    return index.map(
        lambda i: {k: tf.gather(t, i) for k, t in tensors.items()},
        num_parallel_calls=tf.data.AUTOTUNE,
    ).prefetch(tf.data.AUTOTUNE)


# --- fit/evaluate inputs ------------------------------------------------------

_X, _Y, _SW = "__x__", "__y__", "__sample_weight__"


def _is_array(x):
    """An in-memory array (numpy or backend tensor), not a dict or dataset."""
    return not isinstance(x, (dict, str, bytes)) and hasattr(x, "shape") and hasattr(x, "__array__")


def _flat_arrays(x, y, sample_weight):
    """`x` (array or dict of arrays), `y`, `sample_weight` as one flat dict of numpy arrays.

    A dict `x` alone keeps its keys; otherwise entries are keyed `__x__`,
    `__x__/<key>`, `__y__` (`__y__/<key>`) and `__sample_weight__`.
    """
    if _is_array_dict(x) and y is None and sample_weight is None:
        return {k: np.asarray(v) for k, v in x.items()}
    flat = {}
    for prefix, value in ((_X, x), (_Y, y), (_SW, sample_weight)):
        if value is None:
            continue
        if isinstance(value, dict):
            flat.update({f"{prefix}/{k}": np.asarray(v) for k, v in value.items()})
        else:
            flat[prefix] = np.asarray(keras.ops.convert_to_numpy(value))
    return flat


def _unflatten(flat):
    """Inverse of `_flat_arrays` on one batch: `x` or `(x, y[, sample_weight])`."""
    if not any(k == p or k.startswith(p + "/") for k in flat for p in (_X, _Y, _SW)):
        return flat
    parts = {}
    for prefix in (_X, _Y, _SW):
        if prefix in flat:
            parts[prefix] = flat[prefix]
        else:
            sub = {k[len(prefix) + 1 :]: v for k, v in flat.items() if k.startswith(prefix + "/")}
            parts[prefix] = sub or None
    if parts[_Y] is None and parts[_SW] is None:
        return parts[_X]
    if parts[_SW] is None:
        return parts[_X], parts[_Y]
    return parts[_X], parts[_Y], parts[_SW]


def _unflatten_numpy(flat):
    """`(x, y, sample_weight)` of a flat dict of arrays (see `_flat_arrays`)."""
    out = _unflatten(flat)
    if not isinstance(out, tuple):
        return out, None, None
    return tuple(out) + (None,) * (3 - len(out))


def _unpack_validation(validation_data):
    if isinstance(validation_data, tuple):
        if len(validation_data) not in (1, 2, 3):
            raise ValueError(
                "`validation_data` must be x, (x, y) or (x, y, sample_weight). Received: a tuple "
                f"of {len(validation_data)} entries"
            )
        return tuple(validation_data) + (None,) * (3 - len(validation_data))
    return validation_data, None, None


def _ordered_dataset(arrays, batch_size):
    """Batches of `arrays` in order (validation / evaluation)."""
    import tensorflow as tf

    sizes = {k: len(v) for k, v in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"All arrays must have the same number of examples; received {sizes}.")
    return tf.data.Dataset.from_tensor_slices(arrays).batch(batch_size)


def _jax_values(model):
    """jax: (variable, value) of the model's state, to undo a purge by a failed first step."""
    if keras.config.backend() != "jax":
        return []
    variables = list(model.variables) + list(model.metrics_variables)
    if model.optimizer is not None:
        variables += list(model.optimizer.variables)
    return [(v, v._value) for v in variables]
