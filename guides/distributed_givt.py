"""
Title: Distributed training of GIVT with keras.distribution
Author: keras_givt contributors
Date created: 2026/11/23
Last modified: 2026/11/26
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
    # 8 virtual CPU devices, set before JAX creates any array. It also enlarges
    # the PJRT CPU thread pool: on a busy 2-core machine 8 devices sometimes
    # stalled into XLA's 10 s collective abort with the default pool.
    from keras_givt.utils.virtual_devices import use_virtual_cpu_devices

    use_virtual_cpu_devices(8)

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
## Multi-process / multi-host data parallel

Everything above ran in one process. A TPU pod or a multi-node GPU cluster runs **one
process per host**, each seeing only its local devices, and JAX joins them into one
computation: every process runs the same program, `keras.distribution.list_devices()`
returns the devices of all of them, and the weights of a `DataParallel` model are
replicated across hosts. In your own script the recipe is:

```python
keras.distribution.initialize(
    job_addresses="10.0.0.1:1234",  # process 0's address, reachable by every host
    num_processes=NUM_HOSTS,
    process_id=HOST_INDEX,  # 0 .. NUM_HOSTS - 1
)  # first, before any other Keras or JAX computation
keras.distribution.set_distribution(
    keras.distribution.DataParallel(
        devices=keras.distribution.list_devices(), auto_shard_dataset=False
    )
)
# Every host builds the same seeded stream of GLOBAL_BATCH batches and keeps its rows.
ds = make_stream(GLOBAL_BATCH).rebatch(GLOBAL_BATCH // NUM_HOSTS).shard(NUM_HOSTS, HOST_INDEX)
model = make_model()  # the same seed everywhere: the same initial weights
model.fit(ds, ...)
```

Two rules follow from "every process runs the same program". Creating or assigning a
variable is a collective, so all processes build, compile and restore the model
alike (restore on process 0 and broadcast with
`jax.experimental.multihost_utils.broadcast_one_to_all`). And only one process writes
the files: process 0.

The `keras-givt train` command does all of this with three flags: run the same
command on every host with `--num-processes N --process-id I --coordinator HOST:PORT`
(`--batch-size` is the global batch). Process 0 alone writes the checkpoints, the run
record and the saved model, and on `--resume` reads the checkpoint and broadcasts it,
so `--out` only has to exist on process 0's host (the inputs, `--latents` or `--data`
and `--vae`, are read by every process). On one machine,
`keras-givt launch --num-processes N -- train ...` starts the N processes with a free
port on 127.0.0.1. Here: two CPU processes, a few steps on random latents.
"""

import json
import subprocess
import sys
import tempfile

run_dir = tempfile.mkdtemp()
latents_path = os.path.join(run_dir, "latents.npz")
np.savez(
    latents_path,
    mu=latents[:64],
    logvar=np.full_like(latents[:64], -4.0),
    labels=labels[:64],
)
child_env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
child_env.pop("XLA_FLAGS", None)  # One CPU device per process, not 8 virtual ones.
command = [sys.executable, "-m", "keras_givt_cli", "--backend", "jax"]
command += ["launch", "--num-processes", "2", "--", "train", "--model", "causal"]
command += ["--latents", latents_path, "--out", os.path.join(run_dir, "run")]
command += ["--emb-dim", "32", "--num-layers", "1", "--num-heads", "2", "--mlp-dim", "64"]
command += ["--batch-size", "8", "--steps", "2" if FAST else "20", "--verbose", "0"]
subprocess.run(command, env=child_env, check=True)
with open(os.path.join(run_dir, "run", "train.json")) as f:
    record = json.load(f)
print("written by process", record["config"]["process_id"], "of", record["config"]["num_processes"])
print("loss history:", [round(h["loss"], 4) for h in record["metrics"]["history"]])

"""
What changes on a real cluster:

- **One process per host**, started by your scheduler (SLURM, Kubernetes, GKE/TPU VM
  tooling) with the same command and its own `--process-id`; on Cloud TPU and SLURM
  `keras.distribution.initialize()` without arguments lets `jax.distributed` read them
  from the environment.
- **The coordinator address** is process 0's host and a free port that every host can
  reach (open it in the firewall); `127.0.0.1` only works on one machine.
- **Per-host data**: here every process builds the whole stream and keeps its rows
  (cheap for cached latents). With large image sets, give each host its own files
  (`tf.data.Dataset.list_files(...).shard(num_hosts, host_index)`) and the same
  per-host batch size, so that each global batch is `num_hosts` local batches.
- **GPU / TPU**: each process drives its local accelerators (`jax.local_devices()`);
  the gradient all-reduce runs over NCCL / ICI instead of the CPU collectives (gloo)
  used here. `ModelParallel` meshes span hosts the same way (put the `"model"` axis
  inside a host, where the links are fastest).
- **Memory**: for big models add `remat=True` to the backbone (`--remat`: each block is
  recomputed in the backward pass; under JAX on CPU it saves nothing, as XLA's CPU
  compiler merges the recomputation back) and `keras.mixed_precision.set_dtype_policy(
  "mixed_bfloat16")` (the mixture maths stays in float32); `benchmarks/memory.py`
  measures what they save.

**TensorFlow and PyTorch.** Keras' distribution API (`initialize`, `DataParallel`,
`ModelParallel`) is implemented for JAX only. With TensorFlow, use `tf.distribute`
(`MultiWorkerMirroredStrategy` across hosts) and a custom training loop around the
task's loss (keras_givt does not test `fit` under a `tf.distribute` strategy); with
PyTorch, use `torch.distributed` (DDP) with your own loop. The `keras-givt` flags
refuse other backends than JAX.
"""

"""
## Pretrained checkpoints

The same layout map applies to a preset: create the distribution first, then load the
model inside its scope so every weight is placed on its shard as it is loaded, e.g.
`keras_givt.GIVTCausal.from_preset("givt_causal_imagenet256")` for big_vision's
ImageNet model (downloaded and converted on first use).

## Conclusion

`DataParallel` scales the batch; `ModelParallel` with `GIVTBackbone.get_layout_map`
also splits the weights. Both leave the training and sampling code unchanged, in one
process or across hosts (`keras.distribution.initialize`, or `keras-givt train
--num-processes`). On real hardware, drop the `XLA_FLAGS` line and
`keras.distribution.list_devices()` returns your GPUs or TPUs.
"""
