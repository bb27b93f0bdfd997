"""What the tasks' `fit`/`evaluate` check, and how they stop on a non-finite loss.

- `checked_dataset`: a batched `tf.data` pipeline that runs the task's
  preprocessor and the task's `check_batch` on the host (numpy) for every
  batch, numbered. A failing batch raises a `ValueError` naming the batch,
  the argument and the value (`translate_data_errors` turns the TensorFlow
  error that carries it out of the pipeline back into that `ValueError`).
  `fit` pulls the first batch through it before Keras traces anything, so a
  wrong batch never reaches a compiled step (on jax a failed first step would
  leave the model's variables empty).
- `NonFiniteLossGuard`: a callback that stops `fit` at the first step whose
  loss is NaN/inf with a `NonFiniteLossError` naming the epoch and step, after
  restoring the weights and optimizer state saved before that step (so the
  bad update is undone, not applied).
- `freeze`: a nested image model (VAE, tokenizer, adaptor) made non-trainable
  on every backend.
- `check_array`: the shape / dtype / range checks `check_batch` is built of;
  `input_dict`, `check_input_keys`, `check_input_images` and
  `check_input_labels`: the checks of a dict batch (`{"latents" | "tokens" |
  "images", "labels"}`) that the GIVT and MaskGIT tasks share.
"""

import re

import keras
import numpy as np

_MARK_START = "<<keras_givt>>"
_MARK_END = "<</keras_givt>>"


# --- Freezing ------------------------------------------------------------------


def freeze(layer):
    """Makes `layer` and all its variables non-trainable (every backend).

    `layer.trainable = False` alone can leave the variables' own `trainable`
    flags set when the layer was deserialized with `trainable=False` and
    built afterwards (seen on tensorflow: the task then listed the VAE's
    variables as trainable and the optimizer allocated slots for them).
    """
    if layer is None:
        return
    layer.trainable = False
    for sub in [layer] + list(layer._flatten_layers(include_self=False)):
        sub.trainable = False
        for v in getattr(sub, "_trainable_variables", []):
            v.trainable = False
    for v in layer.weights:
        v.trainable = False


# --- Batch checks ----------------------------------------------------------------


def describe(value):
    """Short description of a batch structure (types, shapes, dtypes)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {describe(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(describe(v) for v in value) + ")"
    if value is None:
        return "None"
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{np.dtype(getattr(value.dtype, 'as_numpy_dtype', value.dtype)).name}{tuple(value.shape)}"
    return type(value).__name__


def check_array(
    where,
    name,
    value,
    shape=None,
    kind="float",
    low=None,
    high=None,
    hint="",
    tolerance=1e-3,
):
    """Checks one numpy entry of a batch; raises a `ValueError` naming it.

    Args:
        where: str. Which batch (e.g. "Batch 3 of the training data").
        name: str. How the entry is named to the user (e.g. "x['labels']").
        value: numpy array.
        shape: tuple of expected sizes (None: any) or None (no check).
        kind: "float" (finite floats), "int" (integer dtype), "bool"
            (bool or 0/1 integers) or "image" (floats; uint8 refused).
        low, high: float range [low, high] (with `tolerance`) for "float" /
            "image", or int range [low, high) for "int".
        hint: str appended to a range/dtype error.
    """
    value = np.asarray(value)
    got_shape = tuple(value.shape)
    if shape is not None and (
        len(got_shape) != len(shape)
        or any(s is not None and s != g for s, g in zip(shape, got_shape))
    ):
        want = (
            "("
            + ", ".join(
                "B" if i == 0 and s is None else ("?" if s is None else str(s))
                for i, s in enumerate(shape)
            )
            + ")"
        )
        raise ValueError(
            f"{where}: `{name}` must have shape {want}. Received: {name}.shape={got_shape}"
        )
    dtype = value.dtype
    is_int = np.issubdtype(dtype, np.integer)
    is_float = np.issubdtype(dtype, np.floating)
    if kind == "int":
        if not is_int:
            raise ValueError(
                f"{where}: `{name}` must be integers. Received: {name} of dtype {dtype.name}"
            )
    elif kind == "bool":
        if dtype != bool and not (is_int and np.isin(value, (0, 1)).all()):
            raise ValueError(
                f"{where}: `{name}` must be bool (or 0/1). Received: {name} of dtype {dtype.name}"
            )
        return
    elif kind == "image":
        if not is_float:
            raise ValueError(
                f"{where}: `{name}` must be float images in [{low:g}, {high:g}]. Received: {name} "
                f"of dtype {dtype.name}{hint}"
            )
    elif not is_float:
        raise ValueError(
            f"{where}: `{name}` must be floats. Received: {name} of dtype {dtype.name}"
        )
    if value.size == 0:
        return
    if not is_int:
        finite = np.isfinite(value)
        if not finite.all():
            raise ValueError(
                f"{where}: `{name}` must be finite; {int((~finite).sum())} of {value.size} "
                f"values are NaN or inf. Received: {name} with min={np.nanmin(value)!r}, "
                f"max={np.nanmax(value)!r}"
            )
    if low is None and high is None:
        return
    vmin, vmax = value.min(), value.max()
    if is_int:
        bad = (value < low) | (value >= high)
        if bad.any():
            raise ValueError(
                f"{where}: `{name}` must be in [{low}, {high}); {int(bad.sum())} of {value.size} "
                f"are not. Received: {name} values {np.unique(value[bad])[:8].tolist()}{hint}"
            )
        return
    if vmin < low - tolerance or vmax > high + tolerance:
        raise ValueError(
            f"{where}: `{name}` must be in [{low:g}, {high:g}]. Received: {name} with "
            f"min={float(vmin):g}, max={float(vmax):g}{hint}"
        )


def image_range_hint(value, low, high, preprocessor_name="keras_givt.ImagePreprocessor"):
    """The hint of an image range error: 0-255 pixels need the preprocessor."""
    value = np.asarray(value)
    if value.size and np.issubdtype(value.dtype, np.number) and value.max() > 1.5:
        convert = "x / 127.5 - 1" if low < 0 else "x / 255"
        return (
            f". These look like 0-255 pixels: attach a preprocessor (`model.preprocessor = "
            f"{preprocessor_name}(...)`, which the bundled presets carry) or pass images "
            f"scaled to [{low:g}, {high:g}] ({convert})"
        )
    return ""


def label_array(where, name, value, num_classes, batch_size):
    """Checks labels (B,) or (B, 1) ints in [0, num_classes)."""
    value = np.asarray(value)
    if value.ndim == 2 and value.shape[1] == 1:
        value = value[:, 0]
    check_array(where, name, value, shape=(batch_size,), kind="int", low=0, high=num_classes)


def input_dict(where, name, batch, takes, preprocessor_args="..."):
    """The inputs `x` of a batch of model `name` that takes dicts `{takes}` and no `y`.

    Anything else (e.g. (images, labels) pairs) raises a `ValueError` that
    points at `keras_givt.ImagePreprocessor(preprocessor_args)`.
    """
    x, y, _ = keras.utils.unpack_x_y_sample_weight(batch)
    if not isinstance(x, dict) or y is not None:
        raise ValueError(
            f"{where}: {name} takes dicts {{{takes}}}; received {describe(batch)}. For "
            "(images, labels) pairs or raw uint8 images attach a preprocessor "
            f"(`model.preprocessor = keras_givt.ImagePreprocessor({preprocessor_args})`; the "
            "bundled presets carry one)."
        )
    return x


def check_input_keys(where, name, x, allowed, data_keys):
    """Checks that the dict batch `x` of model `name` has only `allowed` keys and
    exactly one of the two `data_keys` (e.g. `("latents", "images")`)."""
    unknown = sorted(set(x) - allowed)
    if unknown:
        raise ValueError(
            f"{where}: unexpected key(s) {unknown} in the batch; {name} takes "
            f"{sorted(allowed)}. Received keys: {sorted(x)}"
        )
    first, second = data_keys
    if (first in x) == (second in x):
        raise ValueError(
            f"{where}: pass exactly one of x['{first}'] and x['{second}']. Received keys: "
            f"{sorted(x)}"
        )


def check_input_images(where, images, image_size, low, high):
    """Checks `x['images']` (B, H, W, C) floats in [low, high] at `image_size` (H, W, C)
    (None: any size); returns them as numpy."""
    images = np.asarray(images)
    shape = (None,) + tuple(image_size) if image_size else (None, None, None, None)
    check_array(
        where,
        "x['images']",
        images,
        shape=shape,
        kind="image",
        low=low,
        high=high,
        hint=image_range_hint(images, low, high),
    )
    return images


def check_input_labels(where, name, x, num_classes, batch_size, setting):
    """Checks `x['labels']`: B ints in [0, num_classes) for a class-conditional model,
    absent for an unconditional one (`num_classes` None or 0); errors name the
    model's `setting` (e.g. "num_labels=10")."""
    if "labels" in x:
        if not num_classes:
            raise ValueError(
                f"{where}: this {name} is unconditional ({setting}) but the batch has "
                "x['labels']. Drop them."
            )
        label_array(where, "x['labels']", x["labels"], num_classes, batch_size)
    elif num_classes:
        raise ValueError(
            f"{where}: this {name} is class-conditional ({setting}): the batch needs "
            f"x['labels']. Received keys: {sorted(x)}"
        )


def mark(message):
    """Wraps a check's message so that it survives the trip through tf.data."""
    return f"{_MARK_START}{message}{_MARK_END}"


def unmark(text):
    """The marked message inside an error's text, or None."""
    match = re.search(re.escape(_MARK_START) + "(.*?)" + re.escape(_MARK_END), text, re.S)
    return None if match is None else match.group(1)


class translate_data_errors:
    """Re-raises a check failure from inside a tf.data pipeline as its `ValueError`."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or isinstance(exc, ValueError) and unmark(str(exc)) is None:
            return False
        message = unmark(str(exc))
        if message is None:
            return False
        raise ValueError(message) from None


def checked_dataset(dataset, preprocess_fn, check_fn, role):
    """Maps `preprocess_fn` and the host-side `check_fn` over a batched dataset.

    Args:
        dataset: a batched `tf.data.Dataset` of `x`, `(x, y)` or
            `(x, y, sample_weight)`.
        preprocess_fn: `(x, y, sample_weight, where) -> data` (tf ops;
            `where` is a string tensor naming the batch).
        check_fn: `(data as numpy, where: str) -> None`, raising `ValueError`s.
        role: "training", "validation" or "evaluation" (in the messages).
    """
    import tensorflow as tf

    structure = []

    def check(where, *values):
        data = tf.nest.pack_sequence_as(structure[0], [v.numpy() for v in values])
        try:
            check_fn(data, where.numpy().decode())
        except ValueError as e:
            raise ValueError(mark(str(e))) from None
        return np.bool_(True)

    def fn(index, *element):
        element = element[0] if len(element) == 1 else tuple(element)
        if isinstance(element, tuple):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(element)
        else:
            x, y, sample_weight = element, None, None
        where = tf.strings.format("Batch {} of the " + role + " data", index + 1)
        data = preprocess_fn(x, y, sample_weight, where)
        flat = tf.nest.flatten(data)
        structure[:] = [data]
        ok = tf.py_function(check, [where] + flat, tf.bool)
        with tf.control_dependencies([ok]):
            flat = [tf.identity(t) for t in flat]
        return tf.nest.pack_sequence_as(data, flat)

    # `fn` branches on the Python structure only: no AutoGraph conversion.
    fn = tf.autograph.experimental.do_not_convert(fn)
    return dataset.enumerate().map(fn).prefetch(tf.data.AUTOTUNE)


# --- Non-finite loss -----------------------------------------------------------


class NonFiniteLossError(FloatingPointError):
    """`fit` stopped because a step's loss was NaN or infinite."""


class NonFiniteLossGuard(keras.callbacks.Callback):
    """Stops `fit` at the first non-finite loss, undoing the update that caused it.

    After every step with a finite loss it checks, in one on-device
    reduction, that the updated weights are all finite, and if so keeps a
    copy of the weights, non-trainable state (seed, ...) and optimizer state
    (on jax, of the state the trainer carries between steps) in place of the
    previous copy. A step whose update made the weights non-finite (finite
    loss, non-finite gradients) is not copied; the next step then reports a
    NaN/inf loss. At a NaN/inf loss the copy is written back (the last state
    with finite weights, normally the state right before the bad step) and a
    `NonFiniteLossError` names the epoch and step.

    One copy is held at a time: with Adam that is 3x the parameter memory
    (weights and two moment slots), on the device that trains.
    """

    def __init__(self):
        super().__init__()
        self._saved = None  # (step label, state): the newest state with finite weights.
        self._epoch = 0

    # The state the trainer updates, as lists of arrays.
    def _variables(self):
        model = self.model
        optimizer_vars = list(model.optimizer.variables) if model.optimizer is not None else []
        return list(model.trainable_variables), list(model.non_trainable_variables), optimizer_vars

    def _jax_running(self):
        model = self.model
        return (
            keras.config.backend() == "jax"
            and getattr(model, "_jax_state", None)
            and not getattr(model, "_jax_state_synced", True)
        )

    def _snapshot(self):
        from keras import ops

        if self._jax_running():
            state = self.model._jax_state
            return {
                k: [ops.copy(v) for v in state[k]] if state.get(k) is not None else None
                for k in ("trainable_variables", "non_trainable_variables", "optimizer_variables")
            }
        trainable, non_trainable, optimizer_vars = self._variables()
        return {
            "trainable_variables": [ops.copy(v.value) for v in trainable],
            "non_trainable_variables": [ops.copy(v.value) for v in non_trainable],
            "optimizer_variables": [ops.copy(v.value) for v in optimizer_vars],
        }

    def _restore(self, saved):
        model = self.model
        if self._jax_running():
            state = dict(model._jax_state)
            for k, values in saved.items():
                if values is not None:
                    state[k] = values
            model._jax_state = state
            model.jax_state_sync()
            return
        for variables, values in zip(self._variables(), saved.values()):
            for v, value in zip(variables, values or []):
                v.assign(value)

    def _weights_finite(self):
        from keras import ops

        if self._jax_running():
            weights = self.model._jax_state["trainable_variables"]
        else:
            weights = [v.value for v in self.model.trainable_variables]
        if not weights:
            return True
        # One scalar to the host: the count of weight tensors with a NaN/inf.
        bad = ops.sum(ops.stack([ops.any(ops.logical_not(ops.isfinite(w))) for w in weights]))
        return int(ops.convert_to_numpy(bad)) == 0

    def _keep(self, label):
        if self._weights_finite():
            self._saved = None  # Free the old copy before taking the new one.
            self._saved = (label, self._snapshot())

    def on_train_begin(self, logs=None):
        self._saved = None
        self._keep("at the start of training")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = None if logs is None else logs.get("loss")
        if loss is None:
            return
        loss = float(keras.ops.convert_to_numpy(loss))
        step = f"epoch {self._epoch + 1}, step {batch + 1}"
        if np.isfinite(loss):
            self._keep(f"after {step}")
            return
        self.model.stop_training = True
        if self._saved is not None:
            label, saved = self._saved
            self._restore(saved)
            restored = f"The model and optimizer state were restored to their values {label} (the update of the bad step was not kept)."
        else:
            restored = "No finite state was saved to restore: the weights are not finite."
        raise NonFiniteLossError(
            f"Training stopped at {step}: the loss is {loss} (NaN or inf). {restored} "
            "Look for extreme values in this batch's data or latents, or lower the learning rate."
        )


def restore_purged_jax_variables(saved):
    """jax: puts back variable values a failed first step left empty (`None`).

    `saved` is a list of `(variable, value)` taken before `fit`; a first step
    that fails after Keras purged the variables (its state lives in the
    compiled step) never hands them back. Nothing was donated yet then, so
    the saved values are intact.
    """
    for v, value in saved:
        if getattr(v, "_value", 0) is None and value is not None:
            v._value = value
