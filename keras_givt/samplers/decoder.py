"""The decoder seam of GIVT generation: how the samplers run the model and draw.

Dimension letters: R rows, T new tokens, L sequence length, D token dim,
E width, P encoded length, M num_logits; the KV cache is
`(N layers, 2, R, H heads, L, E/H)`.

`ar_generate` and `maskgit_generate` (this package) never call the backbone
or test the backend: every model call and every draw goes through a
`Decoder`. `Decoder` is the Keras path, `keras.ops` through the backbone's own
layers (compiled by jax and tensorflow, eager on torch). A task picks its
decoder once where it builds its generation step (`GIVTTask._make_decoder`):
`models/givt/torch_generation.TorchDecoder`, the plain-torch twin of the same
methods, on torch where it applies, else this class. The maths both share
(mixture layout, squareplus, normal log-density, DB-CFG's guided normal,
Gumbel) is written once in `mixture/formulas.py`.
"""

from keras import ops

from keras_givt.mixture import guidance
from keras_givt.mixture.distributions import make_keras_distribution


class Decoder:
    """The Keras decoding path of a GIVT backbone, as the samplers use it.

    Args:
        backbone: a `keras_givt.GIVTBackbone`.

    Example:
    ```python
    decoder = Decoder(backbone)  # style "ar"
    cache = decoder.build_cache(2)
    logits, cache = decoder.prefill(labels, cache)  # (2, 1, M)
    x, log_prob = decoder.draw(backbone.head, logits[:, 0], 1.0, 1.0, seed_generator)
    logits, cache = decoder.step(x[:, None], cache, 1)  # predicts token 1
    ```
    """

    def __init__(self, backbone):
        self.backbone = backbone

    def build_cache(self, batch_size):
        """A zero KV cache `(N, 2, R, H, L, E/H)` for `batch_size` rows."""
        return self.backbone.build_cache(batch_size)

    def cache_window(self, cache, length):
        """The first `length` positions (static int) of `cache`: a decoding
        chunk that only writes and attends below `length` carries this instead
        of the whole cache (`ar_generate`)."""
        if length >= cache.shape[4]:
            return cache
        return cache[:, :, :, :, :length]

    def cache_merge(self, cache, window):
        """`cache` with its first positions replaced by `window`."""
        if window is cache:
            return cache
        return ops.slice_update(cache, [0] * len(cache.shape), window)

    def prefill(self, labels, cache, batch_size=None, encoded=None):
        """The label/[BOS] token at position 0: `(logits (R, 1, M), cache)`
        (`GIVTBackbone.prefill`)."""
        return self.backbone.prefill(labels, cache, batch_size=batch_size, encoded=encoded)

    def step(self, tokens, cache, index, encoded=None):
        """`tokens (R, T, D)` fed at positions `index .. index+T-1`:
        `(logits (R, T, M), cache)` (`GIVTBackbone.call_with_cache`)."""
        return self.backbone.call_with_cache(tokens, cache, index, encoded=encoded)

    def forward(self, inputs):
        """The full forward pass of a MaskGIT step: backbone `inputs` dict ->
        logits `(R, L, M)` (inference)."""
        return self.backbone(inputs, training=False)

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
        """One token per row from `head`'s mixture: `logits (R, M)` ->
        `(tokens (R, D), log_prob (R,))`; DB-CFG with `logits_uncond` and
        `cfg_weight` (see `sample_from_logits`)."""
        return sample_from_logits(
            head, logits, temperature, temperature_probs, seed_generator, logits_uncond, cfg_weight
        )

    def greedy(self, head, logits, logits_uncond=None, cfg_weight=None):
        """The temperature-0 token per row (`greedy_from_logits`)."""
        return greedy_from_logits(head, logits, logits_uncond, cfg_weight)

    def update_slice(self, x, start, update):
        """`ops.slice_update(x, start, update)` for the samplers' own buffers
        (a decoder may write them in place)."""
        return ops.slice_update(x, start, update)


def as_decoder(decoder):
    """`decoder` itself, or the Keras `Decoder` of a backbone."""
    return decoder if isinstance(decoder, Decoder) else Decoder(decoder)


def sample_from_logits(
    head,
    logits,
    temperature,
    temperature_probs,
    seed_generator,
    logits_uncond=None,
    cfg_weight=None,
):
    """One token per row: `logits (R, M)` -> `(tokens (R, D), log_prob (R,))`.

    The log-density is that of the distribution sampled from (tempered; the
    unnormalised guided density with CFG), summed over channels.
    """
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
