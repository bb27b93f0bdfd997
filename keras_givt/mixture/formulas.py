"""The mixture formulas every decoding path shares, written once.

Dimension letters: R rows (any leading shape `...`), D token dim, K mixture
components, M num_logits.

Each formula is plain arithmetic on tensors plus the few named functions it
takes from `ops`, an `ops`-like namespace passed in by the caller: the Keras
path passes `keras.ops` (any backend, traced or eager), the plain-torch
generation engine (`models/givt/torch_generation.py`) passes its small torch
namespace with the same names (`sqrt`, `square`, `log`, `rsqrt`, `maximum`,
`reshape`, `shape`, `argmax`). The same function body then runs on both, op
for op, so the two paths cannot drift apart; float32 in, float32 out. The
callers keep what is theirs: casting, the random draws (the uniforms handed to
`gumbel`), and the per-head-type dispatch.
"""

import math

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def square_plus(x, fix_square_plus, ops):
    """big_vision's squareplus.

    `fix_square_plus=True`: `(x + sqrt(x² + 4)) / 2` (always > 0).
    `False` (big_vision's default and its original bug): `x + sqrt(x² + 4) / 2`,
    which goes negative below x = −2/√3.
    """
    if fix_square_plus:
        return (x + ops.sqrt(ops.square(x) + 4.0)) / 2.0
    return x + ops.sqrt(ops.square(x) + 4.0) / 2.0


def split_logits(logits, head_type, out_dim, num_mixtures, ops):
    """The logits layout of the two mixture heads: `logits (..., M)` ->
    `(mixture logits, loc, raw scale)`.

    - "mv_diag": `[K mixture logits | reshape(K, 2, D)]`, loc `[:, 0]`, raw
      scale `[:, 1]`: (..., K) and (..., K, D) twice.
    - "per_channel": `reshape(3·D, K)` split on the first axis into mixture
      logits, locs and raw scales: (..., D, K) each.
    """
    D, K = out_dim, num_mixtures
    lead = tuple(ops.shape(logits)[:-1])
    if head_type == "mv_diag":
        mix = logits[..., :K]
        other = ops.reshape(logits[..., K:], lead + (K, 2, D))
        return mix, other[..., 0, :], other[..., 1, :]
    if head_type == "per_channel":
        other = ops.reshape(logits, lead + (3 * D, K))
        return other[..., :D, :], other[..., D : 2 * D, :], other[..., 2 * D :, :]
    raise ValueError(f"No mixture-logits layout for head_type={head_type!r}.")


def mixture_scale(raw_scale, fix_square_plus, scale_tol, ops):
    """The scales of a mixture head: squareplus, clamped below at `scale_tol`."""
    return ops.maximum(square_plus(raw_scale, fix_square_plus, ops), scale_tol)


def normal_log_prob(x, loc, scale, ops):
    """Elementwise log N(x; loc, scale)."""
    z = (x - loc) / scale
    # Grouped as distrax/TFP do, for bit-level agreement on extreme values.
    return -0.5 * ops.square(z) - (HALF_LOG_2PI + ops.log(scale))


def guided_precision(scale_c, scale_u, w, ops):
    """Precision `(1+w)/σc² − w/σu²` of DB-CFG's guided density
    `p_c^(1+w) · p_u^(−w)` for two normals; a normal where it is > 0."""
    return (1.0 + w) / ops.square(scale_c) - w / ops.square(scale_u)


def guided_loc(loc_c, scale_c, loc_u, scale_u, w, precision, ops):
    """Mean `((1+w)·μc/σc² − w·μu/σu²) / precision` of the guided normal (its
    scale is `rsqrt(precision)`)."""
    return ((1.0 + w) * loc_c / ops.square(scale_c) - w * loc_u / ops.square(scale_u)) / precision


def guided_log_prob(x, loc_c, scale_c, loc_u, scale_u, w, ops):
    """The unnormalised guided log-density `(1+w)·log p_c(x) − w·log p_u(x)`."""
    return (1.0 + w) * normal_log_prob(x, loc_c, scale_c, ops) - w * normal_log_prob(
        x, loc_u, scale_u, ops
    )


def gumbel(u, ops):
    """Gumbel(0, 1) noise `−log(−log u)` from uniforms `u` in (0, 1]."""
    return -ops.log(-ops.log(u))


def gumbel_argmax(logits, u, ops):
    """One categorical draw per leading position (Gumbel-max over the last
    axis), `u` uniforms of the shape of `logits`."""
    return ops.argmax(logits - ops.log(-ops.log(u)), axis=-1)
