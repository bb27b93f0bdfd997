"""The training loop of the `keras-givt` training commands: crash-safe checkpoints and `--resume`.

`prepare_out_dir` locks and repairs a run folder and checks `--resume`/`--overwrite`;
`fit_steps` runs `model.fit` up to a total number of optimizer steps with a
`Checkpointer` (weights, optimizer state, step, data position and loss history
in `<out>/checkpoint/`, swapped atomically), resuming mid-epoch without losing
or repeating a step; `fit_and_save_task` also writes the trained task as a
preset folder with its model card. The steps every training command shares:
`run_length` (steps per epoch, total), `compile_for_training` (Adam/AdamW with
the learning-rate schedule), `open_training_record` (run record, checkpoint
state) and `finish_training` (the finished record). The data streams come from
`keras_givt.cli.data`, the model folders from `keras_givt.cli.model_io`.

Imports Keras: the command modules import this module inside their command
functions, after `main` has set KERAS_BACKEND.
"""

import math
import os
import sys
import time

import keras
import numpy as np

from keras_givt.cli import distributed
from keras_givt.cli import io_utils
from keras_givt.cli import run_record
from keras_givt.cli.errors import CLIError
from keras_givt.cli.model_io import save_task
from keras_givt.models.optimizers import PerVariableAdam
from keras_givt.models.optimizers import PerVariableAdamW

# Test hook: raise KeyboardInterrupt after this optimizer step (simulates Ctrl-C).
INTERRUPT_ENV = "KERAS_GIVT_CLI_INTERRUPT_AT_STEP"
# Append-only log of a training run folder: one JSON line per event
# (start/resume, each optimizer step with its loss and data position, each
# committed checkpoint). The exact lineage of the weights is in the
# checkpoint's state.json (`trained_steps`, `checkpoint_steps`).
TRAIN_LOG = "train_log.jsonl"


def save_variables(path, variables):
    """Writes the values of `variables` to the .npz file `path`, atomically.

    Args:
        path: the .npz file to write; array `"{i:05d}"` holds variable i and
            `"__paths__"` the variable paths (for reading by eye).
        variables: a list of `keras.Variable`s (e.g. `model.variables`).
    """
    arrays = {
        f"{i:05d}": np.asarray(keras.ops.convert_to_numpy(v)) for i, v in enumerate(variables)
    }
    arrays["__paths__"] = np.array([v.path for v in variables])
    io_utils.write_npz(path, **arrays)


def read_variables(path, variables, what):
    """The arrays of a `save_variables` file, checked against `variables` (count, shapes).

    Args:
        path: the .npz file written by `save_variables`.
        variables: the `keras.Variable`s the arrays are for (same count, order and shapes).
        what: a word for error messages ("model", "optimizer").

    Returns:
        A list of numpy arrays, one per variable.

    Raises:
        CLIError: the count or a shape differs (another model configuration).
    """
    with np.load(path) as data:
        n = len([k for k in data.files if k != "__paths__"])
        if n != len(variables):
            raise CLIError(
                f"checkpoint {path!r} has {n} {what} variables, the model has {len(variables)}: "
                "the model configuration differs from the checkpointed run."
            )
        values = []
        for i, v in enumerate(variables):
            value = data[f"{i:05d}"]
            if tuple(value.shape) != tuple(v.shape):
                raise CLIError(
                    f"checkpoint {path!r}: {what} variable {v.path} has shape {value.shape}, the "
                    f"model expects {tuple(v.shape)} (different model configuration?)."
                )
            values.append(value)
    return values


def assign_variables(variables, values):
    """Assigns numpy `values` to `variables`, in order."""
    for v, value in zip(variables, values):
        # A backend-owned copy: on CPU, jax may alias the numpy buffer, and
        # the trainer donates variable buffers to the compiled step.
        v.assign(keras.ops.copy(keras.ops.convert_to_tensor(np.array(value, dtype=v.dtype))))


def load_variables(path, variables, what):
    """Assigns the arrays of a `save_variables` file to `variables`, in order.

    Args:
        path: the .npz file written by `save_variables`.
        variables: the `keras.Variable`s to assign (same count, order and shapes).
        what: a word for error messages ("model", "optimizer").

    Raises:
        CLIError: the count or a shape differs (another model configuration).
    """
    assign_variables(variables, read_variables(path, variables, what))


def _add_step(segments, step):
    """Appends `step` to a list of `[first, last]` runs of consecutive steps."""
    if segments and segments[-1][1] == step - 1:
        segments[-1][1] = step
    else:
        segments.append([step, step])


class Checkpointer(keras.callbacks.Callback):
    """Weights + optimizer state + step + data position + history in `<out>/checkpoint/`.

    `<out>/checkpoint` is a symlink to a complete version folder, swapped
    atomically by `io_utils.commit_dir`: a kill at any instant leaves the
    previous or the new checkpoint, never neither, and `--resume` continues
    from it. `state.json` holds the step, the number of batches of the data
    stream consumed (the resumed run skips them), the loss history and the
    lineage: `trained_steps` (runs of steps whose updates are in these
    weights) and `checkpoint_steps`. Saves every `every` optimizer steps
    (after the epoch's history entry when the step ends an epoch).

    In a multi-process run (`keras_givt.cli.distributed`) process 0 alone
    writes the checkpoint and the log, and alone reads them on resume; the
    others get its values by broadcast.
    """

    def __init__(self, out_dir, every, state):
        super().__init__()
        self.out_dir = out_dir
        self.dir = os.path.join(out_dir, "checkpoint")
        self.log_path = os.path.join(out_dir, TRAIN_LOG)
        self.every = every
        self.state = state  # dict: history, lineage etc., saved with each checkpoint
        self.state.setdefault("history", [])
        self.state.setdefault("trained_steps", [])
        self.state.setdefault("checkpoint_steps", [])
        self.interrupt_at = int(os.environ.get(INTERRUPT_ENV, "0") or 0)
        self.last_saved = None
        self.writer = distributed.is_writer()
        # Metric sums over the current epoch's batches, including those of an
        # interrupted run (carried in the checkpoint), so a resumed epoch logs
        # the same means as an uninterrupted one.
        self._carry = None
        self._batches = 0
        self._sums = {}

    def _epoch_totals(self):
        carry = self._carry or {"count": 0, "sums": {}}
        keys = set(carry["sums"]) | set(self._sums)
        sums = {k: carry["sums"].get(k, 0.0) + self._sums.get(k, 0.0) for k in keys}
        return {"count": carry["count"] + self._batches, "sums": sums}

    @staticmethod
    def exists(out_dir):
        return io_utils.dir_exists(os.path.join(out_dir, "checkpoint"))

    def step(self, model):
        return int(keras.ops.convert_to_numpy(model.optimizer.iterations))

    def log(self, **event):
        if not self.writer:
            return
        io_utils.append_jsonl(
            self.log_path, dict(event, time=round(time.time(), 3), pid=os.getpid())
        )

    def save(self, model):
        step = self.step(model)
        if step == self.last_saved:
            return
        if not self.writer:
            self.last_saved = step
            return
        state = dict(
            self.state,
            step=step,
            batches_consumed=step,
            partial_epoch=self._epoch_totals(),
            checkpoint_steps=self.state["checkpoint_steps"] + [step],
        )
        tmp = io_utils.new_version_dir(self.dir)
        save_variables(os.path.join(tmp, "model.npz"), model.variables)
        io_utils.kill_point("checkpoint:partial")
        save_variables(os.path.join(tmp, "optimizer.npz"), model.optimizer.variables)
        io_utils.write_json(os.path.join(tmp, "state.json"), state)
        io_utils.commit_dir(tmp, self.dir, "checkpoint")
        self.state["checkpoint_steps"] = state["checkpoint_steps"]
        self.last_saved = step
        self.log(event="checkpoint", step=step)

    def load(self, model):
        """Restores weights and optimizer state; returns the saved state dict."""
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        variables = list(model.variables) + list(model.optimizer.variables)
        state, values = {}, None
        if self.writer:
            state = io_utils.read_json(os.path.join(self.dir, "state.json"))
            values = read_variables(
                os.path.join(self.dir, "model.npz"), model.variables, "model"
            ) + read_variables(
                os.path.join(self.dir, "optimizer.npz"), model.optimizer.variables, "optimizer"
            )
        # Multi-process: process 0's arrays and step, broadcast to every process.
        state, values = distributed.share_checkpoint(variables, state, values)
        assign_variables(variables, values)
        self.last_saved = state["step"]
        self._carry = state.get("partial_epoch")
        return state

    def on_epoch_begin(self, epoch, logs=None):
        self._batches, self._sums = 0, {}

    def on_train_batch_end(self, batch, logs=None):
        model = self.model  # Syncs the JAX state.
        step = self.step(model)
        _add_step(self.state["trained_steps"], step)
        # Keras' batch logs are running means over the epoch: keep the sums.
        previous = self._sums.get("loss", 0.0)
        self._batches += 1
        self._sums = {
            k: float(v) * self._batches
            for k, v in (logs or {}).items()
            if isinstance(v, (int, float, np.floating, np.integer)) or np.ndim(v) == 0
        }
        loss = self._sums.get("loss")
        self.log(
            event="step",
            step=step,
            batches_consumed=step,
            loss=None if loss is None else loss - previous,
        )
        io_utils.kill_point("step")
        ends_epoch = batch + 1 == (self.params or {}).get("steps")
        if step % self.every == 0 and not ends_epoch:
            self.save(model)
        if self.interrupt_at and step >= self.interrupt_at:
            raise KeyboardInterrupt(f"{INTERRUPT_ENV}={self.interrupt_at}")

    def on_epoch_end(self, epoch, logs=None):
        model = self.model
        step = self.step(model)
        entry = {k: float(v) for k, v in (logs or {}).items()}
        if (
            self._carry and self._carry["count"]
        ):  # The first epoch after a resume: whole-epoch means.
            totals = self._epoch_totals()
            entry.update({k: v / totals["count"] for k, v in totals["sums"].items()})
        self._carry, self._batches, self._sums = None, 0, {}
        self.state["history"].append(dict(entry, step=step))
        if step % self.every == 0:
            self.save(model)


def learning_rate(args, total_steps):
    """The optimizer's learning rate of `--learning-rate`, `--lr-schedule` and `--warmup-steps`.

    Args:
        args: the parsed training arguments.
        total_steps: the optimizer steps of the whole run (the cosine decay length).

    Returns:
        A float (constant) or a `keras.optimizers.schedules.CosineDecay`.
    """
    if args.lr_schedule == "constant":
        return args.learning_rate
    warm = min(args.warmup_steps, max(total_steps - 1, 0))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warm else args.learning_rate,
        decay_steps=max(total_steps - warm, 1),
        alpha=0.0,
        warmup_target=args.learning_rate if warm else None,
        warmup_steps=warm,
    )


def prepare_out_dir(args, model_keys=()):
    """Locks `<out>`, repairs what a kill left, and checks `--resume`/`--overwrite`.

    `main` already refused `--resume` without a checkpoint and a plain run
    into a folder holding one (see `checks.check_resume`); this re-checks
    under the lock. A resumed run must also match the checkpoint's
    `model_keys` arguments. The lock is held until the command ends
    (`io_utils.release_folder_locks`, called by `main`). In a multi-process
    run only process 0 touches the folder.

    Args:
        args: the parsed training arguments (`out`, `resume`, `overwrite`).
        model_keys: names of the arguments that define the model; a resumed
            run must give the values stored in the checkpoint.
    """
    if not distributed.is_writer():
        return
    os.makedirs(args.out, exist_ok=True)
    io_utils.hold_folder_lock(args.out)
    for name in ("checkpoint", "preset", "vae", "tokenizer"):
        io_utils.recover_dir(os.path.join(args.out, name))
    from keras_givt.cli import checks

    checks.check_resume(args)
    if args.overwrite and Checkpointer.exists(args.out):
        io_utils.remove_dir(os.path.join(args.out, "checkpoint"))
        if os.path.isfile(os.path.join(args.out, TRAIN_LOG)):
            os.remove(os.path.join(args.out, TRAIN_LOG))
    if args.resume and model_keys:
        check_resume_config(args, args.out, model_keys)


def check_resume_config(args, out_dir, keys):
    """A resumed run must use the model configuration of the checkpointed one.

    Args:
        args: the parsed arguments of the resumed run.
        out_dir: the run folder holding `checkpoint/state.json`.
        keys: names of the arguments to compare with the checkpoint's `model_config`.

    Raises:
        CLIError: naming every argument that differs.
    """
    path = os.path.join(out_dir, "checkpoint", "state.json")
    saved = io_utils.read_json(path).get("model_config", {})
    diff = {
        k: (saved.get(k), getattr(args, k.replace("-", "_"), None))
        for k in keys
        if k in saved and saved.get(k) != getattr(args, k.replace("-", "_"), None)
    }
    if diff:
        raise CLIError(
            "--resume with a different model configuration than the checkpoint: "
            + ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in sorted(diff.items()))
        )


def fit_steps(model, dataset, args, steps_per_epoch, total_steps, out_dir, state, record):
    """Runs `fit` up to `total_steps` optimizer steps, resuming mid-epoch if needed.

    `dataset` is the (infinite, seeded) training stream, or better a function
    returning a fresh copy of it (see `fresh_stream`); each optimizer step
    consumes one batch. A resumed run skips the batches the checkpointed run
    consumed, so the stream continues where it stopped. On Ctrl-C/SIGTERM the
    checkpoint is saved and the record finished as "interrupted" before the
    `KeyboardInterrupt` propagates.

    Args:
        model: a compiled `keras.Model` (task, VAE, tokenizer).
        dataset: a tf.data stream, or a function returning a fresh copy of it.
        args: the parsed training arguments (`resume`, `checkpoint_every`, `verbose`).
        steps_per_epoch: optimizer steps per epoch.
        total_steps: the optimizer step to train up to.
        out_dir: the run folder (`checkpoint/`, `train_log.jsonl`).
        state: a dict saved with each checkpoint (`model_config`, history, ...);
            updated in place.
        record: the command's `RunRecord`.

    Returns:
        `(checkpointer, step reached)`.
    """
    every = args.checkpoint_every or steps_per_epoch
    ckpt = Checkpointer(out_dir, every, state)
    done = 0
    if args.resume:
        state.update(
            {k: v for k, v in ckpt.load(model).items() if k not in ("step", "batches_consumed")}
        )
        ckpt.state = state
        done = ckpt.last_saved
        state.setdefault("resumes", []).append({"from_step": done, "time": round(time.time(), 3)})
        print(
            f"Resumed from {ckpt.dir} at step {done} ({done} batches of the data stream consumed)."
        )
    ckpt.log(event="resume" if args.resume else "start", step=done, total_steps=total_steps)
    if done >= total_steps:
        print(f"Already at step {done} >= {total_steps}: nothing to train.")
        return ckpt, done
    epochs = math.ceil(total_steps / steps_per_epoch)
    record.data["metrics"].update({"start_step": done, "total_steps": total_steps})
    record.write()
    t0 = time.time()

    def stream():
        # Each `fit` call iterates a fresh pipeline (a second iterator over the
        # same tf.data object would draw another shuffle order) and skips what
        # earlier steps consumed: the stream is the same with or without resumes.
        ds = dataset() if callable(dataset) else dataset
        return ds.skip(done) if done else ds

    try:
        epoch = done // steps_per_epoch
        within = done % steps_per_epoch
        if within:  # Finish the interrupted epoch first, without repeating steps.
            n = min(steps_per_epoch - within, total_steps - done)
            print(f"Epoch {epoch + 1}/{epochs} (resumed): {n} remaining steps")
            model.fit(stream(), epochs=1, steps_per_epoch=n, callbacks=[ckpt], verbose=args.verbose)
            epoch += 1
            done += n
        full = (total_steps - done) // steps_per_epoch
        if full:
            model.fit(
                stream(),
                initial_epoch=epoch,
                epochs=epoch + full,
                steps_per_epoch=steps_per_epoch,
                callbacks=[ckpt],
                verbose=args.verbose,
            )
            epoch += full
            done += full * steps_per_epoch
        rest = total_steps - done
        if rest:
            print(f"Epoch {epoch + 1}/{epochs} (last, partial): {rest} steps")
            model.fit(
                stream(), epochs=1, steps_per_epoch=rest, callbacks=[ckpt], verbose=args.verbose
            )
    except KeyboardInterrupt:
        ckpt.save(model)
        record.finish(
            "interrupted",
            error="interrupted (Ctrl-C or SIGTERM); checkpoint saved",
            step=ckpt.last_saved,
            train_time_s=round(time.time() - t0, 3),
            history=state.get("history", []),
        )
        print(
            f"\nInterrupted at step {ckpt.last_saved}; checkpoint saved in {ckpt.dir}. "
            f"Continue with the same command plus --resume.",
            file=sys.stderr,
        )
        raise
    state["train_time_s"] = state.get("train_time_s", 0.0) + round(time.time() - t0, 3)
    ckpt.save(model)
    return ckpt, ckpt.last_saved


def total_steps(args, steps_per_epoch):
    """The optimizer steps of the run: `--steps`, else `--epochs` x `steps_per_epoch`.

    Args:
        args: the parsed training arguments.
        steps_per_epoch: optimizer steps per epoch.
    """
    return args.steps or args.epochs * steps_per_epoch


def run_length(args, num_examples):
    """`(steps_per_epoch, total_steps)` of a run over `num_examples` examples.

    Steps per epoch: `--steps-per-epoch`, else one pass over the data in
    `--batch-size` batches (at least 1); the total as `total_steps`.

    Args:
        args: the parsed training arguments.
        num_examples: the examples of the training set.
    """
    steps_per_epoch = args.steps_per_epoch or max(num_examples // args.batch_size, 1)
    return steps_per_epoch, total_steps(args, steps_per_epoch)


def compile_for_training(model, args, total_steps, weight_decay=0.0):
    """`model.compile` with Adam (AdamW when `weight_decay` > 0), global clip norm 1.

    Args:
        model: the model to train (a task, VAE, tokenizer).
        args: the parsed training arguments (the learning-rate flags).
        total_steps: the optimizer steps of the whole run (see `learning_rate`).
        weight_decay: AdamW's decay; 0: plain Adam.
    """
    lr = learning_rate(args, total_steps)
    if weight_decay > 0:
        optimizer = PerVariableAdamW(lr, weight_decay=weight_decay, global_clipnorm=1.0)
    else:
        optimizer = PerVariableAdam(lr, global_clipnorm=1.0)
    model.compile(optimizer=optimizer)


def open_training_record(args, argv, model_keys, info):
    """`(record, state)` of a training command: its run record and its checkpoint state.

    Args:
        args: the parsed training arguments (`out`; `resume`: the record of
            the earlier run is kept under `previous_runs`).
        argv: the command-line arguments.
        model_keys: names of the arguments that define the model, saved as
            the state's `model_config` (see `prepare_out_dir`).
        info: fields added to the record (data, number of examples, params).
    """
    if distributed.is_writer():
        record = run_record.open_record(args, argv, args.out, keep_previous=args.resume)
    else:
        record = distributed.NullRecord()
    record.data.update(info)
    return record, {"model_config": {k: getattr(args, k) for k in model_keys}}


def finish_training(record, state, step, **metrics):
    """Finishes `record` as done with the step reached, the loss history, the train time, `metrics`.

    Args:
        record: the command's `RunRecord`.
        state: the checkpoint state `fit_steps` updated (`history`, `train_time_s`).
        step: the step reached.
        **metrics: the command's own metrics.
    """
    record.finish(
        step=step,
        history=state.get("history", []),
        train_time_s=state.get("train_time_s"),
        **metrics,
    )


def fit_and_save_task(
    model, dataset, args, argv, steps_per_epoch, total_steps, state, record, description, card
):
    """`fit_steps`, then `<out>/preset` (`save_task`) and the finished run record.

    The model card has the common fields (`description`, command line,
    backend, steps, batch size, train time) and the command's own `card`.

    Args:
        model: the compiled task (`save_to_preset`).
        dataset, args, steps_per_epoch, total_steps, state, record: as for `fit_steps`.
        argv: the command-line arguments (stored in the model card).
        description: the model card's one-line description.
        card: the command's own model-card fields.

    Returns:
        The step reached.
    """
    _, step = fit_steps(model, dataset, args, steps_per_epoch, total_steps, args.out, state, record)
    preset_dir = os.path.join(args.out, "preset")
    card = {
        "description": description,
        "training_command": " ".join(["keras-givt"] + list(argv)),
        "backend": keras.config.backend(),
        "steps": step,
        "batch_size": args.batch_size,
        "train_time_s": state.get("train_time_s"),
        **card,
    }
    distributed.run_on_writer(lambda: save_task(model, preset_dir, card))
    if not distributed.is_writer():
        return step
    finish_training(
        record,
        state,
        step,
        final_loss=(state.get("history") or [{}])[-1].get("loss"),
        preset_dir=preset_dir,
    )
    name = type(model).__name__
    print(f"Saved the model to {preset_dir} (load with {name}.from_preset({preset_dir!r})).")
    return step
