"""End-to-end tests of the `keras-givt` CLI on a tiny image folder and tiny models.

Chain: train-vae -> encode -> train (interrupted, then --resume) -> sample ->
inpaint -> evaluate, plus argument errors and `--backend`. Runs on the
current KERAS_BACKEND (in-process) in a few seconds per test.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_givt.cli import io_utils
from keras_givt.cli.training import INTERRUPT_ENV
from keras_givt.cli.main import main
from tests.cli.helpers import exit_status
from tests.cli.helpers import read_json
from tests.cli.helpers import write_image_folder

BACKEND = keras.config.backend()
TINY_VAE = [
    "--filters",
    "32",
    "--channel-multipliers",
    "1,2,2",
    "--codeword-dim",
    "4",
    "--num-res-blocks",
    "1",
]
TINY_GIVT = [
    "--emb-dim",
    "32",
    "--num-layers",
    "1",
    "--num-heads",
    "2",
    "--mlp-dim",
    "64",
    "--num-mixtures",
    "2",
]
IMAGES = ["--image-size", "16", "--channels", "1"]
DATA = [*IMAGES, "--batch-size", "8"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A tiny 2-class image folder, a trained tiny VAE and its cached latents."""
    root = tmp_path_factory.mktemp("cli")
    # 10 classes (as Fashion-MNIST, used for bits/dim) x 2 images.
    write_image_folder(root / "images", 16)
    data = ["--data", str(root / "images")]
    rc = main(
        [
            "--backend",
            BACKEND,
            "train-vae",
            *data,
            *DATA,
            *TINY_VAE,
            "--steps",
            "2",
            "--out",
            str(root / "vae"),
            "--verbose",
            "0",
        ]
    )
    assert rc == 0
    rc = main(
        [
            "encode",
            *data,
            *IMAGES,
            "--vae",
            str(root / "vae"),
            "--out",
            str(root / "latents.npz"),
        ]
    )
    assert rc == 0
    return root


def test_png_roundtrip(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    io_utils.write_png(tmp_path / "a.png", img)
    np.testing.assert_array_equal(io_utils.read_png(tmp_path / "a.png"), img)
    grid = io_utils.make_grid(np.zeros((5, 4, 4, 1), np.uint8), ncols=3, pad=1)
    assert grid.shape == (2 * 5 + 1, 3 * 5 + 1, 1)


def test_train_vae_and_encode_outputs(workdir):
    run = read_json(workdir / "vae" / "train-vae.json")
    assert run["status"] == "done" and run["env"]["backend"] == BACKEND
    assert run["metrics"]["step"] == 2 and np.isfinite(run["metrics"]["reconstruction_mse"])
    assert os.path.isfile(workdir / "vae" / "vae" / "model.keras")
    with np.load(workdir / "latents.npz") as z:
        assert z["mu"].shape == (20, 16, 4) and z["logvar"].shape == (20, 16, 4)
        assert sorted(set(z["labels"].tolist())) == list(range(10))
    assert read_json(workdir / "latents.json")["metrics"]["num_examples"] == 20


def _train(workdir, out, steps, *extra, model="causal"):
    return exit_status(
        [
            "train",
            "--model",
            model,
            "--latents",
            str(workdir / "latents.npz"),
            *TINY_GIVT,
            "--batch-size",
            "8",
            "--steps",
            str(steps),
            "--steps-per-epoch",
            "2",
            "--checkpoint-every",
            "1",
            "--out",
            str(out),
            "--verbose",
            "0",
            *extra,
        ]
    )


def test_train_interrupt_resume_sample_evaluate(workdir, monkeypatch, capsys):
    out = workdir / "causal"
    # Ctrl-C after step 3 (mid-epoch 2): the checkpoint keeps step 3.
    monkeypatch.setenv(INTERRUPT_ENV, "3")
    assert _train(workdir, out, 6) == 130
    monkeypatch.delenv(INTERRUPT_ENV)
    state = read_json(out / "checkpoint" / "state.json")
    assert state["step"] == 3
    assert read_json(out / "train.json")["status"] == "interrupted"
    # Without --resume an existing checkpoint is an error.
    capsys.readouterr()
    assert _train(workdir, out, 6) == 2
    assert "pass --resume" in capsys.readouterr().err
    # Resume: steps 4..6, no step lost or repeated.
    assert _train(workdir, out, 6, "--resume") == 0
    run = read_json(out / "train.json")
    assert run["status"] == "done" and run["metrics"]["step"] == 6
    assert run["metrics"]["start_step"] == 3
    assert [h["step"] for h in run["metrics"]["history"]] == [2, 4, 6]
    assert read_json(out / "checkpoint" / "state.json")["step"] == 6
    assert os.path.isfile(out / "preset" / "task.json")
    # The preset takes raw images as the latents' data were prepared (their
    # `encode` meta): size, channels, resize mode, [-1, 1].
    pre = read_json(out / "preset" / "task.json")["config"]["preprocessor"]["config"]
    with np.load(workdir / "latents.npz") as z:
        spec = json.loads(str(z["meta"]))["data"]
    assert pre["image_size"] == [spec["image_size"]] * 2 and pre["channels"] == spec["channels"]
    assert pre["resize_mode"] == spec["resize_mode"] and list(pre["output_range"]) == [-1.0, 1.0]
    # Resuming a finished run trains nothing more.
    assert _train(workdir, out, 6, "--resume") == 0
    assert read_json(out / "checkpoint" / "state.json")["step"] == 6

    assert (
        main(
            [
                "sample",
                "--model",
                str(out),
                "--out",
                str(workdir / "sample"),
                "--labels",
                "3,7",
                "--num-per-class",
                "2",
                "--cfg-weight",
                "0.5",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    img = io_utils.read_png(workdir / "sample" / "samples.png")
    assert img.shape == (2 * 18 + 2, 2 * 18 + 2, 1)
    rec = read_json(workdir / "sample" / "sample.json")
    assert rec["status"] == "done" and rec["metrics"]["num_samples"] == 4

    assert (
        main(
            [
                "evaluate",
                "--model",
                str(out / "preset"),
                "--out",
                str(workdir / "eval"),
                "--num-samples",
                "8",
                "--batch-size",
                "4",
                "--cfg-weight",
                "0.5",
                "--fd-input-mode",
                "resize",
                "--fd-dataset",
                "fashion_mnist",
                "--bpd-examples",
                "8",
            ]
        )
        == 0
    )
    m = read_json(workdir / "eval" / "evaluate.json")["metrics"]
    for key in ("fd_cnn", "fd_cnn_floor_10k", "latent_bits_per_dim", "sampling_time_s"):
        assert np.isfinite(m[key]), key
    assert sum(m["class_histogram"]) == 8
    # Class-conditional samples: the classifier's accuracy on them, and on real images.
    assert 0.0 <= m["class_consistency"] <= 1.0 and len(m["class_consistency_per_class"]) == 10
    assert m["class_consistency_real"] > 0.85


def test_train_maskgit_and_inpaint(workdir):
    out = workdir / "maskgit"
    assert _train(workdir, out, 2, model="maskgit") == 0
    assert (
        main(
            [
                "inpaint",
                "--model",
                str(out),
                "--data",
                str(workdir / "images"),
                *IMAGES,
                "--num-images",
                "3",
                "--num-steps",
                "2",
                "--split",
                "train",
                "--out",
                str(workdir / "inpaint"),
            ]
        )
        == 0
    )
    assert io_utils.read_png(workdir / "inpaint" / "inpaint.png").shape == (
        3 * 18 + 2,
        3 * 18 + 2,
        1,
    )
    assert read_json(workdir / "inpaint" / "inpaint.json")["status"] == "done"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--model", "transformer", "--out", "x"], "invalid choice"),
        (["train", "--model", "causal", "--out", "x"], "--latents"),
        (
            ["train-vae", "--data", "fashion_mnist", "--out", "x", "--batch-size", "0"],
            "positive integer",
        ),
        (["train-vae", "--data", "/no/such/folder", "--out", "x"], "image folder"),
        (["--backend", "theano", "demo"], "invalid choice"),
        (["train", "--model", "causal", "--latents", "/no/such.npz", "--out", "x"], "not found"),
    ],
)
def test_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_runtime_errors_are_clear(workdir, tmp_path, capsys):
    assert _train(workdir, tmp_path / "fresh", 2, "--resume") == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert exit_status(["sample", "--model", "no_such_preset", "--out", str(tmp_path)]) == 2
    assert "not a preset name" in capsys.readouterr().err
    assert (
        exit_status(["sample", "--model", "vq_maskgit_fashion_mnist", "--out", str(tmp_path)]) == 2
    )
    assert "evaluate-vq" in capsys.readouterr().err


def test_backend_flag_mismatch_in_process(capsys):
    other = "torch" if BACKEND != "torch" else "jax"
    with pytest.raises(SystemExit):
        main(["--backend", other, "demo", "--out", "x"])
    assert "already imported" in capsys.readouterr().err


def test_backend_flag_sets_keras_backend(workdir, tmp_path):
    """`--backend` (after the subcommand) wins over KERAS_BACKEND in a fresh process."""
    other = "jax" if BACKEND != "jax" else "torch"
    env = dict(os.environ, KERAS_BACKEND=BACKEND)
    out = tmp_path / "z.npz"
    cmd = [
        sys.executable,
        "-m",
        "keras_givt_cli",
        "encode",
        "--backend",
        other,
        "--data",
        str(workdir / "images"),
        *IMAGES,
        "--vae",
        str(workdir / "vae"),
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert read_json(tmp_path / "z.json")["env"]["backend"] == other
    with np.load(out) as a, np.load(workdir / "latents.npz") as b:
        np.testing.assert_allclose(a["mu"], b["mu"], atol=1e-4)
