"""Autoregressive GIVT decoding with a KV cache: sampling and beam search.

Dimension letters: B batch, K beams, F fan (candidates per beam), L
sequence length, D token dim, M num_logits.

Semantics follow big_vision's `decode.generate`: the label/[BOS] token is
prefilled at position 0, then each step samples token i from the mixture at
position i (temperatures: `temperature` scales the scales, `temperature_probs`
multiplies the mixture logits), and feeds it back through the cache. With a
CFG weight the batch is doubled (conditional | NOLABEL) and tokens are drawn
from the density-guided distribution (`samplers.guidance`). Beam search keeps
the K best of K·F sampled candidates by cumulative log-density (optionally
sampled without replacement, "stochastic top-k"); unlike big_vision it also
works with CFG, scoring by the guided log-density.

These are plain functions of tensors, compiled by the task.
"""

import keras
from keras import ops

from keras_givt.layers import torch_decoding
from keras_givt.mixture.distributions import make_keras_distribution
from keras_givt.mixture import guidance
from keras_givt.samplers.random_utils import seeded_fori_loop
from keras_givt.utils.tensor_utils import update_slice

_NEG = -1e30


def sample_from_logits(
    head,
    logits,
    temperature,
    temperature_probs,
    seed_generator,
    logits_uncond=None,
    cfg_weight=None,
    greedy=False,
):
    """One token per row: `logits (R, M)` -> `(tokens (R, D), log_prob (R,))`.

    The log-density is that of the distribution sampled from (tempered; the
    unnormalised guided density with CFG), summed over channels.
    `greedy=True` (static) returns `greedy_from_logits` instead (no draw).
    """
    if greedy:
        return greedy_from_logits(head, logits, logits_uncond, cfg_weight)
    if torch_decoding.sampling_eligible(head):  # Eager torch generation loop.
        out = torch_decoding.sample_from_logits(
            head, logits, temperature, temperature_probs, seed_generator, logits_uncond, cfg_weight
        )
        if out is not None:
            return out
    params = head.mixture_params(logits, temperature, temperature_probs)
    if logits_uncond is None:
        dist = make_keras_distribution(params)
        x = dist.sample(seed=seed_generator)
        return x, _sum_channels(dist.log_prob(x))
    params_u = head.mixture_params(logits_uncond, temperature, temperature_probs)
    index = guidance.sample_mixture_index(params, seed=seed_generator)
    cfg = guidance.CFGDensity(params, params_u, cfg_weight, mixture_index=index)
    x = cfg.sample(seed=seed_generator)
    return x, ops.sum(cfg.log_prob(x), axis=-1)


def greedy_from_logits(head, logits, logits_uncond=None, cfg_weight=None):
    """The deterministic "temperature 0" token: `(tokens (R, D), log_prob (R,))`.

    The mean of the most probable mixture component (per channel for
    per-channel heads; the mean of a full-covariance head), i.e. the limit of
    sampling as the scale temperature goes to 0 with the component chosen by
    argmax. With CFG the component is the conditional argmax and the token is
    the mode of its guided normal (the conditional mean where the guided
    density is not normalisable). The log-density (beam scores, MaskGIT
    confidences) is that of the untempered distribution (guided with CFG).
    """
    params = head.mixture_params(logits)
    kind = params["head_type"]
    if logits_uncond is None:
        dist = make_keras_distribution(params)
        if kind == "multivariate":
            x = params["loc"]
        else:
            mix = params["mixture_logits"]  # (R, K) mv_diag, (R, D, K) per channel
            onehot = ops.one_hot(ops.argmax(mix, axis=-1), ops.shape(mix)[-1], dtype="float32")
            if kind == "mv_diag":
                x = ops.sum(ops.expand_dims(onehot, -1) * params["loc"], axis=-2)
            else:
                x = ops.sum(onehot * params["loc"], axis=-1)
        return x, _sum_channels(dist.log_prob(x))
    params_u = head.mixture_params(logits_uncond)
    index = None
    if kind == "mv_diag":
        index = ops.argmax(params["mixture_logits"], axis=-1)
    cfg = guidance.CFGDensity(params, params_u, cfg_weight, mixture_index=index)
    loc, _, ok = cfg.exact_params()
    x = ops.where(ok, loc, cfg.loc_c)
    return x, ops.sum(cfg.log_prob(x), axis=-1)


def _sum_channels(lp):
    return ops.sum(lp, axis=-1) if len(lp.shape) == 2 else lp


def _split_cfg(logits, use_cfg):
    # logits (R or 2R, M) -> conditional, unconditional-or-None
    if not use_cfg:
        return logits, None
    r = ops.shape(logits)[0] // 2
    return logits[:r], logits[r:]


def ar_generate(
    backbone,
    labels,
    batch_size,
    seed_generator,
    temperature=1.0,
    temperature_probs=1.0,
    cfg_weight=None,
    prefix=None,
    prefix_len=0,
    beam_size=1,
    fan_size=1,
    stochastic_beams=False,
    return_all_beams=False,
    encoded=None,
    greedy=False,
):
    """Samples `(tokens (B, L, D), log_prob (B,))` autoregressively.

    Args:
        backbone: a `GIVTBackbone` with style 'ar'.
        labels: (B,) int labels, or None (unconditional).
        batch_size: B (static).
        seed_generator: the `keras.random.SeedGenerator` all draws use.
        temperature, temperature_probs, cfg_weight: scalar tensors.
            `cfg_weight=None` disables guidance (static choice).
        prefix: (B, L, D) tokens forced at positions `< prefix_len`.
        prefix_len: int scalar tensor.
        beam_size, fan_size: K and F (static); K = F = 1 is plain sampling.
        stochastic_beams: sample the K survivors without replacement
            (Gumbel top-k on the scores) instead of taking the top K.
        return_all_beams: return every beam, `(B, K, L, D)` and `(B, K)`,
            instead of the best one.
        encoded: (B, P, E) encoded image for an encoder-decoder backbone
            (UViM), cross-attended at every step; None otherwise.
        greedy: static bool. Take `greedy_from_logits` tokens (temperature
            0) instead of sampling.
    """
    head = backbone.head
    L, D = backbone.seq_len, backbone.out_dim
    B, K, F = batch_size, beam_size, fan_size
    use_cfg = cfg_weight is not None
    R = B * K  # rows per half

    if labels is not None:
        labels = ops.repeat(ops.cast(labels, "int32"), K, axis=0)  # (R,)
        if use_cfg:
            nolabel = ops.full((R,), backbone.special_ids["nolabel"], "int32")
            labels = ops.concatenate([labels, nolabel], axis=0)
    elif use_cfg:
        raise ValueError("CFG needs labels.")
    rows = R * (2 if use_cfg else 1)
    if prefix is None:
        prefix = ops.zeros((B, L, D), "float32")
    prefix = ops.repeat(ops.cast(prefix, "float32"), K * F, axis=0)  # (R·F, L, D)
    prefix_len = ops.cast(prefix_len, "int32")

    if encoded is not None:
        # Beams (and the CFG half) of one example share its encoded image;
        # beam reordering stays within an example, so this never moves.
        encoded = ops.repeat(encoded, K, axis=0)  # (R, P, E)
        if use_cfg:
            encoded = ops.concatenate([encoded, encoded], axis=0)
    cache = backbone.build_cache(rows)
    logits, cache = backbone.prefill(
        labels, cache, batch_size=rows, encoded=encoded
    )  # (rows, 1, M)
    tokens = ops.zeros((R, L, D), "float32")
    scores = ops.zeros((B, K), "float32")
    if K > 1:
        first = ops.cast(ops.arange(K) == 0, "float32")
        scores = scores + (1.0 - first) * _NEG  # Only beam 0 is live at first.

    def choose(i, logits, scores):
        lc, lu = _split_cfg(ops.cast(logits[:, 0], "float32"), use_cfg)  # (R, M) each
        if F > 1:  # F candidates per beam, beam-major.
            lc = ops.repeat(lc, F, axis=0)
            lu = None if lu is None else ops.repeat(lu, F, axis=0)
        x, lp = sample_from_logits(
            head, lc, temperature, temperature_probs, seed_generator, lu, cfg_weight, greedy
        )  # (R·F, D), (R·F,)
        # Prefix tokens are forced; they add nothing to the scores (all beams
        # share them).
        is_forced = i < prefix_len
        x = ops.where(is_forced, prefix[:, i], x)
        lp = ops.where(is_forced, 0.0, lp)
        if K == 1 and F == 1:
            return x, scores + lp[:, None], None
        cand = ops.reshape(ops.reshape(scores, (B, K, 1)) + ops.reshape(lp, (B, K, F)), (B, K * F))
        select = cand
        if stochastic_beams:
            u = keras.random.uniform(ops.shape(cand), minval=1e-20, maxval=1.0, seed=seed_generator)
            select = cand - ops.log(-ops.log(u))
        _, idx = ops.top_k(select, K)  # (B, K)
        new_scores = ops.take_along_axis(cand, idx, axis=1)
        x = ops.take_along_axis(ops.reshape(x, (B, K * F, D)), ops.expand_dims(idx, -1), axis=1)
        src = ops.reshape(ops.expand_dims(ops.arange(B) * K, 1) + idx // F, (R,))
        return ops.reshape(x, (R, D)), new_scores, src

    def reorder(src, tokens, cache):
        if src is None:
            return tokens, cache
        tokens = ops.take(tokens, src, axis=0)
        cache_src = ops.concatenate([src, src + R], axis=0) if use_cfg else src
        return tokens, ops.take(cache, cache_src, axis=2)  # cache (N, 2, rows, H, L, Dh)

    def step(i, carry):
        tokens, logits, cache, scores = carry
        x, scores, src = choose(i, logits, scores)
        tokens, cache = reorder(src, tokens, cache)
        tokens = update_slice(tokens, [0, i, 0], x[:, None])  # In place in torch's loop.
        feed = ops.concatenate([x, x], axis=0) if use_cfg else x
        logits, cache = backbone.call_with_cache(feed[:, None], cache, i + 1, encoded=encoded)
        return tokens, logits, cache, scores

    tokens, logits, cache, scores = seeded_fori_loop(
        0, L - 1, step, (tokens, logits, cache, scores), seed_generator
    )
    x, scores, src = choose(L - 1, logits, scores)
    if src is not None:
        tokens = ops.take(tokens, src, axis=0)
    tokens = ops.slice_update(tokens, [0, L - 1, 0], ops.expand_dims(x, 1))
    if return_all_beams:
        return ops.reshape(tokens, (B, K, L, D)), scores
    if K == 1:
        return tokens, scores[:, 0]
    best = ops.argmax(scores, axis=1)  # (B,)
    rows_best = ops.arange(B) * K + ops.cast(best, "int32")
    return ops.take(tokens, rows_best, axis=0), ops.max(scores, axis=1)
