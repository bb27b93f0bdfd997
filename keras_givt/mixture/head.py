"""Decoding of GIVT logits into Gaussian-mixture parameters.

Dimension letters: B batch, L sequence length, D token (codeword) dim,
K mixture components, M num_logits.

big_vision's three head types (`givt.Model.get_pdf`):

- per-channel mixtures (`per_channel_mixtures=True`): every channel of a token
  has its own 1-D mixture of K normals. Logits layout: `reshape(3·D, K)`
  split on the first axis into mixture logits, locs and scales, each (D, K).
  `M = 3·K·D`.
- MV-diagonal mixture (`per_channel_mixtures=False`): K diagonal normals over
  the whole D-dim token. Layout `[K mixture logits | reshape(K, 2, D)]` with
  loc = `[:, 0]` and scale = `[:, 1]`. `M = K + 2·K·D`.
- multivariate (`multivariate=True`, K = 1): one full-covariance normal. The
  first D² logits are the scale matrix (row-major, lower triangle used), the
  last D the loc. `M = D² + D`.

The two mixture layouts, squareplus and the clamp are `mixture.formulas`
(shared with the torch generation engine). Scales go through `square_plus`
and are clamped to `scale_tol`
(for the multivariate head: `maximum(scale, eye · scale_tol)`), then
multiplied by `temperature_scales`; mixture logits are multiplied by
`temperature_probs` (an inverse temperature, as in big_vision).
All maths runs in float32 whatever the dtype policy.
"""

from statistics import NormalDist

import keras
import numpy as np
from keras import ops

from keras_givt.mixture import distributions
from keras_givt.mixture import formulas
from keras_givt.utils.validation import check_positive_int
from keras_givt.utils import validation

HEAD_TYPES = ("per_channel", "mv_diag", "multivariate")
# How the logits layer in front of the head starts: "symmetry_breaking" (the default for new
# models) or "zeros" (big_vision's `LogitsDense`, zero kernel and bias). With zeros, the K
# components are identical at step 0, get identical gradients and stay identical under
# deterministic training: both bundled GIVT presets trained that way ended with K
# bit-identical components, i.e. one Gaussian.
HEAD_INITS = ("symmetry_breaking", "zeros")
# Kernel stddev of the symmetry-breaking init (keras-hub's dense default): with LayerNorm'd
# inputs of width E the initial logits have stddev ~ 0.02·√E (0.23 at E = 128).
HEAD_KERNEL_STDDEV = 0.02


def square_plus(x, fix_square_plus=True):
    """big_vision's squareplus.

    With `fix_square_plus=True`: `(x + sqrt(x² + 4)) / 2` (always > 0).
    With `False` (big_vision's default and its original bug):
    `x + sqrt(x² + 4) / 2`, which goes negative below x = −2/√3.
    """
    return formulas.square_plus(ops.convert_to_tensor(x), fix_square_plus, ops)


def initial_logits_bias(out_dim, num_mixtures, per_channel_mixtures=True, multivariate=False):
    """The (M,) bias of the symmetry-breaking head init, as a float32 numpy array.

    Component k's location starts at the standard-normal quantile
    Φ⁻¹((k + ½) / K) on every channel (K = 4: ±0.32, ±1.15), so the components
    cover the bulk of a unit-scale latent from step 0; mixture logits and raw
    scales start at 0, as with zeros. The entries are placed with the layout
    function the decoding uses (`formulas.split_logits` on the index vector), so
    the two cannot disagree. K = 1 and the multivariate head get a zero bias.
    """
    kind = head_type(per_channel_mixtures, multivariate)
    M = num_logits(out_dim, num_mixtures, per_channel_mixtures, multivariate)
    bias = np.zeros((M,), "float32")
    if kind == "multivariate" or num_mixtures == 1:
        return bias
    K = num_mixtures
    offsets = np.array([NormalDist().inv_cdf((k + 0.5) / K) for k in range(K)], "float32")
    _, loc_index, _ = formulas.split_logits(np.arange(M), kind, out_dim, K, np)
    # loc_index: (D, K) per_channel, (K, D) mv_diag.
    loc_offsets = offsets[None, :] if kind == "per_channel" else offsets[:, None]
    bias[loc_index] = np.broadcast_to(loc_offsets, loc_index.shape)
    return bias


def head_initializers(init, out_dim, num_mixtures, per_channel_mixtures=True, multivariate=False):
    """`(kernel_initializer, bias_initializer)` of the logits layer for `init` in
    `HEAD_INITS` (see there)."""
    if init == "zeros":
        return "zeros", "zeros"
    bias = initial_logits_bias(out_dim, num_mixtures, per_channel_mixtures, multivariate)
    return (
        keras.initializers.TruncatedNormal(stddev=HEAD_KERNEL_STDDEV),
        keras.initializers.Constant(bias.tolist()),
    )


def head_type(per_channel_mixtures=True, multivariate=False):
    if multivariate:
        return "multivariate"
    return "per_channel" if per_channel_mixtures else "mv_diag"


def num_logits(out_dim, num_mixtures, per_channel_mixtures=True, multivariate=False):
    """The width M of the logits for a head configuration."""
    kind = head_type(per_channel_mixtures, multivariate)
    if kind == "multivariate":
        return out_dim * out_dim + out_dim
    if kind == "per_channel":
        return 3 * num_mixtures * out_dim
    return num_mixtures + 2 * num_mixtures * out_dim


@keras.saving.register_keras_serializable(package="keras_givt")
class GaussianMixtureHead(keras.layers.Layer):
    """Turns GIVT logits into a Gaussian-mixture distribution per token.

    The layer has no weights: it is the parameter decoding that follows
    big_vision's `LogitsDense`. `call(logits)` returns a dict of float32
    parameters; `distribution(logits, ...)` returns the distribution object
    (TFP on jax/tensorflow when available, else `keras_givt`'s own
    `keras.ops` implementation with the same methods and numbers).

    Args:
        out_dim: int. D, the token (codeword) dimension.
        num_mixtures: int. K, mixture components (1 for `multivariate`).
        per_channel_mixtures: bool. One mixture per channel (True) or one
            diagonal mixture over the whole token (False).
        multivariate: bool. A single full-covariance normal.
        fix_square_plus: bool. Use the correct squareplus (see
            `square_plus`).
        scale_tol: float. Lower clamp of the scales.

    Example:
    ```python
    head = keras_givt.mixture.GaussianMixtureHead(out_dim=4, num_mixtures=3)
    logits = np.random.randn(2, 16, head.num_logits).astype("float32")
    pdf = head.distribution(logits, temperature_scales=0.9)
    nll = -pdf.log_prob(np.zeros((2, 16, 4), "float32"))  # (2, 16, 4)
    ```
    """

    def __init__(
        self,
        out_dim,
        num_mixtures=4,
        per_channel_mixtures=True,
        multivariate=False,
        fix_square_plus=False,
        scale_tol=1e-6,
        **kwargs,
    ):
        # Numeric arguments: finite, in range, numpy scalars accepted.
        out_dim = validation.check_positive_int("out_dim", out_dim)
        num_mixtures = validation.check_positive_int("num_mixtures", num_mixtures)
        scale_tol = validation.check_float("scale_tol", scale_tol, 0.0, min_inclusive=False)
        super().__init__(**kwargs)
        check_positive_int("out_dim", out_dim)
        check_positive_int("num_mixtures", num_mixtures)
        if multivariate and num_mixtures != 1:
            raise ValueError(
                "`multivariate=True` supports only `num_mixtures=1`; "
                f"received num_mixtures={num_mixtures}."
            )
        self.out_dim = int(out_dim)
        self.num_mixtures = int(num_mixtures)
        self.per_channel_mixtures = bool(per_channel_mixtures)
        self.multivariate = bool(multivariate)
        self.fix_square_plus = bool(fix_square_plus)
        self.scale_tol = float(scale_tol)
        self.head_type = head_type(self.per_channel_mixtures, self.multivariate)
        self.num_logits = num_logits(
            self.out_dim,
            self.num_mixtures,
            self.per_channel_mixtures,
            self.multivariate,
        )
        self.built = True  # No weights.

    def call(self, logits, temperature_scales=None, temperature_probs=None):
        return self.mixture_params(logits, temperature_scales, temperature_probs)

    def mixture_params(self, logits, temperature_scales=None, temperature_probs=None):
        """Decodes `logits (..., M)` into a dict of float32 tensors.

        Keys: `head_type` (str), `loc`, and
        - per_channel: `mixture_logits (..., D, K)`, `loc`, `scale` (..., D, K)
        - mv_diag: `mixture_logits (..., K)`, `loc`, `scale_diag` (..., K, D)
        - multivariate: `loc (..., D)`, `scale_tri (..., D, D)` (lower).
        `mixture_logits` are the (temperature-scaled) unnormalised logits.
        """
        logits = ops.cast(logits, "float32")
        if logits.shape[-1] is not None and logits.shape[-1] != self.num_logits:
            raise ValueError(
                f"`logits` must have {self.num_logits} entries on the last "
                f"axis for this head; received shape {tuple(logits.shape)}."
            )
        D, K = self.out_dim, self.num_mixtures
        lead = tuple(ops.shape(logits)[:-1])
        if self.head_type == "multivariate":
            scales = formulas.square_plus(logits[..., : D * D], self.fix_square_plus, ops)
            loc = logits[..., D * D :]
            scales = ops.reshape(scales, lead + (D, D))
            eye = ops.eye(D, dtype="float32")
            scales = ops.maximum(scales, eye * self.scale_tol)
            if temperature_scales is not None:
                scales = scales * _as_f32(temperature_scales)
            scales = ops.tril(scales)
            return {"head_type": self.head_type, "loc": loc, "scale_tri": scales}
        mix, loc, raw_scale = formulas.split_logits(logits, self.head_type, D, K, ops)
        scale = formulas.mixture_scale(raw_scale, self.fix_square_plus, self.scale_tol, ops)
        key = "scale_diag" if self.head_type == "mv_diag" else "scale"
        if temperature_scales is not None:
            scale = scale * _as_f32(temperature_scales)
        if temperature_probs is not None:
            mix = mix * _as_f32(temperature_probs)
        return {
            "head_type": self.head_type,
            "mixture_logits": mix,
            "loc": loc,
            key: scale,
        }

    def distribution(
        self,
        logits,
        temperature_scales=None,
        temperature_probs=None,
        use_tfp=None,
    ):
        """The per-token distribution for `logits`.

        Args:
            logits: (..., M) tensor.
            temperature_scales: float or tensor multiplying the scales.
            temperature_probs: float or tensor multiplying mixture logits.
            use_tfp: `None` (TFP on jax/tensorflow when installed, else the
                `keras.ops` implementation), `True` or `False`.
        """
        params = self.mixture_params(logits, temperature_scales, temperature_probs)
        return distributions.make_distribution(params, use_tfp=use_tfp)

    def log_prob(self, logits, x, temperature_scales=None, temperature_probs=None):
        """float32 log-density of `x (..., D)`: (..., D) per-channel, else (...)."""
        params = self.mixture_params(logits, temperature_scales, temperature_probs)
        return distributions.make_distribution(params, use_tfp=False).log_prob(x)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "out_dim": self.out_dim,
                "num_mixtures": self.num_mixtures,
                "per_channel_mixtures": self.per_channel_mixtures,
                "multivariate": self.multivariate,
                "fix_square_plus": self.fix_square_plus,
                "scale_tol": self.scale_tol,
            }
        )
        return config


def _as_f32(x):
    return ops.cast(x, "float32")
