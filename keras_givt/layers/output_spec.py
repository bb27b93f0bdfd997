"""`compute_output_spec` from `compute_output_shape`, for any inputs with a `.shape`.

Keras' default `Layer.compute_output_spec` only recognises backend tensors and
`KerasTensor`s as tensor arguments: given NumPy arrays it finds no shapes and
calls `compute_output_shape()` with no arguments (a `TypeError` for a
multi-argument `compute_output_shape(tokens_shape, labels_shape=None, ...)`,
`None` for single-argument ones). keras-hub's precision tests call
`layer.compute_output_spec(numpy arrays...)`. Keras' own `Embedding` avoids
this by reading `inputs.shape` directly; `output_spec_from_shapes` does the
same for every `call` argument, generally. `OutputSpecFromShapes` is the
mixin that gives a layer that `compute_output_spec`.
"""

import inspect

import keras


def _shape_of(value):
    if value is None:
        return None
    if hasattr(value, "shape"):
        return tuple(None if d is None else int(d) for d in value.shape)
    return None


def _is_shape(value):
    return isinstance(value, (tuple, list)) and all(d is None or isinstance(d, int) for d in value)


def output_spec_from_shapes(layer, args, kwargs, dtypes=None):
    """`KerasTensor`(s) for `layer.call(*args, **kwargs)` via `compute_output_shape`.

    Each `call` argument `name` with a `.shape` (NumPy array, backend tensor,
    `KerasTensor`, possibly nested) is passed as `name_shape` when
    `compute_output_shape` has that parameter; the first `call` argument is
    passed positionally otherwise (single-argument `input_shape`). Arguments
    without a shape (None, Python flags such as `training`) are left out.

    Args:
        layer: the `keras.layers.Layer`.
        args: tuple, positional `call` arguments.
        kwargs: dict, keyword `call` arguments.
        dtypes: None (every output gets `layer.compute_dtype`) or a structure
            of dtypes matching the output shapes (e.g. `(float, "int32")`).

    Returns:
        A `keras.KerasTensor` or a tuple/list/dict of them.
    """
    signature = inspect.signature(layer.call)
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    try:
        bound = signature.bind_partial(*args, **kwargs).arguments
    except TypeError:
        bound = {}
    items = [(n, v) for n, v in bound.items() if signature.parameters[n].kind not in variadic]
    if not items and args:  # `call(*args, **kwargs)` (e.g. an abstract base block)
        items = [("inputs", args[0])]
    shape_params = inspect.signature(layer.compute_output_shape).parameters
    positional, named = [], {}
    for i, (name, value) in enumerate(items):
        if name in ("training", "mask"):
            continue
        shape = None if value is None else keras.tree.map_structure(_shape_of, value)
        if f"{name}_shape" in shape_params:
            named[f"{name}_shape"] = shape
        elif i == 0:
            positional.append(shape)
    output_shape = layer.compute_output_shape(*positional, **named)

    if _is_shape(output_shape):
        dtype = dtypes if dtypes is not None else layer.compute_dtype
        return keras.KerasTensor(tuple(output_shape), dtype=dtype)
    if dtypes is None:
        return keras.tree.map_shape_structure(
            lambda s: keras.KerasTensor(tuple(s), dtype=layer.compute_dtype), output_shape
        )
    if isinstance(output_shape, dict):
        return {k: keras.KerasTensor(tuple(s), dtype=dtypes[k]) for k, s in output_shape.items()}
    return type(output_shape)(
        keras.KerasTensor(tuple(s), dtype=d) for s, d in zip(output_shape, dtypes)
    )


class OutputSpecFromShapes:
    """Mixin of a Keras layer: `compute_output_spec` through `output_spec_from_shapes`.

    Listed before the Keras base class (`class FlaxLayerNorm(OutputSpecFromShapes,
    keras.layers.Layer)`), it gives the layer an output spec for NumPy inputs
    too, as `keras.layers.Embedding` has; the layer's `compute_output_shape`
    does the work. A layer whose outputs are not all `compute_dtype` overrides
    `compute_output_spec` with `output_spec_from_shapes(..., dtypes=...)`.
    """

    def compute_output_spec(self, *args, **kwargs):
        return output_spec_from_shapes(self, args, kwargs)
