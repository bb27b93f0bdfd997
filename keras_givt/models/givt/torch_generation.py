"""The plain-torch generation engine: `TorchDecoder`, the torch twin of `Decoder`.

Dimension letters: B batch, T new tokens, L cache length, P encoded length,
E embedding width, H heads, Dh = E / H, F MLP width, N decoder layers, D
token dim, K mixture components, M num_logits.

On torch, generation runs eagerly, token by token. Through Keras layers each
decoding step costs ~100 small `keras.ops` / `Layer.__call__` dispatches per
block, and that Python overhead (not arithmetic) dominated torch sampling
(~30 ms per token at the reference sizes). This file is the one
backend-specific exception to keras.ops-only modeling code, and the only
plain-torch file: `TorchDecoder` implements the `samplers.decoder.Decoder`
methods the samplers call (`prefill`, `step`, `forward`, `draw`,
`update_slice`) directly in torch over the backbone's own weights. A GIVT
task hands one to the samplers on torch (`GIVTTask._make_decoder`, when
`TorchDecoder.supports(backbone)`), a fresh one per generation, under the
task's `torch.no_grad()`. Everything a generation needs beyond the weights
lives on that instance, never in a global: its in-place KV-cache and token
writes, the prepared (prepacked) weights, the cross-attention keys/values of
the encoded image and its `torch.Generator`.

It runs the decoder blocks of plain dense layers (no LoRA, no quantized
layers) in the backbone's compute dtype: float32, or bfloat16 / float16
under a mixed policy, as the Keras layers do (products, cache and residual
stream in that dtype; LayerNorm in float32; the mixture maths in float32).
On an H200, bf16 sampling through the Keras layers took 0.64 s per image
at the reference size against 0.088 s for this engine in float32
(`benchmarks/results/accelerator_20261126_h200.json`), which is why it runs
bf16 too. On this project's 2-core AVX2 CPU (torch, reference sizes, batch 8,
`mixed_bfloat16`, `benchmarks/bench.py --dtype-policy mixed_bfloat16`): AR
24.9 -> 2.6 s, AR + DB-CFG 39.6 -> 3.7 s, MaskGIT 16 steps 180 -> 29 s
(Keras layers -> this engine; float32 is still faster on such a CPU). It
draws only from the per-channel and MV-diagonal mixture heads; the rest
falls back to the Keras path (`super()`). The
mixture maths (logits layout, squareplus, normal log-density, DB-CFG's
guided normal, Gumbel-max) is `mixture.formulas`, the same functions the
Keras path calls, here over `_TORCH_OPS`. Differences from the Keras path
that change results only by float rounding:
- attention reads only the filled prefix `[0, index + T)` of the cache
  (the Keras path reads all L positions and masks the unfilled ones), with
  torch's fused attention and LayerNorm kernels (LayerNorm's variance as
  E[(x − E[x])²] rather than flax's E[x²] − E[x]²);
- the products run on oneDNN-prepacked kernels where available (`_Linear`);
- cross-attention keys/values of the encoded image (UViM) are computed once
  per generation and reused at every step.
Its draws use torch's random stream (one `torch.Generator` per generation,
seeded from the task's `SeedGenerator`): the same distribution as the Keras
path, other samples. Tests hold it to the Keras path
(`tests/models/givt/test_torch_generation.py`).
"""

import math

import keras

from keras_givt.layers.transformer_block import is_plain_dense
from keras_givt.mixture import formulas
from keras_givt.mixture.guidance import CFGDensity
from keras_givt.samplers import random_utils
from keras_givt.samplers.decoder import Decoder
from keras_givt.utils.heap import release_freed_heap

# Mixture heads the engine draws from (the full-covariance head: Keras path).
_DRAW_HEADS = ("per_channel", "mv_diag")


def _attention_ok(attn):
    return all(is_plain_dense(l) for l in (attn.query, attn.key, attn.value, attn.out))


# Compute dtypes the engine runs the blocks in (a policy's, e.g. "mixed_bfloat16").
_BLOCK_DTYPES = ("float32", "bfloat16", "float16")


def _runs_blocks(backbone):
    """Whether the engine can run `backbone`'s decoder: plain dense layers, one compute
    dtype of `_BLOCK_DTYPES` throughout."""
    dtype = backbone.compute_dtype
    if dtype not in _BLOCK_DTYPES:
        return False
    dense = (backbone.embedding.token_embedding, backbone.logits_dense)
    if not all(is_plain_dense(l) and l.compute_dtype == dtype for l in dense):
        return False
    for block in backbone.decoder_blocks:
        if block.compute_dtype != dtype or not _attention_ok(block.self_attention):
            return False
        if block.cross_attention and not _attention_ok(block.cross_attention_layer):
            return False
        if not (is_plain_dense(block.mlp_dense_0) and is_plain_dense(block.mlp_dense_1)):
            return False
    return True


class _TorchOps:
    """The `ops` namespace of `mixture.formulas` over torch tensors."""

    @staticmethod
    def sqrt(x):
        return x.sqrt()

    @staticmethod
    def rsqrt(x):
        return x.rsqrt()

    @staticmethod
    def square(x):
        return x.square()

    @staticmethod
    def log(x):
        return x.log()

    @staticmethod
    def maximum(x, y):
        return x.clamp_min(y)  # y a Python float (a clamp)

    @staticmethod
    def reshape(x, shape):
        return x.reshape(shape)

    @staticmethod
    def shape(x):
        return tuple(x.shape)

    @staticmethod
    def argmax(x, axis):
        return x.argmax(dim=axis)


_TORCH_OPS = _TorchOps()


class TorchDecoder(Decoder):
    """The `Decoder` of a GIVT backbone in plain torch (torch backend only).

    Same methods and results as `Decoder` up to float rounding (the draws:
    the same distribution from torch's random stream). Make one per
    generation and run it under `torch.no_grad()`: it writes the KV cache and
    the samplers' token buffer in place, and keeps the weights it prepared,
    the encoded image's keys/values and its `torch.Generator` for its
    lifetime.

    Args:
        backbone: a `keras_givt.GIVTBackbone` (`TorchDecoder.supports(backbone)`).

    Example:
    ```python
    with torch.no_grad():
        decoder = TorchDecoder(backbone)
        tokens, log_prob = ar_generate(decoder, labels, 2, seed_generator)
    ```
    """

    def __init__(self, backbone):
        super().__init__(backbone)
        # Plain-dense decoders in one compute dtype run here; others on the Keras path.
        self.runs_blocks = _runs_blocks(backbone)
        self._weights = None
        self._memo = {}

    @staticmethod
    def supports(backbone):
        """Whether a `TorchDecoder` should generate for `backbone`: the torch
        backend, and it can run the decoder blocks or draw from the head."""
        return keras.config.backend() == "torch" and (
            _runs_blocks(backbone) or backbone.head.head_type in _DRAW_HEADS
        )

    def _memoized(self, tag, obj, build):
        """`build()` once per `(tag, obj)` for this decoder's lifetime (the entry
        keeps `obj` alive, so its id is not reused meanwhile)."""
        key = (tag, id(obj))
        if key not in self._memo:
            self._memo[key] = (obj, build())
        return self._memo[key][1]

    def _prepared(self, rows_hint):
        """The backbone's weights as plain torch tensors, prepared on first use;
        `rows_hint`: the row count of the products (the first call's)."""
        if self._weights is None:
            # The build's freed blocks, then the packing's transposed copies, would
            # stay resident (`utils.heap`): torch sampling at the published sizes
            # peaked at 1.04x big_vision's memory, 0.91-0.92x with these two calls.
            release_freed_heap()
            bb = self.backbone
            dtype = _torch_dtype(bb.compute_dtype)  # The products' and the cache's.
            self._weights = {
                "dtype": dtype,
                "blocks": [_block_weights(block, rows_hint, dtype) for block in bb.decoder_blocks],
                "positions": _w(bb.embedding.position_embedding, dtype),
                "token_embedding": _dense_weights(bb.embedding.token_embedding, rows_hint, dtype),
                "final_norm": _norm_weights(bb.decoder_norm),
                "logits": _dense_weights(bb.logits_dense, rows_hint, dtype),
            }
            release_freed_heap()
        return self._weights

    # --- Decoding ---------------------------------------------------------

    def prefill(self, labels, cache, batch_size=None, encoded=None):
        if not self.runs_blocks:
            return super().prefill(labels, cache, batch_size=batch_size, encoded=encoded)
        bb = self.backbone
        bb._require_ar("prefill")
        if labels is None and batch_size is None:
            batch_size = cache.shape[2]
        x = bb.embedding.embed_labels(labels, batch_size).unsqueeze(1)  # (B, 1, E)
        return self._decode_step(x, cache, 0, encoded)

    def step(self, tokens, cache, index, encoded=None):
        if not self.runs_blocks:
            return super().step(tokens, cache, index, encoded=encoded)
        self.backbone._require_ar("call_with_cache")
        return self._decode_step(self._embed_tokens(tokens), cache, index, encoded)

    def forward(self, inputs):
        """`GIVTBackbone.call` (inference) with the engine's decoder blocks: the
        embedding, image encoder and logits layer are the backbone's own."""
        if not self.runs_blocks:
            return super().forward(inputs)
        bb = self.backbone
        bb._check_inputs(inputs)
        image = inputs.get("image")
        encoded = None if image is None else bb.encode(image, training=False)
        bb._check_encoded(encoded)
        x = bb.embedding(inputs["tokens"], inputs.get("labels"), inputs.get("input_mask"))
        b, s, _ = x.shape
        x = full_blocks(self._prepared(b * s), x, encoded)  # (B, S, E)
        if bb.style == "masked":
            x = x[:, 1:]  # Drop the label position.
        return bb.logits_dense(x)  # (B, L, M)

    def cache_window(self, cache, length):
        """The whole cache: each step here already reads only the filled prefix
        (`block_step`) and writes in place."""
        return cache

    def cache_merge(self, cache, window):
        return window

    def update_slice(self, x, start, update):
        """Writes `update` into `x` in place (the generation owns `x`)."""
        index = tuple(slice(int(s), int(s) + n) for s, n in zip(start, update.shape))
        x[index] = update
        return x

    def _embed_tokens(self, tokens):
        """`GIVTEmbedding.token_embedding` of tokens (B, T, D) -> (B, T, E)."""
        import torch

        b, t, d = tokens.shape
        w = self._prepared(b * t)
        tokens = torch.as_tensor(tokens).to(w["dtype"])  # As Keras' Dense casts its input.
        y = w["token_embedding"](tokens.reshape(b * t, d))
        return y.reshape(b, t, -1)

    def _decode_step(self, x, cache, index, encoded=None):
        """`GIVTBackbone._decode_step`: x (B, T, E) embedded tokens without
        positions at `index ..` -> `(logits (B, T, M), cache)`."""
        self.backbone._check_encoded(encoded)
        b, t, e = x.shape
        w = self._prepared(b)  # the rows of one token step
        index = int(index)
        x = (x + w["positions"][index : index + t]).reshape(b * t, e)
        for i, block_weights in enumerate(w["blocks"]):
            cross_kv = None
            if block_weights["cross"] is not None:
                # The encoded image is the same at every step: its keys/values once.
                cross_kv = self._memoized(
                    ("cross_kv", i), encoded, lambda: _encoded_kv(block_weights, encoded)
                )
            x = block_step(block_weights, x, cache, index, i, b, cross_kv)
        return w["logits"](layer_norm(w["final_norm"], x)).reshape(b, t, -1), cache

    # --- Sampling ---------------------------------------------------------

    def draw(
        self,
        head,
        logits,
        temperature,
        temperature_probs,
        seed_generator,
        logits_uncond=None,
        cfg_weight=None,
    ):
        if head.head_type in _DRAW_HEADS:
            out = self._draw(
                head,
                logits,
                temperature,
                temperature_probs,
                seed_generator,
                logits_uncond,
                cfg_weight,
            )
            if out is not None:
                return out
        return super().draw(
            head, logits, temperature, temperature_probs, seed_generator, logits_uncond, cfg_weight
        )

    def _generator(self, seed_generator, device):
        """This generation's `torch.Generator`, seeded once from `seed_generator`
        (a Keras seed draw costs ~0.1 ms on torch, several per token)."""
        return self._memoized(
            "generator",
            seed_generator,
            lambda: random_utils.torch_generator(seed_generator.next(), device),
        )

    def _draw(
        self,
        head,
        logits,
        temperature,
        temperature_probs,
        seed_generator,
        logits_uncond=None,
        cfg_weight=None,
    ):
        """`Decoder.draw` for the per-channel and MV-diagonal heads (same
        distribution, torch's random stream), or None where the Keras path
        must draw: a CFG step with several per-channel components. Where some
        channel's guided density is not normalisable, `CFGDensity.sample`
        draws the step (its Keras seed stream)."""
        import torch

        gen = self._generator(seed_generator, logits.device)
        as_f32 = lambda v: torch.as_tensor(
            1.0 if v is None else v, dtype=torch.float32, device=logits.device
        )  # noqa: E731
        t, tp = as_f32(temperature), as_f32(temperature_probs)
        mix, loc, scale = _mixture_params(head, logits, t, tp)
        mv = head.head_type == "mv_diag"
        idx = _gumbel_argmax(mix, gen)  # (R,) or (R, D)
        if mv:
            take = idx[:, None, None].expand(-1, 1, loc.shape[-1])
            loc_c, scale_c = loc.gather(1, take)[:, 0], scale.gather(1, take)[:, 0]  # (R, D)
        else:
            loc_c, scale_c = (
                loc.gather(2, idx[..., None])[..., 0],
                scale.gather(2, idx[..., None])[..., 0],
            )
        eps = torch.randn(loc_c.shape, generator=gen, device=loc_c.device)
        if logits_uncond is None:
            x = loc_c + scale_c * eps
            if mv:
                comp = _normal_log_prob(x[:, None], loc, scale).sum(-1)  # (R, K)
                lp = torch.logsumexp(comp + torch.log_softmax(mix, -1), dim=-1)
            else:
                comp = _normal_log_prob(x[..., None], loc, scale)  # (R, D, K)
                lp = torch.logsumexp(comp + torch.log_softmax(mix, -1), dim=-1).sum(-1)
            return x, lp
        if not mv and head.num_mixtures != 1:
            return None  # DB-CFG needs one component per channel (as big_vision).
        _, loc_u, scale_u = _mixture_params(head, logits_uncond, t, tp)
        if mv:
            loc_u, scale_u = loc_u.gather(1, take)[:, 0], scale_u.gather(1, take)[:, 0]
        else:
            loc_u, scale_u = loc_u[..., 0], scale_u[..., 0]
        w = as_f32(cfg_weight)
        # The guided density p_c^(1+w) p_u^(-w) is the normal below where its
        # precision is positive (see `mixture.guidance`).
        prec = formulas.guided_precision(scale_c, scale_u, w, _TORCH_OPS)
        if bool((prec > 0).all()):
            loc_g = formulas.guided_loc(loc_c, scale_c, loc_u, scale_u, w, prec, _TORCH_OPS)
            x = loc_g + prec.rsqrt() * eps
        else:
            # Some channel is not normalisable: DB-CFG's own sampler (exact
            # normals, big_vision's rejection sampler at those channels only).
            x = CFGDensity.from_components(loc_c, scale_c, loc_u, scale_u, w).sample(seed_generator)
        lp = formulas.guided_log_prob(x, loc_c, scale_c, loc_u, scale_u, w, _TORCH_OPS)
        return x, lp.sum(-1)


def _mixture_params(head, logits, temperature, temperature_probs):
    """`GaussianMixtureHead.mixture_params` for per-channel / MV-diag heads.

    Returns (mixture logits, loc, scale): (R, K) and (R, K, D) for MV-diag,
    (R, D, K) each for per-channel.
    """
    mix, loc, raw = formulas.split_logits(
        logits.float(), head.head_type, head.out_dim, head.num_mixtures, _TORCH_OPS
    )
    scale = formulas.mixture_scale(raw, head.fix_square_plus, head.scale_tol, _TORCH_OPS)
    return mix * temperature_probs, loc, scale * temperature


def _normal_log_prob(x, loc, scale):
    return formulas.normal_log_prob(x, loc, scale, _TORCH_OPS)


def _gumbel_argmax(logits, gen):
    import torch

    u = torch.rand(logits.shape, generator=gen, device=logits.device).clamp_min(1e-20)
    return formulas.gumbel_argmax(logits, u, _TORCH_OPS)


# --- The decoder stack in torch ----------------------------------------------


def _torch_dtype(name):
    import torch

    return getattr(torch, name)


def _w(variable, dtype=None):
    """The variable's tensor, cast to `dtype` (a torch dtype) if given."""
    value = variable.value
    return value if dtype is None else value.to(dtype)


class _Linear:
    """`x @ kernel + bias` over rows (R, I) -> (R, O), optionally followed by
    tanh-GELU or a residual add, with the kernel prepared once per loop.

    Where oneDNN is available (x86 CPU builds of torch), the kernel is
    reordered once into oneDNN's blocked layout
    (`torch.ops.mkldnn._reorder_linear_weight`, what inductor's weight
    freezing uses) and applied with `torch.ops.mkldnn._linear_pointwise`,
    with the GELU or the residual add fused into the product: on the few-row
    products of per-token decoding this is ~2x faster than `F.linear` (MKL)
    for 256x768 .. 1024x256 kernels, in float32 with rounding-level
    differences. Only the packed copy is kept. Small kernels, other devices
    or a build without these ops use `F.linear` over the kernel transposed
    to (O, I).
    """

    _PACK_MIN_SIZE = 1 << 17  # in elements: 256x256 kernels are faster unpacked

    def __init__(self, kernel, bias, rows_hint, dtype=None):
        import torch

        # kernel (I, O) as Keras stores it; both cast to the compute dtype.
        if dtype is not None:
            kernel = kernel.to(dtype)
            bias = None if bias is None else bias.to(dtype)
        weight = kernel.t().contiguous()  # (O, I)
        self.weight = weight
        self.bias = bias
        self.packed = None
        if (
            weight.device.type == "cpu"
            and weight.dtype == torch.float32
            and weight.numel() >= self._PACK_MIN_SIZE
            and torch.backends.mkldnn.is_available()
        ):
            try:
                self.packed = torch.ops.mkldnn._reorder_linear_weight(weight, rows_hint)
                probe = torch.zeros(1, weight.shape[1])
                self(probe), self(probe, gelu=True), self(probe, residual=self(probe))
                # The packed copy is the only one kept: at the published size
                # (304M parameters) the (O, I) copy beside it was 1.2 GB more
                # peak memory per generation.
                self.weight = None
            except (AttributeError, RuntimeError):  # ops missing in this build
                self.packed = None

    def __call__(self, x, gelu=False, residual=None):
        """x (R, I) -> (R, O); `gelu`: tanh-GELU of the result; `residual`
        (R, O): added to the result."""
        import torch

        if self.packed is not None:
            x = x.contiguous()
            if residual is not None:
                return torch.ops.mkldnn._linear_pointwise.binary(
                    x, residual, self.packed, self.bias, "add"
                )
            if gelu:
                return torch.ops.mkldnn._linear_pointwise(
                    x, self.packed, self.bias, "gelu", [], "tanh"
                )
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")
        y = torch.nn.functional.linear(x, self.weight, self.bias)
        if gelu:
            y = torch.nn.functional.gelu(y, approximate="tanh")
        return y if residual is None else residual + y


def _attention_weights(attn, rows_hint, dtype, query_alone=False):
    """Fused q|k|v and out projections (`_Linear` in `dtype`), the query pre-scaled by
    1/sqrt(Dh); a separate query projection where `query_alone`
    (cross-attention)."""
    import torch

    e = attn.hidden_dim
    scale = 1.0 / math.sqrt(attn.head_dim)
    kernels = [_w(l.kernel).reshape(e, -1) for l in (attn.query, attn.key, attn.value)]
    kernels[0] = kernels[0] * scale
    biases = [None] * 3
    out_bias = None
    if attn.use_bias:
        biases = [_w(l.bias).reshape(-1) for l in (attn.query, attn.key, attn.value)]
        biases[0] = biases[0] * scale
        out_bias = _w(attn.out.bias)
    return {
        "qkv": _Linear(
            torch.cat(kernels, 1),
            None if biases[0] is None else torch.cat(biases),
            rows_hint,
            dtype,
        ),
        "q": _Linear(kernels[0], biases[0], rows_hint, dtype) if query_alone else None,
        "out": _Linear(_w(attn.out.kernel).reshape(-1, e), out_bias, rows_hint, dtype),
        "heads": attn.num_heads,
        "head_dim": attn.head_dim,
    }


def _norm_weights(norm):
    import torch

    return (
        norm.epsilon,
        _w(norm.scale, torch.float32) if norm.use_scale else None,
        _w(norm.bias, torch.float32) if norm.use_bias else None,
    )


def _dense_weights(layer, rows_hint, dtype):
    bias = _w(layer.bias) if layer.use_bias else None
    return _Linear(_w(layer.kernel), bias, rows_hint, dtype)


def _block_weights(block, rows_hint, dtype):
    w = {
        "causal": block.causal,
        "ln1": _norm_weights(block.pre_attention_norm),
        "attn": _attention_weights(block.self_attention, rows_hint, dtype),
        "ln3": _norm_weights(block.pre_mlp_norm),
        "mlp0": _dense_weights(block.mlp_dense_0, rows_hint, dtype),
        "mlp1": _dense_weights(block.mlp_dense_1, rows_hint, dtype),
        "cross": None,
    }
    if block.cross_attention:
        w["ln2"] = _norm_weights(block.pre_cross_attention_norm)
        w["cross"] = _attention_weights(
            block.cross_attention_layer, rows_hint, dtype, query_alone=True
        )
    return w


def layer_norm(weights, x):
    """`FlaxLayerNorm.call` as one fused torch op, in float32 and back to x's dtype.

    torch computes the variance as E[(x − E[x])²] where flax uses
    E[x²] − E[x]²: equal up to float rounding.
    """
    import torch

    eps, scale, bias = weights
    return torch.layer_norm(x.float(), x.shape[-1:], scale, bias, eps).to(x.dtype)


def _heads(w, y, b, t):
    """(B·T, H·Dh) -> (B, H, T, Dh) (a view)."""
    return y.reshape(b, t, w["heads"], w["head_dim"]).transpose(1, 2)


def _merge_heads(o):
    """(B, H, T, Dh) -> (B·T, H·Dh)."""
    b, h, t, dh = o.shape
    return o.transpose(1, 2).reshape(b * t, h * dh)


def _attend(q, k, v, mask=None, is_causal=False):
    # q (B, H, T, Dh) already scaled; k, v (B, H, S, Dh); mask (T, S) bool
    # (True = attend) or None. Softmax in float32.
    import torch

    return torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, is_causal=is_causal, scale=1.0
    )


def _cross_and_mlp(w, x, cross_kv, b, t):
    """Cross-attention to `cross_kv = (k, v)` (UViM blocks), then the MLP,
    each with its residual; x (B·T, E) -> (B·T, E)."""
    if w["cross"] is not None:
        c = w["cross"]
        q = _heads(c, c["q"](layer_norm(w["ln2"], x)), b, t)  # (B, H, T, Dh)
        x = c["out"](_merge_heads(_attend(q, *cross_kv)), residual=x)
    h = w["mlp0"](layer_norm(w["ln3"], x), gelu=True)  # (B·T, F)
    return w["mlp1"](h, residual=x)


def _encoded_kv(w, encoded):
    """Cross-attention keys/values `(k, v)` (B, H, P, Dh) of `encoded (B, P, E)`,
    or None."""
    if w["cross"] is None:
        return None
    c = w["cross"]
    b, p, e = encoded.shape
    y = c["qkv"](encoded.reshape(b * p, e))  # (B·P, 3E)
    return _heads(c, y[:, e : 2 * e], b, p), _heads(c, y[:, 2 * e :], b, p)


def block_step(w, x, cache, index, layer_index, b, cross_kv=None):
    """`GIVTDecoderBlock.call_with_cache` (inference) for the stacked cache.

    w: the block's prepared weights; x (B·T, E) rows (compute dtype) of B examples
    at positions `index .. index+T-1`; cache (N, 2, B, H, L, Dh), written in
    place; cross_kv: the encoded image's keys/values (`_encoded_kv`) for a
    cross-attending block. Returns y (B·T, E).
    """
    import torch

    a = w["attn"]
    e = x.shape[1]
    t = x.shape[0] // b
    y = a["qkv"](layer_norm(w["ln1"], x))  # (B·T, 3E): scaled q | k | v
    q = _heads(a, y[:, :e], b, t)  # (B, H, T, Dh)
    layer = cache[layer_index]  # (2, B, H, L, Dh)
    layer.narrow(3, index, t).copy_(
        y[:, e:].view(b, t, 2, a["heads"], a["head_dim"]).permute(2, 0, 3, 1, 4)
    )  # (2, B, H, T, Dh)
    kv = layer.narrow(3, 0, index + t)  # (2, B, H, index+T, Dh): the filled prefix
    mask = None
    if t > 1:
        pos = torch.arange(index + t, device=x.device)
        mask = pos[None, :] <= (pos[index:])[:, None]  # (T, index+T)
    x = a["out"](_merge_heads(_attend(q, kv[0], kv[1], mask)), residual=x)
    return _cross_and_mlp(w, x, cross_kv, b, t)


def full_blocks(w, x, encoded=None):
    """`GIVTBackbone.decode`'s blocks and final norm without a cache (the
    MaskGIT decoding step) over the prepared weights `w`: x (B, S, E)
    embedded with positions -> (B, S, E)."""
    b, s, e = x.shape
    x = x.reshape(b * s, e)
    for block_weights in w["blocks"]:
        a = block_weights["attn"]
        y = a["qkv"](layer_norm(block_weights["ln1"], x))  # (B·S, 3E)
        q, k, v = (_heads(a, y[:, i * e : (i + 1) * e], b, s) for i in range(3))  # (B, H, S, Dh)
        o = _attend(q, k, v, is_causal=block_weights["causal"])
        x = a["out"](_merge_heads(o), residual=x)
        x = _cross_and_mlp(block_weights, x, _encoded_kv(block_weights, encoded), b, s)
    return layer_norm(w["final_norm"], x).reshape(b, s, e)
