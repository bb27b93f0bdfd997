"""Negative log-likelihood in nats -> bits per dimension.

`bits_per_dim` converts an NLL; `latent_bits_per_dim` averages the bits/dim
of the VAE posterior means of images under a GIVT-Causal model (through
`GIVTCausal.score`, which uses `bits_per_dim` for its per-example scores).
"""

import math
import numbers

from keras import ops

from keras_givt.utils.validation import check_positive_int


def bits_per_dim(nll_nats, num_dims, data_scale=1.0):
    """Convert a per-example NLL in nats to bits per dimension.

    `bpd = (nll_nats + num_dims * log(data_scale)) / (num_dims * ln 2)`.

    Args:
        nll_nats: float, numpy array or tensor: the negative log-likelihood of
            one example (summed over its `num_dims` dimensions), in nats.
            Arrays are converted element-wise (e.g. a batch of NLLs).
        num_dims: positive int, the dimensions of one example (for images
            `H * W * C`; for GIVT latents `L * D`).
        data_scale: positive float. For a continuous density on data that was
            divided by `data_scale` from its reporting units, e.g. `127.5` for
            a density on [-1, 1] pixels reported in 8-bit pixel units
            (the change-of-variables term `log(data_scale)` per dim). Default
            1.0: no change of units.

    Returns:
        Bits per dimension, a python float for a python number input,
        otherwise a tensor of the input's shape.

    Example:

    ```python
    bits_per_dim(2 * 784 * math.log(2), 784)  # 2.0
    ```
    """
    check_positive_int("num_dims", num_dims)
    if isinstance(data_scale, bool) or not isinstance(data_scale, numbers.Real) or data_scale <= 0:
        raise ValueError(
            f"`data_scale` must be a positive float; received data_scale={data_scale!r}."
        )
    offset = num_dims * math.log(data_scale)
    denominator = num_dims * math.log(2.0)
    if isinstance(nll_nats, numbers.Real) and not isinstance(nll_nats, bool):
        return (float(nll_nats) + offset) / denominator
    return (ops.cast(nll_nats, "float32") + offset) / denominator


def latent_bits_per_dim(model, images, labels=None, batch_size=250, progbar=None):
    """Bits/dim of the VAE posterior means of `images` under a GIVT-Causal model.

    Each batch is encoded with `model.encode_images(images, sample=False)` and
    scored with `model.score(latents, labels, scoring_mode="log_prob")`; the
    NLL is summed over the L x D latent dimensions of each image and averaged
    over the images. This is a density on latents, not on pixels: it is not
    comparable with pixel bits/dim.

    Args:
        model: a `keras_givt.GIVTCausal` with a VAE.
        images: (N, H, W, C) images in [-1, 1] (numpy).
        labels: (N,) int class ids; used when the model is class-conditional
            (required then), ignored otherwise.
        batch_size: positive int, images per forward pass.
        progbar: optional `keras.utils.Progbar` advanced by the images scored.

    Returns:
        `(bits_per_dim, nll)`: python floats; `nll` is the mean negative
        log-likelihood of one image's latents in nats.

    Example:

    ```python
    model = keras_givt.GIVTCausal.from_preset("givt_causal_fashion_mnist")
    images, labels = ...  # (N, 32, 32, 3) in [-1, 1], (N,) class ids
    bpd, nll = latent_bits_per_dim(model, images, labels)
    ```
    """
    check_positive_int("batch_size", batch_size)
    conditional = model.backbone.num_labels is not None
    total, count = 0.0, 0
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size]
        z = model.encode_images(x, sample=False)  # (B, L, D)
        y = labels[start : start + batch_size] if conditional else None
        log_prob = ops.convert_to_numpy(model.score(z, y, scoring_mode="log_prob"))  # (B, L)
        total += float(-log_prob.reshape(len(x), -1).sum())
        count += len(x)
        if progbar is not None:
            progbar.add(len(x))
    seq_len, out_dim = model.backbone.seq_len, model.backbone.out_dim
    nll = total / count  # nats per example (sum over L x D dims)
    return float(bits_per_dim(nll, seq_len * out_dim)), nll
