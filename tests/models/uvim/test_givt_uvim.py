import keras
import numpy as np
import pytest
from keras import ops

from keras_givt import GIVTUViM
from keras_givt.models.uvim import dense_targets
from keras_givt.samplers.autoregressive import ar_generate
from tests import helpers as test_helpers
from tests.models.uvim import helpers


def _randomize(model, seed=0):
    return test_helpers.randomize_weights(model, seed, scale=0.3)


def _np(x):
    return ops.convert_to_numpy(x)


def test_cached_decoding_with_encoder_equals_full_forward():
    backbone = _randomize(helpers.tiny_backbone(seq_len=8))
    rng = np.random.default_rng(1)
    tokens = rng.normal(size=(2, 8, 4)).astype("float32")
    image = rng.uniform(-1, 1, size=(2, 16, 16, 3)).astype("float32")
    full = _np(backbone({"tokens": tokens, "image": image}))
    encoded = backbone.encode(image)
    assert tuple(encoded.shape) == (2, 16, 32)
    cache = backbone.build_cache(2)
    logits, cache = backbone.prefill(None, cache, batch_size=2, encoded=encoded)
    steps = [_np(logits)]
    chunk, cache = backbone.call_with_cache(tokens[:, 0:3], cache, 1, encoded=encoded)
    steps.append(_np(chunk))
    for i in range(3, 7):
        step, cache = backbone.call_with_cache(tokens[:, i : i + 1], cache, i + 1, encoded=encoded)
        steps.append(_np(step))
    np.testing.assert_allclose(np.concatenate(steps, 1), full, atol=1e-4, rtol=1e-4)
    # The decoder does look at the image.
    other = _np(backbone({"tokens": tokens, "image": image[::-1]}))
    assert np.abs(other - full).max() > 1e-3
    with pytest.raises(ValueError, match="image"):
        backbone.prefill(None, backbone.build_cache(2), batch_size=2)
    with pytest.raises(ValueError, match="image"):
        backbone({"tokens": tokens})


def test_backbone_config_round_trip_and_validation():
    backbone = helpers.tiny_backbone()
    config = backbone.get_config()
    assert config["num_layers"] == 1 and config["patches"] == [4, 4]
    clone = type(backbone).from_config(config)
    assert clone.count_params() == backbone.count_params()
    with pytest.raises(ValueError, match="patches"):
        helpers.tiny_backbone(patches=None)
    with pytest.raises(ValueError, match="divisible"):
        helpers.tiny_backbone(patches=(5, 5))


def test_beam_search_with_encoder_shapes():
    backbone = _randomize(helpers.tiny_backbone(), seed=3)
    image = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)).astype("float32")
    seed = keras.random.SeedGenerator(0)
    encoded = backbone.encode(image)
    tokens, lp = ar_generate(
        backbone, None, 2, seed, beam_size=2, fan_size=3, encoded=encoded, return_all_beams=True
    )
    assert tuple(tokens.shape) == (2, 2, 4, 4) and tuple(lp.shape) == (2, 2)
    lp = _np(lp)
    assert np.all(np.isfinite(lp)) and np.all(lp[:, 0] >= lp[:, 1])


def test_depth_binning_and_inverse():
    d = np.array([-1.0, 0.0, 0.001, 0.05, 5.0, 9.99, 10.0, 25.0], "float32")
    bins = _np(dense_targets.quantize_depth(d))
    np.testing.assert_array_equal(bins, [0, 0, 0, 1, 127, 255, 255, 255])
    back = _np(dense_targets.dequantize_depth(bins))
    np.testing.assert_allclose(back[4], 0.001 + 127.5 * 9.999 / 256, rtol=1e-6)
    inside = (d >= 0.001) & (d < 10.0)
    assert np.all(np.abs(back - d)[inside] <= 9.999 / 512 + 1e-6)
    np.testing.assert_array_equal(_np(dense_targets.quantize_depth(back)), bins)
    with pytest.raises(ValueError, match="max_depth"):
        dense_targets.quantize_depth(d, min_depth=1.0, max_depth=1.0)


def test_tiny_uvim_training_lowers_loss():
    keras.utils.set_random_seed(0)
    model = helpers.tiny_uvim()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    images, maps = helpers.panoptic_data()
    before = model.evaluate(images, maps, batch_size=16, verbose=0)
    model.fit(images, maps, batch_size=16, epochs=6, verbose=0)
    after = model.evaluate(images, maps, batch_size=16, verbose=0)
    assert np.isfinite(after) and after < before - 0.5, (before, after)


def test_generate_panoptic_and_depth():
    model = helpers.tiny_uvim(sampling_defaults={"beam_size": 2, "fan_size": 2})
    images, _ = helpers.panoptic_data(n=2)
    out = model.generate(images, seed=0, return_latents=True)
    assert out["semantics"].shape == out["instances"].shape == (2, 16, 16)
    assert out["semantics"].max() < 5 and out["instances"].max() < 3
    assert out["latents"].shape == (2, 4, 4)
    again = model.generate(images, seed=0, return_latents=True)
    np.testing.assert_array_equal(again["latents"], out["latents"])
    assert model.sampling_defaults["temperature"] == 0.85  # big_vision's panoptic default
    with pytest.raises(ValueError, match="images"):
        model.generate(images[:, :8])

    depth = helpers.tiny_uvim("depth")
    assert depth.sampling_defaults == {"temperature": 0.9, "beam_size": 2, "fan_size": 8}
    pred = depth.predict(
        np.concatenate([images, images]), batch_size=2, beam_size=1, fan_size=1, seed=0
    )
    assert pred["depth"].shape == (4, 16, 16)
    assert pred["depth"].min() > 0.001 and pred["depth"].max() < 10.0
    # Depth targets are quantised into the VAE's bins.
    label_map = _np(depth.targets_to_label_map(np.full((1, 16, 16), 5.0, "float32")))
    assert label_map.shape == (1, 16, 16, 1) and np.all(label_map == 7)


def test_uvim_config_round_trip_and_validation():
    model = helpers.tiny_uvim()
    clone = GIVTUViM.from_config(model.get_config())
    assert clone.task_type == "panoptic" and clone.vae.inout_specs == model.vae.inout_specs
    with pytest.raises(ValueError, match="task_type"):
        GIVTUViM(helpers.tiny_backbone(), helpers.tiny_vae(), task_type="seg")
    with pytest.raises(ValueError, match="code_len"):
        GIVTUViM(helpers.tiny_backbone(seq_len=8), helpers.tiny_vae())
