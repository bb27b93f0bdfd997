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


def bottom_k_mask(confidence, k):
    """True for the `k (B, 1)` least confident positions of `confidence (B, L)`.

    Ties with the k-th smallest value stay unmasked (strict `<`), as
    big_vision's `_get_bottom_k_mask`.
    """
    confidence = ops.cast(confidence, "float32")
    sorted_conf = ops.sort(confidence, axis=-1)
    length = ops.shape(confidence)[-1]
    k = ops.clip(ops.cast(k, "int32"), 0, length - 1)
    cut = ops.take_along_axis(sorted_conf, k, axis=-1)  # (B, 1)
    return confidence < cut


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
