"""big_vision-style transformer pieces: LayerNorm, attention, pre-LN blocks.

Dimension letters: B batch, T query length, S key length, L cache length,
E embedding width, H heads, Dh = E / H head width, F MLP width.

Semantics follow big_vision's GIVT decoder (`givt.EncDecBlock`):
- pre-LN; the block LayerNorms have no bias; epsilon 1e-6; flax's fast
  variance E[x²] − E[x]².
- bias-free multi-head attention, q/k/v kernels (E, H, Dh), out (H, Dh, E),
  queries scaled by 1/√Dh, softmax in float32; causal or bidirectional.
- dropout on the attention weights and after the attention output; in the
  MLP only after the tanh-gelu.
- optional cross-attention (UViM): LayerNorm2 + bias-free attention to an
  encoded sequence between self-attention and MLP.
- a dense KV cache `(num_layers, 2, B, H, L, Dh)` (layer-major, heads
  before positions, so attention reads one layer's keys as a contiguous
  block without a copy or transpose), updated with `ops.slice_update`
  (the torch generation engine writes it in place).

`PreLNTransformerBlock` holds what the GIVT decoder block and the ViT
encoder block (`vit_encoder.py`) share: the attention and MLP sublayers
and their residual wiring, under each block's own layer names.
"""

import functools
import math

import keras
import numpy as np
from keras import ops

from keras_givt.layers.output_spec import OutputSpecFromShapes
from keras_givt.layers.remat import late_recompute_remat
from keras_givt.layers.remat import on_jax_cpu
from keras_givt.layers.rng_bit_dropout import RngBitDropout
from keras_givt.utils.tensor_utils import update_slice
from keras_givt.utils import validation


class _DrawnSeed(keras.random.SeedGenerator):
    """A seed drawn before a rematerialized block: `next()` returns it (no state)."""

    def __init__(self, seed):  # No state variable: nothing to track or advance.
        self._drawn = seed

    def next(self, ordered=True):
        return self._drawn


def _is_static(value):
    """A call argument that `rematerialized_call` keeps out of the recomputed
    function: None or a Python/numpy scalar flag."""
    return value is None or isinstance(value, (bool, int, float, str, np.bool_))


def lecun_normal(fan_in):
    """flax's `lecun_normal` with the fan-in of the contracted axis."""
    # Truncated normal with the stddev corrected for truncation at 2σ.
    return keras.initializers.TruncatedNormal(stddev=math.sqrt(1.0 / fan_in) / 0.87962566103423978)


def is_plain_dense(layer):
    """Whether a Dense/EinsumDense `layer` is a plain `x @ kernel (+ bias)`:
    no LoRA, not quantized.

    Only then may code apply its kernel directly (`FlatDense`,
    `GIVTAttention`'s projections, the torch generation engine); LoRA and
    quantized layers go through their own `call`.
    """
    return not getattr(layer, "lora_enabled", False) and layer.quantization_mode is None


def flat_matmul(x, kernel):
    """`x (..., I) @ kernel (I, O)` as one 2-D matmul.

    XLA's CPU backward of a rank-3 `dot_general` is ~1.7x slower than the
    same product on flattened rows, so every projection here flattens.
    """
    lead = ops.shape(x)[:-1]
    y = ops.matmul(ops.reshape(x, (-1, ops.shape(x)[-1])), kernel)
    return ops.reshape(y, tuple(lead) + (ops.shape(kernel)[-1],))


@keras.saving.register_keras_serializable(package="keras_givt")
class FlatDense(OutputSpecFromShapes, keras.layers.Dense):
    """`keras.layers.Dense` computing its product on flattened rows (faster
    gradients on CPU); LoRA and quantized modes use Dense's own path. Its
    output spec comes from shapes (Dense's own needs tensors)."""

    def call(self, inputs, training=None):
        if not is_plain_dense(self):
            return super().call(inputs, training=training)
        y = flat_matmul(inputs, ops.cast(self.kernel, self.compute_dtype))
        if self.use_bias:
            y = y + ops.cast(self.bias, self.compute_dtype)
        if self.activation is not None:
            y = self.activation(y)
        return y


@keras.saving.register_keras_serializable(package="keras_givt")
class FlaxLayerNorm(OutputSpecFromShapes, keras.layers.Layer):
    """LayerNorm with flax's numerics (float32, fast variance, eps 1e-6).

    Args:
        epsilon: float. Added to the variance.
        use_bias: bool. Whether to add a learned bias.
        use_scale: bool. Whether to multiply by a learned scale.
    """

    def __init__(self, epsilon=1e-6, use_bias=True, use_scale=True, **kwargs):
        # Numeric arguments: finite, in range, numpy scalars accepted.
        epsilon = validation.check_float("epsilon", epsilon, 0.0, min_inclusive=False)
        super().__init__(**kwargs)
        self.epsilon = epsilon
        self.use_bias = use_bias
        self.use_scale = use_scale

    def build(self, input_shape):
        dim = input_shape[-1]
        if self.use_scale:
            self.scale = self.add_weight(name="scale", shape=(dim,), initializer="ones")
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(dim,), initializer="zeros")
        self.built = True

    def call(self, x):
        x32 = ops.cast(x, "float32")
        mean = ops.mean(x32, axis=-1, keepdims=True)
        mean2 = ops.mean(ops.square(x32), axis=-1, keepdims=True)
        var = ops.maximum(mean2 - ops.square(mean), 0.0)
        mul = ops.rsqrt(var + self.epsilon)
        if self.use_scale:
            mul = mul * ops.cast(self.scale, "float32")
        y = (x32 - mean) * mul
        if self.use_bias:
            y = y + ops.cast(self.bias, "float32")
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {"epsilon": self.epsilon, "use_bias": self.use_bias, "use_scale": self.use_scale}
        )
        return config


@keras.saving.register_keras_serializable(package="keras_givt")
class GIVTAttention(OutputSpecFromShapes, keras.layers.Layer):
    """Multi-head dot-product attention as flax's `nn.MultiHeadDotProductAttention`.

    Args:
        num_heads: int. H.
        hidden_dim: int. E (must be divisible by H).
        dropout_rate: float. Dropout on the attention weights.
        use_bias: bool. Biases on q/k/v/out (False in GIVT, True in ViT).
    """

    def __init__(self, num_heads, hidden_dim, dropout_rate=0.0, use_bias=False, **kwargs):
        # Numeric arguments: finite, in range, numpy scalars accepted.
        num_heads = validation.check_positive_int("num_heads", num_heads)
        hidden_dim = validation.check_positive_int("hidden_dim", hidden_dim)
        dropout_rate = validation.check_rate("dropout_rate", dropout_rate)
        super().__init__(**kwargs)
        if hidden_dim % num_heads:
            raise ValueError(
                f"`hidden_dim` ({hidden_dim}) must be divisible by `num_heads` ({num_heads})."
            )
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.dropout_rate = dropout_rate
        self.use_bias = use_bias
        self.head_dim = hidden_dim // num_heads
        H, Dh, E = num_heads, self.head_dim, hidden_dim
        qkv_bias = "hd" if use_bias else None
        # === Layers ===
        # One initializer each: a Keras initializer without a seed draws the
        # same values at every call, so a shared one made q = k = v at init.
        self.query, self.key, self.value = (
            keras.layers.EinsumDense(
                "bte,ehd->bthd",
                (None, H, Dh),
                bias_axes=qkv_bias,
                kernel_initializer=lecun_normal(E),
                dtype=self.dtype_policy,
                name=name,
            )
            for name in ("query", "key", "value")
        )
        self.out = keras.layers.EinsumDense(
            "bthd,hde->bte",
            (None, E),
            bias_axes="e" if use_bias else None,
            kernel_initializer=lecun_normal(E),
            dtype=self.dtype_policy,
            name="out",
        )
        self.attention_dropout = RngBitDropout(
            dropout_rate, dtype=self.dtype_policy, name="attention_dropout"
        )

    def build(self, x_shape, kv_shape=None):
        kv_shape = x_shape if kv_shape is None else kv_shape
        self.query.build(x_shape)
        self.key.build(kv_shape)
        self.value.build(kv_shape)
        self.out.build(tuple(x_shape[:-1]) + (self.num_heads, self.head_dim))
        self.built = True

    def _attend(self, q, k, v, attention_mask, training, kv_heads_first=False):
        # q (B, T, H, Dh) already scaled; k, v (B, S, H, Dh), or (B, H, S, Dh)
        # with `kv_heads_first` (the cache layout); mask (T, S).
        o = softmax_attention(
            q,
            k,
            v,
            self.attention_dropout,
            training,
            self.compute_dtype,
            attention_mask,
            kv_heads_first,
        )
        return self._output(o)  # (B, T, E)

    def _project(self, layer, x):
        """x (B, T, E) -> (B, T, H, Dh) with `layer`'s (E, H, Dh) kernel."""
        return self._project_together(x, (layer,))[0]

    def _project_together(self, x, layers):
        """x (B, T, E) -> one (B, T, H, Dh) per layer of `layers`, in one
        matmul with their kernels side by side where all are plain.

        A decoding step projects a few rows, and on XLA's CPU runtime a
        matmul that small costs about as much to dispatch as to compute: the
        cached path projects q, k and v in one (E, 3·H·Dh) product (AR at
        the reference size, jax: medians 0.95-1.38 s against 1.26-1.70 s
        for three products, AR + DB-CFG 1.81-2.27 against 2.11-3.19 s, four
        alternating runs each). The side-by-side kernel depends on the
        weights alone, so XLA builds it once, outside the decoding loop.
        """
        if not all(is_plain_dense(layer) for layer in layers):
            return tuple(layer(x) for layer in layers)

        def side_by_side(tensors):  # One layer's alone (torch's cat would copy it).
            return tensors[0] if len(tensors) == 1 else ops.concatenate(tensors, axis=-1)

        width = self.num_heads * self.head_dim
        dtype = self.compute_dtype
        kernels = [ops.reshape(ops.cast(layer.kernel, dtype), (-1, width)) for layer in layers]
        y = flat_matmul(x, side_by_side(kernels))  # (B, T, n·H·Dh)
        if self.use_bias:
            biases = [ops.reshape(ops.cast(layer.bias, dtype), (-1,)) for layer in layers]
            y = y + side_by_side(biases)
        lead = tuple(ops.shape(x)[:-1]) + (self.num_heads, self.head_dim)
        return tuple(
            ops.reshape(y[..., i * width : (i + 1) * width], lead) for i in range(len(layers))
        )

    def _output(self, o):
        """o (B, T, H, Dh) -> (B, T, E) with the (H, Dh, E) out kernel."""
        if not is_plain_dense(self.out):
            return self.out(o)
        lead = tuple(ops.shape(o)[:-2])
        kernel = ops.cast(self.out.kernel, self.compute_dtype)
        y = flat_matmul(
            ops.reshape(o, lead + (self.num_heads * self.head_dim,)),
            ops.reshape(kernel, (self.num_heads * self.head_dim, self.hidden_dim)),
        )
        if self.use_bias:
            y = y + ops.cast(self.out.bias, self.compute_dtype)
        return y

    def compute_output_shape(self, x_shape, kv_shape=None, attention_mask_shape=None):
        return tuple(x_shape[:-1]) + (self.hidden_dim,)

    def call(self, x, kv=None, attention_mask=None, is_causal=False, training=None):
        # Three products, not `_project_together`'s one: at a forward's row
        # counts XLA's CPU dot was no faster side by side (2,048 x 256 rows:
        # 8.9 against 7.5 ms forward; 2,050 x 1,024: 184 against 150 ms).
        kv = x if kv is None else kv
        q = self._project(self.query, x)
        k, v = self._project(self.key, kv), self._project(self.value, kv)
        if (
            not _keys_major()
            and attention_mask is None
            and not (training and self.dropout_rate > 0)
        ):
            # torch's fused attention (no attention-weight dropout to apply).
            o = ops.dot_product_attention(
                q, k, v, scale=1.0 / math.sqrt(self.head_dim), is_causal=is_causal
            )
            return self._output(o)
        if is_causal:
            attention_mask = causal_mask(ops.shape(x)[1])
        q = q * ops.cast(1.0 / math.sqrt(self.head_dim), self.compute_dtype)
        return self._attend(q, k, v, attention_mask, training)

    def call_with_cache(self, x, cache, cache_update_index, layer_index=None, training=None):
        """Self-attention of `x (B, T, E)` at positions `index..index+T-1`.

        `cache` holds keys and values, either of this layer `(2, B, H, L, Dh)`
        or of the whole stack `(N, 2, B, H, L, Dh)` with `layer_index` given
        (returned updated). Layer-major, heads before positions: one layer's
        keys are a contiguous `(B, H, L, Dh)` block that attention reads
        without a transpose (XLA's CPU backend still copies it out of the
        stack before the product: 558 of 1,988 ms of AR + DB-CFG op time at
        the reference size; per-layer buffers without the copy measured
        slower, `benchmarks/results/README.md`, sessions 17-18).
        Returns `(output (B, T, E), cache)`.
        """
        q, k_new, v_new = self._project_together(x, (self.query, self.key, self.value))
        q = q * ops.cast(1.0 / math.sqrt(self.head_dim), self.compute_dtype)
        k_new = ops.transpose(k_new, (0, 2, 1, 3))  # (B, H, T, Dh)
        v_new = ops.transpose(v_new, (0, 2, 1, 3))
        kv_new = ops.cast(ops.stack([k_new, v_new], axis=0), cache.dtype)  # (2, B, H, T, Dh)
        if layer_index is None:
            cache = update_slice(cache, [0, 0, 0, cache_update_index, 0], kv_new)
            layer_cache = cache
        else:
            start = [layer_index, 0, 0, 0, cache_update_index, 0]
            cache = update_slice(cache, start, ops.expand_dims(kv_new, 0))
            layer_cache = cache[layer_index]
        cache_len = ops.shape(layer_cache)[3]
        t = ops.shape(x)[1]
        q_pos = ops.arange(t) + cache_update_index
        mask = ops.expand_dims(ops.arange(cache_len), 0) <= ops.expand_dims(q_pos, 1)
        k = ops.cast(layer_cache[0], self.compute_dtype)
        v = ops.cast(layer_cache[1], self.compute_dtype)
        return self._attend(q, k, v, mask, training, kv_heads_first=True), cache

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "hidden_dim": self.hidden_dim,
                "dropout_rate": self.dropout_rate,
                "use_bias": self.use_bias,
            }
        )
        return config


def _keys_major():
    """Whether attention computes its logits keys-major, `(B, H, S, T)`.

    On the XLA backends (jax, tensorflow) the softmax's max reduction along
    the minor axis is slow on CPU: for (8, 4, 257, 257) logits it alone took
    3.5 ms against 0.3 ms for a sum, and `jax.nn.dot_product_attention`
    7.8-9.7 ms against 4.6 ms keys-major (the same numbers; its gradient
    24-25 ms against 12-15 ms). torch keeps queries-major logits and its
    fused attention kernel.
    """
    return keras.config.backend() != "torch"


def softmax_attention(q, k, v, dropout, training, dtype, attention_mask=None, kv_heads_first=False):
    """`softmax(q·kᵀ) v` with the softmax in float32 -> (B, T, H, Dh).

    q (B, T, H, Dh) already scaled; k, v (B, S, H, Dh), or (B, H, S, Dh) with
    `kv_heads_first`; `attention_mask` (T, S) bool (True = attend) or None;
    `dropout` a Dropout layer applied to the attention weights, which are
    cast to `dtype`. Keys-major on the XLA backends (see `_keys_major`).
    """
    kv = "bhsd" if kv_heads_first else "bshd"
    if _keys_major():
        # Logits (B, H, S, T): the softmax reduces across the minor axis.
        logits = ops.einsum(f"{kv},bthd->bhst", k, q)
        softmax_axis = 2
        if attention_mask is not None:
            attention_mask = ops.transpose(attention_mask)  # (S, T)
    else:
        logits = ops.einsum(f"bthd,{kv}->bhts", q, k)  # (B, H, T, S)
        softmax_axis = 3
    logits = ops.cast(logits, "float32")
    if attention_mask is not None:
        logits = ops.where(attention_mask, logits, ops.cast(-1e30, "float32"))
    weights = ops.cast(ops.softmax(logits, axis=softmax_axis), dtype)
    weights = dropout(weights, training=training)
    spec = "bhst" if softmax_axis == 2 else "bhts"
    return ops.einsum(f"{spec},{kv}->bthd", weights, v)


def check_block_arguments(hidden_dim, num_heads, mlp_dim, dropout_rate, layer_norm_epsilon=1e-6):
    """The checked `(hidden_dim, num_heads, mlp_dim, dropout_rate, layer_norm_epsilon)`.

    The hyperparameters of a pre-LN transformer block (and of the stacks
    built of them): finite, in range, numpy scalars accepted; a bad value
    raises a ValueError/TypeError naming it.
    """
    hidden_dim = validation.check_positive_int("hidden_dim", hidden_dim)
    num_heads = validation.check_positive_int("num_heads", num_heads)
    mlp_dim = validation.check_positive_int("mlp_dim", mlp_dim)
    dropout_rate = validation.check_rate("dropout_rate", dropout_rate)
    layer_norm_epsilon = validation.check_float(
        "layer_norm_epsilon", layer_norm_epsilon, 0.0, min_inclusive=False
    )
    return hidden_dim, num_heads, mlp_dim, dropout_rate, layer_norm_epsilon


def causal_mask(length):
    """(T, T) boolean lower-triangular mask."""
    i = ops.arange(length)
    return ops.expand_dims(i, 1) >= ops.expand_dims(i, 0)


class PreLNTransformerBlock(OutputSpecFromShapes, keras.layers.Layer):
    """Base of the pre-LN transformer blocks (`GIVTDecoderBlock`, `ViTEncoderBlock`).

    Residual sublayers `x + Dropout(Attention(LayerNorm(x)))`, then
    `x + MLP(LayerNorm(x))` with flax's `MlpBlock`:
    `mlp_dense_0 -> gelu (tanh) -> mlp_dropout -> mlp_dense_1`.

    Subclasses create their sublayers in `__init__` with
    `_attention_sublayers` and `_add_mlp_sublayers`, under their own
    attribute and layer names: variable paths, the `.weights.h5` layout (by
    attribute name) and checkpoint conversion depend on them.

    Args:
        hidden_dim: int. E.
        num_heads: int. H (divides E).
        mlp_dim: int. F.
        dropout_rate: float. Dropout after each sublayer's attention and in
            the MLP.
        layer_norm_epsilon: float.
    """

    def __init__(
        self, hidden_dim, num_heads, mlp_dim, dropout_rate=0.0, layer_norm_epsilon=1e-6, **kwargs
    ):
        hidden_dim, num_heads, mlp_dim, dropout_rate, layer_norm_epsilon = check_block_arguments(
            hidden_dim, num_heads, mlp_dim, dropout_rate, layer_norm_epsilon
        )
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.dropout_rate = dropout_rate
        self.layer_norm_epsilon = layer_norm_epsilon

    def _attention_sublayers(
        self, norm_name, attention_name, dropout_name, use_bias, attention_dropout_rate
    ):
        """`(LayerNorm, GIVTAttention, output Dropout)` of one attention sublayer.

        `use_bias` applies to the LayerNorm and to q/k/v/out alike;
        `attention_dropout_rate` is the dropout on the attention weights.
        """
        dtype = self.dtype_policy
        norm = FlaxLayerNorm(
            self.layer_norm_epsilon, use_bias=use_bias, dtype=dtype, name=norm_name
        )
        attention = GIVTAttention(
            self.num_heads,
            self.hidden_dim,
            attention_dropout_rate,
            use_bias=use_bias,
            dtype=dtype,
            name=attention_name,
        )
        dropout = RngBitDropout(self.dropout_rate, dtype=dtype, name=dropout_name)
        return norm, attention, dropout

    def _add_mlp_sublayers(self, norm_bias):
        """Sets `pre_mlp_norm`, `mlp_dense_0`, `mlp_dropout` and `mlp_dense_1`."""
        dtype = self.dtype_policy
        self.pre_mlp_norm = FlaxLayerNorm(
            self.layer_norm_epsilon, use_bias=norm_bias, dtype=dtype, name="pre_mlp_norm"
        )
        self.mlp_dense_0 = self._mlp_dense(self.mlp_dim, "mlp_dense_0")
        self.mlp_dropout = RngBitDropout(self.dropout_rate, dtype=dtype, name="mlp_dropout")
        self.mlp_dense_1 = self._mlp_dense(self.hidden_dim, "mlp_dense_1")

    def _mlp_dense(self, units, name):
        """A flax `MlpBlock` Dense: xavier-uniform kernel, N(0, 1e-6) bias."""
        return FlatDense(
            units,
            kernel_initializer="glorot_uniform",
            bias_initializer=keras.initializers.RandomNormal(stddev=1e-6),
            dtype=self.dtype_policy,
            name=name,
        )

    def _build_mlp(self, input_shape):
        self.pre_mlp_norm.build(input_shape)
        self.mlp_dense_0.build(input_shape)
        self.mlp_dense_1.build(tuple(input_shape[:-1]) + (self.mlp_dim,))

    @staticmethod
    def _attention_residual(x, norm, attention, dropout, training, **attention_kwargs):
        """`x + dropout(attention(norm(x)))`."""
        y = attention(norm(x), training=training, **attention_kwargs)
        return x + dropout(y, training=training)

    def _mlp(self, x, training):
        """`MLP(pre_mlp_norm(x))` (the residual is the caller's)."""
        z = self.mlp_dense_0(self.pre_mlp_norm(x))
        z = keras.activations.gelu(z, approximate=True)
        z = self.mlp_dropout(z, training=training)
        return self.mlp_dense_1(z)

    def rematerialized_call(self, layer_call, *args, **kwargs):
        """Keras' per-layer remat (a `keras.RematScope` naming this block),
        with what the recomputed function must not own passed around it.

        - Only tensors go through the recomputed function: `training` and a
          None `encoded` are bound outside (`jax.checkpoint` would trace a
          bool into an array that Dropout cannot branch on,
          `tf.recompute_grad` converts every argument to a tensor).
        - Dropout seeds are drawn outside, once per call, and passed in: a
          seed generator advanced inside the function would leak a tracer
          out of `jax.checkpoint`, and `tf.recompute_grad` would advance it
          again when it recomputes (other masks in the backward pass). Each
          generator is advanced exactly as without remat, so the masks, the
          loss and the gradients are the same. On torch, Keras' unseeded
          Dropout draws from torch's global generator, whose state
          `torch.utils.checkpoint` restores for the recomputation.
        """
        fixed = {i: a for i, a in enumerate(args) if _is_static(a)}
        fixed_kwargs = {k: v for k, v in kwargs.items() if _is_static(v)}
        dropouts = self._seeded_dropouts() if kwargs.get("training") else []
        num_args, num_seeds = len(args), len(dropouts)

        def tensor_call(*seeds_and_args, **tensor_kwargs):
            seeds, tensor_args = seeds_and_args[:num_seeds], iter(seeds_and_args[num_seeds:])
            full = [fixed[i] if i in fixed else next(tensor_args) for i in range(num_args)]
            generators = [d.seed_generator for d in dropouts]
            for d, seed in zip(dropouts, seeds):  # Untracked: restored below.
                object.__setattr__(d, "seed_generator", _DrawnSeed(seed))
            try:
                return layer_call(*full, **tensor_kwargs, **fixed_kwargs)
            finally:
                for d, generator in zip(dropouts, generators):
                    object.__setattr__(d, "seed_generator", generator)

        fn = super().rematerialized_call(tensor_call, *args, **kwargs)
        if fn is not tensor_call and on_jax_cpu():
            # Keras' `jax.checkpoint` keeps every activation on XLA's CPU
            # compiler (see `keras_givt/layers/remat.py`).
            fn = late_recompute_remat(tensor_call, self)

        def call(*call_args, **call_kwargs):
            seeds = [d.seed_generator.next() for d in dropouts]
            tensor_args = [a for i, a in enumerate(call_args) if i not in fixed]
            tensor_kwargs = {k: v for k, v in call_kwargs.items() if k not in fixed_kwargs}
            return fn(*seeds, *tensor_args, **tensor_kwargs)

        return call

    def _seeded_dropouts(self):
        """The Dropout sublayers that draw from a Keras seed generator when training."""
        if keras.config.backend() == "torch":
            return []  # Unseeded: torch's global generator (see `rematerialized_call`).
        return [
            layer
            for layer in self._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.Dropout) and layer.rate > 0
        ]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "num_heads": self.num_heads,
                "mlp_dim": self.mlp_dim,
                "dropout_rate": self.dropout_rate,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_givt")
class GIVTDecoderBlock(PreLNTransformerBlock):
    """One GIVT transformer block (big_vision `EncDecBlock`).

    Args:
        hidden_dim: int. E.
        num_heads: int. H.
        mlp_dim: int. F.
        dropout_rate: float. big_vision's `dec_dropout_rate`.
        causal: bool. Causal self-attention ('ar') or bidirectional ('masked').
        cross_attention: bool. Add LayerNorm2 + cross-attention to an encoded
            sequence (UViM's encoder-decoder GIVT).
        layer_norm_epsilon: float.

    Example:
    ```python
    block = GIVTDecoderBlock(hidden_dim=32, num_heads=2, mlp_dim=64, cross_attention=True)
    encoded = np.zeros((2, 8, 32), "float32")
    y = block(np.zeros((2, 16, 32), "float32"), encoded=encoded)  # (2, 16, 32)
    ```
    """

    def __init__(
        self,
        hidden_dim,
        num_heads,
        mlp_dim,
        dropout_rate=0.0,
        causal=True,
        cross_attention=False,
        layer_norm_epsilon=1e-6,
        **kwargs,
    ):
        super().__init__(hidden_dim, num_heads, mlp_dim, dropout_rate, layer_norm_epsilon, **kwargs)
        self.causal = causal
        self.cross_attention = cross_attention

        # === Layers ===
        # Bias-free LayerNorms and attention; dropout on the attention weights.
        self.pre_attention_norm, self.self_attention, self.attention_output_dropout = (
            self._attention_sublayers(
                "pre_attention_norm",
                "self_attention",
                "attention_output_dropout",
                use_bias=False,
                attention_dropout_rate=dropout_rate,
            )
        )
        if cross_attention:
            (
                self.pre_cross_attention_norm,
                self.cross_attention_layer,
                self.cross_attention_output_dropout,
            ) = self._attention_sublayers(
                "pre_cross_attention_norm",
                "cross_attention",
                "cross_attention_output_dropout",
                use_bias=False,
                attention_dropout_rate=dropout_rate,
            )
        self._add_mlp_sublayers(norm_bias=False)

    def build(self, x_shape, encoded_shape=None):
        input_shape = x_shape
        self.pre_attention_norm.build(input_shape)
        self.self_attention.build(input_shape)
        if self.cross_attention:
            if encoded_shape is None:
                encoded_shape = tuple(input_shape[:-1]) + (self.hidden_dim,)
            self.pre_cross_attention_norm.build(input_shape)
            self.cross_attention_layer.build(input_shape, encoded_shape)
        self._build_mlp(input_shape)
        self.built = True

    def _cross_and_mlp(self, x, encoded, training):
        if self.cross_attention:
            x = self._attention_residual(
                x,
                self.pre_cross_attention_norm,
                self.cross_attention_layer,
                self.cross_attention_output_dropout,
                training,
                kv=encoded,
            )
        return x + self._mlp(x, training)

    def call(self, x, encoded=None, training=None):
        # x (B, T, E); encoded (B, S, E) or None.
        x = self._attention_residual(
            x,
            self.pre_attention_norm,
            self.self_attention,
            self.attention_output_dropout,
            training,
            is_causal=self.causal,
        )
        return self._cross_and_mlp(x, encoded, training)

    def call_with_cache(
        self, x, cache, cache_update_index, layer_index=None, encoded=None, training=None
    ):
        """`x (B, T, E)` at positions `index..index+T-1`.

        `cache` is this block's `(2, B, H, L, Dh)` or, with `layer_index`, the
        stacked `(N, 2, B, H, L, Dh)`; returns `(y, updated cache)`.
        """
        y = self.pre_attention_norm(x)
        y, cache = self.self_attention.call_with_cache(
            y, cache, cache_update_index, layer_index=layer_index, training=training
        )
        x = x + self.attention_output_dropout(y, training=training)
        return self._cross_and_mlp(x, encoded, training), cache

    def compute_output_shape(self, x_shape, encoded_shape=None):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update({"causal": self.causal, "cross_attention": self.cross_attention})
        return config
