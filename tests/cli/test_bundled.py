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
