"""
Title: Distributed training of GIVT with keras.distribution
Author: keras_givt contributors
Date created: 2026/11/23
Last modified: 2026/11/23
Description: Data-parallel and model-parallel GIVT training with the keras.distribution API.
"""

"""
## Introduction

The Keras 3 `keras.distribution` API shards models and data over a mesh of devices
(this guide uses the JAX backend). It trains a GIVT-Causal backbone in two ways:

- **DataParallel**: every device holds a full copy of the weights and processes a
  slice of each batch;
- **ModelParallel**: the weights themselves are split over a `"model"` mesh axis with
  the layout map returned by `keras_givt.GIVTBackbone.get_layout_map`, and the batch is
  split over a `"batch"` axis.

No accelerator is needed to follow along: on a CPU-only machine (or with
`KERAS_GIVT_GUIDE_FAST=1`) we ask XLA for 8 virtual host devices. The flag must be
set **before** JAX is imported, i.e. before `import keras`.
"""

"""
## Setup
"""

import os
import shutil

os.environ.setdefault("KERAS_BACKEND", "jax")  # keras.distribution needs JAX here.

FAST = bool(os.environ.get("KERAS_GIVT_GUIDE_FAST"))
HAS_ACCELERATOR = bool(shutil.which("nvidia-smi")) or os.path.exists("/dev/accel0")
if FAST or not HAS_ACCELERATOR:
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count=8"

import keras
import numpy as np

import keras_givt

devices = keras.distribution.list_devices()
print(f"{len(devices)} devices:", devices)

"""
## Data

To keep the guide self-contained we train on random latents shaped like the
Fashion-MNIST VAE latents of the other guides (16 tokens of 16 channels); swap in real
latents from `vae.encode` for a real run. The global batch size must be divisible by
the number of devices on the batch axis.
"""

SEQ_LEN, TOKEN_DIM = 16, 16
NUM_EXAMPLES = 256 if FAST else 8192
BATCH_SIZE = 32 if FAST else 256
rng = np.random.default_rng(0)
latents = rng.normal(size=(NUM_EXAMPLES, SEQ_LEN, TOKEN_DIM)).astype("float32")
labels = rng.integers(0, 10, size=(NUM_EXAMPLES,)).astype("int32")
data = {"latents": latents, "labels": labels}


def make_model():
    backbone = keras_givt.GIVTBackbone(
        seq_len=SEQ_LEN,
        out_dim=TOKEN_DIM,
        num_labels=10,
        emb_dim=64 if FAST else 256,
        num_decoder_layers=2 if FAST else 6,
        num_heads=4 if FAST else 8,
        mlp_dim=128 if FAST else 1024,
        num_mixtures=4,
        per_channel_mixtures=False,
        drop_labels_probability=0.1,
    )
    return keras_givt.GIVTCausal(backbone, seed=0)


def show_layouts(model, count=6):
    """Prints the sharding of a few backbone weights."""
    for variable in model.backbone.weights[:count]:
        sharding = getattr(variable.value, "sharding", None)
        spec = getattr(sharding, "spec", sharding)
        print(f"{variable.path:55s} {str(variable.shape):16s} {spec}")


"""
## Data parallelism

`DataParallel` builds a 1-D mesh over all devices. Variables created inside its scope
are replicated; `fit` splits every batch over the devices and averages the gradients
(an all-reduce inserted by XLA).
"""

data_parallel = keras.distribution.DataParallel(devices=devices)
with data_parallel.scope():
    model = make_model()
show_layouts(model)
with data_parallel.scope():
    model.fit(
        data,
        batch_size=BATCH_SIZE,
        epochs=1,
        steps_per_epoch=2 if FAST else None,
        verbose=2,
    )

"""
## Model parallelism

For bigger GIVTs the weights no longer fit on one device. A 2-D `DeviceMesh` with
`"batch"` and `"model"` axes splits the batch over the first and the weights over the
second. `GIVTBackbone.get_layout_map(mesh)` gives the sharding rules, keyed by
variable-path regular expressions:

- the query/key/value kernels are split along heads and the output projection along
  its input heads (Megatron-style attention),
- the first MLP kernel is split along its output and the second along its input,
- the embeddings are split along the width, the final logits kernel along its input,
- everything small (layer norms, biases of the projections) stays replicated.
"""

model_devices = 2 if len(devices) % 2 == 0 else 1
mesh = keras.distribution.DeviceMesh(
    shape=(len(devices) // model_devices, model_devices),
    axis_names=["batch", "model"],
    devices=devices,
)
layout_map = keras_givt.GIVTBackbone.get_layout_map(mesh)
for key in list(layout_map.keys())[:4]:
    print(f"{key:60s} -> {layout_map[key].axes}")

model_parallel = keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch")
with model_parallel.scope():
    model = make_model()
show_layouts(model, count=10)

"""
A quick check that the kernel of the first MLP layer is really split: each device
holds only its shard.
"""

mlp_kernel = next(v for v in model.backbone.weights if v.path.endswith("mlp_dense_0/kernel"))
shards = mlp_kernel.value.addressable_shards
print(
    f"{mlp_kernel.path}: global {tuple(mlp_kernel.shape)},"
    f" shard {tuple(shards[0].data.shape)} on each of {len(shards)} devices"
)

"""
Training and sampling need no changes: run `fit` and `generate` inside the scope.
"""

with model_parallel.scope():
    history = model.fit(
        data,
        batch_size=BATCH_SIZE,
        epochs=1,
        steps_per_epoch=2 if FAST else None,
        verbose=2,
    )
    z = model.generate(labels=np.arange(8), seed=0, return_latents=True)
print("final loss:", history.history["loss"][-1], "samples:", tuple(z.shape))

"""
## Pretrained checkpoints

The same layout map applies to a preset: create the distribution first, then load the
model inside its scope so every weight is placed on its shard as it is loaded, e.g.
`keras_givt.GIVTCausal.from_preset("givt_causal_imagenet256")` for big_vision's
ImageNet model (downloaded and converted on first use).

## Conclusion

`DataParallel` scales the batch; `ModelParallel` with `GIVTBackbone.get_layout_map`
also splits the weights. Both leave the training and sampling code unchanged. On real
hardware, drop the `XLA_FLAGS` line and `keras.distribution.list_devices()` returns
your GPUs or TPUs.
"""
