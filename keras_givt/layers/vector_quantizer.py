"""Vector quantizer of MaskGIT's VQGAN (`maskgit.nets.vqgan_tokenizer.VectorQuantizer`).

Dimension letters: B batch, N = product of the leading (spatial) dims,
D code dim, K codebook size.

- `indices = argmin_k ‖x − e_k‖²`, with the distance computed as MaskGIT does:
  ‖x‖² − 2·x·eᵀ + ‖e‖².
- Training output is straight-through: `x + stop_gradient(e_idx − x)`, so
  the encoder gets the decoder's gradient unchanged.
- Losses (`quantizer_losses`), as MaskGIT:
  commitment = `commitment_cost · mean((sg(e) − x)²)`,
  codebook   = `mean((e − sg(x))²)`,
  entropy    = `entropy_loss_ratio · (H_sample − H_avg)` of the softmax of
  `−distances / entropy_temperature` (type "softmax"; "argmax" uses hard
  one-hots with a straight-through softmax gradient), where H_sample is the
  mean per-position entropy (log-softmax of logits + 1e-5, as MaskGIT) and
  H_avg the entropy of the batch-averaged assignment (log(p + 1e-5)).
  Minimising it makes each assignment confident and the codebook usage
  uniform.
- Dead-code restart (optional, `dead_code_threshold > 0`): training updates
  a non-trainable EMA of each code's usage frequency (decay `usage_decay`)
  and keeps K random encoder outputs of the latest batch;
  `restart_dead_codes()` (run eagerly, e.g. by the `DeadCodeRestart`
  callback) moves every code whose EMA usage is below
  `dead_code_threshold / K` onto one of those outputs.
"""

import keras
from keras import ops

from keras_givt.layers.output_spec import output_spec_from_shapes
from keras_givt.utils.validation import check_choice
from keras_givt.utils import validation


def squared_euclidean_distance(a, b):
    """`a (N, D)`, `b (K, D)` -> `(N, K)`, as MaskGIT (‖a‖² − 2ab + ‖b‖²)."""
    b2 = ops.sum(ops.square(b), axis=-1)[None, :]  # (1, K)
    a2 = ops.sum(ops.square(a), axis=-1, keepdims=True)  # (N, 1)
    return a2 - 2.0 * ops.matmul(a, ops.transpose(b)) + b2


def entropy_loss(affinity, loss_type="softmax", temperature=1.0):
    """MaskGIT's `losses.entropy_loss` of `affinity (..., K)` (scalar)."""
    k = ops.shape(affinity)[-1]
    flat = ops.reshape(ops.cast(affinity, "float32"), (-1, k)) / temperature  # (N, K)
    probs = ops.softmax(flat, axis=-1)
    log_probs = ops.log_softmax(flat + 1e-5, axis=-1)
    if loss_type == "softmax":
        target = probs
    elif loss_type == "argmax":
        onehot = ops.one_hot(ops.argmax(flat, axis=-1), k, dtype="float32")
        target = probs - ops.stop_gradient(probs - onehot)
    else:
        raise ValueError(
            f"`entropy_loss_type` must be 'softmax' or 'argmax'; received {loss_type!r}."
        )
    avg = ops.mean(target, axis=0)
    avg_entropy = -ops.sum(avg * ops.log(avg + 1e-5))
    sample_entropy = -ops.mean(ops.sum(target * log_probs, axis=-1))
    return sample_entropy - avg_entropy


def codebook_statistics(indices, codebook_size):
    """`(perplexity, usage)` of a batch of code `indices` (any shape).

    perplexity = exp(entropy of the empirical code distribution) (1 … K);
    usage = fraction of the K codes used at least once in the batch.
    """
    flat = ops.reshape(ops.cast(indices, "int32"), (-1,))
    counts = ops.sum(ops.one_hot(flat, codebook_size, dtype="float32"), axis=0)  # (K,)
    p = counts / ops.maximum(ops.sum(counts), 1.0)
    perplexity = ops.exp(-ops.sum(p * ops.log(p + 1e-10)))
    usage = ops.mean(ops.cast(counts > 0, "float32"))
    return perplexity, usage


@keras.saving.register_keras_serializable(package="keras_givt")
class VectorQuantizer(keras.layers.Layer):
    """Nearest-codebook-entry quantizer with MaskGIT's losses.

    `call(x, training)` returns `(quantized (..., D), indices (...))`;
    with `training=True` it adds the quantizer loss (`add_loss`) and returns
    straight-through outputs.

    Args:
        codebook_size: int. K.
        commitment_cost: float. Weight of the commitment (encoder) term.
        entropy_loss_ratio: float. Weight of the entropy loss (0 = off).
        entropy_loss_type: "softmax" (MaskGIT default) or "argmax".
        entropy_temperature: float. Temperature of the distance softmax.
        dead_code_threshold: float. 0 = no restart; else codes whose EMA
            usage falls below `dead_code_threshold / K` are restarted by
            `restart_dead_codes()`.
        usage_decay: float. EMA decay of the usage statistics.

    Example:
    ```python
    vq = keras_givt.layers.VectorQuantizer(512, entropy_loss_ratio=0.1)
    quantized, indices = vq(features)  # features (B, h, w, D)
    ```
    """

    def __init__(
        self,
        codebook_size,
        commitment_cost=0.25,
        entropy_loss_ratio=0.0,
        entropy_loss_type="softmax",
        entropy_temperature=0.01,
        dead_code_threshold=0.0,
        usage_decay=0.99,
        **kwargs,
    ):
        # Numeric arguments: finite, in range, numpy scalars accepted.
        codebook_size = validation.check_positive_int("codebook_size", codebook_size)
        commitment_cost = validation.check_float("commitment_cost", commitment_cost, 0.0)
        entropy_loss_ratio = validation.check_float("entropy_loss_ratio", entropy_loss_ratio, 0.0)
        entropy_temperature = validation.check_float(
            "entropy_temperature", entropy_temperature, 0.0, min_inclusive=False
        )
        dead_code_threshold = validation.check_float(
            "dead_code_threshold", dead_code_threshold, 0.0
        )
        usage_decay = validation.check_float("usage_decay", usage_decay, 0.0, 1.0)
        super().__init__(**kwargs)
        check_choice("entropy_loss_type", entropy_loss_type, ("softmax", "argmax"))
        self.codebook_size = codebook_size
        self.commitment_cost = commitment_cost
        self.entropy_loss_ratio = entropy_loss_ratio
        self.entropy_loss_type = entropy_loss_type
        self.entropy_temperature = entropy_temperature
        self.dead_code_threshold = dead_code_threshold
        self.usage_decay = usage_decay

    def build(self, input_shape):
        dim = input_shape[-1]
        # MaskGIT: variance_scaling(1, "fan_in", "uniform") over (K, D).
        self.codebook = self.add_weight(
            name="codebook",
            shape=(self.codebook_size, dim),
            initializer=keras.initializers.VarianceScaling(1.0, "fan_in", "uniform"),
        )
        if self.dead_code_threshold > 0:
            self.usage = self.add_weight(
                name="usage",
                shape=(self.codebook_size,),
                initializer=keras.initializers.Constant(1.0 / self.codebook_size),
                trainable=False,
            )
            self.recent_inputs = self.add_weight(
                name="recent_inputs",
                shape=(self.codebook_size, dim),
                initializer="zeros",
                trainable=False,
            )
            self.seed_generator = keras.random.SeedGenerator(0, name="restart_seed")
        self.built = True

    @property
    def embedding_dim(self):
        return int(self.codebook.shape[-1])

    def distances(self, x):
        """Squared distances `(..., K)` of `x (..., D)` to every code."""
        x = ops.cast(x, "float32")
        d = x.shape[-1]
        flat = ops.reshape(x, (-1, d))
        dist = squared_euclidean_distance(flat, ops.cast(self.codebook, "float32"))
        return ops.reshape(dist, tuple(ops.shape(x)[:-1]) + (self.codebook_size,))

    def get_indices(self, x):
        """Nearest code indices `(...)` int32 of `x (..., D)`."""
        return ops.cast(ops.argmin(self.distances(x), axis=-1), "int32")

    def decode_ids(self, indices):
        """Codebook rows `(..., D)` of `indices (...)` (MaskGIT's `decode_ids`)."""
        return ops.cast(
            ops.take(self.codebook, ops.cast(indices, "int32"), axis=0), self.compute_dtype
        )

    def quantizer_losses(self, x, quantized=None, distances=None):
        """MaskGIT's training losses: dict with `quantizer_loss` (their sum),
        `e_latent_loss` (commitment, weighted), `q_latent_loss` (codebook) and
        `entropy_loss` (weighted)."""
        x = ops.cast(x, "float32")
        if distances is None:
            distances = self.distances(x)
        if quantized is None:
            quantized = self.decode_ids(ops.argmin(distances, axis=-1))
        quantized = ops.cast(quantized, "float32")
        e_latent = ops.mean(ops.square(ops.stop_gradient(quantized) - x)) * self.commitment_cost
        q_latent = ops.mean(ops.square(quantized - ops.stop_gradient(x)))
        if self.entropy_loss_ratio:
            ent = (
                entropy_loss(-distances, self.entropy_loss_type, self.entropy_temperature)
                * self.entropy_loss_ratio
            )
        else:
            ent = ops.zeros((), "float32")
        return {
            "quantizer_loss": e_latent + q_latent + ent,
            "e_latent_loss": e_latent,
            "q_latent_loss": q_latent,
            "entropy_loss": ent,
        }

    def call(self, x, training=False):
        # x: (..., D)
        distances = self.distances(x)  # (..., K)
        indices = ops.cast(ops.argmin(distances, axis=-1), "int32")  # (...)
        quantized = self.decode_ids(indices)  # (..., D)
        if training:
            losses = self.quantizer_losses(x, quantized, distances)
            self.add_loss(losses["quantizer_loss"])
            if self.dead_code_threshold > 0:
                self._update_usage(x, indices)
            xc = ops.cast(x, quantized.dtype)
            quantized = xc + ops.stop_gradient(quantized - xc)
        return quantized, indices

    def _update_usage(self, x, indices):
        flat_idx = ops.reshape(indices, (-1,))
        freq = ops.mean(ops.one_hot(flat_idx, self.codebook_size, dtype="float32"), axis=0)
        decay = self.usage_decay
        self.usage.assign(decay * self.usage + (1.0 - decay) * freq)
        d = x.shape[-1]
        flat = ops.stop_gradient(ops.reshape(ops.cast(x, "float32"), (-1, d)))
        n = ops.shape(flat)[0]
        pick = keras.random.randint(
            (self.codebook_size,), 0, n, seed=self.seed_generator, dtype="int32"
        )
        self.recent_inputs.assign(ops.take(flat, pick, axis=0))

    def restart_dead_codes(self):
        """Moves dead codes onto recent encoder outputs (eager); returns how many."""
        if self.dead_code_threshold <= 0:
            raise ValueError("This quantizer was built with dead_code_threshold=0 (no restart).")
        dead = self.usage < (self.dead_code_threshold / self.codebook_size)  # (K,)
        num = int(ops.convert_to_numpy(ops.sum(ops.cast(dead, "int32"))))
        if num:
            self.codebook.assign(
                ops.where(
                    dead[:, None], ops.cast(self.recent_inputs, self.codebook.dtype), self.codebook
                )
            )
            self.usage.assign(ops.where(dead, 1.0 / self.codebook_size, self.usage))
        return num

    def compute_output_shape(self, input_shape):
        return tuple(input_shape), tuple(input_shape[:-1])

    def compute_output_spec(self, *args, **kwargs):
        # NumPy inputs too, as keras.layers.Embedding (layers/output_spec.py).
        return output_spec_from_shapes(self, args, kwargs, dtypes=(self.compute_dtype, "int32"))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "codebook_size": self.codebook_size,
                "commitment_cost": self.commitment_cost,
                "entropy_loss_ratio": self.entropy_loss_ratio,
                "entropy_loss_type": self.entropy_loss_type,
                "entropy_temperature": self.entropy_temperature,
                "dead_code_threshold": self.dead_code_threshold,
                "usage_decay": self.usage_decay,
            }
        )
        return config
