"""The perceptual + adversarial flags of `train-vae` and `train-vq` (one shared flag group).

Bad values exit with status 2 and one stderr line naming the flag and the
value, before Keras is imported (checked in a fresh process); good ones
become the models' recipe arguments; a tiny `train-vae` trains with them
(large: compiling the full step takes minutes on a busy CPU).
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_givt.cli import arguments
from keras_givt.cli.main import build_parser
from keras_givt.cli.main import main
from keras_givt.models import perceptual_network
from tests.cli.helpers import read_json
from tests.cli.helpers import write_image_folder
from tests.paths import ROOT

BACKEND = keras.config.backend()
FLAGS = [
    "--perceptual-weight",
    "--perceptual-network",
    "--adversarial-weight",
    "--adversarial-loss",
    "--adversarial-start-step",
    "--adaptive-adversarial-weight",
    "--r1-gamma",
    "--discriminator-filters",
    "--discriminator-channel-multipliers",
]
RECIPE = [
    "--perceptual-weight",
    "0.2",
    "--adversarial-weight",
    "0.1",
    "--adversarial-loss",
    "hinge",
    "--adversarial-start-step",
    "1",
    "--adaptive-adversarial-weight",
    "--r1-gamma",
    "1.0",
    "--discriminator-filters",
    "8",
    "--discriminator-channel-multipliers",
    "1,2",
]


def _flags_of(parser, command):
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    group = next(g for g in sub._action_groups if g.title == "perceptual and adversarial losses")
    return {a.option_strings[0]: (a.dest, a.default, a.type) for a in group._group_actions}


def test_one_flag_group_on_both_commands():
    parser = build_parser()
    vae, vq = _flags_of(parser, "train-vae"), _flags_of(parser, "train-vq")
    assert list(vae) == FLAGS and vae == vq
    assert arguments.PERCEPTUAL_NETWORKS == perceptual_network.PERCEPTUAL_NETWORKS
    assert set(arguments.AUTOENCODER_LOSS_KEYS) == {dest for dest, _, _ in vae.values()}


def test_defaults_leave_the_recipe_off():
    args = build_parser().parse_args(["train-vae", "--data", "x", "--out", "o"])
    kwargs = arguments.autoencoder_loss_kwargs(args)
    assert kwargs["perceptual_network"] is None and kwargs["discriminator"] is None
    assert kwargs["adversarial_start_step"] == 0 and kwargs["adaptive_adversarial_weight"] is False


@pytest.mark.parametrize("command", ["train-vae", "train-vq"])
def test_flags_become_the_model_arguments(command):
    args = build_parser().parse_args([command, "--data", "x", "--out", "o", *RECIPE])
    kwargs = arguments.autoencoder_loss_kwargs(args)
    disc = kwargs.pop("discriminator")
    assert disc.filters == 8 and disc.channel_multipliers == [1, 2]
    assert kwargs == dict(
        perceptual_network="fashion_mnist_features",
        perceptual_weight=0.2,
        adversarial_weight=0.1,
        adversarial_loss="hinge",
        adversarial_start_step=1,
        adaptive_adversarial_weight=True,
        r1_gamma=1.0,
    )


def _bad_cases(out):
    cases = []
    for command in ("train-vae", "train-vq"):
        base = [command, "--data", "fashion_mnist", "--out", out]
        adv = [*base, "--adversarial-weight", "0.1"]
        cases += [
            ([*base, "--perceptual-weight", "-1"], "--perceptual-weight", "-1"),
            ([*base, "--perceptual-weight", "inf"], "--perceptual-weight", "inf"),
            ([*base, "--perceptual-network", "vgg16"], "--perceptual-network", "vgg16"),
            (
                [*base, "--perceptual-network", "fashion_mnist_features"],
                "--perceptual-network",
                "fashion_mnist_features",
            ),
            ([*base, "--adversarial-weight", "nan"], "--adversarial-weight", "nan"),
            ([*adv, "--adversarial-loss", "wgan"], "--adversarial-loss", "wgan"),
            ([*adv, "--adversarial-start-step", "-1"], "--adversarial-start-step", "-1"),
            ([*adv, "--adversarial-start-step", "1.5"], "--adversarial-start-step", "1.5"),
            (
                [*adv, "--adversarial-start-step", "10", "--steps", "10"],
                "--adversarial-start-step",
                "10",
            ),
            ([*adv, "--r1-gamma", "-2"], "--r1-gamma", "-2"),
            ([*adv, "--discriminator-filters", "0"], "--discriminator-filters", "0"),
            (
                [*adv, "--discriminator-channel-multipliers", "1,0"],
                "--discriminator-channel-multipliers",
                "1,0",
            ),
            # Discriminator flags without a discriminator.
            ([*base, "--adaptive-adversarial-weight"], "--adaptive-adversarial-weight", "True"),
            ([*base, "--adversarial-start-step", "5"], "--adversarial-start-step", "5"),
            ([*base, "--r1-gamma", "1"], "--r1-gamma", "1.0"),
            ([*base, "--adversarial-loss", "hinge"], "--adversarial-loss", "hinge"),
            ([*base, "--discriminator-filters", "16"], "--discriminator-filters", "16"),
            (
                [*base, "--discriminator-channel-multipliers", "1,2"],
                "--discriminator-channel-multipliers",
                "1,2",
            ),
        ]
    return cases


_SCRIPT = r"""
import contextlib, io, json, sys
from keras_givt_cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
    results.append({"code": code, "stderr": err.getvalue()})
heavy = sorted(m for m in ("keras", "tensorflow", "jax", "torch") if m in sys.modules)
print(json.dumps({"results": results, "heavy": heavy}))
"""


def test_bad_values_are_refused_naming_the_flag(tmp_path):
    out = str(tmp_path / "out")
    cases = _bad_cases(out)
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps([c[0] for c in cases])],
        env=dict(os.environ, PYTHONPATH=ROOT),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["heavy"] == [], "a usage error imported a backend: " + str(report["heavy"])
    for (argv, flag, value), res in zip(cases, report["results"]):
        lines = res["stderr"].strip().splitlines()
        assert res["code"] == 2, (argv, res)
        assert len(lines) == 1 and "error:" in lines[0], (argv, lines)
        assert f"argument {flag}" in lines[0] and value in lines[0], (argv, lines[0])
    assert not os.path.exists(out)


# The fast forms: `test_flags_become_the_model_arguments` here and the save/load
# round trip in tests/models/test_autoencoder_losses.py (this one compiles the full step).
@pytest.mark.large
def test_train_vae_with_the_recipe(tmp_path):
    write_image_folder(tmp_path / "images", 8, num_classes=2, per_class=4)
    out = tmp_path / "vae"
    argv = [
        "--backend",
        BACKEND,
        "train-vae",
        "--data",
        str(tmp_path / "images"),
        "--image-size",
        "8",
        "--channels",
        "1",
        "--batch-size",
        "4",
        "--filters",
        "32",
        "--channel-multipliers",
        "1,2",
        "--codeword-dim",
        "4",
        "--steps",
        "3",
        "--out",
        str(out),
        "--verbose",
        "0",
        *RECIPE,
    ]
    assert main(argv) == 0
    run = read_json(out / "train-vae.json")
    assert run["status"] == "done" and np.isfinite(run["metrics"]["reconstruction_mse"])
    assert (
        run["config"]["adversarial_weight"] == 0.1 and run["config"]["adaptive_adversarial_weight"]
    )
    last = run["metrics"]["history"][-1]
    for key in ("perceptual_loss", "generator_loss", "discriminator_loss", "adaptive_weight"):
        assert np.isfinite(last[key]), (key, last)
    # The saved VAE is the inference copy: no discriminator, no perceptual network;
    # the recipe's weights stay in its config as a record.
    config = read_json(out / "vae" / "vae.json")["config"]
    assert config["discriminator"] is None and config["perceptual_network"] is None
    assert config["adversarial_weight"] == 0.1 and config["perceptual_weight"] == 0.2
    from keras_givt.cli import model_io

    vae, _, _ = model_io.load_vae(str(out))
    assert vae.discriminator is None and vae.perceptual_network is None
    assert vae.adversarial_step is None
