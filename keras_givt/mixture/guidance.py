"""Density-based classifier-free guidance (DB-CFG) for Gaussian mixtures.

Dimension letters: `...` batch positions (B, L or B, 1), D token dim, K
mixture components, P proposals.

GIVT guides in density space (big_vision `parallel_decode.CFGDensity`): a
mixture component is drawn from the *conditional* mixture, and each channel is
then sampled from the unnormalised density

    p_c(x)^(1+w) · p_u(x)^(−w)

where p_c, p_u are that component's normals in the conditional and
unconditional mixtures. For two normals this is itself proportional to a
normal whenever its precision (1+w)/σc² − w/σu² is positive:

    σ*² = 1 / ((1+w)/σc² − w/σu²),   μ* = σ*² · ((1+w)·μc/σc² − w·μu/σu²)

so we sample it exactly. Where it is not normalisable we fall back to
big_vision's rejection sampler (proposal N(μc, 2·max(σc, σu)), bound `fac`
from a 1001-point grid, 1000 proposals).
"""

import math

import keras
from keras import ops

from keras_givt.mixture import formulas
from keras_givt.mixture.distributions import normal_log_prob
from keras_givt.samplers import random_utils
from keras_givt.utils.tensor_utils import is_concrete

NUM_PROPOSALS = 1000
_GRID = 1001


def component_params(params, mixture_index=None):
    """(loc, scale) of one component per position, each (..., D).

    MV-diag mixtures select `mixture_index (...)`; single-component
    per-channel heads squeeze K. Other heads are not supported by DB-CFG
    (as in big_vision).
    """
    kind = params["head_type"]
    if kind == "mv_diag":
        if mixture_index is None:
            raise ValueError("`mixture_index` is required for an MV-diagonal mixture.")
        k = ops.shape(params["loc"])[-2]
        onehot = ops.expand_dims(ops.one_hot(mixture_index, k, dtype="float32"), -1)
        return (
            ops.sum(onehot * params["loc"], axis=-2),
            ops.sum(onehot * params["scale_diag"], axis=-2),
        )
    if kind == "per_channel" and params["loc"].shape[-1] == 1:
        return params["loc"][..., 0], params["scale"][..., 0]
    raise ValueError(
        "Density-based CFG needs an MV-diagonal mixture or a single-component "
        f"per-channel head; received head_type={kind!r} with loc shape "
        f"{tuple(params['loc'].shape)}."
    )


def sample_mixture_index(params, seed=None):
    """Draws the component per position from the conditional mixture (..,)."""
    if params["head_type"] != "mv_diag":
        return None
    return random_utils.gumbel_argmax(params["mixture_logits"], seed)


class CFGDensity:
    """The DB-CFG target for one component per position.

    Args:
        params_c: conditional `mixture_params` dict.
        params_u: unconditional `mixture_params` dict.
        w: guidance weight (float or scalar tensor).
        mixture_index: (...) component per position (MV-diag heads).

    Attributes `loc_c, scale_c, loc_u, scale_u, simple_scale, fac` match
    big_vision's `CFGDensity`; `log_prob(x)` is its unnormalised per-channel
    log-density (1+w)·log p_c(x) − w·log p_u(x).
    """

    def __init__(self, params_c, params_u, w, mixture_index=None):
        self.w = ops.cast(w, "float32")
        self.mixture_index = mixture_index
        self.loc_c, self.scale_c = _f32(*component_params(params_c, mixture_index))
        self.loc_u, self.scale_u = _f32(*component_params(params_u, mixture_index))
        self.simple_scale = 2.0 * ops.maximum(self.scale_c, self.scale_u)

    def log_prob(self, x):
        x = ops.cast(x, "float32")
        return formulas.guided_log_prob(
            x, self.loc_c, self.scale_c, self.loc_u, self.scale_u, self.w, ops
        )

    @property
    def fac(self):
        """big_vision's rejection bound: grid max of the target / grid max of the proposal."""
        grid = ops.linspace(-10.0, 10.0, _GRID)
        grid = ops.reshape(grid, (_GRID,) + (1,) * len(self.loc_c.shape))
        x = grid + self.loc_c  # (G, ..., D)
        target = ops.exp(self.log_prob(x))
        simple = ops.exp(normal_log_prob(x, self.loc_c, self.simple_scale))
        return ops.max(target, axis=0) / ops.max(simple, axis=0)

    @property
    def precision(self):
        return formulas.guided_precision(self.scale_c, self.scale_u, self.w, ops)

    def exact_params(self):
        """(loc, scale, normalisable) of the guided normal per channel."""
        prec = self.precision
        ok = prec > 0
        safe = ops.where(ok, prec, 1.0)
        loc = formulas.guided_loc(
            self.loc_c, self.scale_c, self.loc_u, self.scale_u, self.w, safe, ops
        )
        return loc, ops.rsqrt(safe), ok

    def rejection_sample(self, seed=None, num_proposals=NUM_PROPOSALS, raw_seed=None):
        """big_vision's sampler: first accepted of `num_proposals` proposals per channel.

        If none is accepted, the proposal with the highest acceptance ratio.
        `raw_seed` (a drawn seed tensor) replaces `seed` inside compiled
        branches.
        """
        shape = tuple(ops.shape(self.loc_c))
        full = (num_proposals,) + shape
        if raw_seed is not None:
            eps = random_utils.stateless_normal(full, raw_seed, 0)
            u = random_utils.stateless_uniform(full, raw_seed, 1, minval=1e-20, maxval=1.0)
        else:
            eps = keras.random.normal(full, seed=seed)
            u = keras.random.uniform(full, minval=1e-20, maxval=1.0, seed=seed)
        x = self.loc_c + self.simple_scale * eps  # (P, ..., D)
        log_ratio = (
            self.log_prob(x) - normal_log_prob(x, self.loc_c, self.simple_scale) - ops.log(self.fac)
        )
        accept = ops.log(u) < log_ratio
        # First accepted proposal, else the best one.
        order = ops.reshape(
            ops.cast(ops.arange(num_proposals), "float32"), (num_proposals,) + (1,) * len(shape)
        )
        score = ops.where(accept, 1e30 - order, log_ratio)
        idx = ops.argmax(score, axis=0)
        onehot = ops.one_hot(idx, num_proposals, axis=0, dtype="float32")
        return ops.sum(onehot * x, axis=0)

    def sample(self, seed=None):
        """Exact where the guided density is normalisable, big_vision's rejection elsewhere.

        The rejection sampler (1000 proposals per channel) only runs when
        some channel needs it (`ops.cond` in compiled code).
        """
        loc, scale, ok = self.exact_params()
        eps = keras.random.normal(ops.shape(loc), seed=seed)
        exact = loc + scale * eps
        concrete = _concrete_all(ok)
        if concrete is True:
            return exact
        if concrete is False or not isinstance(seed, keras.random.SeedGenerator):
            return ops.where(ok, exact, self.rejection_sample(seed))
        # Traced: run the (1000-proposal) fallback only when needed. Its seed
        # is drawn outside the branch.
        raw = random_utils.draw_raw_seed(seed)
        return ops.cond(
            ops.all(ok),
            lambda: exact,
            lambda: ops.where(ok, exact, self.rejection_sample(raw_seed=raw)),
        )


def _f32(*xs):
    return tuple(ops.cast(ops.convert_to_tensor(x), "float32") for x in xs)


def _concrete_all(x):
    """`all(x)` as a Python bool when `x` has values, else None (traced)."""
    if not is_concrete(x):
        return None
    return bool(ops.convert_to_numpy(ops.all(x)))


def guided_log_prob_moments(loc_c, scale_c, loc_u, scale_u, w, num=20001, width=12.0):
    """Moments of the normalised guided density by numerical integration (numpy).

    For tests and diagnostics: returns (mean, std) computed on a grid.
    """
    import numpy as np

    lo = min(loc_c - width * scale_c, loc_u - width * scale_u)
    hi = max(loc_c + width * scale_c, loc_u + width * scale_u)
    x = np.linspace(lo, hi, num)

    def lp(x, m, s):
        return -0.5 * ((x - m) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)

    logt = (1 + w) * lp(x, loc_c, scale_c) - w * lp(x, loc_u, scale_u)
    p = np.exp(logt - logt.max())
    p /= np.trapezoid(p, x)
    mean = np.trapezoid(p * x, x)
    var = np.trapezoid(p * (x - mean) ** 2, x)
    return mean, math.sqrt(var)
