import numpy as np
import pytest
import tensorflow as tf

from keras_givt import datasets


def write_png(path, array):
    tf.io.write_file(str(path), tf.io.encode_png(array))


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    # Class dirs deliberately created out of order: ids follow sorted names.
    for name, value, count in (("zebra", 255, 2), ("ant", 0, 3)):
        (tmp_path / name).mkdir()
        for i in range(count):
            img = np.full((6, 6, 1), value, np.uint8)
            img[0, 0, 0] = rng.integers(0, 256)
            write_png(tmp_path / name / f"{i}.png", img)
    (tmp_path / "ant" / "notes.txt").write_text("not an image")
    return tmp_path


def test_labels_from_sorted_class_dirs(folder):
    ds = datasets.image_folder_dataset(
        folder, image_size=6, batch_size=10, shuffle=False, channels=1
    )
    assert ds.class_names == ["ant", "zebra"]
    batch = next(iter(ds))
    x, y = batch["images"].numpy(), batch["labels"].numpy()
    assert x.shape == (5, 6, 6, 1) and x.dtype == np.float32 and y.dtype == np.int32
    assert y.tolist() == [0, 0, 0, 1, 1]
    assert x.min() >= -1.0 and x.max() <= 1.0
    np.testing.assert_allclose(x[y == 0][:, 1:, 1:], -1.0)
    np.testing.assert_allclose(x[y == 1][:, 1:, 1:], 1.0)


def test_pad_and_resize_shapes(folder):
    ds = datasets.image_folder_dataset(
        folder, image_size=10, resize_mode="pad", batch_size=5, shuffle=False
    )
    x = next(iter(ds))["images"].numpy()
    assert x.shape == (5, 10, 10, 3)
    np.testing.assert_allclose(x[:, :2], -1.0)  # padding rows
    np.testing.assert_allclose(x[3:, 3:8, 3:8], 1.0)  # the white class, center
    ds = datasets.image_folder_dataset(
        folder, image_size=(4, 12), resize_mode="resize", batch_size=2, seed=1
    )
    batches = list(ds)
    assert [b["images"].shape[0] for b in batches] == [2, 2, 1]
    assert batches[0]["images"].shape[1:] == (4, 12, 3)
    # Cropping when the target is smaller in "pad" mode.
    ds = datasets.image_folder_dataset(
        folder, image_size=4, resize_mode="pad", batch_size=5, shuffle=False
    )
    assert next(iter(ds))["images"].shape == (5, 4, 4, 3)


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="root"):
        datasets.image_folder_dataset(tmp_path / "missing", image_size=8)
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(ValueError, match="No images"):
        datasets.image_folder_dataset(tmp_path, image_size=8)
