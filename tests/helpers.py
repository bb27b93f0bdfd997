"""Small builders shared by tests."""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
from keras import ops

import keras_givt
from keras_givt.utils.virtual_devices import virtual_cpu_device_env
from tests.conftest import BIG_VISION_FIXTURES
from tests.paths import ROOT

# XLA aborts a collective whose participants have not all joined within 10 s
# (`keras_givt.utils.virtual_devices` says why the PJRT pool is enlarged). The abort is
# all-or-nothing (no passing run waited even the 5 s after which XLA warns), so a
# second try is kept too, only for that abort.
_RENDEZVOUS_ABORT = "Termination timeout for"


def run_on_virtual_cpu_devices(script, num_devices, attempts=2):
    """Runs `script` with `python -c` on `num_devices` virtual JAX CPU devices.

    Returns the `CompletedProcess`. A run that XLA aborted for a collective
    rendezvous time-out is run again (up to `attempts` runs in all) and the
    abort is reported as a warning; any other failure is returned at once.
    """
    env = virtual_cpu_device_env(num_devices, dict(os.environ, KERAS_BACKEND="jax"))
    for attempt in range(1, attempts + 1):
        proc = subprocess.run(
            [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True
        )
        aborted = proc.returncode != 0 and _RENDEZVOUS_ABORT in proc.stderr
        if not aborted or attempt == attempts:
            return proc
        warnings.warn(
            f"XLA aborted a {num_devices}-device run for a collective rendezvous "
            f"time-out (attempt {attempt} of {attempts}); running it again."
        )


TINY = dict(
    seq_len=16,
    out_dim=4,
    num_labels=10,
    emb_dim=32,
    num_decoder_layers=2,
    num_heads=2,
    mlp_dim=64,
    num_mixtures=3,
)


def tiny_kwargs(**overrides):
    kwargs = dict(TINY)
    kwargs.update(overrides)
    return kwargs


# A backbone that can guide: a NOLABEL row and an MV-diagonal head (CFG works).
GUIDED = dict(num_mixtures=2, per_channel_mixtures=False, drop_labels_probability=0.1)
MASKED = dict(style="masked", mask_style="concat")


def to_numpy(x):
    """`x` (a backend tensor or array) as a numpy array."""
    return np.asarray(ops.convert_to_numpy(x))


def randomize_weights(model, seed=0, scale=0.2):
    """Overwrites every weight of `model` with N(0, scale²) draws of `seed`; returns it."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign((scale * rng.normal(size=w.shape)).astype("float32"))
    return model


def tiny_guided_backbone(masked=False, seed=0, randomize=True, **overrides):
    """A tiny `GIVTBackbone` (`TINY` + `GUIDED`, + `MASKED` when `masked`), its
    weights randomized with `seed` unless `randomize=False`."""
    kwargs = tiny_kwargs(**GUIDED, **(MASKED if masked else {}))
    kwargs.update(overrides)
    backbone = keras_givt.GIVTBackbone(**kwargs)
    return randomize_weights(backbone, seed) if randomize else backbone


def tiny_maskgit_backbone(num_classes=3, num_layers=1, seq_len=16):
    """A tiny `MaskGITBackbone` over 16 codes."""
    return keras_givt.MaskGITBackbone(
        codebook_size=16,
        num_classes=num_classes,
        seq_len=seq_len,
        hidden_size=32,
        num_layers=num_layers,
        num_heads=2,
        intermediate_size=64,
    )


def tiny_vqgan_tokenizer():
    """A built tiny `VQGANTokenizer`: 8x8 images <-> 4x4 grids of 16 codes."""
    tokenizer = keras_givt.VQGANTokenizer(
        filters=32, num_res_blocks=1, channel_multipliers=[1, 1], embedding_dim=4, codebook_size=16
    )
    return tokenizer.build_for_image_size(8)


def tiny_inputs(backbone, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    inputs = {
        "tokens": rng.normal(size=(batch, backbone.seq_len, backbone.out_dim)).astype("float32")
    }
    if backbone.num_labels is not None:
        inputs["labels"] = rng.integers(0, backbone.num_labels, size=(batch,)).astype("int32")
    if backbone.style == "masked":
        inputs["input_mask"] = rng.random((batch, backbone.seq_len)) < 0.5
    return inputs


def fixture_dir(name):
    return os.path.join(BIG_VISION_FIXTURES, name)


def fixture_entry(name):
    with open(os.path.join(BIG_VISION_FIXTURES, "index.json")) as f:
        return json.load(f)["configs"][name]


def givt_fixture_names():
    with open(os.path.join(BIG_VISION_FIXTURES, "index.json")) as f:
        configs = json.load(f)["configs"]
    return sorted(k for k, v in configs.items() if v["kind"] == "givt")


def digits_tokens(num=256, seed=0):
    """Real tiny data: sklearn's 8x8 digits as 16 tokens of 2x2 pixels in [-1, 1]."""
    from sklearn.datasets import load_digits

    data = load_digits()
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(data.images))[:num]
    images = data.images[idx].astype("float32") / 8.0 - 1.0  # (N, 8, 8) in [-1, 1]
    tokens = images.reshape(num, 4, 2, 4, 2).transpose(0, 1, 3, 2, 4).reshape(num, 16, 4)
    return tokens.astype("float32"), data.target[idx].astype("int32")


def counting_task(task_class):
    """`(subclass, traces)`: a subclass of `task_class` whose `generate_step` appends
    to the list `traces` each time it is built (once per trace; per call on torch)."""
    traces = []

    class Counting(task_class):
        def generate_step(self, *args, **kwargs):
            traces.append(1)
            return super().generate_step(*args, **kwargs)

    return Counting, traces
