"""Mask schedules and bottom-k masking for parallel (MaskGIT-style) decoding.

Dimension letters: B batch, L sequence length.

`mask_ratio(r, method)` maps decoding progress r ∈ [0, 1] to the fraction of
tokens still masked, clipped to [1e-6, 1] as big_vision's
`givt.apply_mask_schedule`:
- "cosine": cos(π/2 · r)            (big_vision, MaskGIT)
- "pow:N":  1 − r^N                 (big_vision; e.g. "pow:2")
- "linear": 1 − r
- "arccos": arccos(r) / (π/2)
"""

import math

from keras import ops

METHODS = ("cosine", "linear", "arccos", "pow:N")


def mask_ratio(ratio, method="cosine"):
    """Fraction of tokens masked at progress `ratio` (scalar or tensor)."""
    r = ops.cast(ratio, "float32")
    if method == "cosine":
        out = ops.cos(math.pi / 2.0 * r)
    elif method == "linear":
        out = 1.0 - r
    elif method == "arccos":
        out = ops.arccos(r) / (math.pi / 2.0)
    elif isinstance(method, str) and method.startswith("pow:"):
        try:
            exponent = float(method[4:])
        except ValueError:
            raise ValueError(f"`method` 'pow:N' needs a number N; received method={method!r}.")
        out = 1.0 - ops.power(r, exponent)
    else:
        raise ValueError(f"`method` must be one of {METHODS}; received method={method!r}.")
    return ops.clip(out, 1e-6, 1.0)


def mask_len_schedule(seq_len, num_steps, method="cosine"):
    """Number of tokens still masked after each step, (num_steps,) float32.

    `floor(seq_len · mask_ratio((step + 1) / num_steps))`, as
    big_vision's `decode_masked`; the last entry is 0.
    """
    steps = ops.cast(ops.arange(1, num_steps + 1), "float32") / float(num_steps)
    return ops.floor(float(seq_len) * mask_ratio(steps, method))


def _row_k(k, batch):
    # k: scalar, (B,) or (B, 1), int or float -> (B, 1) int32.
    k = ops.reshape(ops.cast(k, "int32"), (-1, 1))
    return ops.broadcast_to(k, (batch, 1))


def bottom_k_mask(confidence, k):
    """True for exactly the `k` least confident positions per row.

    big_vision's `parallel_decode._get_bottom_k_mask`: positions ordered by a
    stable argsort of `confidence`, the first `k` masked, so ties are broken by
    index (the lower index is masked first) and exactly min(k, L) positions
    are True, also when values tie (e.g. the +inf of known tokens).

    Implemented without relying on a stable sort (TensorFlow's argsort is not
    stable): with v the k-th smallest value, every position < v is masked and
    the first (k − #{< v}) positions equal to v, by index.

    Args:
        confidence: (B, L) float tensor.
        k: int (scalar), (B,) or (B, 1) int/float tensor; values < 0 mask
            nothing, values >= L mask everything.

    Returns:
        (B, L) bool tensor.
    """
    confidence = ops.cast(confidence, "float32")
    batch, length = ops.shape(confidence)[0], ops.shape(confidence)[-1]
    k = _row_k(k, batch)  # (B, 1)
    sorted_conf = ops.sort(confidence, axis=-1)
    idx = ops.clip(k - 1, 0, length - 1)
    cut = ops.take_along_axis(sorted_conf, idx, axis=-1)  # (B, 1): k-th smallest value
    less = confidence < cut
    equal = confidence == cut
    num_less = ops.sum(ops.cast(less, "int32"), axis=-1, keepdims=True)
    equal_i = ops.cast(equal, "int32")
    equal_rank = ops.cumsum(equal_i, axis=-1) - equal_i  # ties before this one, by index
    mask = less | (equal & (equal_rank < k - num_less))
    return mask & (k > 0)


def cutoff_mask(confidence, k):
    """google-research/maskgit's `mask_by_random_topk` cut: `confidence < sorted[k]`.

    Positions strictly below the k-th smallest value (0-based index k) are
    True, so ties with it stay unmasked and fewer than k positions may be
    masked. Used by the discrete MaskGIT sampler, whose reference (maskgit)
    does this; big_vision's GIVT-MaskGIT uses `bottom_k_mask`.

    Args:
        confidence: (B, L) float tensor.
        k: (B, 1) int/float tensor (or scalar), clipped to [0, L − 1].

    Returns:
        (B, L) bool tensor.
    """
    confidence = ops.cast(confidence, "float32")
    batch, length = ops.shape(confidence)[0], ops.shape(confidence)[-1]
    sorted_conf = ops.sort(confidence, axis=-1)
    k = ops.clip(_row_k(k, batch), 0, length - 1)
    cut = ops.take_along_axis(sorted_conf, k, axis=-1)  # (B, 1)
    return confidence < cut


def training_mask_counts(keep, seq_len, method="cosine"):
    """Masked-token count per example of big_vision's masked training mask.

    big_vision `givt.Model.get_input_mask_training` /
    `_random_mask_with_ratios`: ratio = `mask_ratio(keep, method)` (clipped to
    [1e-6, 1]) and the mask holds the positions i < ratio · L, i.e.
    ⌈ratio · L⌉ of them (at least 1, at most L), in float32.

    Args:
        keep: (B,) float tensor; big_vision draws it from
            U[0, 1 − min_masking_rate_training).
        seq_len: int. L.
        method: schedule name (`mask_ratio`'s `method`).

    Returns:
        (B, 1) int32 tensor.
    """
    ratio = ops.clip(mask_ratio(keep, method), 0.0, 1.0)
    threshold = ops.expand_dims(ratio * float(seq_len), -1)  # (B, 1)
    indices = ops.cast(ops.arange(seq_len), "float32")[None, :]  # (1, L)
    return ops.sum(ops.cast(indices < threshold, "int32"), axis=-1, keepdims=True)


MASKGIT_METHODS = ("uniform", "cosine", "pow<k>", "log", "exp")


def maskgit_mask_ratio(ratio, total_unknown, method="cosine"):
    """google-research/maskgit's `mask_schedule.schedule`, clipped to [1e-6, 1].

    Names as in MaskGIT (no colon in `pow<k>`):
    - "uniform": 1 − r
    - "cosine":  cos(π/2 · r)
    - "pow<k>":  1 − r^k (e.g. "pow2", "pow0.5")
    - "log":     −log2(r) / log2(n)   (n = `total_unknown`)
    - "exp":     1 − 2^(−log2(n) · (1 − r))
    """
    r = ops.cast(ratio, "float32")
    if method == "uniform":
        out = 1.0 - r
    elif method == "cosine":
        out = ops.cos(math.pi / 2.0 * r)
    elif isinstance(method, str) and method.startswith("pow"):
        try:
            exponent = float(method[3:])
        except ValueError:
            raise ValueError(
                f"`schedule` 'pow<k>' needs a number k (e.g. 'pow2'); received {method!r}."
            )
        out = 1.0 - ops.power(r, exponent)
    elif method in ("log", "exp"):
        log2_n = ops.log2(ops.cast(total_unknown, "float32"))
        if method == "log":
            out = -ops.log2(r) / log2_n
        else:
            out = 1.0 - ops.power(2.0, -log2_n * (1.0 - r))
    else:
        raise ValueError(
            f"`schedule` must be one of {MASKGIT_METHODS}; received schedule={method!r}."
        )
    return ops.clip(out, 1e-6, 1.0)
