"""End-to-end test of the VQ MaskGIT CLI plugin on a tiny image folder.

Chain: train-vq -> train-maskgit-vq (+ the existing-checkpoint error) ->
evaluate-vq, on the current KERAS_BACKEND (in-process), tiny models, 1–2 steps.
"""

import os

import keras
import numpy as np
import pytest

import keras_givt
from keras_givt.cli import io_utils
from keras_givt.cli import vq_commands
from keras_givt.cli.main import FAMILY_OF_COMMAND
from keras_givt.cli.main import build_parser
from keras_givt.cli.main import main
from tests.cli.helpers import exit_status
from tests.cli.helpers import read_json
from tests.cli.helpers import write_image_folder

BACKEND = keras.config.backend()
DATA = ["--image-size", "8", "--channels", "1", "--batch-size", "8"]
TINY_VQ = [
    "--filters",
    "32",
    "--channel-multipliers",
    "1,2",
    "--embedding-dim",
    "4",
    "--codebook-size",
    "16",
    "--num-res-blocks",
    "1",
]
TINY_MASKGIT = [
    "--hidden-size",
    "32",
    "--num-layers",
    "1",
    "--num-heads",
    "2",
    "--intermediate-size",
    "64",
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("vq_cli")
    write_image_folder(root / "images", 8)  # 10 classes x 2 images
    return root


def test_parsers_are_registered_without_keras_side_effects():
    parser = build_parser()
    args = parser.parse_args(["train-vq", "--data", "x", "--out", "o"])
    assert FAMILY_OF_COMMAND[args.command] is vq_commands
    assert args.channel_multipliers == [1, 2, 2, 2] and args.codebook_size == 512
    with pytest.raises(SystemExit):
        parser.parse_args(["train-maskgit-vq", "--data", "x", "--out", "o"])  # --vq missing


def test_train_vq_maskgit_evaluate(workdir):
    data = ["--data", str(workdir / "images")]
    vq = workdir / "vq"
    assert (
        main(
            [
                "--backend",
                BACKEND,
                "train-vq",
                *data,
                *DATA,
                *TINY_VQ,
                "--steps",
                "2",
                "--out",
                str(vq),
                "--verbose",
                "0",
            ]
        )
        == 0
    )
    run = read_json(vq / "train-vq.json")
    assert run["status"] == "done" and run["env"]["backend"] == BACKEND
    m = run["metrics"]
    assert m["step"] == 2 and np.isfinite(m["reconstruction_mse"]) and 1 <= m["codes_used"] <= 16
    assert os.path.isfile(vq / "tokenizer" / "model.keras")
    assert read_json(vq / "tokenizer" / "vq.json")["config"]["image_size"] == [8, 8, 1]
    # Existing checkpoint without --resume/--overwrite: a clear error, exit 2.
    assert exit_status(["train-vq", *data, *DATA, *TINY_VQ, "--steps", "2", "--out", str(vq)]) == 2

    out = workdir / "maskgit"
    cmd = [
        "train-maskgit-vq",
        "--vq",
        str(vq),
        *data,
        *DATA,
        *TINY_MASKGIT,
        "--steps",
        "2",
        "--steps-per-epoch",
        "2",
        "--out",
        str(out),
        "--verbose",
        "0",
        "--sample-num-steps",
        "4",
    ]
    # (Ctrl-C / --resume go through the shared `_fit`, tested in test_cli.py.)
    assert main(cmd) == 0
    run = read_json(out / "train-maskgit-vq.json")
    assert run["status"] == "done" and run["metrics"]["step"] == 2
    assert read_json(out / "checkpoint" / "state.json")["step"] == 2
    assert exit_status(cmd) == 2  # Existing checkpoint without --resume/--overwrite.
    with np.load(out / "tokens_train.npz") as z:
        assert z["tokens"].shape == (20, 16) and z["tokens"].max() < 16
    card = read_json(out / "preset" / "model_card.json")
    assert card["steps"] == 2 and card["params"] == run["params"]
    assert card["sampling_defaults"]["cfg_weight"] == 0.5 and card["tokenizer"]["steps"] == 2
    task_config = read_json(out / "preset" / "task.json")["config"]
    assert task_config["label_dropout"] == 0.1
    # The preset takes raw images the way the training data were prepared, in [0, 1].
    pre = task_config["preprocessor"]["config"]
    assert pre["image_size"] == [8, 8] and pre["channels"] == 1, pre
    assert list(pre["output_range"]) == [0.0, 1.0] and pre["resize_mode"] == "resize"  # A folder.

    ev = workdir / "eval"
    assert (
        main(
            [
                "evaluate-vq",
                "--model",
                str(out),
                "--out",
                str(ev),
                "--num-samples",
                "12",
                "--batch-size",
                "8",
                "--fd-input-mode",
                "resize",
                "--fd-dataset",
                "fashion_mnist",
                "--no-floor-at-n",
            ]
        )
        == 0
    )
    m = read_json(ev / "evaluate-vq.json")["metrics"]
    for key in ("fd_cnn", "fd_cnn_floor_10k", "sampling_ms_per_image", "sampling_time_s"):
        assert np.isfinite(m[key]), key
    assert sum(m["class_histogram"]) == 12 and m["num_samples"] == 12
    # Class-conditional samples: the classifier's accuracy on them, and on real images.
    assert 0.0 <= m["class_consistency"] <= 1.0 and len(m["class_consistency_per_class"]) == 10
    assert m["class_consistency_real"] > 0.85
    assert m["sampling"]["num_steps"] == 4 and m["sampling"]["cfg_weight"] == 0.5
    grid = io_utils.read_png(ev / "samples.png")
    assert grid.shape[0] > 2 * 8 and grid.shape[1] > 10 * 8  # 10 per row


def test_bundled_vq_maskgit_loads_offline():
    from keras_givt.models import bundled

    assert keras_givt.MaskGITImageGenerator.presets["vq_maskgit_fashion_mnist"]["params"] > 0
    card = bundled.model_card("vq_maskgit_fashion_mnist")
    assert card["training_command"].startswith("keras-givt train-maskgit-vq")
    model = keras_givt.MaskGITImageGenerator.from_preset("vq_maskgit_fashion_mnist")
    assert model.backbone.seq_len == 16 and model.tokenizer.image_size == [32, 32, 3]
    images = keras.ops.convert_to_numpy(
        model.generate(labels=[0, 9], num_steps=2, seed=0, image_range=(0, 1))
    )
    assert images.shape == (2, 32, 32, 3) and images.min() >= 0.0 and images.max() <= 1.0
    again = keras.ops.convert_to_numpy(
        model.generate(labels=[0, 9], num_steps=2, seed=0, image_range=(0, 1))
    )
    np.testing.assert_array_equal(images, again)
