"""Multi-process data-parallel training on JAX equals a single process.

`keras-givt launch --num-processes 2 -- train ...` starts two CPU processes
(coordinator on 127.0.0.1) that train a tiny GIVT-Causal on random cached
latents under `keras.distribution.DataParallel`, each feeding its half of
every global batch. A run checkpointed at step 2 is resumed to step 4 by
the two processes (process 0 reads the checkpoint and broadcasts it). A
single-process run of 4 steps on the same global batches is the reference:
the per-step losses and the final weights must match, and every file of the
two-process run must come from process 0. The default test checkpoints
step 2 with one process (one launch: fast); the large one runs steps 1-2
with two processes as well (two launches).

Tolerance: the two runs do the same float32 maths on the same examples,
but the two-process gradient is the sum of two half-batch partial sums
(an all-reduce), summed in another order than the single process's; Adam
divides by the root of the second moment, so such rounding differences
of ~1e-7 relative reach the weights at about that relative size per step.
rtol 1e-5 with atol 1e-6 is two orders of magnitude above what is
measured and far below any real difference (a skipped, repeated or
half-used batch changes the losses in the second decimal).

JAX-only by design (Keras' distribution API); the argument checks at the
end run on every backend.
"""

import json
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_givt.cli import distributed
from keras_givt.cli.main import main
from tests.cli.helpers import exit_status
from tests.cli.helpers import read_json
from tests.paths import ROOT

RTOL, ATOL = 1e-5, 1e-6
TIMEOUT_S = 600  # A hung collective fails the test instead of blocking the suite.

jax_only = pytest.mark.skipif(
    keras.config.backend() != "jax",
    reason="multi-process training is JAX-only (Keras' distribution API); jax pass only",
)


@pytest.fixture(scope="module")
def latents(tmp_path_factory):
    root = tmp_path_factory.mktemp("multi_process")
    rng = np.random.default_rng(0)
    n = 32
    path = root / "latents.npz"
    np.savez(
        path,
        mu=rng.normal(size=(n, 4, 2)).astype("float32"),
        logvar=np.full((n, 4, 2), -2.0, "float32"),
        labels=np.arange(n) % 3,
    )
    return path


def _train_argv(latents, out, steps, resume=False):
    argv = ["train", "--model", "causal", "--latents", str(latents)]
    argv += ["--emb-dim", "16", "--num-layers", "1", "--num-heads", "2", "--mlp-dim", "32"]
    argv += ["--num-mixtures", "2", "--batch-size", "8", "--steps", str(steps)]
    argv += ["--checkpoint-every", "1", "--learning-rate", "3e-3", "--seed", "0"]
    argv += ["--verbose", "0", "--out", str(out)]
    return argv + (["--resume"] if resume else [])


def _launch(train_argv, log_path):
    """Starts `keras-givt launch --num-processes 2 -- <train_argv>` (output to `log_path`)."""
    env = dict(os.environ, PYTHONPATH=ROOT, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    argv = [sys.executable, "-m", "keras_givt_cli", "--backend", "jax", "launch"]
    argv += ["--num-processes", "2", "--", *train_argv]
    log = open(log_path, "w")
    return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), log


def _wait(proc_and_log, log_path):
    proc, log = proc_and_log
    try:
        proc.wait(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    with open(log_path) as f:
        text = f.read()
    assert proc.returncode == 0, text[-4000:]
    return text


def _step_losses(out):
    """{step: loss} of the `step` events of `<out>/train_log.jsonl`, and every writer pid."""
    losses, pids = {}, set()
    with open(os.path.join(out, "train_log.jsonl")) as f:
        for line in f:
            event = json.loads(line)
            pids.add(event["pid"])
            if event["event"] == "step":
                losses[event["step"]] = event["loss"]
    return losses, pids


def _weights(out):
    with np.load(os.path.join(out, "checkpoint", "model.npz")) as z:
        return {k: z[k] for k in z.files if k != "__paths__"}


def _check_equal_to_single(multi, single, resumes):
    """Losses and final weights of `multi` equal `single`'s; every file is process 0's.

    Returns `(max |loss diff|, max |weight diff|)`.
    """
    losses_m, pids_m = _step_losses(multi)
    losses_s, _ = _step_losses(single)
    assert sorted(losses_m) == sorted(losses_s) == [1, 2, 3, 4]
    steps = sorted(losses_s)
    loss_diff = max(abs(losses_m[k] - losses_s[k]) for k in steps)
    np.testing.assert_allclose(
        [losses_m[k] for k in steps], [losses_s[k] for k in steps], rtol=RTOL, atol=ATOL
    )
    w_m, w_s = _weights(multi), _weights(single)
    assert sorted(w_m) == sorted(w_s)
    weight_diff = max(float(np.max(np.abs(w_m[k] - w_s[k]))) for k in w_s)
    for k in w_s:
        np.testing.assert_allclose(w_m[k], w_s[k], rtol=RTOL, atol=ATOL, err_msg=k)
    # The resumed run continued the data stream where step 2 left it (else
    # its steps 3-4 would differ), and checkpointed every step once.
    state = read_json(multi / "checkpoint" / "state.json")
    assert state["step"] == 4 and state["trained_steps"] == [[1, 4]]
    assert state["checkpoint_steps"] == [1, 2, 3, 4]
    assert [r["from_step"] for r in state["resumes"]] == [2] * resumes
    # Process 0 alone wrote: the run record is its, and so is every log line.
    record = read_json(multi / "train.json")
    assert record["status"] == "done" and record["config"]["process_id"] == 0
    writer_pids = {record["env"]["pid"]} | {r["env"]["pid"] for r in record["previous_runs"]}
    assert len(writer_pids) == 2 and pids_m == writer_pids, (pids_m, writer_pids)
    assert os.path.isfile(multi / "preset" / "model_card.json")
    return loss_diff, weight_diff


@jax_only
def test_two_processes_resume_and_equal_one(latents, tmp_path):
    """Steps 1-2 by one process, 3-4 resumed by two (one launch): the default, fast form."""
    start = time.time()
    multi, single = tmp_path / "multi", tmp_path / "single"
    assert main(_train_argv(latents, multi, steps=2)) == 0
    launched = _launch(_train_argv(latents, multi, steps=4, resume=True), tmp_path / "launch.log")
    assert main(_train_argv(latents, single, steps=4)) == 0  # Meanwhile, the reference.
    _wait(launched, tmp_path / "launch.log")
    loss_diff, weight_diff = _check_equal_to_single(multi, single, resumes=1)
    print(
        f"\n2-process (resumed) vs 1-process: max |loss diff| {loss_diff:.3g}, "
        f"max |weight diff| {weight_diff:.3g}, wall {time.time() - start:.1f} s"
    )


@jax_only
@pytest.mark.large
def test_two_processes_from_scratch_then_resume_equal_one(latents, tmp_path):
    """Two processes from step 0 to 2, then two resumed to 4 (two launches)."""
    start = time.time()
    multi, single = tmp_path / "multi", tmp_path / "single"
    launched = _launch(_train_argv(latents, multi, steps=2), tmp_path / "launch1.log")
    assert main(_train_argv(latents, single, steps=4)) == 0  # Meanwhile, the reference.
    _wait(launched, tmp_path / "launch1.log")
    assert read_json(multi / "checkpoint" / "state.json")["step"] == 2
    _wait(
        _launch(_train_argv(latents, multi, steps=4, resume=True), tmp_path / "launch2.log"),
        tmp_path / "launch2.log",
    )
    loss_diff, weight_diff = _check_equal_to_single(multi, single, resumes=1)
    print(
        f"\n2-process vs 1-process: max |loss diff| {loss_diff:.3g}, "
        f"max |weight diff| {weight_diff:.3g}, wall {time.time() - start:.1f} s"
    )


# --- argument checks (every backend, no process started) -------------------------


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--num-processes", "2", "--process-id", "0"], "--coordinator: required"),
        (["--num-processes", "2", "--process-id", "2", "--coordinator", "h:1"], "[0, 2)"),
        (["--process-id", "1"], "must be 0 without --num-processes"),
        (["--coordinator", "h:1"], "only with --num-processes > 1"),
        (["--num-processes", "3", "--coordinator", "h:1"], "divisible by --num-processes"),
    ],
)
def test_distributed_flag_checks(latents, tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    argv = _train_argv(latents, tmp_path / "run", steps=1) + extra
    assert exit_status(argv) == 2
    assert message in capsys.readouterr().err


def test_multi_process_needs_jax(latents, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    argv = _train_argv(latents, tmp_path / "run", steps=1)
    argv += ["--num-processes", "2", "--coordinator", "127.0.0.1:1234"]
    assert exit_status(argv) == 2
    err = capsys.readouterr().err
    assert "JAX backend" in err and "MultiWorkerMirroredStrategy" in err and "DDP" in err


@pytest.mark.parametrize(
    "command, message",
    [
        (["--", "sample", "--preset", "x"], "launch runs `train`"),
        ([], "launch runs `train`"),
        (["--", "train", "--process-id", "1"], "launch sets --process-id itself"),
    ],
)
def test_launch_checks(capsys, command, message):
    assert exit_status(["launch", "--num-processes", "2", *command]) == 2
    assert message in capsys.readouterr().err


def test_launch_commands():
    parser_args = type(
        "Args",
        (),
        dict(num_processes=3, port=4321, backend="jax", command_args=["train", "--out", "o"]),
    )
    commands = distributed.launch_commands(parser_args)
    assert len(commands) == 3
    for i, cmd in enumerate(commands):
        assert cmd[1:4] == ["-m", "keras_givt_cli", "--backend"]
        tail = cmd[cmd.index("train") :]
        assert tail == ["train", "--out", "o", "--num-processes", "3", "--process-id", str(i)] + [
            "--coordinator",
            "127.0.0.1:4321",
        ]


def test_shard_stream_gives_each_process_its_rows(monkeypatch):
    import tensorflow as tf

    global_batches = np.arange(3 * 8 * 2).reshape(3, 8, 2)  # 3 global batches of 8 rows.

    def stream():
        return tf.data.Dataset.from_tensor_slices(global_batches.reshape(-1, 2)).batch(8)

    assert distributed.shard_stream(stream, 8) is stream  # A single process: unchanged.
    parts = []
    for i in range(4):
        monkeypatch.setitem(distributed._CLUSTER, "num_processes", 4)
        monkeypatch.setitem(distributed._CLUSTER, "process_id", i)
        parts.append([b.numpy() for b in distributed.shard_stream(stream, 8)()])
    for step in range(3):  # Side by side in process order: the global batch.
        local = [parts[i][step] for i in range(4)]
        assert all(x.shape == (2, 2) for x in local)
        np.testing.assert_array_equal(np.concatenate(local), global_batches[step])
