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
from keras_givt.samplers.maskgit_sampler import pixel_mask_to_token_mask
from keras_givt.utils import preset_utils


class GenerationTask(Task):
    """Base class of `GIVTTask` and `MaskGITImageGenerator`.

    Holds the backbone, the task's `SeedGenerator`, the preset's sampling
    defaults and the `generate` functions compiled so far. A subclass calls
    `super().__init__(backbone, ...)`, then sets its sub-models (the
    optional ones named in `nested_models` are serialized in the config),
    marks itself built and compiles.

    Args:
        backbone: the task's `keras_hub.models.Backbone`.
        preprocessor: None (the tasks take dicts of arrays).
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

        One label is repeated `num_samples` times; otherwise `num_samples`
        (when given) must be the number of labels.
        """
        labels = np.asarray(keras.ops.convert_to_numpy(labels)).astype("int32").reshape(-1)
        if num_samples is not None:
            if labels.size == 1:
                labels = labels.repeat(int(num_samples))
            elif labels.size != num_samples:
                raise ValueError(
                    f"`num_samples` ({num_samples}) must match the number of labels "
                    f"({labels.size}) or labels must be a single class."
                )
        bad = (labels < 0) | (labels >= num_classes)
        if bad.any():
            raise ValueError(
                f"`labels` must be in [0, {num_classes}); received {labels[bad].tolist()}."
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
        if shuffle is None:
            return _ordered_dataset(arrays, batch_size or 32).map(_unflatten)
        return _array_dataset(arrays, batch_size or 32, shuffle).map(_unflatten)

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
                    x, y, batch_size=batch_size, epochs=epochs,
                    shuffle=False if train is not None else shuffle,
                    validation_split=validation_split, validation_data=validation_data,
                    sample_weight=sample_weight, callbacks=callbacks, **kwargs,
                )  # fmt: skip
            except BaseException:
                training_checks.restore_purged_jax_variables(saved)
                raise
            finally:
                self._samples_preprocessed = False

    def evaluate(self, x=None, y=None, batch_size=None, sample_weight=None, **kwargs):
        """`keras.Model.evaluate` with the task's preprocessing and batch checks (as `fit`)."""
        from keras_givt.models import training_checks

        if kwargs.get("_use_cached_eval_dataset", False):
            return super().evaluate(x, y, batch_size=batch_size, sample_weight=sample_weight, **kwargs)
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

    def _generate_compiled(self, name, inputs, seed, *mode):
        """Seeds, then runs `generate_step(inputs, *mode)` compiled once per mode."""
        self._set_seed(seed)
        fn = self._compile_generate((name, *mode), lambda x: self.generate_step(x, *mode))
        return fn(inputs)

    def _set_seed(self, seed):
        if seed is None:
            return
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"`seed` must be an int or None; received {seed!r}.")
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
        if cfg_weight is None or float(cfg_weight) == 0.0:
            return False
        self._check_cfg_support(cfg_weight)
        return True

    def _check_cfg_support(self, cfg_weight):
        """Raises a `ValueError` when the model cannot use guidance."""

    def _check_num_steps(self, num_steps):
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
            raise ValueError(f"`num_steps` must be an int >= 1; received num_steps={num_steps!r}.")

    def _generation_outputs(self, tokens, counts, return_tokens, return_num_masked):
        """Images (or `tokens`), with the per-step masked `counts` when asked."""
        out = tokens if return_tokens else self.decode_tokens(tokens)
        return (out, counts) if return_num_masked else out

    # --- Editing -----------------------------------------------------------

    def _square_token_grid(self, hint=""):
        """(h, w) of a square grid of `backbone.seq_len` tokens (`hint` ends the error)."""
        seq_len = self.backbone.seq_len
        side = int(round(math.sqrt(seq_len)))
        if side * side != seq_len:
            raise ValueError(f"seq_len={seq_len} is not a square{hint}.")
        return side, side

    def _inpaint_tokens(self, images, mask, token_grid):
        """`(tokens, token_mask (B, L) bool)` of an `inpaint` call.

        Images (B, H, W, C) are encoded by `_encode_for_inpaint` and the
        pixel mask (B, H, W) mapped onto `token_grid()` (a token is
        regenerated when any of its pixels is); token inputs (ranks
        `inpaint_token_ranks`) and their mask go through
        `_inpaint_token_inputs`.
        """
        x = ops.convert_to_tensor(images)
        if len(x.shape) == 4:
            tokens = self._encode_for_inpaint(ops.cast(x, "float32"))
            token_mask = pixel_mask_to_token_mask(mask, token_grid())
        elif len(x.shape) in self.inpaint_token_ranks:
            tokens, token_mask = self._inpaint_token_inputs(x, mask)
        else:
            raise ValueError(
                f"`images` must be (B, H, W, C) images or {self.inpaint_token_description}; "
                f"received shape {tuple(x.shape)}."
            )
        batch = int(tokens.shape[0])
        seq_len = self.backbone.seq_len
        if tuple(token_mask.shape) != (batch, seq_len):
            raise ValueError(
                f"The token mask must be ({batch}, {seq_len}); received {tuple(token_mask.shape)}."
            )
        return tokens, token_mask

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
        return super().from_preset(
            preset_utils.resolve_preset(preset), load_weights=load_weights, **kwargs
        )

    # --- Config ------------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        for name in self.nested_models:
            layer = getattr(self, name)
            config[name] = None if layer is None else keras.layers.serialize(layer)
        config.update({"seed": self.seed, "sampling_defaults": self.sampling_defaults})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in cls.nested_models:
            if isinstance(config.get(name), dict):
                config[name] = keras.layers.deserialize(config[name])
        return super().from_config(config)


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
