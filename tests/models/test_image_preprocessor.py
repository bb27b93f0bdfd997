"""`ImagePreprocessor`: raw images of any size/range -> the model's image convention."""

import json
import os

import keras
import numpy as np
import pytest

import keras_givt
from keras_givt.models.image_preprocessor import ImagePreprocessor


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _raw(n=3, seed=0, shape=(28, 28)):
    return np.random.default_rng(seed).integers(0, 256, (n,) + shape, dtype=np.uint8)


def test_fashion_mnist_convention_pad_and_tile():
    pre = ImagePreprocessor(32, channels=3, resize_mode="pad")
    x = _raw()
    out = _np(pre(x))
    assert out.shape == (3, 32, 32, 3) and out.dtype == np.float32
    expected = x.astype("float32") / 127.5 - 1.0
    for c in range(3):  # Gray tiled to RGB, 2-pixel black border, no interpolation.
        np.testing.assert_allclose(out[:, 2:30, 2:30, c], expected, atol=1e-6)
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert np.all(out[:, border] == -1.0)
    # (B, H, W, 1), [0, 1] floats, 0-255 floats and [-1, 1] floats give the same images.
    for same in (x[..., None], x / 255.0, x.astype("float32"), x.astype("float64") / 127.5 - 1.0):
        np.testing.assert_allclose(_np(pre(same)), out, atol=1e-5)
    # Already at the model's convention: unchanged.
    np.testing.assert_allclose(_np(pre(out)), out, atol=1e-6)


def test_output_range_channels_and_resize_modes():
    x = _raw(2)
    vq = _np(ImagePreprocessor(32, output_range=(0, 1))(x))  # VQGAN convention.
    np.testing.assert_allclose(vq[:, 2:30, 2:30, 0], x / 255.0, atol=1e-6)
    assert vq[:, 0].max() == 0.0 and vq.min() >= 0.0
    rgb = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    gray = _np(ImagePreprocessor(32, channels=1)(rgb))
    np.testing.assert_allclose(gray[..., 0], rgb.mean(-1) / 127.5 - 1.0, atol=1e-5)
    big = _raw(2, shape=(64, 48))
    resized = _np(ImagePreprocessor(32, resize_mode="resize")(big))
    assert resized.shape == (2, 32, 32, 3) and resized.min() >= -1.0 and resized.max() <= 1.0
    padded = _np(ImagePreprocessor(32, resize_mode="pad")(big))  # Shrunk to 32x24, then padded.
    assert padded.shape == (2, 32, 32, 3)
    assert np.all(padded[:, :, :4] == -1.0) and np.all(padded[:, :, 28:] == -1.0)
    assert np.abs(padded[:, :, 4:28]).sum() > 0


@pytest.mark.parametrize(
    "images, match",
    [
        (np.zeros((28, 28), "uint8"), r"images.shape=\(28, 28\)"),
        (np.zeros((28, 28, 1), "uint8"), r"single \(H, W, C\) image"),
        (np.zeros((2, 28, 28, 2), "uint8"), r"1 \(gray\) or 3 \(RGB\) channels"),
        (np.zeros((1, 2, 28, 28, 1), "uint8"), r"images.shape=\(1, 2, 28, 28, 1\)"),
        (np.zeros((2, 28, 28), bool), r"dtype bool"),
        (np.full((2, 28, 28), np.nan, "float32"), r"must be finite"),
        (np.linspace(-5, 300, 2 * 28 * 28, dtype="float32").reshape(2, 28, 28), r"min=-5, max=300"),
        (np.full((2, 28, 28), 300, "int32"), r"max=300"),
    ],
)
def test_refuses_what_cannot_be_images(images, match):
    pre = ImagePreprocessor(32)
    with pytest.raises(ValueError, match=match):
        pre(images)


def test_fixed_input_range_and_bad_arguments():
    pre = ImagePreprocessor(32, input_range=(0, 1))
    with pytest.raises(ValueError, match=r"must be in \[0, 1\].*max=255"):
        pre(np.full((1, 28, 28), 255.0, "float32"))
    for kwargs, match in [
        ({"channels": 2}, "channels=2"),
        ({"resize_mode": "crop"}, "resize_mode='crop'"),
        ({"output_range": (0, 255)}, r"output_range=\(0, 255\)"),
        ({"input_range": "0_100"}, "input_range='0_100'"),
        ({"image_size": 0}, "image_size"),
    ]:
        with pytest.raises((ValueError, TypeError), match=match):
            ImagePreprocessor(**{"image_size": 32, **kwargs})


def test_pairs_and_dicts():
    x, y = _raw(2), np.array([3, 7])
    out = ImagePreprocessor(32)((x, y))
    assert sorted(out) == ["images", "labels"] and _np(out["images"]).shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(_np(out["labels"]), y)
    latents = np.zeros((2, 16, 4), "float32")
    passthrough = ImagePreprocessor(32)({"latents": latents, "labels": y})
    assert passthrough["latents"] is latents
    images, targets = ImagePreprocessor(32, pack_labels=False)(x, y=np.ones((2, 32, 32, 2)))
    assert _np(images).shape == (2, 32, 32, 3) and targets.shape == (2, 32, 32, 2)
    with pytest.raises(ValueError, match="given twice"):
        ImagePreprocessor(32)({"images": x, "labels": y}, y=y)


def test_inside_tf_data_matches_eager_and_refuses_per_batch():
    import tensorflow as tf

    pre = ImagePreprocessor(32)
    x = _raw(4)
    eager = _np(pre(x))
    ds = tf.data.Dataset.from_tensor_slices(x).batch(2).map(lambda b: pre(b))
    graph = np.concatenate([b.numpy() for b in ds])
    np.testing.assert_allclose(graph, eager, atol=1e-6)
    bad = tf.data.Dataset.from_tensor_slices(np.full((2, 28, 28), -7.0, "float32")).batch(2)
    with pytest.raises(tf.errors.OpError, match="min=-7"):
        list(bad.map(lambda b: pre(b)))


def test_serialization_and_task_round_trip(tmp_path):
    pre = ImagePreprocessor(
        (32, 24),
        channels=1,
        resize_mode="resize",
        output_range=(0, 1),
        input_range="uint8",
        pack_labels=False,
    )
    clone = keras.layers.deserialize(json.loads(json.dumps(keras.layers.serialize(pre))))
    assert clone.get_config() == pre.get_config()
    x = _raw(2)
    np.testing.assert_allclose(_np(clone(x)), _np(pre(x)))
    from tests import helpers

    backbone = keras_givt.GIVTBackbone(**helpers.tiny_kwargs())
    model = keras_givt.GIVTCausal(backbone, preprocessor=ImagePreprocessor(8), seed=0)
    restored = keras_givt.GIVTCausal.from_config(model.get_config())
    assert isinstance(restored.preprocessor, ImagePreprocessor)
    assert restored.preprocessor.get_config() == model.preprocessor.get_config()
    model.save_to_preset(str(tmp_path / "preset"))
    loaded = keras_givt.GIVTCausal.from_preset(str(tmp_path / "preset"))
    assert loaded.preprocessor.get_config() == model.preprocessor.get_config()


@pytest.mark.parametrize(
    "name, output_range",
    [
        ("givt_causal_fashion_mnist", [-1.0, 1.0]),
        ("givt_maskgit_fashion_mnist", [-1.0, 1.0]),
        ("vq_maskgit_fashion_mnist", [0.0, 1.0]),
    ],
)
def test_bundled_presets_carry_their_training_preprocessing(name, output_range):
    from keras_givt.models.bundled import preset_path

    with open(os.path.join(preset_path(name), "task.json")) as f:
        config = json.load(f)["config"]["preprocessor"]
    pre = keras.layers.deserialize(config)
    assert isinstance(pre, ImagePreprocessor)
    card = keras_givt.models.bundled.model_card(name)["data"]["data"]
    assert pre.image_size == (card["image_size"],) * 2 and pre.channels == card["channels"]
    assert pre.resize_mode == card["resize_mode"] == "pad"
    assert list(pre.output_range) == output_range
