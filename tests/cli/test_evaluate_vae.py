"""`keras-givt evaluate-vae`: FD-CNN, class consistency and MSE of a β-VAE's test reconstructions."""

import os

import keras
import numpy as np
import pytest

from keras_givt import datasets
from keras_givt.cli import model_io
from keras_givt.cli.main import main
from tests.cli.helpers import exit_status
from tests.cli.helpers import read_json
from tests.cli.helpers import write_image_folder

BACKEND = keras.config.backend()


def test_bundled_vae_reconstructions(tmp_path, capsys):
    try:
        test_images, test_labels = datasets.load_fashion_mnist("test")
    except FileNotFoundError:
        pytest.skip("dataset-fashion-mnist not installed")
    out = tmp_path / "eval"
    argv = ["evaluate-vae", "--vae", "givt_causal_fashion_mnist", "--num-examples", "40"]
    assert main([*argv, "--batch-size", "16", "--out", str(out)]) == 0
    m = read_json(out / "evaluate-vae.json")["metrics"]
    assert m["num_examples"] == 40 and np.isfinite(m["fd_cnn"])
    assert 0.0 <= m["class_consistency"] <= 1.0 and len(m["class_consistency_per_class"]) == 10
    assert m["class_consistency_real"] > 0.85 and os.path.isfile(m["png"])
    # The MSE is that of the VAE's posterior-mean reconstructions of the first 40 test images.
    vae = model_io.load_task("givt_causal_fashion_mnist")[0].vae
    x = next(
        iter(
            datasets.arrays_dataset(
                test_images[:40], test_labels[:40], image_size=32, batch_size=40, channels=3
            )
        )
    )
    x = x["images"].numpy()
    rec = np.clip(keras.ops.convert_to_numpy(vae.decode(vae.encode(x)[0])), -1, 1)
    np.testing.assert_allclose(m["reconstruction_mse"], np.mean((rec - x) ** 2), rtol=1e-4)


def test_image_folder_vae_is_refused(tmp_path, capsys):
    write_image_folder(tmp_path / "images", 8, num_classes=2)
    argv = ["--backend", BACKEND, "train-vae", "--data", str(tmp_path / "images")]
    tiny = ["--image-size", "8", "--channels", "1", "--batch-size", "4", "--steps", "1"]
    model = ["--filters", "32", "--channel-multipliers", "1,2", "--verbose", "0"]
    assert main([*argv, *tiny, *model, "--out", str(tmp_path / "vae")]) == 0
    status = exit_status(
        ["evaluate-vae", "--vae", str(tmp_path / "vae"), "--out", str(tmp_path / "e")]
    )
    assert status != 0
    assert "built-in data set" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "e" / "evaluate-vae.json")


def test_missing_vae_is_refused_before_any_work(tmp_path, capsys):
    status = exit_status(["evaluate-vae", "--vae", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert status == 2 and "--vae" in capsys.readouterr().err
