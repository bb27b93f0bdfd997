"""Argument checks that raise clear `ValueError`/`TypeError`s."""

import math
import numbers


def check_positive_int(name, value, allow_none=False):
    """Returns `value` (Python or numpy int > 0) as an int (None if allowed)."""
    if value is None and allow_none:
        return None
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"`{name}` must be an int; received {name}={value!r} ({type(value).__name__})."
        )
    if value <= 0:
        raise ValueError(f"`{name}` must be a positive int; received {name}={value!r}.")
    return int(value)


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}; received {name}={value!r}.")


def check_probability(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"`{name}` must be a float; received {name}={value!r} ({type(value).__name__})."
        )
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"`{name}` must be in [0, 1]; received {name}={value!r}.")


# --- numeric constructor arguments -----------------------------------------
# Each helper validates one argument, names it as the user passed it, shows the
# received value and returns it normalised (Python int / float), so numpy
# scalars (np.int64, np.float32, 0-d arrays) are accepted like Python numbers.


def _scalar(value):
    # 0-d numpy arrays -> numpy scalars; other values unchanged.
    if (
        getattr(value, "ndim", None) == 0
        and hasattr(value, "item")
        and not isinstance(value, numbers.Number)
    ):
        try:
            return value.item()
        except Exception:
            return value
    return value


def _range_text(min_value, max_value, min_inclusive, max_inclusive):
    parts = []
    if min_value is not None:
        parts.append(f"{'>=' if min_inclusive else '>'} {min_value}")
    if max_value is not None:
        parts.append(f"{'<=' if max_inclusive else '<'} {max_value}")
    return " and ".join(parts)


def check_int(name, value, min_value=None, max_value=None, allow_none=False):
    """Returns `value` as an int; TypeError if not an integer, ValueError if out of range.

    Args:
        name: str. The argument's name as the user passed it.
        value: the argument; Python or numpy integers (or a 0-d integer array).
        min_value: int or None. Inclusive lower bound.
        max_value: int or None. Inclusive upper bound.
        allow_none: bool. Whether `None` is accepted (and returned).
    """
    if value is None and allow_none:
        return None
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"`{name}` must be an int. Received: {name}={value!r} (of type {type(value).__name__})"
        )
    value = int(value)
    if (min_value is not None and value < min_value) or (
        max_value is not None and value > max_value
    ):
        raise ValueError(
            f"`{name}` must be an int {_range_text(min_value, max_value, True, True)}. "
            f"Received: {name}={value}"
        )
    return value


def check_float(
    name,
    value,
    min_value=None,
    max_value=None,
    min_inclusive=True,
    max_inclusive=True,
    allow_none=False,
):
    """Returns `value` as a finite float; TypeError if not a real number, ValueError if
    NaN/inf or out of range.

    Args:
        name: str. The argument's name as the user passed it.
        value: the argument; Python or numpy reals (ints accepted), 0-d arrays.
        min_value, max_value: float or None. Bounds.
        min_inclusive, max_inclusive: bool. Whether the bounds are allowed.
        allow_none: bool. Whether `None` is accepted (and returned).
    """
    if value is None and allow_none:
        return None
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"`{name}` must be a number. Received: {name}={value!r} "
            f"(of type {type(value).__name__})"
        )
    value = float(value)
    bad = value != value or value in (float("inf"), float("-inf"))
    if not bad and min_value is not None:
        bad = value < min_value if min_inclusive else value <= min_value
    if not bad and max_value is not None:
        bad = value > max_value if max_inclusive else value >= max_value
    if bad:
        bounds = _range_text(min_value, max_value, min_inclusive, max_inclusive)
        raise ValueError(
            f"`{name}` must be a finite number{' ' + bounds if bounds else ''}. "
            f"Received: {name}={value!r}"
        )
    return value


def check_rate(name, value):
    """A dropout-style rate: a finite float in [0, 1). Returns it as a float."""
    return check_float(name, value, 0.0, 1.0, max_inclusive=False)


def check_int_tuple(name, value, length, min_value=1):
    """Returns `value` (a sequence of `length` ints >= `min_value`) as a tuple of ints.

    Args:
        name: str. The argument's name as the user passed it.
        value: list/tuple/array of Python or numpy ints.
        length: int. Required number of entries.
        min_value: int. Inclusive lower bound for every entry.
    """
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise TypeError(f"`{name}` must be a sequence of {length} ints. Received: {name}={value!r}")
    items = list(value)
    if len(items) != length:
        raise ValueError(f"`{name}` must have {length} entries. Received: {name}={tuple(items)!r}")
    out = []
    for item in items:
        item = _scalar(item)
        if isinstance(item, bool) or not isinstance(item, numbers.Integral):
            raise TypeError(f"`{name}` must hold ints. Received: {name}={value!r}")
        if item < min_value:
            raise ValueError(
                f"`{name}` entries must be >= {min_value}. Received: {name}={tuple(items)!r}"
            )
        out.append(int(item))
    return tuple(out)


def check_int_pair(name, value, min_value=1):
    """`check_int_tuple` with length 2 (patch sizes, grids)."""
    return check_int_tuple(name, value, 2, min_value)


# --- generate / inpaint arguments --------------------------------------------
# Host-side checks run once per `generate`/`inpaint` call, before any work.
# Messages name the argument as the user passed it and show the value.


def _show(value, limit=120):
    """A short repr of `value` for error messages (arrays shortened)."""
    try:
        import numpy as np

        if isinstance(value, np.ndarray) or hasattr(value, "shape") and hasattr(value, "dtype"):
            arr = np.asarray(value)
            text = np.array2string(arr.reshape(-1)[:8], separator=", ", max_line_width=10**6)
            if arr.size > 8:
                text = text[:-1] + ", ...]"
            return f"{text} (shape {tuple(arr.shape)}, dtype {arr.dtype})"
    except Exception:  # Tensors that cannot be read: show the type only.
        return f"<{type(value).__name__}>"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_bool(name, value):
    """Returns `value` (a Python or numpy bool) as a bool; TypeError otherwise."""
    try:
        import numpy as np

        if isinstance(value, np.bool_):
            return bool(value)
    except ImportError:  # pragma: no cover
        pass
    if not isinstance(value, bool):
        raise TypeError(
            f"`{name}` must be True or False. Received: {name}={_show(value)} "
            f"(of type {type(value).__name__})"
        )
    return value


def check_seed(name, value):
    """A generation seed: None or an int (numpy ints accepted). Returns int or None."""
    return check_int(name, value, allow_none=True)


def check_labels(name, labels, num_classes, class_names=None):
    """Class labels -> a (B,) int32 numpy array of ids in [0, `num_classes`).

    Args:
        name: str. The argument's name as the user passed it.
        labels: one label or a 1-D sequence/array/tensor of labels. A label
            is an integer id (ints, numpy ints, or integer-valued floats such
            as 3.0) or, when `class_names` is given, a class name (str).
        num_classes: int. Number of classes.
        class_names: sequence of str or None. Names of classes 0..C-1.
    """
    import numpy as np

    if isinstance(labels, (str, bytes)):
        labels = [labels]
    if not isinstance(labels, (list, tuple, np.ndarray, numbers.Number, np.generic)):
        try:
            import keras

            labels = keras.ops.convert_to_numpy(labels)
        except Exception:
            raise TypeError(
                f"`{name}` must be class ids (ints) or class names. Received: "
                f"{name}={_show(labels)} (of type {type(labels).__name__})"
            )
    if isinstance(labels, (list, tuple)) and any(isinstance(v, (str, bytes)) for v in labels):
        arr = np.asarray(labels, dtype=object)
    else:
        arr = np.asarray(labels)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(
            f"`{name}` must be one label or a 1-D sequence of labels. Received: "
            f"{name}={_show(arr)}"
        )
    if arr.size == 0:
        raise ValueError(f"`{name}` must hold at least one label. Received: {name}={_show(arr)}")
    if arr.dtype.kind in "USO":
        ids = [_label_id(name, v, labels, class_names) for v in arr.tolist()]
        arr = np.asarray(ids, dtype="int64")
    elif arr.dtype.kind == "b":
        raise TypeError(
            f"`{name}` must be class ids (ints), not booleans. Received: {name}={_show(labels)}"
        )
    elif arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(
                f"`{name}` must be integer class ids (e.g. 3 or 3.0). Received: "
                f"{name}={_show(labels)}"
            )
    elif arr.dtype.kind not in "iu":
        raise TypeError(
            f"`{name}` must be class ids (ints) or class names. Received: {name}={_show(labels)}"
        )
    bad = (arr < 0) | (arr >= num_classes)
    if np.any(bad):
        hint = ""
        if class_names:
            hint = f" (or one of the class names {list(class_names)})"
        raise ValueError(
            f"`{name}` must be class ids in [0, {num_classes}){hint}. Received: "
            f"{name}={_show(labels)}; out of range: {arr[bad][:8].astype('int64').tolist()}"
        )
    return arr.astype("int32")


def _label_id(name, value, labels, class_names):
    """One label of an object/str array -> its int id."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        if not class_names:
            raise ValueError(
                f"`{name}`: this model has no class names, pass integer class ids. "
                f"Received: {name}={_show(labels)}"
            )
        names = list(class_names)
        if value in names:
            return names.index(value)
        folded = [n.casefold() for n in names]
        if value.casefold() in folded:
            return folded.index(value.casefold())
        raise ValueError(
            f"`{name}`: unknown class name {value!r}. Valid names: {names}. "
            f"Received: {name}={_show(labels)}"
        )
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"`{name}` must be class ids (ints) or class names. Received: {name}={_show(labels)}"
        )
    if value != value or float(value) != round(float(value)):
        raise ValueError(
            f"`{name}` must be integer class ids (e.g. 3 or 3.0). Received: {name}={_show(labels)}"
        )
    return int(value)


def check_finite_array(name, value, dtype="float32"):
    """`value` (array-like or tensor) as a numpy array of `dtype`, all finite."""
    import keras
    import numpy as np

    try:
        arr = np.asarray(keras.ops.convert_to_numpy(value))
    except Exception:
        raise TypeError(
            f"`{name}` must be an array or tensor of numbers. Received: {name}={_show(value)} "
            f"(of type {type(value).__name__})"
        )
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"`{name}` must be an array of numbers. Received: {name}={_show(value)}")
    arr = arr.astype(dtype)
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(
            f"`{name}` must be finite (no NaN or inf). Received: {name}={_show(arr)} "
            f"with {int(np.sum(~np.isfinite(arr)))} non-finite values"
        )
    return arr


def check_binary_mask(name, mask):
    """A mask (bool, or numbers that are all 0 or 1) as a numpy bool array."""
    import keras
    import numpy as np

    try:
        arr = np.asarray(keras.ops.convert_to_numpy(mask))
    except Exception:
        raise TypeError(
            f"`{name}` must be a bool (or 0/1) array. Received: {name}={_show(mask)} "
            f"(of type {type(mask).__name__})"
        )
    if arr.dtype.kind == "b":
        return arr
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"`{name}` must be a bool (or 0/1) array. Received: {name}={_show(arr)}")
    bad = ~((arr == 0) | (arr == 1))
    if np.any(bad):
        raise ValueError(
            f"`{name}` must be bool or hold only 0 and 1 (1 / True = regenerate). Received: "
            f"{name}={_show(arr)} with other values {np.unique(arr[bad])[:8].tolist()}"
        )
    return arr.astype(bool)


def check_keywords(method, kwargs, valid, aliases=None):
    """Raises Python's TypeError for keywords that are neither valid nor aliases.

    Args:
        method: str. How the error names the method (e.g. "GIVTCausal.generate").
        kwargs: dict of the extra keywords the caller received.
        valid: iterable of str. The method's own keyword names.
        aliases: dict of accepted alias -> the keyword it stands for.
    """
    import difflib

    aliases = aliases or {}
    valid = sorted(valid)
    for key in kwargs:
        if key in aliases or key in valid:
            continue
        close = difflib.get_close_matches(key, valid + sorted(aliases), n=1)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        raise TypeError(
            f"{method}() got an unexpected keyword argument {key!r}.{hint} "
            f"Valid keywords: {', '.join(valid)}"
            + (
                f"; aliases: {', '.join(f'{a} (-> {t})' for a, t in sorted(aliases.items()))}"
                if aliases
                else ""
            )
        )


def check_int_list(name, value, min_value=1):
    """A non-empty sequence of ints >= `min_value` (e.g. `channel_multipliers`), as a tuple."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) == 0:
        raise ValueError(
            f"`{name}` must be a non-empty sequence of ints. Received: {name}={value!r}"
        )
    return check_int_tuple(name, value, len(value), min_value)


def check_schedule_name(schedule, names, power_prefix, example):
    """A mask-schedule name: one of `names`, or `power_prefix` + a number k > 0.

    Args:
        schedule: the value the user passed as `schedule`.
        names: the fixed names (e.g. ("cosine", "linear", "arccos")).
        power_prefix: the prefix of the power schedules ("pow:" or "pow").
        example: a valid power schedule for the message (e.g. "pow:2").
    """
    choices = ", ".join(repr(n) for n in names) + f" or '{power_prefix}k' (k > 0, e.g. {example!r})"
    if not isinstance(schedule, str):
        raise TypeError(f"`schedule` must be a str: {choices}. Received: schedule={schedule!r}")
    ok = schedule in names
    if schedule.startswith(power_prefix):
        try:
            exponent = float(schedule[len(power_prefix) :])
            ok = math.isfinite(exponent) and exponent > 0
        except ValueError:
            ok = False
    if not ok:
        raise ValueError(f"`schedule` must be one of {choices}. Received: schedule={schedule!r}")
    return schedule
