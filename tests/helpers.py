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
    inputs = {"tokens": rng.normal(size=(batch, backbone.seq_len, backbone.out_dim)).astype("float32")}
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
