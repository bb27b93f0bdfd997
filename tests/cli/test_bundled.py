"""The bundled Fashion-MNIST models load offline from the package and generate."""

import os

import numpy as np
import pytest
from keras import ops

import keras_givt
from keras_givt.models import bundled


@pytest.mark.parametrize("name", sorted(bundled.BUNDLED))
def test_bundled_preset_loads_and_generates(name):
    path = bundled.preset_path(name)
    if not os.path.isfile(os.path.join(path, "task.json")):
        pytest.skip(f"{name} is not shipped in this checkout")
    entry = bundled.registry_entries()[name]
    assert entry["path"] == path and entry["task"] == bundled.BUNDLED[name]
    card = entry["metadata"]["model_card"]
    assert card["training_command"].startswith("keras-givt ")
    cls = getattr(keras_givt, bundled.BUNDLED[name])
    model = cls.from_preset(path)
    if cls is keras_givt.GIVTUViM:  # Dense prediction from an image.
        h, w = model.backbone.input_size
        images = np.random.default_rng(0).uniform(-1, 1, (1, h, w, 3)).astype("float32")
        out = model.generate(images, seed=0, beam_size=1, fan_size=1)
        assert out["semantics"].shape == (1, h, w) and out["instances"].shape == (1, h, w)
        return
    if cls is keras_givt.MaskGITImageGenerator:  # Discrete tokens, not latents.
        t = ops.convert_to_numpy(
            model.generate(labels=[0, 9], num_steps=4, seed=0, return_tokens=True)
        )
        assert t.shape == (2, 16) and t.min() >= 0 and t.max() < model.backbone.codebook_size
        return
    kwargs = {"num_steps": 4} if cls is keras_givt.GIVTMaskGIT else {}
    z = model.generate(labels=[0, 9], seed=0, return_latents=True, **kwargs)
    assert tuple(z.shape) == (2, 16, 16)
    assert np.isfinite(ops.convert_to_numpy(z)).all()


@pytest.mark.parametrize("name", ["givt_causal_fashion_mnist", "givt_maskgit_fashion_mnist"])
def test_bundled_givt_mixture_components_differ(name):
    # Issue #20: zero-initialised heads trained deterministically keep their K components
    # bit-identical (one Gaussian). The bundled models must have K distinct components.
    model = keras_givt.GIVTCausal if "causal" in name else keras_givt.GIVTMaskGIT
    backbone = model.from_preset(bundled.preset_path(name)).backbone
    K = backbone.num_mixtures
    assert K > 1
    rng = np.random.default_rng(0)
    tokens = rng.normal(size=(4, backbone.seq_len, backbone.out_dim)).astype("float32")
    labels = np.arange(4, dtype="int32")
    inputs = {"tokens": tokens, "labels": labels}
    if backbone.style == "masked":  # Every other token masked.
        inputs["input_mask"] = np.tile(np.arange(backbone.seq_len) % 2 == 0, (4, 1))
    params = backbone.head.mixture_params(backbone(inputs))
    loc = ops.convert_to_numpy(params["loc"])  # per channel (B, L, D, K), else (B, L, K, D)
    if not backbone.per_channel_mixtures:
        loc = np.moveaxis(loc, -2, -1)
    spread = loc.max(-1) - loc.min(-1)  # Per token and channel, over the K components.
    assert np.median(spread) > 0.05, f"component locations spread only {np.median(spread)}"
    weights = ops.convert_to_numpy(ops.softmax(params["mixture_logits"], axis=-1))
    assert np.max(weights.std(-1)) > 1e-3, "the mixture weights are all equal"
