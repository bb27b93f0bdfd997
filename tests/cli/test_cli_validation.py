"""`keras-givt` as a tool: usage errors, help, --version, run records of failed commands.

Usage errors are checked before Keras is imported and before anything is
written: each one exits with status 2 and one stderr line naming the flag and
the received value. The matrix runs in one fresh process (no keras there), so
"before the slow imports" is asserted, not assumed.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_givt.cli import io_utils
from keras_givt.cli.main import build_parser
from keras_givt.cli.main import main
from keras_givt.models import bundled
from tests.paths import ROOT


def _env():
    return dict(os.environ, PYTHONPATH=ROOT)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Small on-disk inputs: an image folder, a VAE folder (3 channels), files of the wrong kind."""
    root = tmp_path_factory.mktemp("validation")
    rng = np.random.default_rng(0)
    for c in range(2):
        os.makedirs(root / "images" / f"class{c}")
        io_utils.write_png(
            root / "images" / f"class{c}" / "0.png", rng.integers(0, 255, (8, 8, 1), dtype=np.uint8)
        )
    os.makedirs(root / "empty_classes" / "a")
    (root / "empty_classes" / "a" / "notes.txt").write_text("no images")
    os.makedirs(root / "vae" / "vae")
    (root / "vae" / "vae" / "model.keras").write_bytes(b"not loaded by the checks")
    io_utils.write_json(
        root / "vae" / "vae" / "vae.json",
        {"config": {"output_dim": 3, "channel_multipliers": [1, 2, 2]}, "data": {"channels": 3}},
    )
    os.makedirs(root / "not_a_model")
    (root / "a_file").write_text("x")
    np.savez(root / "wrong_keys.npz", x=np.zeros(3))
    np.savez(root / "flat_mu.npz", mu=np.zeros((4, 3)), logvar=np.zeros((4, 3)), labels=np.zeros(4))
    os.makedirs(root / "ckpt_run")
    return root


def _cases(r):
    """(argv, flag, value) for every kind of bad flag."""
    imgs, vae, f = str(r / "images"), str(r / "vae"), str(r / "a_file")
    out = str(r / "new_out")
    train_vae = ["train-vae", "--data", imgs, "--out", out]
    train_causal = ["train", "--model", "causal", "--data", imgs, "--vae", vae]
    sample = ["sample", "--model", "givt_causal_fashion_mnist", "--out", out]
    return [
        # Numbers.
        ([*train_vae, "--batch-size", "0"], "--batch-size", "0"),
        ([*train_vae, "--steps", "-3"], "--steps", "-3"),
        ([*train_vae, "--learning-rate", "0"], "--learning-rate", "0"),
        ([*train_vae, "--learning-rate", "nan"], "--learning-rate", "nan"),
        ([*train_vae, "--beta", "-1"], "--beta", "-1"),
        ([*train_vae, "--channel-multipliers", "1,0"], "--channel-multipliers", "1,0"),
        ([*train_vae, "--image-size", "30"], "--image-size", "30"),
        ([*train_vae, "--warmup-steps", "-1"], "--warmup-steps", "-1"),
        ([*train_vae, "--seed", "-2"], "--seed", "-2"),
        ([*train_causal, "--out", out, "--emb-dim", "30", "--num-heads", "4"], "--emb-dim", "30"),
        (
            [*train_causal, "--out", out, "--drop-labels-probability", "1.5"],
            "--drop-labels-probability",
            "1.5",
        ),
        ([*train_causal, "--out", out, "--dropout", "1"], "--dropout", "1"),
        ([*sample, "--temperature", "-1"], "--temperature", "-1"),
        ([*sample, "--num-per-class", "0"], "--num-per-class", "0"),
        ([*sample, "--labels", "1,-1"], "--labels", "1,-1"),
        (
            [
                "evaluate",
                "--model",
                "givt_causal_fashion_mnist",
                "--out",
                out,
                "--num-samples",
                "1",
            ],
            "--num-samples",
            "1",
        ),
        (
            [
                "evaluate-vq",
                "--model",
                "vq_maskgit_fashion_mnist",
                "--out",
                out,
                "--batch-size",
                "-5",
            ],
            "--batch-size",
            "-5",
        ),
        (["train-vq", "--data", imgs, "--out", out, "--filters", "48"], "--filters", "48"),
        (["uvim-train-vae", "--out", out, "--learning-rate", "-1"], "--learning-rate", "-1"),
        (["uvim-train-vae", "--out", out, "--patch-size", "5"], "--patch-size", "5"),
        (
            ["uvim-evaluate", "--model", "m", "--out", out, "--temperature", "0"],
            "--temperature",
            "0",
        ),
        (["--backend", "theano", "demo"], "--backend", "theano"),
        # Paths that do not exist or are not what they should be.
        (["train-vae", "--data", str(r / "missing"), "--out", out], "--data", str(r / "missing")),
        (["train-vae", "--data", f, "--out", out], "--data", f),
        (
            ["train-vae", "--data", str(r / "empty_classes"), "--out", out],
            "--data",
            str(r / "empty_classes"),
        ),
        (
            ["train", "--model", "causal", "--latents", str(r / "no.npz"), "--out", out],
            "--latents",
            str(r / "no.npz"),
        ),
        (
            ["train", "--model", "causal", "--latents", str(r / "images"), "--out", out],
            "--latents",
            str(r / "images"),
        ),
        (["train", "--model", "causal", "--latents", f, "--out", out], "--latents", f),
        (
            ["train", "--model", "causal", "--latents", str(r / "wrong_keys.npz"), "--out", out],
            "--latents",
            str(r / "wrong_keys.npz"),
        ),
        (
            ["train", "--model", "causal", "--latents", str(r / "flat_mu.npz"), "--out", out],
            "--latents",
            str(r / "flat_mu.npz"),
        ),
        (
            ["encode", "--data", imgs, "--vae", str(r / "missing_vae"), "--out", str(r / "z.npz")],
            "--vae",
            str(r / "missing_vae"),
        ),
        (
            ["encode", "--data", imgs, "--vae", str(r / "not_a_model"), "--out", str(r / "z.npz")],
            "--vae",
            str(r / "not_a_model"),
        ),
        (
            ["uvim-train", "--vae", str(r / "not_a_model"), "--out", out],
            "--vae",
            str(r / "not_a_model"),
        ),
        (
            ["sample", "--model", str(r / "missing_model"), "--out", out],
            "--model",
            str(r / "missing_model"),
        ),
        (
            ["sample", "--model", str(r / "not_a_model"), "--out", out],
            "--model",
            str(r / "not_a_model"),
        ),
        (["sample", "--model", f, "--out", out], "--model", f),
        (
            ["sample", "--model", "vq_maskgit_fashion_mnist", "--out", out],
            "--model",
            "vq_maskgit_fashion_mnist",
        ),
        (
            ["inpaint", "--model", "givt_causal_fashion_mnist", "--out", out],
            "--model",
            "givt_causal_fashion_mnist",
        ),
        (
            ["evaluate-vq", "--model", "givt_causal_fashion_mnist", "--out", out],
            "--model",
            "givt_causal_fashion_mnist",
        ),
        (
            ["train-vae", "--data", imgs, "--data-dir", str(r / "nope"), "--out", out],
            "--data-dir",
            str(r / "nope"),
        ),
        # --out that is an existing file (or, for encode, a folder).
        (["train-vae", "--data", imgs, "--out", f], "--out", f),
        (["sample", "--model", "givt_causal_fashion_mnist", "--out", f], "--out", f),
        (["demo", "--out", f], "--out", f),
        (["evaluate-vq", "--model", "vq_maskgit_fashion_mnist", "--out", f], "--out", f),
        (["uvim-train-vae", "--out", f], "--out", f),
        (
            ["encode", "--data", imgs, "--vae", vae, "--out", str(r / "images")],
            "--out",
            str(r / "images"),
        ),
        # VAE / channel mismatch.
        (
            ["encode", "--data", imgs, "--vae", vae, "--channels", "1", "--out", str(r / "z.npz")],
            "--channels",
            "1",
        ),
        ([*train_causal, "--channels", "1", "--out", out], "--channels", "1"),
        ([*train_causal, "--image-size", "30", "--out", out], "--image-size", "30"),
        ([*train_causal, "--head-init", "ones", "--out", out], "--head-init", "ones"),
        (["evaluate-vae", "--vae", str(r / "nope"), "--out", out], "--vae", str(r / "nope")),
        # Resume bookkeeping.
        (
            ["train-vae", "--data", imgs, "--out", str(r / "fresh"), "--resume"],
            "--resume",
            str(r / "fresh"),
        ),
        ([*train_vae, "--resume", "--overwrite"], "--overwrite", ""),
    ]


_MATRIX_SCRIPT = r"""
import contextlib, io, json, os, sys
from keras_givt_cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    code = None
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
    results.append({"code": code, "stderr": err.getvalue()})
heavy = sorted(m for m in ("keras", "tensorflow", "jax", "torch") if m in sys.modules)
print(json.dumps({"results": results, "heavy": heavy}))
"""


def _snapshot(root):
    return sorted(
        os.path.relpath(os.path.join(d, n), root)
        for d, dirs, files in os.walk(root)
        for n in dirs + files
    )


def test_usage_error_matrix(inputs):
    cases = _cases(inputs)
    before = _snapshot(inputs)
    proc = subprocess.run(
        [sys.executable, "-c", _MATRIX_SCRIPT, json.dumps([c[0] for c in cases])],
        env=_env(),
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
        assert len(lines) == 1, (argv, lines)
        assert "error:" in lines[0] and flag in lines[0], (argv, lines[0])
        assert value in lines[0], (argv, value, lines[0])
    # Nothing written: no output folder, no run record, no file anywhere.
    assert _snapshot(inputs) == before


def test_existing_checkpoint_refuses_plain_rerun(inputs, capsys):
    # A folder holding a checkpoint: a plain rerun refuses (suggesting --resume or another --out).
    out = inputs / "ckpt_run"
    version = io_utils.new_version_dir(str(out / "checkpoint"))
    io_utils.write_json(os.path.join(version, "state.json"), {"step": 1})
    io_utils.commit_dir(version, str(out / "checkpoint"))
    with pytest.raises(SystemExit) as e:
        main(["train-vae", "--data", str(inputs / "images"), "--out", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and "--resume" in err[0] and "another --out" in err[0] and str(out) in err[0]
    )


def test_help_is_fast_and_loads_no_backend():
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "keras_givt_cli", "--help"],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        times.append(time.perf_counter() - t0)
        assert proc.returncode == 0 and "train-vae" in proc.stdout
    assert min(times) < 1.0, times
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom keras_givt_cli import main\n"
            "try:\n main(['train', '--help'])\nexcept SystemExit:\n pass\n"
            "print([m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules])",
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_version():
    import keras_givt

    exe = shutil.which("keras-givt", path=os.path.dirname(sys.executable))
    cmd = [exe] if exe else [sys.executable, "-m", "keras_givt_cli"]
    proc = subprocess.run(
        cmd + ["--version"], env=_env(), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"keras-givt {keras_givt.__version__}"


def test_every_flag_has_help_and_shows_its_default():
    parser = build_parser()
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)][0]
    assert len(subparsers.choices) >= 13
    for name, sub in [("keras-givt", parser)] + sorted(subparsers.choices.items()):
        text = sub.format_help()
        for action in sub._actions:
            if not action.option_strings or isinstance(
                action, (argparse._HelpAction, argparse._VersionAction)
            ):
                continue
            assert action.help, f"{name} {action.option_strings[0]} has no help text"
            default = action.default
            if default not in (None, False, "", argparse.SUPPRESS):
                assert f"(default: {default})" in " ".join(text.split()).replace("- ", "-") or (
                    isinstance(default, list)
                ), f"{name} {action.option_strings[0]} does not show its default {default!r}"


def test_runtime_error_finishes_the_record_as_failed(tmp_path):
    # A preset folder whose weights are corrupt passes the argument checks and fails while loading.
    model = tmp_path / "broken"
    shutil.copytree(bundled.preset_path("givt_causal_fashion_mnist"), model)
    for name in os.listdir(model):
        if name.endswith(".h5"):
            (model / name).write_bytes(b"corrupt")
    out = tmp_path / "out"
    with pytest.raises(Exception):
        main(["sample", "--model", str(model), "--out", str(out), "--num-per-class", "1"])
    with open(out / "sample.json") as f:
        record = json.load(f)
    assert record["status"] == "failed"
    assert record["error"] and "Error" in record["error"]
    assert record["wall_time_s"] >= 0


def test_cli_error_at_runtime_finishes_the_record_as_failed(tmp_path, capsys):
    # A registry name is checked after Keras is imported, before the record: status 2, nothing written.
    out = tmp_path / "out"
    assert main(["sample", "--model", "no_such_preset", "--out", str(out)]) == 2
    assert "no_such_preset" in capsys.readouterr().err
    assert not os.path.exists(out)
    # Data that cannot be loaded (an empty --data-dir) is found after the record exists.
    os.makedirs(tmp_path / "empty")
    assert (
        main(
            [
                "inpaint",
                "--model",
                "givt_maskgit_fashion_mnist",
                "--data",
                "fashion_mnist",
                "--data-dir",
                str(tmp_path / "empty"),
                "--out",
                str(out),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "could not load fashion_mnist" in err[0]
    with open(out / "inpaint.json") as f:
        record = json.load(f)
    assert record["status"] == "failed" and "could not load fashion_mnist" in record["error"]


class _FakeFD:
    """Stands in for FDCNN: records whether the real-data floor had to be measured."""

    dataset = "fashion_mnist"

    def __init__(self, fail=False):
        self.fail, self.calls = fail, []

    def floor_at(self, n, seed=0, data_dir=None):
        self.calls.append(n)
        if self.fail:
            raise FileNotFoundError("dataset-fashion-mnist is not installed")
        return 1.5


def test_demo_floor_comes_from_the_shipped_table():
    from keras_givt.cli.evaluation import real_floor_at
    from keras_givt.cli.fd_floors import FLOORS

    # The demo's default N is in the table: no data set is read.
    fd = _FakeFD(fail=True)
    value, source = real_floor_at(fd, 1000)
    assert value == FLOORS["fashion_mnist"][1000] and "shipped table" in source and fd.calls == []
    assert 0.5 < value < 1.5  # the README's 0.95 at 1k, above the 10k floor
    assert (
        FLOORS["fashion_mnist"][10000]
        < FLOORS["fashion_mnist"][1000]
        < FLOORS["fashion_mnist"][100]
    )
    # Another N is measured when the data set is there, else reported as unavailable.
    fd = _FakeFD()
    assert real_floor_at(fd, 1234) == (1.5, "measured on the train split") and fd.calls == [1234]
    value, source = real_floor_at(_FakeFD(fail=True), 1234)
    assert value is None and "not installed" in source
