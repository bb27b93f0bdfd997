import numpy as np
import pytest

from keras_givt.datasets.mnist_panoptic import make_mnist_panoptic
from tests.datasets.test_mnist import write_tiny_mnist


def test_mnist_panoptic_targets(tmp_path):
    arrays = write_tiny_mnist(str(tmp_path), num=6)
    images, maps = make_mnist_panoptic(
        "test", num_examples=5, canvas_size=20, digit_size=14, seed=1, data_dir=str(tmp_path)
    )
    assert images.shape == (5, 20, 20, 3) and maps.shape == (5, 20, 20, 2)
    assert images.min() >= -1 and images.max() <= 1
    sem, inst = maps[..., 0], maps[..., 1]
    # Background <-> no instance; stroke pixels carry 1 + a test-split label.
    np.testing.assert_array_equal(sem == 0, inst == 0)
    labels = set(arrays["t10k"][1].tolist())
    assert set(np.unique(sem[sem > 0]) - 1) <= labels
    assert inst.max() <= 3 and np.all((inst > 0).sum(axis=(1, 2)) > 0)
    # Each instance has one class; strokes are bright pixels.
    for n in range(5):
        for j in np.unique(inst[n][inst[n] > 0]):
            assert len(np.unique(sem[n][inst[n] == j])) == 1
    assert np.all(images[..., 0][sem > 0] > 0.0)
    again, maps2 = make_mnist_panoptic(
        "test", num_examples=5, canvas_size=20, digit_size=14, seed=1, data_dir=str(tmp_path)
    )
    np.testing.assert_array_equal(maps2, maps)
    with pytest.raises(ValueError, match="digit_size"):
        make_mnist_panoptic("test", 2, canvas_size=10, digit_size=14, data_dir=str(tmp_path))
