"""big_vision's GIVT training loss (`trainers/proj/givt/generative.py`).

Dimension letters: B batch, L sequence, D token dim.
"""

from keras import ops


def givt_nll(backbone, logits, tokens, input_mask=None):
    """Mean negative log-likelihood, float32.

    'ar': the mean of −log p over every entry of the log-prob, i.e. over
    (B, L, D) for per-channel heads (a per-channel average) and over (B, L)
    otherwise (a sum over channels), exactly as big_vision.
    'masked': the NLL averaged over masked positions only (`input_mask`
    True = masked); per-channel NLLs are first averaged over channels.
    """
    nll = -backbone.log_prob(logits, tokens)  # (B, L, D) or (B, L)
    if input_mask is None:
        return ops.mean(nll)
    if len(nll.shape) == 3:
        nll = ops.mean(nll, axis=-1)
    mask = ops.cast(input_mask, "float32")
    return ops.sum(nll * mask) / ops.maximum(ops.sum(mask), 1.0)
