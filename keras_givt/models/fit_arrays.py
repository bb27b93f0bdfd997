"""`fit`/`evaluate` inputs of the generation tasks as `tf.data` pipelines.

In-memory arrays (numpy or backend tensors; `x`, `(x, y)` or
`(x, y, sample_weight)`, each an array or a dict of arrays) are flattened
into one dict of numpy arrays, split like Keras' `validation_split`, batched
(reshuffled every epoch when asked) and unflattened per batch.
`GenerationTask.fit`/`evaluate` use them.
"""

import keras
import numpy as np


def is_array_dict(x):
    """A dict of in-memory arrays (numpy or backend tensors), not a dataset."""
    if not isinstance(x, dict) or not x:
        return False
    return all(hasattr(v, "shape") and hasattr(v, "__array__") for v in x.values())


def split_last(arrays, fraction):
    """Keras' `validation_split`: the last `fraction` of the examples."""
    if not 0 < fraction < 1:
        raise ValueError(f"`validation_split` must be in (0, 1); received {fraction!r}.")
    n = len(next(iter(arrays.values())))
    cut = int(n * (1.0 - fraction))
    return {k: v[:cut] for k, v in arrays.items()}, {k: v[cut:] for k, v in arrays.items()}


def array_dataset(arrays, batch_size, shuffle):
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


def is_array(x):
    """An in-memory array (numpy or backend tensor), not a dict or dataset."""
    return not isinstance(x, (dict, str, bytes)) and hasattr(x, "shape") and hasattr(x, "__array__")


def flat_arrays(x, y, sample_weight):
    """`x` (array or dict of arrays), `y`, `sample_weight` as one flat dict of numpy arrays.

    A dict `x` alone keeps its keys; otherwise entries are keyed `__x__`,
    `__x__/<key>`, `__y__` (`__y__/<key>`) and `__sample_weight__`.
    """
    if is_array_dict(x) and y is None and sample_weight is None:
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


def unflatten(flat):
    """Inverse of `flat_arrays` on one batch: `x` or `(x, y[, sample_weight])`."""
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


def unflatten_numpy(flat):
    """`(x, y, sample_weight)` of a flat dict of arrays (see `flat_arrays`)."""
    out = unflatten(flat)
    if not isinstance(out, tuple):
        return out, None, None
    return tuple(out) + (None,) * (3 - len(out))


def unpack_validation(validation_data):
    if isinstance(validation_data, tuple):
        if len(validation_data) not in (1, 2, 3):
            raise ValueError(
                "`validation_data` must be x, (x, y) or (x, y, sample_weight). Received: a tuple "
                f"of {len(validation_data)} entries"
            )
        return tuple(validation_data) + (None,) * (3 - len(validation_data))
    return validation_data, None, None


def ordered_dataset(arrays, batch_size):
    """Batches of `arrays` in order (validation / evaluation)."""
    import tensorflow as tf

    sizes = {k: len(v) for k, v in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"All arrays must have the same number of examples; received {sizes}.")
    return tf.data.Dataset.from_tensor_slices(arrays).batch(batch_size)
