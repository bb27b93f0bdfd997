"""Eager torch fast path of the cached decoder blocks (per-token generation).

Dimension letters: B batch, T new tokens, L cache length, P encoded length,
E embedding width, H heads, Dh = E / H, F MLP width, N decoder layers.

On torch, generation runs eagerly, token by token. Through Keras layers each
decoding step costs ~100 small `keras.ops` / `Layer.__call__` dispatches per
block, and that Python overhead (not arithmetic) dominated torch sampling
(~30 ms per token at the reference sizes). This module is the guarded,
backend-specific exception to keras.ops-only modeling code: the same
arithmetic as `GIVTDecoderBlock.call_with_cache` written directly in torch
over the blocks' own weights. It is used only inside the task's generation
loop (`tensor_utils.inplace_cache_updates`, under `no_grad`), only for float32
compute without LoRA or quantized layers; everything else takes the Keras
path. Differences that change results only by float rounding:
- attention reads only the filled prefix `[0, index + T)` of the cache
  (the Keras path reads all L positions and masks the unfilled ones), with
  torch's fused attention and LayerNorm kernels (LayerNorm's variance as
  E[(x − E[x])²] rather than flax's E[x²] − E[x]²);
- cross-attention keys/values of the encoded image (UViM) are computed once
  per generation loop and reused at every step.
Tests check that it matches the Keras path (`tests/layers/torch_decoding_test.py`).
"""

import math

import keras

from keras_givt.utils import tensor_utils


def _plain_dense(layer):
    return not getattr(layer, "lora_enabled", False) and layer.quantization_mode is None


def _attention_ok(attn):
    return all(_plain_dense(l) for l in (attn.query, attn.key, attn.value, attn.out))


def is_eligible(backbone, training=None):
    """Whether the torch fast path may decode for `backbone` right now."""
    if keras.config.backend() != "torch" or not tensor_utils.inplace_updates_active() or training:
        return False
    return tensor_utils.memoized_in_scope("eligible", backbone, lambda: _supported(backbone))


def _supported(backbone):
    if backbone.compute_dtype != "float32":
        return False
    dense = (backbone.embedding.token_embedding, backbone.logits_dense)
    if not all(_plain_dense(l) for l in dense):
        return False
    for block in backbone.decoder_blocks:
        if block.compute_dtype != "float32" or not _attention_ok(block.self_attention):
            return False
        if block.cross_attention and not _attention_ok(block.cross_attention_layer):
            return False
        if not (_plain_dense(block.mlp_dense_0) and _plain_dense(block.mlp_dense_1)):
            return False
    return True


def _w(variable):
    return variable.value


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
    differences. Small kernels, other devices or a build without these ops
    use `F.linear` over the kernel transposed to (O, I).
    """

    _PACK_MIN_SIZE = 1 << 17  # in elements: 256x256 kernels are faster unpacked

    def __init__(self, kernel, bias, rows_hint):
        import torch

        # kernel (I, O) as Keras stores it.
        self.weight = kernel.t().contiguous()  # (O, I)
        self.bias = bias
        self.packed = None
        if (
            self.weight.device.type == "cpu"
            and self.weight.numel() >= self._PACK_MIN_SIZE
            and torch.backends.mkldnn.is_available()
        ):
            try:
                self.packed = torch.ops.mkldnn._reorder_linear_weight(self.weight, rows_hint)
                probe = torch.zeros(1, self.weight.shape[1])
                self(probe), self(probe, gelu=True), self(probe, residual=self(probe))
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


def _attention_weights(attn, rows_hint, query_alone=False):
    """Fused q|k|v and out projections (`_Linear`), the query pre-scaled by
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
            torch.cat(kernels, 1), None if biases[0] is None else torch.cat(biases), rows_hint
        ),
        "q": _Linear(kernels[0], biases[0], rows_hint) if query_alone else None,
        "out": _Linear(_w(attn.out.kernel).reshape(-1, e), out_bias, rows_hint),
        "heads": attn.num_heads,
        "head_dim": attn.head_dim,
    }


def _norm_weights(norm):
    return (
        norm.epsilon,
        _w(norm.scale) if norm.use_scale else None,
        _w(norm.bias) if norm.use_bias else None,
    )


def _dense_weights(layer, rows_hint):
    return _Linear(_w(layer.kernel), _w(layer.bias) if layer.use_bias else None, rows_hint)


def _block_weights(block, rows_hint):
    w = {
        "causal": block.causal,
        "ln1": _norm_weights(block.pre_attention_norm),
        "attn": _attention_weights(block.self_attention, rows_hint),
        "ln3": _norm_weights(block.pre_mlp_norm),
        "mlp0": _dense_weights(block.mlp_dense_0, rows_hint),
        "mlp1": _dense_weights(block.mlp_dense_1, rows_hint),
        "cross": None,
    }
    if block.cross_attention:
        w["ln2"] = _norm_weights(block.pre_cross_attention_norm)
        w["cross"] = _attention_weights(block.cross_attention_layer, rows_hint, query_alone=True)
    return w


def _prepared(backbone, rows_hint):
    """The backbone's weights as plain torch tensors, once per generation loop;
    `rows_hint`: the row count of the products (the first call's)."""
    return tensor_utils.memoized_in_scope(
        "weights",
        backbone,
        lambda: {
            "blocks": [_block_weights(block, rows_hint) for block in backbone.decoder_blocks],
            "positions": _w(backbone.embedding.position_embedding),
            "token_embedding": _dense_weights(backbone.embedding.token_embedding, rows_hint),
            "final_norm": _norm_weights(backbone.decoder_norm),
            "logits": _dense_weights(backbone.logits_dense, rows_hint),
        },
    )


def layer_norm(weights, x):
    """`FlaxLayerNorm.call` as one fused torch op (float32).

    torch computes the variance as E[(x − E[x])²] where flax uses
    E[x²] − E[x]²: equal up to float rounding.
    """
    import torch

    eps, scale, bias = weights
    return torch.layer_norm(x, x.shape[-1:], scale, bias, eps)


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


def block_step(w, x, cache, index, layer_index, b, encoded=None):
    """`GIVTDecoderBlock.call_with_cache` (inference) for the stacked cache.

    w: the block's prepared weights; x (B·T, E) float32 rows of B examples
    at positions `index .. index+T-1`; cache (N, 2, B, H, L, Dh), written in
    place. Returns `(y (B·T, E), cache)`.
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
    cross_kv = None
    if w["cross"] is not None:
        # The encoded image is the same at every step: its keys/values once per loop.
        cross_kv = tensor_utils.memoized_in_scope(
            ("cross_kv", layer_index), encoded, lambda: _encoded_kv(w, encoded)
        )
    return _cross_and_mlp(w, x, cross_kv, b, t), cache


def full_blocks(backbone, x, encoded=None):
    """`GIVTBackbone.decode`'s blocks and final norm without a cache (the
    MaskGIT decoding step): x (B, S, E) embedded with positions -> (B, S, E)."""
    b, s, e = x.shape
    w = _prepared(backbone, b * s)
    x = x.reshape(b * s, e)
    for block_weights in w["blocks"]:
        a = block_weights["attn"]
        y = a["qkv"](layer_norm(block_weights["ln1"], x))  # (B·S, 3E)
        q, k, v = (_heads(a, y[:, i * e : (i + 1) * e], b, s) for i in range(3))  # (B, H, S, Dh)
        o = _attend(q, k, v, is_causal=block_weights["causal"])
        x = a["out"](_merge_heads(o), residual=x)
        x = _cross_and_mlp(block_weights, x, _encoded_kv(block_weights, encoded), b, s)
    return layer_norm(w["final_norm"], x).reshape(b, s, e)


def embed_tokens(backbone, tokens):
    """`GIVTEmbedding.token_embedding` of tokens (B, T, D) -> (B, T, E)."""
    import torch

    tokens = torch.as_tensor(tokens, dtype=torch.float32)
    b, t, d = tokens.shape
    y = _prepared(backbone, b * t)["token_embedding"](tokens.reshape(b * t, d))
    return y.reshape(b, t, -1)


def decode_step(backbone, x, cache, index, encoded=None):
    """`GIVTBackbone._decode_step`: x (B, T, E) embedded tokens without
    positions at `index ..` -> `(logits (B, T, M), cache)`."""
    b, t, e = x.shape
    w = _prepared(backbone, b)  # the rows of one token step
    index = int(index)
    x = (x + w["positions"][index : index + t]).reshape(b * t, e)
    for i, block_weights in enumerate(w["blocks"]):
        x, cache = block_step(block_weights, x, cache, index, i, b, encoded)
    return w["logits"](layer_norm(w["final_norm"], x)).reshape(b, t, -1), cache


# --- Sampling ---------------------------------------------------------------
#
# The per-token draw of `autoregressive.sample_from_logits` for the two mixture
# heads GIVT uses (per-channel and MV-diagonal), with DB-CFG's exact guided
# normal. Random numbers come from one `torch.Generator` per generation loop,
# seeded from the task's `SeedGenerator` (a Keras seed draw costs ~0.1 ms on
# torch, several per token). Anything else (the full-covariance head, a CFG
# step where some channel's guided density is not normalisable) returns None
# and the caller takes the Keras path.


def _square_plus(x, fix):
    if fix:
        return (x + (x * x + 4.0).sqrt()) / 2.0
    return x + (x * x + 4.0).sqrt() / 2.0


def sampling_eligible(head):
    return (
        keras.config.backend() == "torch"
        and tensor_utils.inplace_updates_active()
        and head.head_type in ("per_channel", "mv_diag")
    )


def _generator(seed_generator, device):
    import torch

    def build():
        s = [int(v) for v in keras.ops.convert_to_numpy(seed_generator.next()).reshape(-1)]
        g = torch.Generator(device=device)
        g.manual_seed((s[0] % (1 << 31)) * (1 << 31) + s[-1] % (1 << 31))
        return g

    return tensor_utils.memoized_in_scope("generator", seed_generator, build)


def _params(head, logits, temperature, temperature_probs):
    """`GaussianMixtureHead.mixture_params` for per-channel / MV-diag heads.

    Returns (mixture logits, loc, scale): (R, K) and (R, K, D) for MV-diag,
    (R, D, K) each for per-channel.
    """
    logits = logits.float()
    r = logits.shape[0]
    d, k = head.out_dim, head.num_mixtures
    if head.head_type == "mv_diag":
        mix = logits[:, :k]
        other = logits[:, k:].reshape(r, k, 2, d)
        loc, raw = other[:, :, 0], other[:, :, 1]
    else:
        other = logits.reshape(r, 3 * d, k)
        mix, loc, raw = other[:, :d], other[:, d : 2 * d], other[:, 2 * d :]
    scale = _square_plus(raw, head.fix_square_plus).clamp_min(head.scale_tol)
    return mix * temperature_probs, loc, scale * temperature


def _normal_log_prob(x, loc, scale):
    z = (x - loc) / scale
    return -0.5 * z * z - (0.5 * math.log(2.0 * math.pi) + scale.log())


def _gumbel_argmax(logits, gen):
    import torch

    u = torch.rand(logits.shape, generator=gen, device=logits.device).clamp_min(1e-20)
    return (logits - (-u.log()).log()).argmax(dim=-1)


def sample_from_logits(
    head,
    logits,
    temperature,
    temperature_probs,
    seed_generator,
    logits_uncond=None,
    cfg_weight=None,
):
    """`autoregressive.sample_from_logits` (same distribution, torch's RNG), or
    None where the Keras path must handle the step."""
    import torch

    gen = _generator(seed_generator, logits.device)
    as_f32 = lambda v: torch.as_tensor(
        1.0 if v is None else v, dtype=torch.float32, device=logits.device
    )  # noqa: E731
    t, tp = as_f32(temperature), as_f32(temperature_probs)
    mix, loc, scale = _params(head, logits, t, tp)
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
    _, loc_u, scale_u = _params(head, logits_uncond, t, tp)
    if mv:
        loc_u, scale_u = loc_u.gather(1, take)[:, 0], scale_u.gather(1, take)[:, 0]
    else:
        loc_u, scale_u = loc_u[..., 0], scale_u[..., 0]
    w = as_f32(cfg_weight)
    # The guided density p_c^(1+w) p_u^(-w) is the normal below where its
    # precision is positive (see `samplers.guidance`).
    prec = (1.0 + w) / scale_c.square() - w / scale_u.square()
    if not bool((prec > 0).all()):
        return None
    loc_g = ((1.0 + w) * loc_c / scale_c.square() - w * loc_u / scale_u.square()) / prec
    x = loc_g + prec.rsqrt() * eps
    lp = (1.0 + w) * _normal_log_prob(x, loc_c, scale_c) - w * _normal_log_prob(x, loc_u, scale_u)
    return x, lp.sum(-1)
