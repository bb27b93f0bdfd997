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


def _attention_weights(attn):
    """Fused (E, 3E) q|k|v kernel (and bias), (E, E) out kernel (and bias)."""
    import torch

    e = attn.hidden_dim
    # Kernels are stored transposed, (O, I), for `torch.nn.functional.linear`
    # (faster than `x @ W` for the few-row products of per-token decoding).
    qkv = torch.cat([_w(l.kernel).reshape(e, -1) for l in (attn.query, attn.key, attn.value)], 1)
    w = {
        "qkv": qkv.t().contiguous(),
        "out": _w(attn.out.kernel).reshape(-1, e).t().contiguous(),
        "qkv_bias": None,
        "out_bias": None,
    }
    if attn.use_bias:
        w["qkv_bias"] = torch.cat([_w(l.bias).reshape(-1) for l in (attn.query, attn.key, attn.value)])
        w["out_bias"] = _w(attn.out.bias)
    w.update(heads=attn.num_heads, head_dim=attn.head_dim, scale=1.0 / math.sqrt(attn.head_dim))
    return w


def _norm_weights(norm):
    return (
        norm.epsilon,
        _w(norm.scale) if norm.use_scale else None,
        _w(norm.bias) if norm.use_bias else None,
    )


def _dense_weights(layer):
    """(kernel transposed to (O, I), bias or None)."""
    return _w(layer.kernel).t().contiguous(), (_w(layer.bias) if layer.use_bias else None)


def _block_weights(block):
    w = {
        "causal": block.causal,
        "ln1": _norm_weights(block.pre_attention_norm),
        "attn": _attention_weights(block.self_attention),
        "ln3": _norm_weights(block.pre_mlp_norm),
        "mlp0": _dense_weights(block.mlp_dense_0),
        "mlp1": _dense_weights(block.mlp_dense_1),
        "cross": None,
    }
    if block.cross_attention:
        w["ln2"] = _norm_weights(block.pre_cross_attention_norm)
        w["cross"] = _attention_weights(block.cross_attention_layer)
    return w


def _prepared(backbone):
    """The backbone's weights as plain torch tensors, once per generation loop."""
    return tensor_utils.memoized_in_scope(
        "weights",
        backbone,
        lambda: {
            "blocks": [_block_weights(block) for block in backbone.decoder_blocks],
            "positions": _w(backbone.embedding.position_embedding),
            "token_embedding": _dense_weights(backbone.embedding.token_embedding),
            "final_norm": _norm_weights(backbone.decoder_norm),
            "logits": _dense_weights(backbone.logits_dense),
        },
    )


def layer_norm(weights, x):
    """`FlaxLayerNorm.call` as one fused torch op (float32).

    torch computes the variance as E[(x − E[x])²] where flax uses
    E[x²] − E[x]²: equal up to float rounding.
    """
    import torch

    eps, scale, bias = weights
    return torch.nn.functional.layer_norm(x, x.shape[-1:], scale, bias, eps)


def _dense(weights, x):
    """x (B, T, I) @ kernel (+ bias); `weights` from `_dense_weights`."""
    import torch

    kernel, bias = weights
    return torch.nn.functional.linear(x, kernel, bias)


def _split_heads(w, y, b, t):
    """(B·T, H·Dh) -> (B, H, T, Dh)."""
    return y.reshape(b, t, w["heads"], w["head_dim"]).transpose(1, 2)


def _qkv(w, x):
    """x (B, T, E) -> q (scaled), k, v, each (B, H, T, Dh)."""
    import torch

    b, t, e = x.shape
    y = torch.nn.functional.linear(x.reshape(b * t, e), w["qkv"], w["qkv_bias"])
    q, k, v = y.split(e, dim=1)
    return _split_heads(w, q, b, t) * w["scale"], _split_heads(w, k, b, t), _split_heads(w, v, b, t)


def _query(w, x):
    """x (B, T, E) -> the scaled query (B, H, T, Dh) alone."""
    import torch

    b, t, e = x.shape
    bias = None if w["qkv_bias"] is None else w["qkv_bias"][:e]
    y = torch.nn.functional.linear(x.reshape(b * t, e), w["qkv"][:e], bias)
    return _split_heads(w, y, b, t) * w["scale"]


def _output(w, o):
    """o (B, H, T, Dh) -> (B, T, E)."""
    import torch

    b, h, t, dh = o.shape
    y = torch.nn.functional.linear(o.transpose(1, 2).reshape(b * t, h * dh), w["out"], w["out_bias"])
    return y.reshape(b, t, -1)


def _attend(q, k, v, mask=None, is_causal=False):
    # q (B, H, T, Dh) already scaled; k, v (B, H, S, Dh); mask (T, S) bool
    # (True = attend) or None. Softmax in float32.
    import torch

    return torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, is_causal=is_causal, scale=1.0
    )


def _cross_and_mlp(w, x, cross_kv):
    """Cross-attention to `cross_kv = (k, v)` (UViM blocks), then the MLP;
    x (B, T, E) -> (B, T, E)."""
    import torch

    if w["cross"] is not None:
        q = _query(w["cross"], layer_norm(w["ln2"], x))
        x = x + _output(w["cross"], _attend(q, *cross_kv))
    h = layer_norm(w["ln3"], x)
    z = torch.nn.functional.gelu(_dense(w["mlp0"], h), approximate="tanh")
    return x + _dense(w["mlp1"], z)


def _encoded_kv(w, encoded):
    """Cross-attention keys/values `(k, v)` of `encoded (B, P, E)`, or None."""
    return None if w["cross"] is None else _qkv(w["cross"], encoded)[1:]


def block_step(w, x, cache, index, layer_index, encoded=None):
    """`GIVTDecoderBlock.call_with_cache` (inference) for the stacked cache.

    w: the block's prepared weights; x (B, T, E) float32 at positions
    `index .. index+T-1`; cache (N, 2, B, H, L, Dh), written in place.
    Returns `(y (B, T, E), cache)`.
    """
    import torch

    t = x.shape[1]
    end = index + t
    q, k, v = _qkv(w["attn"], layer_norm(w["ln1"], x))  # (B, H, T, Dh) each
    cache[layer_index, 0, :, :, index:end] = k
    cache[layer_index, 1, :, :, index:end] = v
    k = cache[layer_index, 0, :, :, :end]  # (B, H, end, Dh): the filled prefix
    v = cache[layer_index, 1, :, :, :end]
    mask = None
    if t > 1:
        pos = torch.arange(end, device=x.device)
        mask = pos[None, :] <= (pos[index:end])[:, None]  # (T, end)
    x = x + _output(w["attn"], _attend(q, k, v, mask))
    # The encoded image is the same at every step: its keys/values once per loop.
    cross_kv = tensor_utils.memoized_in_scope(
        ("cross_kv", layer_index), encoded, lambda: _encoded_kv(w, encoded)
    )
    return _cross_and_mlp(w, x, cross_kv), cache


def full_blocks(backbone, x, encoded=None):
    """`GIVTBackbone.decode`'s blocks and final norm without a cache (the
    MaskGIT decoding step): x (B, S, E) embedded with positions -> (B, S, E)."""
    w = _prepared(backbone)
    for block_weights in w["blocks"]:
        q, k, v = _qkv(block_weights["attn"], layer_norm(block_weights["ln1"], x))  # (B, H, S, Dh)
        o = _attend(q, k, v, is_causal=block_weights["causal"])
        x = x + _output(block_weights["attn"], o)
        x = _cross_and_mlp(block_weights, x, _encoded_kv(block_weights, encoded))
    return layer_norm(w["final_norm"], x)


def embed_tokens(backbone, tokens):
    """`GIVTEmbedding.token_embedding` of tokens (B, T, D) -> (B, T, E)."""
    import torch

    return _dense(_prepared(backbone)["token_embedding"], torch.as_tensor(tokens, dtype=torch.float32))


def decode_step(backbone, x, cache, index, encoded=None):
    """`GIVTBackbone._decode_step`: x (B, T, E) embedded tokens without
    positions at `index ..` -> `(logits (B, T, M), cache)`."""
    w = _prepared(backbone)
    index = int(index)
    t = x.shape[1]
    x = x + w["positions"][index : index + t]
    for i, block_weights in enumerate(w["blocks"]):
        x, cache = block_step(block_weights, x, cache, index, i, encoded)
    return _dense(w["logits"], layer_norm(w["final_norm"], x)), cache


# --- Sampling ---------------------------------------------------------------
#
# The per-token draw of `ar_sampler.sample_from_logits` for the two mixture
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
    head, logits, temperature, temperature_probs, seed_generator, logits_uncond=None, cfg_weight=None
):
    """`ar_sampler.sample_from_logits` (same distribution, torch's RNG), or
    None where the Keras path must handle the step."""
    import torch

    gen = _generator(seed_generator, logits.device)
    as_f32 = lambda v: torch.as_tensor(1.0 if v is None else v, dtype=torch.float32, device=logits.device)  # noqa: E731
    t, tp = as_f32(temperature), as_f32(temperature_probs)
    mix, loc, scale = _params(head, logits, t, tp)
    mv = head.head_type == "mv_diag"
    idx = _gumbel_argmax(mix, gen)  # (R,) or (R, D)
    if mv:
        take = idx[:, None, None].expand(-1, 1, loc.shape[-1])
        loc_c, scale_c = loc.gather(1, take)[:, 0], scale.gather(1, take)[:, 0]  # (R, D)
    else:
        loc_c, scale_c = loc.gather(2, idx[..., None])[..., 0], scale.gather(2, idx[..., None])[..., 0]
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
