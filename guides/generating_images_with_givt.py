"""
Title: Generating images with GIVT
Author: keras_givt contributors
Date created: 2026/11/23
Last modified: 2026/11/23
Description: Sample from GIVT-Causal and GIVT-MaskGIT with temperature, DB-CFG and beam search.
"""

"""
## Introduction

GIVT (Generative Infinite-Vocabulary Transformers,
[Tschannen, Eastwood, Mentzer, 2023](https://arxiv.org/abs/2312.02116)) generates the
real-valued latents of a beta-VAE with a transformer whose output is a Gaussian
mixture per token, then decodes them to pixels. keras_givt ships two tasks:

- `keras_givt.GIVTCausal`: autoregressive, one token after the other with a KV cache;
- `keras_givt.GIVTMaskGIT`: masked and bidirectional, all tokens in a few parallel
  steps.

This guide loads (or, if none is bundled, quickly trains) a small Fashion-MNIST model
of each kind and walks through the sampling knobs: temperatures, density-based
classifier-free guidance (DB-CFG), beam search and prefix completion. Set
`KERAS_GIVT_GUIDE_FAST=1` for a tiny smoke-test run.
"""

"""
## Setup
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # "tensorflow" and "torch" work too.

import time

import keras
import numpy as np
from keras import ops

import keras_givt
from keras_givt import datasets
from keras_givt.models.vae.beta_vae import BetaVAE

FAST = bool(os.environ.get("KERAS_GIVT_GUIDE_FAST"))
OUT_DIR = os.environ.get("GIVT_GUIDE_OUT")  # Figures are saved only when set.
keras.utils.set_random_seed(0)

"""
## Presets

`GIVTCausal.presets` and `GIVTMaskGIT.presets` list the built-in presets. The
`*_imagenet*` entries are Google big_vision's published ImageNet-2012 checkpoints
(24 layers, width 1024, 16x16 tokens of 16 channels from a beta = 5e-5 CNN VAE).
`from_preset` downloads the big_vision files once with `keras.utils.get_file`,
converts them into a keras-hub preset directory in the Keras cache and loads it from
there; the preset also carries big_vision's README sampling defaults (for example
temperature 0.95 and CFG weight 0.4 for `givt_causal_imagenet256`).
"""

for name, metadata in keras_givt.GIVTCausal.presets.items():
    print(f"GIVTCausal  {name}: {metadata['description'][:70]}...")
for name, metadata in keras_givt.GIVTMaskGIT.presets.items():
    print(f"GIVTMaskGIT {name}: {metadata['description'][:70]}...")

"""
With network access, the ImageNet model is one call away (it is not run here, the
download is large):

```python
model = keras_givt.GIVTCausal.from_preset("givt_causal_imagenet256")
images = model.generate(labels=[207, 360], seed=0)  # (2, 256, 256, 3) in [-1, 1]
```

In this guide we use the small Fashion-MNIST models bundled with the package when they
are registered. Otherwise we train a tiny VAE and tiny GIVTs for a few seconds, so
that every cell below still runs (with blurry samples).
"""


def train_small_models():
    ds = datasets.fashion_mnist_dataset("train", image_size=32, batch_size=256)
    batch = next(iter(ds))
    x, y = np.asarray(batch["images"]), np.asarray(batch["labels"])
    vae = BetaVAE(
        codeword_dim=8,
        code_len=16,
        filters=32,
        num_res_blocks=0,
        channel_multipliers=(1, 2, 2, 2),
        output_dim=1,
        beta=2e-4,
        seed=0,
    )
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    vae.fit(x, batch_size=32, epochs=1 if FAST else 10, verbose=0)
    z = ops.convert_to_numpy(vae.encode(x)[0])
    models = []
    for task, style in (
        (keras_givt.GIVTCausal, "ar"),
        (keras_givt.GIVTMaskGIT, "masked"),
    ):
        backbone = keras_givt.GIVTBackbone(
            seq_len=z.shape[1],
            out_dim=z.shape[2],
            num_labels=10,
            emb_dim=32,
            num_decoder_layers=1,
            num_heads=2,
            mlp_dim=64,
            num_mixtures=2,
            per_channel_mixtures=False,
            fix_square_plus=True,
            style=style,
            mask_style="concat",
            drop_labels_probability=0.1,
        )
        model = task(backbone, vae=vae, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        model.fit(
            {"latents": z, "labels": y},
            batch_size=64,
            epochs=1 if FAST else 20,
            verbose=0,
        )
        models.append(model)
    return models


if "givt_causal_fashion_mnist" in keras_givt.GIVTCausal.presets:
    causal = keras_givt.GIVTCausal.from_preset("givt_causal_fashion_mnist")
    maskgit = keras_givt.GIVTMaskGIT.from_preset("givt_maskgit_fashion_mnist")
    print("Loaded the bundled presets; sampling defaults:", causal.sampling_defaults)
else:
    print("No bundled Fashion-MNIST preset registered: training small models.")
    causal, maskgit = train_small_models()

backbone = causal.backbone
print(f"{backbone.seq_len} tokens of {backbone.out_dim} channels")
print(f"{backbone.num_mixtures} mixture components, {backbone.count_params():,} parameters")


def save_row(images, name):
    """Saves `images` (N, H, W, C) in [-1, 1] side by side if GIVT_GUIDE_OUT is set."""
    if not OUT_DIR:
        return
    row = np.concatenate(list(ops.convert_to_numpy(images)), axis=1)
    os.makedirs(OUT_DIR, exist_ok=True)
    keras.utils.save_img(os.path.join(OUT_DIR, name), (row + 1) * 127.5, scale=False)


"""
## GIVT-Causal: sampling and temperature

`generate(labels=...)` samples one image per label and decodes it with the VAE
(`return_latents=True` skips decoding). The first call compiles the sampler
(`jax.jit`, or an XLA `tf.function`; eager under torch); later calls with the same
batch size and mode reuse it, even when numeric arguments change.

There are two temperatures, both following big_vision:

- `temperature` multiplies the standard deviations of the mixture components
  (`temperature_scales`): below 1 gives smoother, more typical samples;
- `temperature_probs` multiplies the mixture logits, i.e. it sharpens (> 1) or
  flattens (< 1) the choice of the component.

Arguments left to `None` take the preset's `sampling_defaults` (printed above for the
bundled preset), else no scaling and no guidance.
"""

labels = np.arange(10)
start = time.time()
images = causal.generate(labels=labels, seed=0)
print(f"first call (with compilation): {time.time() - start:.1f}s", tuple(images.shape))
start = time.time()
images = causal.generate(labels=labels, seed=1)
print(f"second call: {time.time() - start:.2f}s")

for t in (0.5, 0.8, 1.0):
    z = causal.generate(labels=labels, seed=0, temperature=t, return_latents=True)
    print(f"temperature {t}: latent std {float(ops.std(z)):.3f}")
    save_row(causal.decode_tokens(z), f"causal_temperature_{t}.png")

"""
## Density-based classifier-free guidance

Classic CFG mixes logits. GIVT's output is a density, so the guided distribution is
p(z | c)^(1+w) / p(z)^w, where p(z) is the unconditional density the model learns
thanks to label dropout (`drop_labels_probability > 0`). For a Gaussian component this
product is again a normal wherever its precision is positive, and is drawn exactly there;
at the rare channels where it is not normalisable (about 1 in 12,800 for the bundled
GIVT-MaskGIT at CFG 0.5), big_vision's rejection sampler runs at those channels only.
Larger `cfg_weight` values trade diversity for class fidelity.
`return_log_probs=True` returns the log-density of each sample under the sampling
distribution.
"""

for w in (0.0, 2.0) if FAST else (0.0, 0.5, 2.0):
    z, log_probs = causal.generate(
        labels=labels,
        seed=0,
        cfg_weight=w,
        return_latents=True,
        return_log_probs=True,
    )
    print(f"cfg_weight {w}: mean log-density {float(ops.mean(log_probs)):.1f}")
    save_row(causal.decode_tokens(z), f"causal_cfg_{w}.png")

"""
## Beam search

With `beam_size=K` and `fan_size=F`, every step keeps K partial sequences per example
and extends each with F sampled candidates, keeping the K best by log-density
(`stochastic_beams=True` keeps K sampled without replacement instead). The result is a
higher-likelihood sample than plain ancestral sampling, at K*F times the compute.
Both calls below disable guidance (`cfg_weight=0.0`) so that the log-densities are
comparable.
"""

_, lp_plain = causal.generate(
    labels=labels, seed=0, cfg_weight=0.0, return_latents=True, return_log_probs=True
)
_, lp_beam = causal.generate(
    labels=labels,
    seed=0,
    beam_size=2 if FAST else 4,
    fan_size=2 if FAST else 4,
    cfg_weight=0.0,
    return_latents=True,
    return_log_probs=True,
)
print(f"mean log-density, plain sampling: {float(ops.mean(lp_plain)):.1f}")
print(f"mean log-density, beam search:    {float(ops.mean(lp_beam)):.1f}")

"""
## Completing an image from a prefix

`prefix` fixes the first P latent tokens (raster order) and samples the rest. Here we
keep the top half (the first two rows of the 4x4 token grid) of real test images.
"""

channels = causal.vae.output_dim
test = next(
    iter(datasets.fashion_mnist_dataset("test", image_size=32, channels=channels, batch_size=4))
)
z_real = ops.convert_to_numpy(causal.encode_images(test["images"], sample=False))
num_prefix = backbone.seq_len // 2
completed = causal.generate(
    labels=np.asarray(test["labels"]),
    prefix=z_real[:, :num_prefix],
    seed=0,
    return_latents=True,
)
same = np.allclose(ops.convert_to_numpy(completed)[:, :num_prefix], z_real[:, :num_prefix])
print("prefix kept:", same)

"""
## GIVT-MaskGIT: parallel decoding

`GIVTMaskGIT.generate` fills in all tokens in `num_steps` steps. At each step the
model samples every masked token, and the most confident ones (by log-density, plus
Gumbel noise scaled by `choice_temperature`) are kept; the cosine schedule sets how
many. Fewer steps are faster; a larger `choice_temperature` makes the order more
random. `temperature` and `cfg_weight` work as for GIVT-Causal.
"""

for steps in (2, 4) if FAST else (2, 4, 8, 16):
    start = time.time()
    images = maskgit.generate(labels=labels, num_steps=steps, choice_temperature=2.0, seed=0)
    print(f"{steps:2d} steps: {time.time() - start:.2f}s (including compilation)")
    save_row(images, f"maskgit_{steps}_steps.png")

images = maskgit.generate(labels=labels, num_steps=4, cfg_weight=1.0, temperature=0.9, seed=0)
print("MaskGIT with guidance:", tuple(images.shape))

"""
## Conclusion

You sampled from both GIVT variants and used the main knobs: `temperature` and
`temperature_probs`, density-based CFG (`cfg_weight`), beam search (`beam_size`,
`fan_size`) and prefix completion for GIVT-Causal; `num_steps` and
`choice_temperature` for GIVT-MaskGIT. The next guides train these models from
scratch and use GIVT-MaskGIT for inpainting and editing.
"""
