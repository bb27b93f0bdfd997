"""Parallel (MaskGIT-style) decoding of continuous GIVT tokens.

Dimension letters: B batch, L tokens, D token dim, S steps.

Per step (big_vision `parallel_decode.decode_masked`):
1. run the bidirectional model on the current tokens with the unknown ones
   masked (and, with CFG, again with NOLABEL labels);
2. sample every position from its mixture (DB-CFG density with a CFG
   weight) and score it by its log-density at the sample;
3. add Gumbel noise scaled by `choice_temperature · (1 − ratio)`;
4. keep the `mask_len` least confident of the still-unknown positions masked,
   where `mask_len = min(floor(n0 · mask_ratio((step+1)/S)), unknown − 1)`
   (n0 = initially unknown tokens, L when generating from scratch), so at
   least one token is revealed per step and none is left after the last.
Known tokens (already revealed, or given for inpainting) are never changed.
The model call and the draws go through a `samplers.decoder.Decoder`.
"""

from keras import ops

from keras_givt.samplers.decoder import as_decoder
from keras_givt.samplers.random_utils import gumbel
from keras_givt.samplers.random_utils import seeded_fori_loop
from keras_givt.samplers.schedules import bottom_k_mask
from keras_givt.samplers.schedules import mask_ratio

_INF = 1e30


def maskgit_generate(
    decoder,
    labels,
    tokens,
    unknown,
    num_steps,
    seed_generator,
    schedule="cosine",
    choice_temperature=1.0,
    temperature=1.0,
    temperature_probs=1.0,
    cfg_weight=None,
    greedy=False,
):
    """Fills the `unknown (B, L)` positions of `tokens (B, L, D)`.

    `decoder`: the `Decoder` of a `GIVTBackbone` with style 'masked' (a
    backbone alone is decoded by the Keras `Decoder`).
    `greedy` (static): every position takes its temperature-0 token
    (`decoder.greedy`); the Gumbel noise on the confidences still follows
    `choice_temperature`.

    Returns `(tokens (B, L, D), num_masked (B, S))` where `num_masked[:, s]`
    is the number of positions still masked after step s.
    """
    decoder = as_decoder(decoder)
    backbone = decoder.backbone
    head = backbone.head
    tokens = ops.cast(tokens, "float32")
    unknown = ops.cast(unknown, "bool")
    B, L = ops.shape(tokens)[0], backbone.seq_len
    use_cfg = cfg_weight is not None
    if labels is not None:
        labels = ops.cast(labels, "int32")
        if use_cfg:
            nolabel = ops.full(ops.shape(labels), backbone.special_ids["nolabel"], "int32")
            labels = ops.concatenate([labels, nolabel], axis=0)
    elif use_cfg:
        raise ValueError("CFG needs labels.")
    n0 = ops.sum(ops.cast(unknown, "float32"), axis=1, keepdims=True)  # (B, 1)
    history = ops.zeros((B, num_steps), "float32")

    def step(s, carry):
        tokens, unknown, history = carry
        feed_tokens, feed_mask = tokens, unknown
        if use_cfg:
            feed_tokens = ops.concatenate([tokens, tokens], axis=0)
            feed_mask = ops.concatenate([unknown, unknown], axis=0)
        feed = {"tokens": feed_tokens, "input_mask": feed_mask}
        if labels is not None:
            feed["labels"] = labels
        logits = ops.cast(decoder.forward(feed), "float32")  # (B[·2], L, M)
        lc, lu = (logits[:B], logits[B:]) if use_cfg else (logits, None)
        m = ops.shape(lc)[-1]
        flat_u = None if lu is None else ops.reshape(lu, (-1, m))
        flat_c = ops.reshape(lc, (-1, m))
        if greedy:
            x, lp = decoder.greedy(head, flat_c, flat_u, cfg_weight)
        else:
            x, lp = decoder.draw(
                head, flat_c, temperature, temperature_probs, seed_generator, flat_u, cfg_weight
            )
        x = ops.reshape(x, ops.shape(tokens))
        confidence = ops.reshape(lp, (B, L))
        ratio = ops.cast(s + 1, "float32") / float(num_steps)
        noise = gumbel((B, L), seed_generator)
        confidence = confidence + ops.cast(choice_temperature, "float32") * (1.0 - ratio) * noise
        confidence = ops.where(unknown, confidence, _INF)  # Known tokens stay known.
        num_unknown = ops.sum(ops.cast(unknown, "float32"), axis=1, keepdims=True)
        mask_len = ops.floor(n0 * mask_ratio(ratio, schedule))
        mask_len = ops.maximum(ops.minimum(mask_len, num_unknown - 1.0), 0.0)  # (B, 1)
        new_unknown = bottom_k_mask(confidence, mask_len) & unknown
        reveal = unknown & ~new_unknown
        tokens = ops.where(ops.expand_dims(reveal, -1), x, tokens)
        count = ops.sum(ops.cast(new_unknown, "float32"), axis=1)  # (B,)
        onehot = ops.cast(ops.arange(num_steps) == s, "float32")
        history = history + ops.expand_dims(count, 1) * onehot
        return tokens, new_unknown, history

    tokens, unknown, history = seeded_fori_loop(
        0, num_steps, step, (tokens, unknown, history), seed_generator
    )
    return tokens, history


def pixel_mask_to_token_mask(mask, token_grid):
    """Maps a pixel mask `(B, H, W)` (True = regenerate) to tokens `(B, h·w)`.

    A token is masked when any pixel of its `(H/h, W/w)` patch is masked.
    Shared by GIVT-MaskGIT and the discrete MaskGIT.
    """
    h, w = token_grid
    mask = ops.cast(mask, "float32")
    if len(mask.shape) == 4:
        mask = ops.max(mask, axis=-1)
    bsz, height, width = ops.shape(mask)
    if height % h or width % w:
        raise ValueError(
            f"The mask size {(height, width)} must be a multiple of the token grid {token_grid}."
        )
    patches = ops.reshape(mask, (bsz, h, height // h, w, width // w))
    return ops.reshape(ops.max(patches, axis=(2, 4)) > 0.5, (bsz, h * w))
