"""Multi-process data-parallel training on JAX: the flags, the launcher, the per-process pieces.

One training run over N processes (N hosts of a TPU pod or a GPU cluster, or
N local CPU processes here) is N copies of the same `keras-givt train`
command, each with its own `--process-id`:

    keras-givt --backend jax train ... --num-processes 2 --process-id 0 --coordinator HOST:PORT
    keras-givt --backend jax train ... --num-processes 2 --process-id 1 --coordinator HOST:PORT

(`HOST:PORT`: an address of process 0 that every process can reach.) On one
machine `keras-givt launch --num-processes 2 -- train ...` starts them with a
free local port and waits for them.

Each process (`initialize`) joins the JAX cluster with
`keras.distribution.initialize` and trains under
`keras.distribution.DataParallel` over every device of every process: the
weights are replicated, each optimizer step takes one global batch of
`--batch-size` examples, and each process feeds its own contiguous
`--batch-size / N` rows of it (`shard_stream`: the same seeded stream
everywhere, `rebatch` then `shard(N, process_id)`), so the steps are those
of a single process on the same global batch. Process 0 alone writes: the
run folder lock, the checkpoint, `train_log.jsonl`, the run record and the
saved model (`is_writer`, `run_on_writer`); on `--resume` it reads the
checkpoint and `share_checkpoint` broadcasts the weights, the optimizer
state and the step to the others, so only process 0 needs to see `--out`
(the inputs, `--latents` or `--data` and `--vae`, are read by every process).
Everything else runs on every process alike: under JAX's multi-process
distribution creating or assigning a variable is a collective, so the
processes build, compile and restore the model together.

Keras' distribution API runs on JAX only: on tensorflow use
`tf.distribute.MultiWorkerMirroredStrategy` with your own loop, on torch
`torch.distributed` (DDP).

Like the other CLI modules this one imports only the standard library at
module level (the parser is built before Keras); the functions that need
Keras or JAX import them inside.
"""

import argparse
import os
import socket
import subprocess
import sys
import time

from keras_givt.cli import arguments
from keras_givt.cli.errors import CLIError

COMMANDS = ("launch",)
# The flags `launch` adds to each process's command line.
FLAGS = ("--num-processes", "--process-id", "--coordinator")

# (num_processes, process_id) of this process once `initialize` ran.
_CLUSTER = {"num_processes": 1, "process_id": 0}


# --- flags ---------------------------------------------------------------------


def coordinator_address(text):
    """An argparse `type`: `HOST:PORT` with a port in 1..65535."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(
            f"expected HOST:PORT (e.g. 10.0.0.1:1234); {arguments.received(text)}"
        )
    return text


def add_distributed_args(p):
    """`--num-processes`, `--process-id`, `--coordinator`: one process of a multi-process run.

    Args:
        p: the subparser (`train`).
    """
    group = p.add_argument_group(
        "multi-process data parallel (JAX)",
        "Run the same command once per process (one per host on a cluster, or "
        "`keras-givt launch` on one machine); --batch-size is the global batch.",
    )
    group.add_argument(
        "--num-processes",
        type=arguments.positive_int,
        default=1,
        help="Processes of the run (1: a plain single-process run).",
    )
    group.add_argument(
        "--process-id",
        type=arguments.nonneg_int,
        default=0,
        help="This process's index, 0..N-1; process 0 writes the checkpoints and the model.",
    )
    group.add_argument(
        "--coordinator",
        type=coordinator_address,
        default=None,
        help="HOST:PORT of process 0, reachable by every process (needed with N > 1).",
    )


def check_distributed_args(args):
    """Pre-import checks of the multi-process flags (raise `CLIError`).

    Args:
        args: the parsed `train` arguments.
    """
    n, i = args.num_processes, args.process_id
    if n == 1:
        if i != 0:
            raise CLIError(
                f"argument --process-id: must be 0 without --num-processes; received {i}"
            )
        if args.coordinator:
            raise CLIError("argument --coordinator: only with --num-processes > 1")
        return
    if i >= n:
        raise CLIError(
            f"argument --process-id: must be in [0, {n}) (--num-processes); received {i}"
        )
    if not args.coordinator:
        raise CLIError(f"argument --coordinator: required with --num-processes {n} (HOST:PORT)")
    backend = getattr(args, "backend", None) or os.environ.get("KERAS_BACKEND")
    if backend != "jax":
        raise CLIError(
            f"argument --num-processes: multi-process training runs on the JAX backend "
            f"(--backend jax); received backend {backend!r}. Keras' distribution API is JAX-only: "
            "with tensorflow use tf.distribute.MultiWorkerMirroredStrategy, with torch "
            "torch.distributed (DDP)"
        )
    if args.batch_size % n:
        raise CLIError(
            f"argument --batch-size: the global batch must be divisible by --num-processes "
            f"({n}); received {args.batch_size}"
        )


# --- inside a process ------------------------------------------------------------


def initialize(args):
    """Joins the JAX cluster and sets a `DataParallel` distribution (N > 1; else nothing).

    Call first in the command, before any Keras computation.

    Args:
        args: the parsed arguments (`num_processes`, `process_id`, `coordinator`).
    """
    if args.num_processes == 1:
        return
    import keras

    keras.distribution.initialize(
        job_addresses=args.coordinator,
        num_processes=args.num_processes,
        process_id=args.process_id,
    )
    devices = keras.distribution.list_devices()  # Every device of every process.
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    )
    _CLUSTER.update(num_processes=args.num_processes, process_id=args.process_id)


def num_processes():
    """The processes of this run (1 unless `initialize` joined a cluster)."""
    return _CLUSTER["num_processes"]


def is_writer():
    """Whether this process writes the run's files (process 0, or a single process)."""
    return _CLUSTER["process_id"] == 0


def shard_stream(stream, global_batch_size):
    """This process's part of a stream of global batches.

    Every process builds the same seeded stream of `global_batch_size`
    batches; process i keeps rows `[i * b, (i + 1) * b)` of each, b =
    `global_batch_size / N` (`rebatch(b).shard(N, i)`), so the process-local
    batches laid side by side in process order are the global batch.

    Args:
        stream: a tf.data of global batches, or a function returning a fresh one.
        global_batch_size: the static batch size of `stream`.

    Returns:
        `stream` itself for a single process; else a function returning the
        sharded stream.
    """
    n, i = _CLUSTER["num_processes"], _CLUSTER["process_id"]
    if n == 1:
        return stream
    local = global_batch_size // n

    def make():
        ds = stream() if callable(stream) else stream
        return ds.rebatch(local, drop_remainder=True).shard(n, i)

    return make


def share_checkpoint(variables, state, values):
    """Process 0's checkpoint arrays and step, on every process.

    Process 0 has read the checkpoint; the others pass `state={}` and
    `values=None`. Every process then assigns the returned values: under
    JAX's multi-process distribution assigning a variable (or creating one)
    is a collective, so all processes must do it, with the same values.

    Args:
        variables: the model's and the optimizer's variables, in checkpoint order.
        state: the checkpoint state (process 0) or {} (the others).
        values: the checkpoint arrays (process 0) or None (the others).

    Returns:
        `(state with "step" on every process, values)`; unchanged for a single process.
    """
    if _CLUSTER["num_processes"] == 1:
        return state, values
    import numpy as np
    from jax.experimental import multihost_utils

    if values is None:
        values = [np.zeros(v.shape, v.dtype) for v in variables]
    step = np.asarray(state.get("step", 0), "int64")
    values, step = multihost_utils.broadcast_one_to_all(
        ([np.asarray(x) for x in values], step), is_source=is_writer()
    )
    return dict(state, step=int(step)), [np.asarray(x) for x in values]


def run_on_writer(fn):
    """Runs `fn()` on process 0 alone, outside the distribution; every process waits for it.

    For saving a model: `fn` may create variables (e.g. `compile` makes a
    new optimizer), which under the multi-process distribution would be a
    collective that the other processes do not join; without it, process 0
    works on local copies (the replicated weights read locally). The
    processes meet at a barrier afterwards, so none exits while process 0
    still writes.

    Returns:
        `fn()`'s result on process 0, None on the others.
    """
    if _CLUSTER["num_processes"] == 1:
        return fn()
    import keras
    from jax.experimental import multihost_utils

    result = None
    if is_writer():
        current = keras.distribution.distribution()
        keras.distribution.set_distribution(None)
        try:
            result = fn()
        finally:
            keras.distribution.set_distribution(current)
    multihost_utils.sync_global_devices("keras_givt:run_on_writer")
    return result


class NullRecord:
    """The run record of a process other than 0: the same interface, writes nothing."""

    def __init__(self):
        self.data = {"metrics": {}}

    def write(self):
        pass

    def finish(self, status="done", error=None, **metrics):
        self.data["metrics"].update(metrics)


# --- launch ----------------------------------------------------------------------


def add_parsers(add):
    """`keras-givt launch`: N local processes of one training command."""
    p = add(
        "launch",
        "Start N local processes of a `train` command (multi-process data parallel on JAX), "
        "each with --num-processes N --process-id I --coordinator 127.0.0.1:PORT; prefix "
        "the command with `--`, e.g. `keras-givt --backend jax launch --num-processes 2 -- "
        "train --model causal --latents z.npz --out run`.",
    )
    p.add_argument(
        "--num-processes",
        type=arguments.int_at_least(2),
        required=True,
        help="Processes to start.",
    )
    p.add_argument(
        "--port",
        type=arguments.int_at_least(1),
        default=None,
        help="Coordinator port on 127.0.0.1 (default: a free one).",
    )
    p.add_argument(
        "command_args",
        nargs=argparse.REMAINDER,
        metavar="-- COMMAND ...",
        help="The training command and its flags.",
    )


def check_args(args):
    """Pre-import checks of `launch` (raise `CLIError`)."""
    command = list(args.command_args)
    if command[:1] == ["--"]:
        command = command[1:]
    if command[:1] != ["train"]:
        raise CLIError(
            f"argument COMMAND: launch runs `train` (e.g. `launch --num-processes 2 -- train "
            f"...`); received {' '.join(command) or 'nothing'!r}"
        )
    for flag in FLAGS:
        if any(a == flag or a.startswith(flag + "=") for a in command):
            raise CLIError(f"argument COMMAND: launch sets {flag} itself; remove it")
    if args.port is not None and args.port > 65535:
        raise CLIError(f"argument --port: must be <= 65535; received {args.port}")
    args.command_args = command


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_commands(args):
    """The argv of each process `launch` starts (`python -m keras_givt_cli ...`)."""
    port = args.port or free_port()
    backend = ["--backend", args.backend] if getattr(args, "backend", None) else []
    base = [sys.executable, "-m", "keras_givt_cli"] + backend + list(args.command_args)
    return [
        base
        + [
            "--num-processes",
            str(args.num_processes),
            "--process-id",
            str(i),
            "--coordinator",
            f"127.0.0.1:{port}",
        ]
        for i in range(args.num_processes)
    ]


def launch(args):
    """Runs the processes of `launch_commands` and waits; returns the exit status.

    Their output goes to this terminal. When one fails the others are
    stopped (SIGTERM: process 0 saves a checkpoint first), since they would
    wait for it forever; Ctrl-C stops them all the same way.
    """
    env = dict(os.environ, KERAS_BACKEND=getattr(args, "backend", None) or "jax")
    procs = [subprocess.Popen(cmd, env=env) for cmd in launch_commands(args)]
    status = 0
    try:
        while any(p.poll() is None for p in procs):
            failed = [p.returncode for p in procs if p.returncode not in (None, 0)]
            if failed:
                status = failed[0]
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        status = 130
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return status or next((p.returncode for p in procs if p.returncode), 0)


def run(args, argv):
    """Runs `launch` (called by `main` before Keras is imported)."""
    return launch(args)
