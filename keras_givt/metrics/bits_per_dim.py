"""Negative log-likelihood in nats -> bits per dimension."""

import math
import numbers

from keras import ops

from keras_givt.utils.validation import check_positive_int


def bits_per_dim(nll_nats, num_dims, data_scale=1.0):
    """Convert a per-example NLL in nats to bits per dimension.

    `bpd = (nll_nats + num_dims * log(data_scale)) / (num_dims * ln 2)`.

    Args:
        nll_nats: float, numpy array or tensor: the negative log-likelihood of
            one example (summed over its `num_dims` dimensions), in nats.
            Arrays are converted element-wise (e.g. a batch of NLLs).
        num_dims: positive int, the dimensions of one example (for images
            `H * W * C`; for GIVT latents `L * D`).
        data_scale: positive float. For a continuous density on data that was
            divided by `data_scale` from its reporting units, e.g. `127.5` for
            a density on [-1, 1] pixels reported in 8-bit pixel units
            (the change-of-variables term `log(data_scale)` per dim). Default
            1.0: no change of units.

    Returns:
        Bits per dimension, a python float for a python number input,
        otherwise a tensor of the input's shape.

    Example:

    ```python
    bits_per_dim(2 * 784 * math.log(2), 784)  # 2.0
    ```
    """
    check_positive_int("num_dims", num_dims)
    if isinstance(data_scale, bool) or not isinstance(data_scale, numbers.Real) or data_scale <= 0:
        raise ValueError(
            f"`data_scale` must be a positive float; received data_scale={data_scale!r}."
        )
    offset = num_dims * math.log(data_scale)
    denominator = num_dims * math.log(2.0)
    if isinstance(nll_nats, numbers.Real) and not isinstance(nll_nats, bool):
        return (float(nll_nats) + offset) / denominator
    return (ops.cast(nll_nats, "float32") + offset) / denominator
