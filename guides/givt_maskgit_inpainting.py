"""
Title: Inpainting and editing with GIVT-MaskGIT
Author: keras_givt contributors
Date created: 2026/11/23
Last modified: 2026/11/23
Description: Train a GIVT-MaskGIT on Fashion-MNIST latents, then generate, inpaint, outpaint and edit.
"""

"""
## Introduction

GIVT-MaskGIT is the masked, bidirectional variant of GIVT
([Tschannen, Eastwood, Mentzer, 2023](https://arxiv.org/abs/2312.02116)). During
training a random fraction of the latent tokens is replaced by a mask, and the
transformer predicts a Gaussian mixture for every masked token. At sampling time it
starts from an all-masked sequence and fills it in over a few parallel steps, keeping
the most confident predictions at each step (MaskGIT,
[Chang et al., 2022](https://arxiv.org/abs/2202.04200)).

Because the model conditions on any subset of known tokens, the same network can
**inpaint** a region of a real image, **outpaint** around a kept region and **edit** an
image towards another class. This guide trains a small model on Fashion-MNIST and
tries all three. Set `KERAS_GIVT_GUIDE_FAST=1` for a tiny smoke-test run.
"""

"""
## Setup
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # "tensorflow" and "torch" work too.

import keras
import numpy as np
from keras import ops

import keras_givt
from keras_givt import datasets
from keras_givt.models.vae.beta_vae import BetaVAE
from keras_givt.samplers.masked import pixel_mask_to_token_mask

FAST = bool(os.environ.get("KERAS_GIVT_GUIDE_FAST"))
OUT_DIR = os.environ.get("GIVT_GUIDE_OUT")  # Figures are saved only when set.

NUM_TRAIN = 256 if FAST else 30000
VAE_EPOCHS = 1 if FAST else 8
GIVT_EPOCHS = 1 if FAST else 40
NUM_STEPS = 4 if FAST else 8
keras.utils.set_random_seed(0)

"""
## Data and VAE

The first stage is the same as in the GIVT-Causal training guide: Fashion-MNIST padded
to 32x32 with one channel, and a small `BetaVAE` that maps each image to a 4x4 grid of
latent vectors (16 tokens).
"""

ds = datasets.fashion_mnist_dataset(
    "train", image_size=32, channels=1, batch_size=NUM_TRAIN, shuffle=False
)
batch = next(iter(ds))
x_train, y_train = np.asarray(batch["images"]), np.asarray(batch["labels"])

vae = BetaVAE(
    codeword_dim=8 if FAST else 16,
    code_len=16,
    filters=32,
    num_res_blocks=0 if FAST else 1,
    channel_multipliers=(1, 2, 2, 2),
    output_dim=1,
    beta=2e-4,
    seed=0,
)
vae.compile(optimizer=keras.optimizers.Adam(1e-3))
vae.fit(x_train, batch_size=32, epochs=VAE_EPOCHS, verbose=2)

z_train = np.concatenate(
    [ops.convert_to_numpy(vae.encode(x_train[i : i + 256])[0]) for i in range(0, NUM_TRAIN, 256)]
)
seq_len, token_dim = z_train.shape[1:]
print("latents:", z_train.shape)

"""
## Train GIVT-MaskGIT

The backbone takes `style="masked"`. With `mask_style="concat"` (big_vision's choice
for the published models) each input token is concatenated with a mask indicator
instead of being replaced by a learned mask vector. `min_masking_rate_training` is
the smallest fraction of tokens masked in a training example (the ratio is drawn
through the cosine schedule). `drop_labels_probability` enables classifier-free
guidance, as for GIVT-Causal. The loss is the NLL of the masked tokens only.
"""

backbone = keras_givt.GIVTBackbone(
    seq_len=seq_len,
    out_dim=token_dim,
    num_labels=10,
    emb_dim=32 if FAST else 128,
    num_decoder_layers=1 if FAST else 4,
    num_heads=2 if FAST else 4,
    mlp_dim=64 if FAST else 512,
    num_mixtures=2 if FAST else 4,
    per_channel_mixtures=False,
    fix_square_plus=True,
    style="masked",
    mask_style="concat",
    min_masking_rate_training=0.3,
    drop_labels_probability=0.1,
)
model = keras_givt.GIVTMaskGIT(backbone, vae=vae, seed=0)
model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=1.0))
model.fit(
    {"latents": z_train, "labels": y_train},
    batch_size=64,
    epochs=GIVT_EPOCHS,
    verbose=2 if FAST else 0,
)

"""
## Generate

`generate` decodes all 16 tokens in `num_steps` parallel steps. The mask schedule
(`"cosine"` by default) fixes how many tokens stay masked after each step.
`choice_temperature` scales the Gumbel noise added to the confidence used to pick
which tokens to keep (big_vision uses 35 at 256x256); `temperature` and `cfg_weight`
act on the mixture as for GIVT-Causal. `return_num_masked=True` also returns the
number of masked tokens after every step.
"""

labels = np.arange(10)
images, num_masked = model.generate(
    labels=labels,
    num_steps=NUM_STEPS,
    choice_temperature=2.0,
    temperature=0.9,
    cfg_weight=0.3,
    seed=0,
    return_num_masked=True,
)
print("generated:", tuple(images.shape))
print("masked tokens after each step:", ops.convert_to_numpy(num_masked)[0])


def save_row(images, name):
    """Saves `images` (N, H, W, 1) in [-1, 1] side by side if GIVT_GUIDE_OUT is set."""
    if not OUT_DIR:
        return
    images = ops.convert_to_numpy(images)
    row = np.concatenate(list(images), axis=1)
    os.makedirs(OUT_DIR, exist_ok=True)
    keras.utils.save_img(os.path.join(OUT_DIR, name), (row + 1) * 127.5, scale=False)


save_row(images, "maskgit_samples.png")

"""
## Inpainting a real image

`inpaint` takes images in [-1, 1] and a pixel mask `(B, H, W)` (True = regenerate).
It encodes the images with the VAE (posterior mean), marks every token whose 8x8
pixel patch touches the mask as unknown, and runs the MaskGIT sampler from there.
Here we regenerate the bottom half of eight test images.
"""

test = next(iter(datasets.fashion_mnist_dataset("test", image_size=32, batch_size=8)))
x_test, y_test = np.asarray(test["images"]), np.asarray(test["labels"])
bottom = np.zeros((8, 32, 32), bool)
bottom[:, 16:, :] = True
inpainted = model.inpaint(
    x_test, bottom, labels=y_test, num_steps=NUM_STEPS, choice_temperature=2.0, seed=0
)
save_row(np.concatenate([x_test, ops.convert_to_numpy(inpainted)]), "inpaint.png")

"""
The pixel mask becomes a token mask on the 4x4 latent grid. Tokens outside the mask
are **copied**, not resampled: the returned latents equal the VAE encoding there
exactly, and only the masked tokens change.
"""

token_mask = ops.convert_to_numpy(pixel_mask_to_token_mask(bottom, (4, 4)))
print("token mask of image 0:\n", token_mask[0].reshape(4, 4).astype(int))
z_in = ops.convert_to_numpy(model.encode_images(x_test, sample=False))
z_out = ops.convert_to_numpy(
    model.inpaint(
        x_test,
        bottom,
        labels=y_test,
        num_steps=NUM_STEPS,
        choice_temperature=2.0,
        seed=0,
        return_latents=True,
    )
)
kept = ~token_mask
print("unmasked latents unchanged:", np.array_equal(z_in[kept], z_out[kept]))
print("masked latents changed:", not np.allclose(z_in[token_mask], z_out[token_mask]))
assert np.array_equal(z_in[kept], z_out[kept])

"""
## Outpainting

Outpainting is the same call with the mask *outside* the kept region: here we keep
the central 16x16 pixels (the 2x2 central tokens) and regenerate the border.
"""

border = np.ones((8, 32, 32), bool)
border[:, 8:24, 8:24] = False
outpainted = model.inpaint(
    x_test, border, labels=y_test, num_steps=NUM_STEPS, choice_temperature=2.0, seed=1
)
save_row(outpainted, "outpaint.png")

"""
## Class-conditional editing

Passing *another* label regenerates the masked region conditioned on the new class,
while the rest of the image is kept. Below every test image has its bottom half
redrawn as a "Sneaker" (class 7) and as a "Trouser" (class 1). Guidance
(`cfg_weight`) pushes the edit more strongly towards the target class.
"""

for target in (7, 1):
    edited = model.inpaint(
        x_test,
        bottom,
        labels=np.full((8,), target),
        num_steps=NUM_STEPS,
        choice_temperature=2.0,
        cfg_weight=1.0,
        seed=2,
    )
    name = datasets.FASHION_MNIST_CLASS_NAMES[target]
    print(f"edited towards {name}:", tuple(edited.shape))
    save_row(edited, f"edit_to_class_{target}.png")

"""
## Working on latents directly

`inpaint` also accepts `(B, L, D)` latents with a `(B, L)` token mask, which is handy
when the latents are already cached or when you want token-level control. Here we
regenerate only the four corner tokens.
"""

corners = np.zeros((8, seq_len), bool)
corners[:, [0, 3, 12, 15]] = True
z_corners = model.inpaint(
    z_in, corners, labels=y_test, num_steps=NUM_STEPS, seed=3, return_latents=True
)
z_corners = ops.convert_to_numpy(z_corners)
print("non-corner tokens unchanged:", np.array_equal(z_in[~corners], z_corners[~corners]))

"""
## Conclusion

One GIVT-MaskGIT network generates from scratch, completes partial images, extends
them outwards and edits them towards a class, with the untouched tokens kept exactly.
For ImageNet 256x256, big_vision's published model loads with
`keras_givt.GIVTMaskGIT.from_preset("givt_maskgit_imagenet256")` (a download of
about 1.2 GB) and uses its README sampling defaults (16 steps, choice temperature 35).
"""
