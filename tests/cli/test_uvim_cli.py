"""`keras-givt uvim-*` commands: parser (fast) and a tiny end-to-end chain (large)."""

import json
import os

import keras
import pytest

from keras_givt.cli import uvim_commands
from keras_givt.cli.main import FAMILY_OF_COMMAND
from keras_givt.cli.main import build_parser
from keras_givt.cli.main import main
from tests.datasets.test_mnist import write_tiny_mnist

BACKEND = keras.config.backend()


def test_uvim_commands_are_registered():
    parser = build_parser()
    args = parser.parse_args(["uvim-evaluate", "--model", "m", "--out", "o", "--beam-size", "2"])
    assert FAMILY_OF_COMMAND[args.command] is uvim_commands and args.beam_size == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["uvim-train", "--out", "o"])  # --vae is required


@pytest.mark.large
def test_uvim_cli_chain(tmp_path):
    write_tiny_mnist(str(tmp_path / "mnist"), num=8)
    common = ["--data-dir", str(tmp_path / "mnist"), "--batch-size", "4"]
    assert (
        main(
            [
                "--backend",
                BACKEND,
                "uvim-train-vae",
                *common,
                "--num-train",
                "8",
                "--epochs",
                "1",
                "--width",
                "32",
                "--depth",
                "1",
                "--out",
                str(tmp_path / "vae"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "uvim-train",
                *common,
                "--vae",
                str(tmp_path / "vae"),
                "--num-train",
                "8",
                "--epochs",
                "1",
                "--emb-dim",
                "32",
                "--num-layers",
                "1",
                "--num-decoder-layers",
                "1",
                "--out",
                str(tmp_path / "uvim"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "uvim-evaluate",
                *common,
                "--model",
                str(tmp_path / "uvim"),
                "--num-test",
                "4",
                "--beam-size",
                "1",
                "--fan-size",
                "1",
                "--num-images",
                "2",
                "--out",
                str(tmp_path / "eval"),
            ]
        )
        == 0
    )
    with open(tmp_path / "eval" / "uvim-evaluate.json") as f:
        metrics = json.load(f)["metrics"]
    assert 0.0 <= metrics["test"]["pq"] <= 1.0
    assert os.path.getsize(tmp_path / "eval" / "uvim_predictions.png") > 100
