"""Small builders shared by tests."""

import json
import os

import numpy as np

from tests.conftest import BIG_VISION_FIXTURES

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
