"""Dataset readers name the file that does not decode (image folders, IDX)."""

import gzip
import os

import numpy as np
import pytest

from keras_givt import datasets
from keras_givt.datasets import image_folder
from keras_givt.datasets.idx import read_idx


def _png_bytes(value=128, size=6):
    import tensorflow as tf

    img = np.full((size, size, 1), value, np.uint8)
    return tf.io.encode_png(img).numpy()


def _jpeg_bytes(value=128, size=16):
    import tensorflow as tf

    img = np.full((size, size, 3), value, np.uint8)
    return tf.io.encode_jpeg(img).numpy()


@pytest.fixture
def folder(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(2):
            (tmp_path / name / f"{i}.png").write_bytes(_png_bytes(40 * i))
    (tmp_path / "b" / "photo.jpg").write_bytes(_jpeg_bytes())
    return tmp_path


def test_good_folder_loads(folder):
    ds = datasets.image_folder_dataset(folder, image_size=6, batch_size=8, shuffle=False)
    batch = next(iter(ds))
    assert batch["images"].shape == (5, 6, 6, 3)


@pytest.mark.parametrize(
    "name,content,reason",
    [
        ("text.png", b"this is not an image at all", "not a PNG/JPEG/GIF/BMP image"),
        ("empty.png", b"", "the file is empty"),
        ("cut.png", "png_half", "truncated PNG"),
        ("cut.jpg", "jpeg_half", "truncated JPEG"),
    ],
)
def test_undecodable_file_is_named_before_any_work(folder, name, content, reason):
    if content == "png_half":
        data = _png_bytes(size=32)
        content = data[: len(data) - 20]
    elif content == "jpeg_half":
        data = _jpeg_bytes(size=32)
        content = data[: len(data) // 2]
    bad = folder / "a" / name
    bad.write_bytes(content)
    with pytest.raises(ValueError) as info:
        datasets.image_folder_dataset(folder, image_size=6)
    msg = str(info.value)
    assert repr(str(bad)) in msg and "does not decode" in msg and reason in msg
    assert f"({len(content)} bytes)" in msg


def test_extension_is_not_trusted(folder):
    # A PNG saved with a .jpg name decodes (tf.io.decode_image sniffs content).
    (folder / "a" / "really_png.jpg").write_bytes(_png_bytes())
    ds = datasets.image_folder_dataset(folder, image_size=6, batch_size=8, shuffle=False)
    assert next(iter(ds))["images"].shape[0] == 6


def test_check_image_file_accepts_valid_files(folder):
    image_folder.check_image_file(str(folder / "b" / "photo.jpg"))
    image_folder.check_image_file(str(folder / "a" / "0.png"))


@pytest.mark.parametrize(
    "kwargs,exc,text",
    [
        ({"pad_value": float("nan")}, ValueError, "pad_value=nan"),
        ({"pad_value": 2.0}, ValueError, "pad_value=2.0"),
        ({"batch_size": 0}, ValueError, "batch_size=0"),
        ({"batch_size": 2.5}, TypeError, "batch_size"),
        ({"seed": -1}, ValueError, "seed=-1"),
    ],
)
def test_numeric_arguments_are_checked(folder, kwargs, exc, text):
    with pytest.raises(exc, match=text):
        datasets.image_folder_dataset(folder, image_size=6, **kwargs)


def test_numpy_integer_arguments_are_accepted(folder):
    ds = datasets.image_folder_dataset(
        folder, image_size=6, batch_size=np.int64(2), seed=np.int32(3), pad_value=np.float32(-1)
    )
    assert next(iter(ds))["images"].shape[0] == 2


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def test_truncated_gzip_idx_is_named(tmp_path):
    path = str(tmp_path / "train-images-idx3-ubyte.gz")
    _write_idx(path, np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8))
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(ValueError) as info:
        read_idx(path)
    assert repr(path) in str(info.value) and "truncated or corrupt" in str(info.value)


def test_short_idx_is_named(tmp_path):
    path = str(tmp_path / "labels-idx1-ubyte")
    array = np.arange(10, dtype=np.uint8)
    header = bytes([0, 0, 0x08, 1]) + (20).to_bytes(4, "big")  # Claims 20 labels.
    open(path, "wb").write(header + array.tobytes())
    with pytest.raises(
        ValueError, match=r"labels-idx1-ubyte' is truncated or corrupt: it has 18 bytes.*needs 28"
    ):
        read_idx(path)


def test_missing_idx_is_not_called_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_idx(os.path.join(str(tmp_path), "nothing.gz"))
