import numpy as np
import pytest

from keras_givt import datasets
from keras_givt.metrics import FDCNN
from keras_givt.metrics import build_fd_cnn_classifier
from keras_givt.metrics import fd_cnn
from keras_givt.metrics import prepare_images

MIN_ACCURACY = {"fashion_mnist": 0.85, "mnist": 0.97}
LOADERS = {"fashion_mnist": datasets.load_fashion_mnist, "mnist": datasets.load_mnist}


def synthetic_images(num=6):
    """Deterministic (num, 28, 28) images in [-1, 1]: blobs and stripes."""
    yy, xx = np.mgrid[0:28, 0:28] / 27.0
    out = []
    for i in range(num):
        blob = np.exp(-(((xx - 0.2 - 0.1 * i) ** 2) + (yy - 0.5) ** 2) / 0.02)
        stripes = 0.5 * (np.sin(2 * np.pi * (i + 1) * xx) > 0)
        out.append(np.clip(blob + stripes, 0, 1) * 2 - 1)
    return np.stack(out).astype("float32")


def numpy_forward(weights, images):
    """The FD-CNN feature layer in plain numpy (backend-independent reference)."""

    def conv_relu(x, kernel, bias):
        h, w = x.shape[1:3]
        xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        out = sum(xp[:, i : i + h, j : j + w] @ kernel[i, j] for i in range(3) for j in range(3))
        return np.maximum(out + bias, 0)

    def pool(x):
        b, h, w, c = x.shape
        return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))

    x = images[..., None].astype(np.float64)
    x = pool(conv_relu(x, weights["conv1/kernel"], weights["conv1/bias"]))
    x = pool(conv_relu(x, weights["conv2/kernel"], weights["conv2/bias"]))
    x = x.reshape(len(x), -1)
    return np.maximum(x @ weights["features/kernel"] + weights["features/bias"], 0)


def test_classifier_shapes():
    model = build_fd_cnn_classifier()
    out = model(np.zeros((2, 28, 28, 1), "float32"))
    assert tuple(out["features"].shape) == (2, 128) and tuple(out["logits"].shape) == (2, 10)


def test_prepare_images_modes():
    x = np.random.default_rng(0).uniform(-1, 1, size=(2, 28, 28)).astype("float32")
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2)), constant_values=-1.0)
    rgb = np.repeat(padded[..., None], 3, axis=-1)
    for inp in (x, padded, padded[..., None], rgb):
        np.testing.assert_allclose(np.asarray(prepare_images(inp)), x[..., None], atol=1e-6)
    assert tuple(prepare_images(x[:, :16, :16], input_mode="resize").shape) == (2, 28, 28, 1)
    uint8 = np.zeros((1, 28, 28), np.uint8)
    np.testing.assert_allclose(np.asarray(prepare_images(uint8)), -1.0)
    with pytest.raises(ValueError, match="input_mode='resize'"):
        prepare_images(x[:, :16, :16])
    with pytest.raises(ValueError, match="input_mode"):
        prepare_images(x, input_mode="stretch")
    with pytest.raises(ValueError, match="shape"):
        prepare_images(np.zeros((2, 28, 28, 2), "float32"))


@pytest.mark.parametrize("dataset", ["fashion_mnist", "mnist"])
def test_shipped_classifier_loads_and_matches_numpy(dataset):
    metric = FDCNN(dataset)
    images = synthetic_images()
    features = metric.features(images)
    assert features.shape == (6, 128) and np.all(np.isfinite(features))
    with np.load(fd_cnn.default_weights_path(dataset)) as data:
        reference = numpy_forward(dict(data), images)
    np.testing.assert_allclose(features, reference, rtol=1e-4, atol=1e-4)
    # Padded 32x32 RGB inputs give the same features; so does a batch iterable.
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)), constant_values=-1.0)
    np.testing.assert_allclose(
        metric.features(np.repeat(padded[..., None], 3, -1)), features, rtol=1e-5, atol=1e-5
    )
    batches = [{"images": images[:4], "labels": None}, {"images": images[4:]}]
    np.testing.assert_allclose(metric.features(batches), features, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        metric.features(iter([images[:2], images[2:]])), features, rtol=1e-5, atol=1e-5
    )
    with pytest.raises(TypeError, match="np.stack"):
        metric.features([images[0], images[1]])
    hist = metric.class_histogram(images)
    assert hist.shape == (10,) and hist.sum() == 6
    assert metric.class_histogram(images, normalize=True).sum() == pytest.approx(1.0)


@pytest.mark.parametrize("dataset", ["fashion_mnist", "mnist"])
def test_shipped_statistics(dataset):
    metric = FDCNN(dataset)
    assert metric.accuracy > MIN_ACCURACY[dataset]
    stats = metric.reference_statistics
    assert stats["mu"].shape == (128,) and stats["sigma"].shape == (128, 128)
    assert stats["sigma"].dtype == np.float64
    assert 0.0 <= metric.floor < 1.0 < metric.noise_distance
    assert metric.reference_class_histogram.sum() == 10000
    assert metric.distance(stats) == pytest.approx(0.0, abs=1e-6)
    assert metric.distance_between(stats, stats) == pytest.approx(0.0, abs=1e-6)


def test_fdcnn_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="dataset"):
        FDCNN("cifar10")
    with pytest.raises(FileNotFoundError, match="train_fd_cnn.py"):
        FDCNN("mnist", weights_path=str(tmp_path / "missing.npz"))


def test_weights_roundtrip(tmp_path):
    model = build_fd_cnn_classifier()
    path = str(tmp_path / "w.npz")
    fd_cnn.save_weights_npz(model, path)
    other = build_fd_cnn_classifier()
    fd_cnn.load_weights_npz(other, path)
    for a, b in zip(model.weights, other.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.savez(path, **{"conv1/kernel": np.zeros((1,))})
    with pytest.raises(ValueError, match="conv1"):
        fd_cnn.load_weights_npz(other, path)


@pytest.mark.parametrize("dataset", ["fashion_mnist", "mnist"])
def test_real_images_score_far_below_noise(dataset):
    try:
        images, _ = LOADERS[dataset]("test")
    except FileNotFoundError as e:
        pytest.skip(f"{dataset} is not installed, cannot score real images: {e}")
    metric = FDCNN(dataset)
    real = images[np.random.default_rng(0).permutation(len(images))[:300]]
    noise = np.random.default_rng(1).uniform(-1, 1, size=(300, 28, 28)).astype("float32")
    real_fd, noise_fd = metric.distance(real), metric.distance(noise)
    assert real_fd < 0.05 * noise_fd, (real_fd, noise_fd)


def test_floor_at_small_n_is_above_the_10k_floor():
    metric = FDCNN("mnist")
    floor_500 = metric.floor_at(500, seed=1)
    # FD is biased upwards at small N; real images still score far below noise.
    assert metric.floor < floor_500 < 0.1 * metric.noise_distance
    assert metric.floor_at(500, seed=1) == pytest.approx(floor_500)
    with pytest.raises(ValueError, match="num_examples"):
        metric.floor_at(1)


def test_class_consistency_and_score_agree_with_the_separate_calls():
    metric = FDCNN("fashion_mnist")
    images = synthetic_images(6)
    predicted = metric.predict_labels(images)
    labels = predicted.copy()
    labels[:2] = (labels[:2] + 1) % 10  # two wrong on purpose
    consistency = metric.class_consistency(images, labels)
    assert consistency["mean"] == pytest.approx(4 / 6)
    per_class = consistency["per_class"]
    assert len(per_class) == 10
    for c in range(10):
        expected = (predicted[labels == c] == c).mean() if np.any(labels == c) else None
        assert per_class[c] == (None if expected is None else pytest.approx(expected))
    scored = metric.score(images, labels)
    assert scored["fd_cnn"] == pytest.approx(metric.distance(images), rel=1e-6)
    assert scored["class_histogram"] == metric.class_histogram(images).tolist()
    assert scored["class_consistency"] == pytest.approx(4 / 6)
    assert "class_consistency" not in metric.score(images)
    with pytest.raises(ValueError, match="labels.*shape"):
        metric.class_consistency(images, labels[:3])
    with pytest.raises(ValueError, match=r"labels.*\[0, 10\)"):
        metric.class_consistency(images, labels + 10)


def test_class_consistency_of_real_test_images_is_the_classifier_accuracy():
    try:
        images, labels = datasets.load_fashion_mnist("test")
    except FileNotFoundError as e:  # pragma: no cover - data not installed
        pytest.skip(f"Fashion-MNIST not installed: {e}")
    metric = FDCNN("fashion_mnist")
    images = images[:2000].astype("float32") / 127.5 - 1.0
    consistency = metric.class_consistency(images, labels[:2000])
    assert abs(consistency["mean"] - metric.accuracy) < 0.03
