"""MaskGIT's parallel decoding of discrete tokens (`maskgit.libml.parallel_decode.decode`).

Dimension letters: B batch, L tokens, K codebook size, S steps.

Per step s (ratio r = (s + 1) / S), on the current tokens (−1 = masked):
1. logits (B, L, K) from the model (with classifier-free guidance:
   `l_c + w · (l_c − l_u)`, beyond the official code), divided by `temperature`;
2. sample every position from its categorical (Gumbel-max); known positions
   keep their token; the confidence of a sampled token is its probability,
   +inf for known tokens;
3. `mask_len = max(1, min(unknown − 1, floor(n0 · schedule(r, n0))))`
   (n0 = initially unknown tokens) positions with the lowest
   `log(p) + choice_temperature · (1 − r) · Gumbel` are masked again;
4. the fully sampled tokens of the last step are the output (MaskGIT's
   `final_seqs[:, -1]`), so nothing is left masked.
"""

from keras import ops

from keras_givt.samplers.schedules import cutoff_mask
from keras_givt.samplers.schedules import maskgit_mask_ratio
from keras_givt.samplers.random_utils import gumbel
from keras_givt.samplers.random_utils import seeded_fori_loop

MASK_ID = -1
_INF = 1e30


def discrete_maskgit_decode(
    logits_fn,
    tokens,
    num_steps,
    seed_generator,
    schedule="cosine",
    choice_temperature=4.5,
    temperature=1.0,
    greedy=False,
):
    """Fills the −1 entries of `tokens (B, L)` int32 in `num_steps` steps.

    `greedy` (static): temperature 0, every position takes its argmax code
    (confidences are the untempered log-probabilities; `temperature` is
    ignored).

    `logits_fn(tokens (B, L)) -> (B, L, K)` float logits. Returns
    `(tokens (B, L) int32, num_masked (B, S) float32)`, `num_masked[:, s]`
    being the number of positions still masked after step s (0 after the
    last one).
    """
    tokens = ops.cast(tokens, "int32")
    B, L = ops.shape(tokens)[0], ops.shape(tokens)[1]
    n0 = ops.sum(ops.cast(tokens == MASK_ID, "float32"), axis=1, keepdims=True)  # (B, 1)
    history = ops.zeros((B, num_steps), "float32")
    choice_temperature = ops.cast(choice_temperature, "float32")
    temperature = ops.cast(temperature, "float32")

    def step(s, carry):
        cur, final, history = carry
        unknown = cur == MASK_ID  # (B, L)
        logits = ops.cast(logits_fn(cur), "float32")  # (B, L, K)
        if greedy:
            sampled = ops.cast(ops.argmax(logits, axis=-1), "int32")
        else:
            logits = logits / temperature
            sampled = ops.cast(
                ops.argmax(logits + gumbel(ops.shape(logits), seed_generator), axis=-1), "int32"
            )
        sampled = ops.where(unknown, sampled, cur)
        log_probs = ops.log_softmax(logits, axis=-1)
        chosen = ops.take_along_axis(log_probs, ops.expand_dims(sampled, -1), axis=-1)[..., 0]
        ratio = ops.cast(s + 1, "float32") / float(num_steps)
        mask_len = ops.floor(n0 * maskgit_mask_ratio(ratio, n0, schedule))  # (B, 1)
        num_unknown = ops.sum(ops.cast(unknown, "float32"), axis=1, keepdims=True)
        mask_len = ops.maximum(1.0, ops.minimum(num_unknown - 1.0, mask_len))
        confidence = chosen + choice_temperature * (1.0 - ratio) * gumbel((B, L), seed_generator)
        confidence = ops.where(unknown, confidence, _INF)
        masking = cutoff_mask(confidence, mask_len)  # (B, L), maskgit's strict cut
        nxt = ops.where(masking, MASK_ID, sampled)
        last = s == num_steps - 1
        count = ops.where(last, 0.0, ops.sum(ops.cast(masking, "float32"), axis=1))  # (B,)
        onehot = ops.cast(ops.arange(num_steps) == s, "float32")
        history = history + ops.expand_dims(count, 1) * onehot
        return nxt, sampled, history

    _, final, history = seeded_fori_loop(
        0, num_steps, step, (tokens, tokens, history), seed_generator
    )
    return final, history
