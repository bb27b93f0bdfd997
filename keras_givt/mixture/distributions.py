"""Gaussian-mixture distributions written with `keras.ops`, and TFP twins.

Dimension letters: D token dim, K mixture components; `...` is any batch
shape (usually B, L).

TFP has no torch substrate, so `keras_givt` carries its own
`MixtureSameFamily`-like classes with the methods the project needs
(`log_prob`, `sample`, `mean`, mixture/component parameters). On jax and
tensorflow `make_distribution` returns the equivalent TFP object from the
substrate that matches the backend; both are built from one parameter dict
(`GaussianMixtureHead.mixture_params`), and tests check they agree.
All maths is float32.
"""

import keras
from keras import ops

from keras_givt.mixture import formulas
from keras_givt.samplers import random_utils


def _f32(x):
    return ops.cast(x, "float32")


def normal_log_prob(x, loc, scale):
    """Elementwise log N(x; loc, scale), float32."""
    return formulas.normal_log_prob(_f32(x), _f32(loc), _f32(scale), ops)


class _Distribution:
    """Common helpers."""

    def prob(self, x):
        return ops.exp(self.log_prob(x))


class _Mixture(_Distribution):
    """Mixture weights from the (unnormalised) logits on the last axis."""

    @property
    def mixture_logits(self):
        """Normalised mixture log-probabilities (..., K)."""
        return ops.log_softmax(self.logits, axis=-1)

    @property
    def mixture_probs(self):
        return ops.softmax(self.logits, axis=-1)


class NormalMixture(_Mixture):
    """Per-channel mixture: every channel is an independent 1-D mixture.

    Parameters are (..., D, K); `log_prob(x (..., D))` is (..., D).
    Equivalent TFP: `MixtureSameFamily(Categorical(logits), Normal(loc, scale))`.
    """

    def __init__(self, mixture_logits, loc, scale):
        self.logits = _f32(mixture_logits)
        self.loc = _f32(loc)
        self.scale = _f32(scale)

    def component_log_prob(self, x):
        return normal_log_prob(ops.expand_dims(x, -1), self.loc, self.scale)

    def log_prob(self, x):
        lp = self.component_log_prob(x) + self.mixture_logits  # (..., D, K)
        return ops.logsumexp(lp, axis=-1)

    def mean(self):
        return ops.sum(self.mixture_probs * self.loc, axis=-1)

    def sample(self, seed=None):
        """One sample per position, (..., D)."""
        idx = random_utils.gumbel_argmax(self.logits, seed, dtype="float32")  # (..., D)
        onehot = ops.one_hot(idx, ops.shape(self.logits)[-1], dtype="float32")
        loc = ops.sum(onehot * self.loc, axis=-1)
        scale = ops.sum(onehot * self.scale, axis=-1)
        eps = keras.random.normal(ops.shape(loc), dtype="float32", seed=seed)
        return loc + scale * eps


class DiagonalNormalMixture(_Mixture):
    """MV-diagonal mixture: K diagonal normals over the whole D-dim token.

    `mixture_logits (..., K)`, `loc`/`scale_diag (..., K, D)`;
    `log_prob(x (..., D))` is (...). Equivalent TFP:
    `MixtureSameFamily(Categorical(logits), MultivariateNormalDiag(loc, scale_diag))`.
    """

    def __init__(self, mixture_logits, loc, scale_diag):
        self.logits = _f32(mixture_logits)
        self.loc = _f32(loc)
        self.scale_diag = _f32(scale_diag)

    def component_log_prob(self, x):
        """(..., K) log-density of `x (..., D)` under every component."""
        lp = normal_log_prob(ops.expand_dims(x, -2), self.loc, self.scale_diag)
        return ops.sum(lp, axis=-1)

    def log_prob(self, x):
        return ops.logsumexp(self.component_log_prob(x) + self.mixture_logits, axis=-1)

    def mean(self):
        return ops.sum(ops.expand_dims(self.mixture_probs, -1) * self.loc, axis=-2)

    def select_component(self, index):
        """(loc, scale_diag) of component `index (...)`, each (..., D)."""
        onehot = ops.one_hot(index, ops.shape(self.logits)[-1], dtype="float32")
        onehot = ops.expand_dims(onehot, -1)
        return (
            ops.sum(onehot * self.loc, axis=-2),
            ops.sum(onehot * self.scale_diag, axis=-2),
        )

    def sample_component(self, seed=None):
        return random_utils.gumbel_argmax(self.logits, seed, dtype="float32")

    def sample(self, seed=None):
        idx = self.sample_component(seed)
        loc, scale = self.select_component(idx)
        eps = keras.random.normal(ops.shape(loc), dtype="float32", seed=seed)
        return loc + scale * eps


class MultivariateNormalTriL(_Distribution):
    """Full-covariance normal with lower-triangular scale `scale_tri (..., D, D)`."""

    def __init__(self, loc, scale_tri):
        self.loc = _f32(loc)
        self.scale_tri = ops.tril(_f32(scale_tri))

    def log_prob(self, x):
        d = ops.shape(self.loc)[-1]
        diff = ops.expand_dims(_f32(x) - self.loc, -1)  # (..., D, 1)
        tri = self.scale_tri
        # Broadcast the triangle to the batch shape of x.
        tri = ops.broadcast_to(tri, tuple(ops.shape(diff)[:-1]) + (d,))
        z = ops.solve_triangular(tri, diff, lower=True)[..., 0]
        diag = ops.diagonal(tri, axis1=-2, axis2=-1)
        return (
            -0.5 * ops.sum(ops.square(z), axis=-1)
            - ops.sum(ops.log(ops.abs(diag)), axis=-1)
            - d * formulas.HALF_LOG_2PI
        )

    def mean(self):
        return self.loc

    def sample(self, seed=None):
        eps = keras.random.normal(ops.shape(self.loc), dtype="float32", seed=seed)
        return self.loc + ops.einsum("...ij,...j->...i", self.scale_tri, eps)


def make_keras_distribution(params):
    """The `keras.ops` distribution for a `mixture_params` dict."""
    kind = params["head_type"]
    if kind == "per_channel":
        return NormalMixture(params["mixture_logits"], params["loc"], params["scale"])
    if kind == "mv_diag":
        return DiagonalNormalMixture(params["mixture_logits"], params["loc"], params["scale_diag"])
    if kind == "multivariate":
        return MultivariateNormalTriL(params["loc"], params["scale_tri"])
    raise ValueError(f"Unknown head_type: {kind!r}")


def tfp_distributions():
    """The TFP `distributions` module for the current backend, or None."""
    backend = keras.config.backend()
    try:
        if backend == "jax":
            from tensorflow_probability.substrates import jax as tfp
        elif backend == "tensorflow":
            import tensorflow_probability as tfp
        else:
            return None
    except ImportError:
        return None
    return tfp.distributions


def make_tfp_distribution(params):
    """The TFP twin of `make_keras_distribution` (jax / tensorflow only)."""
    tfd = tfp_distributions()
    if tfd is None:
        raise RuntimeError(
            "TensorFlow Probability has no substrate for the "
            f"{keras.config.backend()!r} backend (or is not installed); use "
            "`use_tfp=False`."
        )
    kind = params["head_type"]
    if kind == "per_channel":
        return tfd.MixtureSameFamily(
            tfd.Categorical(logits=params["mixture_logits"]),
            tfd.Normal(params["loc"], params["scale"]),
        )
    if kind == "mv_diag":
        return tfd.MixtureSameFamily(
            tfd.Categorical(logits=params["mixture_logits"]),
            tfd.MultivariateNormalDiag(loc=params["loc"], scale_diag=params["scale_diag"]),
        )
    if kind == "multivariate":
        return tfd.MultivariateNormalTriL(loc=params["loc"], scale_tril=params["scale_tri"])
    raise ValueError(f"Unknown head_type: {kind!r}")


def make_distribution(params, use_tfp=None):
    """TFP on jax/tensorflow when available (or `use_tfp=True`), else keras.ops."""
    if use_tfp is None:
        use_tfp = tfp_distributions() is not None
    if use_tfp:
        return make_tfp_distribution(params)
    return make_keras_distribution(params)
