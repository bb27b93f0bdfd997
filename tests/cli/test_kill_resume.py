"""No kill loses a `keras-givt train` run.

A run is killed at every step of a checkpoint or preset write (the test hook
`KERAS_GIVT_TEST_KILL_AT=<point>[:<n>]`), by a real SIGKILL at a named point
and at a random moment, then resumed with `--resume` until it finishes. The
finished run must have trained and checkpointed steps 1..N exactly once each
(the lineage saved inside every checkpoint), left no temp folders, continued
the data stream where it stopped (its weights equal those of an uninterrupted
run, which they would not if a resumed run restarted from the first batch)
and kept the loss history whole. Tiny GIVT-Causal on cached latents.
"""

import os
import random
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_givt.cli import io_utils
from keras_givt.cli.training import TRAIN_LOG
from keras_givt.cli.main import main
from tests.cli.helpers import read_json
from tests.paths import ROOT

STEPS = 8
STEPS_PER_EPOCH = 3  # Epochs end at 3, 6 (and the partial last one at 8): resumes land mid-epoch.


@pytest.fixture(scope="module")
def latents(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill_resume")
    rng = np.random.default_rng(0)
    n = 24
    path = root / "latents.npz"
    np.savez(
        path,
        mu=rng.normal(size=(n, 4, 2)).astype("float32"),
        logvar=np.full((n, 4, 2), -2.0, "float32"),
        labels=np.arange(n) % 3,
    )
    return path


def _argv(latents, out, steps=STEPS, resume=False):
    argv = [
        "train",
        "--model",
        "causal",
        "--latents",
        str(latents),
        "--emb-dim",
        "16",
        "--num-layers",
        "1",
        "--num-heads",
        "2",
        "--mlp-dim",
        "32",
        "--num-mixtures",
        "2",
        "--batch-size",
        "4",
        "--steps",
        str(steps),
        "--steps-per-epoch",
        str(STEPS_PER_EPOCH),
        "--checkpoint-every",
        "1",
        "--learning-rate",
        "3e-3",
        "--seed",
        "0",
        "--verbose",
        "0",
        "--out",
        str(out),
    ]
    return argv + (["--resume"] if resume else [])


def _weights(out):
    with np.load(os.path.join(out, "checkpoint", "model.npz")) as z:
        return {k: z[k] for k in z.files if k != "__paths__"}


@pytest.fixture(scope="module")
def reference(latents, tmp_path_factory):
    """An uninterrupted run."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert main(_argv(latents, out)) == 0
    return out


def _assert_finished_lineage(out, reference):
    state = read_json(os.path.join(out, "checkpoint", "state.json"))
    assert state["step"] == STEPS and state["batches_consumed"] == STEPS
    assert state["trained_steps"] == [
        [1, STEPS]
    ]  # each step trained once, in order, in these weights
    assert state["checkpoint_steps"] == list(range(1, STEPS + 1))  # each checkpointed exactly once
    ref_state = read_json(os.path.join(reference, "checkpoint", "state.json"))
    # The history is whole: one entry per epoch, same steps and losses as the uninterrupted run.
    assert (
        [h["step"] for h in state["history"]]
        == [3, 6, 8]
        == [h["step"] for h in ref_state["history"]]
    )
    np.testing.assert_allclose(
        [h["loss"] for h in state["history"]],
        [h["loss"] for h in ref_state["history"]],
        rtol=1e-5,
        atol=1e-6,
    )
    # The data stream continued where it stopped: same weights as without kills.
    ref, got = _weights(reference), _weights(out)
    assert ref.keys() == got.keys()
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-6, err_msg=k)
    # Temp folders cleaned: only the live versions of checkpoint/ and preset/ remain.
    hidden = sorted(n for n in os.listdir(out) if n.startswith((".checkpoint", ".preset")))
    assert len(hidden) == 2 and all(
        not n.startswith((".checkpoint-link", ".preset-link")) for n in hidden
    ), hidden
    assert os.path.islink(os.path.join(out, "checkpoint")) and os.path.isfile(
        os.path.join(out, "preset", "task.json")
    )
    run = read_json(os.path.join(out, "train.json"))
    assert run["status"] == "done" and run["metrics"]["step"] == STEPS
    # The run-folder log saw every step of the lineage trained and every resume start at a committed step.
    log = io_utils.read_jsonl(os.path.join(out, TRAIN_LOG))
    assert {e["step"] for e in log if e["event"] == "step"} >= set(range(1, STEPS + 1))
    resumed_from = [e["step"] for e in log if e["event"] == "resume"]
    assert resumed_from and set(resumed_from) <= set(state["checkpoint_steps"]) | {STEPS}
    return state


def _checkpoint_is_loadable(out):
    state = read_json(os.path.join(out, "checkpoint", "state.json"))
    with np.load(os.path.join(out, "checkpoint", "model.npz")) as z:
        assert len(z.files) > 1
    with np.load(os.path.join(out, "checkpoint", "optimizer.npz")) as z:
        assert len(z.files) > 1
    return state["step"]


# Every step of a checkpoint write and of the final preset write, plus a kill between steps.
KILL_POINTS = [
    "checkpoint:partial:2",  # model.npz written, optimizer.npz not
    "checkpoint:written:2",  # new version complete, not yet swapped in
    "checkpoint:swapped:2",  # swapped in, old version not yet deleted
    "checkpoint:cleaned:2",  # old version deleted
    "step:2",  # after an optimizer step, before its checkpoint
    "preset:written:1",  # training done, final preset complete but not swapped in
    "preset:swapped:1",
]


def test_simulated_kill_at_every_write_step_then_resume(latents, reference, tmp_path, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setenv(io_utils.KILL_ENV + "_SIMULATE", "1")
    steps_seen = []
    for point in KILL_POINTS:
        monkeypatch.setenv(io_utils.KILL_ENV, point)
        io_utils._kill_counts.clear()
        resume = io_utils.dir_exists(str(out / "checkpoint"))
        with pytest.raises(io_utils.SimulatedKill):
            main(_argv(latents, out, resume=resume))
        # After any kill the checkpoint is complete and loadable.
        steps_seen.append(_checkpoint_is_loadable(out))
        assert read_json(out / "train.json")["status"] == "running"  # as a SIGKILL leaves it
    assert steps_seen == sorted(steps_seen) and steps_seen[-1] == STEPS
    monkeypatch.delenv(io_utils.KILL_ENV)
    assert main(_argv(latents, out, resume=True)) == 0
    _assert_finished_lineage(out, reference)
    previous = read_json(out / "train.json")["previous_runs"]
    assert [p["status"] for p in previous] == ["killed"] * len(KILL_POINTS)


def _spawn(argv, kill_at=None):
    env = dict(
        os.environ, PYTHONPATH=ROOT, KERAS_BACKEND=keras.config.backend(), TF_CPP_MIN_LOG_LEVEL="3"
    )
    env.pop(io_utils.KILL_ENV + "_SIMULATE", None)
    if kill_at:
        env[io_utils.KILL_ENV] = kill_at
    return subprocess.Popen(
        [sys.executable, "-m", "keras_givt.cli.main", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_real_sigkill_at_a_rename_or_a_random_moment_then_resume(latents, reference, tmp_path):
    """One real process, SIGKILLed by whichever comes first: its own hook at the swap of the 6th
    checkpoint, or this test at a random moment after its first checkpoint; then resumed."""
    out = tmp_path / "run"
    proc = _spawn(_argv(latents, out), kill_at="checkpoint:swapped:6")
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if any(e["event"] == "checkpoint" for e in io_utils.read_jsonl(out / TRAIN_LOG)):
            break
        time.sleep(0.02)
    time.sleep(random.Random(os.getpid()).uniform(0.0, 0.3))
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err[-2000:]
    step = _checkpoint_is_loadable(out)
    assert 1 <= step <= 6
    assert read_json(out / "train.json")["status"] == "running"  # nobody could finish it
    # A plain rerun refuses instead of starting over.
    with pytest.raises(SystemExit) as e:
        main(_argv(latents, out))
    assert e.value.code == 2
    # Resume to the end (in this process).
    assert main(_argv(latents, out, resume=True)) == 0
    _assert_finished_lineage(out, reference)
    assert read_json(out / "train.json")["previous_runs"][0]["status"] == "killed"
