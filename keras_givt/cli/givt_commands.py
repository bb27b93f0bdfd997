"""The subcommands of `keras-givt` (imported after `KERAS_BACKEND` is set).

Dimension letters: N examples, B batch, H/W/C image, L tokens, D token dim.
"""

import json
import math
import os
import platform
import shutil
import sys
import time

import keras
import numpy as np

from keras_givt.cli import io_utils
from keras_givt.cli.io_utils import CLIError

RUN_JSON = "{command}.json"
# Test hook: raise KeyboardInterrupt after this optimizer step (simulates Ctrl-C).
INTERRUPT_ENV = "KERAS_GIVT_CLI_INTERRUPT_AT_STEP"
# Append-only log of a training run folder: one JSON line per event
# (start/resume, each optimizer step with its loss and data position, each
# committed checkpoint). The exact lineage of the weights is in the
# checkpoint's state.json (`trained_steps`, `checkpoint_steps`).
TRAIN_LOG = "train_log.jsonl"

_OPEN_RECORDS = []
_LOCKS = []


# --- run records ------------------------------------------------------------


class RunRecord:
    """`<out>/<command>.json`: command line, config, environment, metrics, status.

    `status` is "running" while the command runs and ends as "done",
    "failed" (with `error`) or "interrupted"; `main` finishes every open
    record when a command raises. A record left "running" by a killed
    process is kept under `previous_runs` by the next run of the same
    command in that folder with --resume.
    """

    def __init__(self, path, args, argv, keep_previous=False):
        self.path = path
        self.start = time.time()
        config = {k: v for k, v in vars(args).items()}
        previous = []
        if keep_previous and os.path.isfile(path):
            try:
                old = io_utils.read_json(path)
            except ValueError:
                old = {}
            previous = old.pop("previous_runs", [])
            if old.get("status") == "running":
                old["status"] = "killed"
                old["error"] = "the process ended without finishing this record (killed)"
            previous.append(
                {
                    k: old.get(k)
                    for k in ("argv", "status", "error", "wall_time_s", "env", "metrics")
                }
            )
        self.data = {
            "command": args.command,
            "argv": ["keras-givt"] + list(argv),
            "config": config,
            "env": {
                "backend": keras.config.backend(),
                "keras": keras.__version__,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpu_count": os.cpu_count(),
                "pid": os.getpid(),
            },
            "status": "running",
            "metrics": {},
        }
        if previous:
            self.data["previous_runs"] = previous
        self.write()
        _OPEN_RECORDS.append(self)

    def write(self):
        self.data["wall_time_s"] = round(time.time() - self.start, 3)
        io_utils.write_json(self.path, self.data)

    def finish(self, status="done", error=None, **metrics):
        self.data["metrics"].update(metrics)
        self.data["status"] = status
        if error is not None:
            self.data["error"] = error
        self.write()
        if self in _OPEN_RECORDS:
            _OPEN_RECORDS.remove(self)


def finish_open_records(status, reason):
    """Ends every record still "running" as `status` with `reason` (called by `main` on errors)."""
    for record in list(_OPEN_RECORDS):
        try:
            record.finish(status, error=reason)
        except OSError:
            _OPEN_RECORDS.remove(record)


def release_locks():
    while _LOCKS:
        _LOCKS.pop().__exit__(None, None, None)


def _record(args, argv, out_dir, name=None, keep_previous=False):
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, RUN_JSON.format(command=name or args.command))
    return RunRecord(path, args, argv, keep_previous=keep_previous)


# --- data -------------------------------------------------------------------


def _is_builtin(data):
    return data in ("fashion_mnist", "mnist")


def data_spec(args):
    """The data arguments as a dict (stored in run JSONs and reused by later commands)."""
    resize = args.resize_mode or ("pad" if _is_builtin(args.data) else "resize")
    return {
        "data": args.data if _is_builtin(args.data) else os.path.abspath(args.data),
        "image_size": args.image_size,
        "channels": args.channels,
        "resize_mode": resize,
        "max_examples": args.max_examples,
    }


def load_images(
    spec,
    split,
    batch_size,
    shuffle=False,
    seed=None,
    repeat=False,
    drop_remainder=False,
    data_dir=None,
):
    """`(tf.data of {"images", "labels"}, num_examples, class_names)`."""
    from keras_givt import datasets

    data = spec["data"]
    if _is_builtin(data):
        loader = datasets.load_fashion_mnist if data == "fashion_mnist" else datasets.load_mnist
        try:
            images, labels = loader(split, data_dir=data_dir)
        except Exception as e:  # Missing files: the loader's message says how to install them.
            raise CLIError(f"could not load {data} ({split}): {e}")
        if spec.get("max_examples"):
            images, labels = images[: spec["max_examples"]], labels[: spec["max_examples"]]
        names = list(
            datasets.FASHION_MNIST_CLASS_NAMES
            if data == "fashion_mnist"
            else datasets.MNIST_CLASS_NAMES
        )
        ds = datasets.arrays_dataset(
            images,
            labels,
            image_size=spec["image_size"],
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            channels=spec["channels"],
            resize_mode=spec["resize_mode"],
            drop_remainder=drop_remainder,
            repeat=repeat,
        )
        return ds, len(images), names
    from keras_givt.datasets.image_folder import list_image_folder

    paths, _, names = list_image_folder(data)
    n = len(paths)
    ds = datasets.image_folder_dataset(
        data,
        spec["image_size"],
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        channels=spec["channels"],
        resize_mode=spec["resize_mode"],
        drop_remainder=drop_remainder,
        repeat=repeat and not spec.get("max_examples"),
    )
    if spec.get("max_examples"):
        n = min(n, spec["max_examples"])
        ds = ds.unbatch().take(n)
        if repeat:
            ds = ds.repeat()
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds, n, names


# --- checkpoints --------------------------------------------------------------


def _save_variables(path, variables):
    arrays = {
        f"{i:05d}": np.asarray(keras.ops.convert_to_numpy(v)) for i, v in enumerate(variables)
    }
    arrays["__paths__"] = np.array([v.path for v in variables])
    io_utils.write_npz(path, **arrays)


def _load_variables(path, variables, what):
    with np.load(path) as data:
        n = len([k for k in data.files if k != "__paths__"])
        if n != len(variables):
            raise CLIError(
                f"checkpoint {path!r} has {n} {what} variables, the model has {len(variables)}: "
                "the model configuration differs from the checkpointed run."
            )
        for i, v in enumerate(variables):
            value = data[f"{i:05d}"]
            if tuple(value.shape) != tuple(v.shape):
                raise CLIError(
                    f"checkpoint {path!r}: {what} variable {v.path} has shape {value.shape}, the "
                    f"model expects {tuple(v.shape)} (different model configuration?)."
                )
            # A backend-owned copy: on CPU, jax may alias the numpy buffer, and
            # the trainer donates variable buffers to the compiled step.
            v.assign(keras.ops.copy(keras.ops.convert_to_tensor(np.array(value, dtype=v.dtype))))


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
        io_utils.append_jsonl(
            self.log_path, dict(event, time=round(time.time(), 3), pid=os.getpid())
        )

    def save(self, model):
        step = self.step(model)
        if step == self.last_saved:
            return
        state = dict(
            self.state,
            step=step,
            batches_consumed=step,
            partial_epoch=self._epoch_totals(),
            checkpoint_steps=self.state["checkpoint_steps"] + [step],
        )
        tmp = io_utils.new_version_dir(self.dir)
        _save_variables(os.path.join(tmp, "model.npz"), model.variables)
        io_utils.kill_point("checkpoint:partial")
        _save_variables(os.path.join(tmp, "optimizer.npz"), model.optimizer.variables)
        io_utils.write_json(os.path.join(tmp, "state.json"), state)
        io_utils.commit_dir(tmp, self.dir, "checkpoint")
        self.state["checkpoint_steps"] = state["checkpoint_steps"]
        self.last_saved = step
        self.log(event="checkpoint", step=step)

    def load(self, model):
        """Restores weights and optimizer state; returns the saved state dict."""
        state = io_utils.read_json(os.path.join(self.dir, "state.json"))
        _load_variables(os.path.join(self.dir, "model.npz"), model.variables, "model")
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        _load_variables(
            os.path.join(self.dir, "optimizer.npz"), model.optimizer.variables, "optimizer"
        )
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


def _learning_rate(args, total_steps):
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


def _prepare_out_dir(args, model_keys=()):
    """Locks `<out>`, repairs what a kill left, and checks `--resume`/`--overwrite`.

    `main` already refused `--resume` without a checkpoint and a plain run
    into a folder holding one (see `checks.check_resume`); this re-checks
    under the lock. A resumed run must also match the checkpoint's
    `model_keys` arguments.
    """
    os.makedirs(args.out, exist_ok=True)
    lock = io_utils.FolderLock(args.out)
    lock.__enter__()
    _LOCKS.append(lock)
    for name in ("checkpoint", "preset", "vae", "tokenizer"):
        io_utils.recover_dir(os.path.join(args.out, name))
    from keras_givt.cli import checks

    checks.check_resume(args)
    if args.overwrite and Checkpointer.exists(args.out):
        io_utils.remove_dir(os.path.join(args.out, "checkpoint"))
        if os.path.isfile(os.path.join(args.out, TRAIN_LOG)):
            os.remove(os.path.join(args.out, TRAIN_LOG))
    if args.resume and model_keys:
        _check_resume_config(args, args.out, model_keys)


def _check_resume_config(args, out_dir, keys):
    """A resumed run must use the model configuration of the checkpointed one."""
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


def _fit(model, dataset, args, steps_per_epoch, total_steps, out_dir, state, record):
    """Runs `fit` up to `total_steps` optimizer steps, resuming mid-epoch if needed.

    `dataset` is the (infinite, seeded) training stream, or better a function
    returning a fresh copy of it (see `fresh_stream`); each optimizer step
    consumes one batch. A resumed run skips the batches the checkpointed run
    consumed, so the stream continues where it stopped.
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


def fresh_stream(first, make):
    """A function returning `first` on its first call, then `make()` (a fresh, identical pipeline)."""
    pending = [first]

    def stream():
        return pending.pop() if pending else make()

    return stream


def _image_stream(spec, args, first, transform):
    """`fresh_stream` of the shuffled, repeated training images of `spec`, mapped by `transform`."""

    def make():
        ds, _, _ = load_images(
            spec,
            "train",
            args.batch_size,
            shuffle=True,
            seed=args.seed,
            repeat=True,
            drop_remainder=True,
            data_dir=args.data_dir,
        )
        return transform(ds)

    return fresh_stream(transform(first), make)


def _total_steps(args, steps_per_epoch):
    return args.steps or args.epochs * steps_per_epoch


def _fit_and_save_task(
    model, dataset, args, argv, steps_per_epoch, total_steps, state, record, description, card
):
    """`_fit`, then `<out>/preset` (`save_task`) and the finished run record.

    The model card has the common fields (`description`, command line,
    backend, steps, batch size, train time) and the command's own `card`.
    Returns the step reached.
    """
    _, step = _fit(model, dataset, args, steps_per_epoch, total_steps, args.out, state, record)
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
    save_task(model, preset_dir, card)
    record.finish(
        step=step,
        history=state.get("history", []),
        train_time_s=state.get("train_time_s"),
        final_loss=(state.get("history") or [{}])[-1].get("loss"),
        preset_dir=preset_dir,
    )
    name = type(model).__name__
    print(f"Saved the model to {preset_dir} (load with {name}.from_preset({preset_dir!r})).")
    return step


# --- train-vae ----------------------------------------------------------------


MODEL_KEYS_VAE = (
    "codeword_dim",
    "filters",
    "num_res_blocks",
    "channel_multipliers",
    "image_size",
    "channels",
)


def cmd_train_vae(args, argv):
    from keras_givt.models.vae.beta_vae import BetaVAE

    _prepare_out_dir(args, MODEL_KEYS_VAE)
    spec = data_spec(args)
    ds, n, names = load_images(
        spec,
        "train",
        args.batch_size,
        shuffle=True,
        seed=args.seed,
        repeat=True,
        drop_remainder=True,
        data_dir=args.data_dir,
    )
    ds = _image_stream(spec, args, ds, lambda d: d.map(lambda b: b["images"]))
    steps_per_epoch = args.steps_per_epoch or max(n // args.batch_size, 1)
    total = _total_steps(args, steps_per_epoch)
    down = 2 ** (len(args.channel_multipliers) - 1)
    if args.image_size % down:
        raise CLIError(
            f"--image-size {args.image_size} must be divisible by the VAE downsampling factor {down} "
            f"(2 ** (len(--channel-multipliers) - 1))."
        )
    grid = args.image_size // down
    keras.utils.set_random_seed(args.seed)
    vae = BetaVAE(
        codeword_dim=args.codeword_dim,
        code_len=grid * grid,
        filters=args.filters,
        num_res_blocks=args.num_res_blocks,
        channel_multipliers=args.channel_multipliers,
        output_dim=args.channels,
        beta=args.beta,
        reconstruction_loss=args.reconstruction_loss,
        seed=args.seed,
    )
    vae.build_for_image_size(args.image_size, args.channels)
    vae.compile(optimizer=keras.optimizers.Adam(_learning_rate(args, total), global_clipnorm=1.0))
    record = _record(args, argv, args.out, keep_previous=args.resume)
    record.data.update({"data": spec, "num_examples": n, "params": vae.count_params()})
    model_config = {k: getattr(args, k) for k in MODEL_KEYS_VAE}
    state = {"model_config": model_config}
    print(
        f"BetaVAE: {vae.count_params():,} params, {grid}x{grid} = {grid * grid} tokens of "
        f"{args.codeword_dim} dims; {n} images, {total} steps of batch {args.batch_size}."
    )
    _, step = _fit(vae, ds, args, steps_per_epoch, total, args.out, state, record)
    # Reconstruction error on held-out data (MNIST-like: the test split).
    split = "test" if _is_builtin(spec["data"]) else "train"
    test_ds, _, _ = load_images(
        dict(spec, max_examples=None) if split == "test" else spec,
        split,
        250,
        data_dir=args.data_dir,
    )
    mse, count = 0.0, 0
    for batch in test_ds.take(4):
        x = batch["images"].numpy()
        mu, _ = vae.encode(x)
        rec = keras.ops.convert_to_numpy(vae.decode(mu))
        mse += float(np.sum((rec - x) ** 2))
        count += x.size
    vae_dir = os.path.join(args.out, "vae")
    save_vae(vae, vae_dir, extra={"data": spec, "class_names": names})
    record.finish(
        step=step,
        history=state.get("history", []),
        train_time_s=state.get("train_time_s"),
        reconstruction_mse=mse / max(count, 1),
        reconstruction_split=split,
        vae_dir=vae_dir,
    )
    print(f"Saved the VAE to {vae_dir} (reconstruction MSE {mse / max(count, 1):.4f} on {split}).")


def save_model_folder(model, folder, info_name, extra=None):
    """`folder/model.keras` + `folder/<info_name>` (`extra` plus the model config).

    Written in full to a new version folder, then swapped in atomically
    (`io_utils.commit_dir`): a kill at any instant keeps the previous folder.
    """
    tmp = io_utils.new_version_dir(folder)
    model.save(os.path.join(tmp, "model.keras"))
    io_utils.write_json(os.path.join(tmp, info_name), dict(extra or {}, config=model.get_config()))
    io_utils.commit_dir(tmp, folder, "model_folder")


def load_model_folder(path, cls, subfolder, info_name, flag, command):
    """`(model, info dict, abs folder)` of a `save_model_folder` folder.

    `path` is that folder or the `command` output folder holding it as
    `subfolder`; `flag` names the argument in the error message.
    """
    if os.path.isdir(os.path.join(path, subfolder)):
        path = os.path.join(path, subfolder)
    if not os.path.isfile(os.path.join(path, "model.keras")):
        raise CLIError(
            f"{flag} {path!r} has no model.keras (expected a `{command}` output folder)."
        )
    model = cls.from_preset(path)
    info = {}
    if os.path.isfile(os.path.join(path, info_name)):
        info = io_utils.read_json(os.path.join(path, info_name))
    return model, info, os.path.abspath(path)


def save_vae(vae, vae_dir, extra=None):
    """`vae_dir/model.keras` (loadable with `BetaVAE.from_preset(vae_dir)`) + `vae.json`."""
    save_model_folder(vae, vae_dir, "vae.json", extra)


def load_vae(path):
    from keras_givt.models.vae.beta_vae import BetaVAE

    return load_model_folder(path, BetaVAE, "vae", "vae.json", "--vae", "train-vae")


# --- encode -------------------------------------------------------------------


def cmd_encode(args, argv):
    vae, _, vae_dir = load_vae(args.vae)
    spec = data_spec(args)
    ds, n, names = load_images(spec, args.split, args.batch_size, data_dir=args.data_dir)
    out_dir = os.path.dirname(os.path.abspath(args.out)) or "."
    record = _record(args, argv, out_dir, name=os.path.splitext(os.path.basename(args.out))[0])
    mus, logvars, labels = [], [], []
    bar = keras.utils.Progbar(n, unit_name="image")
    t0 = time.time()
    for batch in ds:
        mu, logvar = vae.encode(batch["images"].numpy())
        mus.append(keras.ops.convert_to_numpy(mu).astype("float32"))
        logvars.append(keras.ops.convert_to_numpy(logvar).astype("float32"))
        labels.append(batch["labels"].numpy())
        bar.add(len(labels[-1]))
    mu, logvar, labels = np.concatenate(mus), np.concatenate(logvars), np.concatenate(labels)
    meta = {"vae_dir": vae_dir, "data": spec, "split": args.split, "class_names": names}
    io_utils.write_npz(
        args.out,
        mu=mu,
        logvar=logvar,
        labels=labels.astype("int32"),
        meta=np.array(json.dumps(meta)),
    )
    record.finish(
        num_examples=int(len(mu)),
        tokens=int(mu.shape[1]),
        token_dim=int(mu.shape[2]),
        encode_time_s=round(time.time() - t0, 3),
        output=os.path.abspath(args.out),
        mu_std=float(mu.std()),
        mean_posterior_std=float(np.exp(0.5 * logvar).mean()),
    )
    print(f"Wrote {len(mu)} latents {mu.shape[1:]} to {args.out}.")


def read_latents(path):
    with np.load(path) as data:
        meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
        return data["mu"], data["logvar"], data["labels"], meta


# --- train (GIVT) -------------------------------------------------------------


MODEL_KEYS_GIVT = (
    "model",
    "emb_dim",
    "num_layers",
    "num_heads",
    "mlp_dim",
    "num_mixtures",
    "unconditional",
)


def seeded_epoch_order(n, seed):
    """tf.data of example indices: epoch after epoch, each a permutation drawn statelessly from (seed, epoch).

    Unlike `shuffle(reshuffle_each_iteration=True)`, whose orders depend on
    how many iterators the same dataset object has served, the stream is a
    pure function of `seed` and the position: `skip(k)` on a fresh copy is
    exactly the continuation after k elements.
    """
    import tensorflow as tf

    def epoch(e):
        key = tf.stack([tf.constant(seed, tf.int64), e])
        return tf.data.Dataset.from_tensor_slices(
            tf.random.experimental.stateless_shuffle(tf.range(n), seed=key)
        )

    return tf.data.Dataset.counter().flat_map(epoch)


def latents_dataset(mu, logvar, labels, batch_size, seed, shuffle=True, repeat=True):
    """tf.data of `{"latents": mu + exp(logvar/2)·ε (fresh ε per step), "labels"}`.

    Deterministic given `seed`: the order comes from `seeded_epoch_order`
    and ε of batch i from a stateless draw keyed by (seed, i), so `skip(k)`
    gives exactly the stream a run that consumed k batches continues with.
    """
    import tensorflow as tf

    mu_t, lv_t, y_t = tf.constant(mu), tf.constant(logvar), tf.constant(labels.astype("int32"))
    if shuffle and repeat:
        idx = seeded_epoch_order(len(mu), seed)
    else:
        idx = tf.data.Dataset.range(len(mu))
        if shuffle:
            idx = idx.shuffle(len(mu), seed=seed)
        if repeat:
            idx = idx.repeat()
    ds = idx.batch(batch_size, drop_remainder=True).enumerate()

    def sample(i, index):
        m, lv, y = tf.gather(mu_t, index), tf.gather(lv_t, index), tf.gather(y_t, index)
        key = tf.stack([tf.constant(seed, tf.int64), tf.cast(i, tf.int64)])
        eps = tf.random.stateless_normal(tf.shape(m), seed=key, dtype=m.dtype)
        return {"latents": m + tf.exp(0.5 * lv) * eps, "labels": y}

    return ds.map(sample, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def cmd_train(args, argv):
    import tensorflow as tf

    import keras_givt

    _prepare_out_dir(args, MODEL_KEYS_GIVT)
    keras.utils.set_random_seed(args.seed)
    tf.random.set_seed(args.seed)
    data_info = {}
    if args.latents:
        mu, logvar, labels, meta = read_latents(args.latents)
        n = len(mu)
        seq_len, out_dim = int(mu.shape[1]), int(mu.shape[2])
        num_labels = (
            int(labels.max()) + 1
            if len(meta.get("class_names", [])) == 0
            else len(meta["class_names"])
        )
        ds = fresh_stream(
            latents_dataset(mu, logvar, labels, args.batch_size, args.seed),
            lambda: latents_dataset(mu, logvar, labels, args.batch_size, args.seed),
        )
        vae_dir = args.vae or meta.get("vae_dir")
        vae = None
        if vae_dir and os.path.isdir(vae_dir):
            vae, _, vae_dir = load_vae(vae_dir)
        data_info = {
            "latents": os.path.abspath(args.latents),
            "data": meta.get("data"),
            "class_names": meta.get("class_names"),
        }
    else:
        vae, _, vae_dir = load_vae(args.vae)
        spec = data_spec(args)
        ds, n, names = load_images(
            spec,
            "train",
            args.batch_size,
            shuffle=True,
            seed=args.seed,
            repeat=True,
            drop_remainder=True,
            data_dir=args.data_dir,
        )
        drop = (
            (lambda d: d.map(lambda b: {k: v for k, v in b.items() if k != "labels"}))
            if args.unconditional
            else (lambda d: d)
        )
        ds = _image_stream(spec, args, ds, drop)
        mu, _ = vae.encode(
            np.zeros((1, args.image_size, args.image_size, args.channels), "float32")
        )
        seq_len, out_dim = int(mu.shape[1]), int(mu.shape[2])
        num_labels = len(names)
        data_info = {"data": spec, "class_names": names}
    if args.unconditional:
        num_labels = None
        if args.latents:
            make = ds
            ds = lambda: make().map(
                lambda b: {k: v for k, v in b.items() if k != "labels"}
            )  # noqa: E731
    steps_per_epoch = args.steps_per_epoch or max(n // args.batch_size, 1)
    total = _total_steps(args, steps_per_epoch)
    style = "ar" if args.model == "causal" else "masked"
    backbone = keras_givt.GIVTBackbone(
        seq_len=seq_len,
        out_dim=out_dim,
        num_labels=num_labels,
        emb_dim=args.emb_dim,
        num_decoder_layers=args.num_layers,
        num_heads=args.num_heads,
        mlp_dim=args.mlp_dim,
        num_mixtures=args.num_mixtures,
        per_channel_mixtures=False,
        fix_square_plus=True,
        style=style,
        mask_style="concat",
        drop_labels_probability=0.0 if num_labels is None else args.drop_labels_probability,
        dec_dropout_rate=args.dropout,
    )
    task_cls = keras_givt.GIVTCausal if args.model == "causal" else keras_givt.GIVTMaskGIT
    sampling_defaults = {"temperature": 1.0}
    if num_labels is not None and args.drop_labels_probability > 0:
        sampling_defaults["cfg_weight"] = 0.5
    if args.model == "maskgit":
        sampling_defaults.update({"num_steps": 16, "choice_temperature": 1.0})
    model = task_cls(backbone, vae=vae, seed=args.seed, sampling_defaults=sampling_defaults)
    model.compile(optimizer=keras.optimizers.Adam(_learning_rate(args, total), global_clipnorm=1.0))
    record = _record(args, argv, args.out, keep_previous=args.resume)
    record.data.update(
        {
            "data": data_info,
            "num_examples": n,
            "params": backbone.count_params(),
            "seq_len": seq_len,
            "token_dim": out_dim,
            "vae_dir": vae_dir,
        }
    )
    state = {"model_config": {k: getattr(args, k) for k in MODEL_KEYS_GIVT}}
    print(
        f"GIVT-{'Causal' if style == 'ar' else 'MaskGIT'}: {backbone.count_params():,} params; "
        f"{seq_len} tokens of {out_dim} dims; {n} examples, {total} steps of batch {args.batch_size}."
    )
    _fit_and_save_task(
        model,
        ds,
        args,
        argv,
        steps_per_epoch,
        total,
        state,
        record,
        description=f"GIVT-{'Causal' if style == 'ar' else 'MaskGIT'} trained with the keras-givt CLI.",
        card={"params": int(backbone.count_params()), "data": data_info},
    )


def save_task(model, preset_dir, card):
    """`task.save_to_preset` into a new version folder, plus `model_card.json`; then an atomic swap."""
    tmp = io_utils.new_version_dir(preset_dir)
    os.rmdir(tmp)  # save_to_preset creates it.
    # A fresh optimizer: the preset ships weights only (Adam's moments would
    # double its size); `<out>/checkpoint` keeps the optimizer state.
    model.compile()
    model.save_to_preset(tmp)
    io_utils.write_json(os.path.join(tmp, "model_card.json"), card)
    io_utils.commit_dir(tmp, preset_dir, "preset")


# --- loading models for sampling ---------------------------------------------


def resolve_model_dir(spec):
    """A preset folder for a bundled preset name, a preset folder or a `train` output folder."""
    from keras_givt.models import bundled

    if spec in bundled.BUNDLED:
        return bundled.preset_path(spec)
    if os.path.isdir(os.path.join(spec, "preset")):
        return os.path.join(spec, "preset")
    if os.path.isfile(os.path.join(spec, "task.json")):
        return spec
    return None


def check_task_spec(spec):
    """Raises CLIError unless `spec` names a GIVT preset or folder (cheap: nothing is loaded)."""
    if resolve_model_dir(spec) is not None:
        return
    from keras_givt.utils import preset_utils

    if spec not in preset_utils.PRESETS:
        raise CLIError(
            f"argument --model: not a preset name, a preset folder (with task.json) or a `train` "
            f"output folder; received {spec!r}. Bundled presets: {sorted(_bundled_names())}."
        )
    _check_givt_class(spec, preset_utils.PRESETS[spec]["class"])


def load_task(spec):
    """`(task, model_card)` from a preset name or folder."""
    import keras_givt

    check_task_spec(spec)
    path = resolve_model_dir(spec)
    card = {}
    if path is None:
        from keras_givt.utils import preset_utils

        _check_givt_class(spec, preset_utils.PRESETS[spec]["class"])
        cls = (
            keras_givt.GIVTMaskGIT
            if preset_utils.PRESETS[spec]["class"] == "GIVTMaskGIT"
            else keras_givt.GIVTCausal
        )
        return cls.from_preset(spec), dict(preset_utils.PRESETS[spec].get("metadata", {}))
    with open(os.path.join(path, "task.json")) as f:
        task_json = json.load(f)
    name = task_json.get("registered_name", "") + task_json.get("class_name", "")
    _check_givt_class(spec, task_json.get("class_name", ""))
    cls = keras_givt.GIVTMaskGIT if "MaskGIT" in name else keras_givt.GIVTCausal
    if os.path.isfile(os.path.join(path, "model_card.json")):
        card = io_utils.read_json(os.path.join(path, "model_card.json"))
    model = cls.from_preset(path)
    if model.vae is None:
        raise CLIError(f"--model {spec!r} has no VAE: it cannot produce images.")
    return model, card


_OTHER_FAMILIES = {
    "MaskGITImageGenerator": "the VQ MaskGIT commands (`keras-givt evaluate-vq`, `train-maskgit-vq`)",
    "GIVTUViM": "the UViM commands (`keras-givt uvim-evaluate`, `uvim-train`)",
}


def _check_givt_class(spec, class_name):
    if class_name in _OTHER_FAMILIES:
        raise CLIError(
            f"--model {spec!r} is a {class_name}, not a GIVT image generator; use "
            f"{_OTHER_FAMILIES[class_name]}."
        )


def _bundled_names():
    from keras_givt.models import bundled

    return bundled.BUNDLED


def _generate(model, labels, args, bar=None, batch_size=100, num_samples=None):
    """Images (N, H, W, C) in [-1, 1] in chunks of `batch_size` (same shape: no retracing)."""
    import keras_givt

    is_maskgit = isinstance(model, keras_givt.GIVTMaskGIT)
    total = len(labels) if labels is not None else num_samples
    out = []
    kwargs = dict(
        temperature=getattr(args, "temperature", None),
        temperature_probs=getattr(args, "temperature_probs", None),
        cfg_weight=getattr(args, "cfg_weight", None),
    )
    if is_maskgit:
        kwargs.update(
            num_steps=getattr(args, "num_steps", None),
            choice_temperature=getattr(args, "choice_temperature", None),
        )
    chunk = min(batch_size, total)
    for i, start in enumerate(range(0, total, chunk)):
        n = min(chunk, total - start)
        if labels is not None:
            lab = np.asarray(labels[start : start + chunk])
            if n < chunk:
                lab = np.concatenate([lab, np.zeros(chunk - n, lab.dtype)])
            images = model.generate(labels=lab, seed=args.seed + i, **kwargs)
        else:
            images = model.generate(num_samples=chunk, seed=args.seed + i, **kwargs)
        out.append(keras.ops.convert_to_numpy(images)[:n])
        if bar is not None:
            bar.add(n)
    return np.concatenate(out)


def _labels_for(model, labels, num_per_class, num_samples):
    num_labels = model.backbone.num_labels
    if num_labels is None:
        if labels:
            raise CLIError("--labels: this model is unconditional.")
        return None, num_samples or num_per_class * 8
    labels = labels if labels is not None else list(range(num_labels))
    bad = [c for c in labels if not 0 <= c < num_labels]
    if bad:
        raise CLIError(f"--labels {bad}: classes must be in [0, {num_labels}).")
    return np.repeat(np.asarray(labels, "int32"), num_per_class), None


# --- sample -------------------------------------------------------------------


def cmd_sample(args, argv):
    check_task_spec(args.preset)
    record = _record(args, argv, args.out)
    model, card = load_task(args.preset)
    labels, num = _labels_for(model, args.labels, args.num_per_class, args.num_samples)
    total = len(labels) if labels is not None else num
    t0 = time.time()
    bar = keras.utils.Progbar(total, unit_name="sample")
    images = _generate(model, labels, args, bar, args.batch_size, num)
    dt = time.time() - t0
    grid = io_utils.make_grid(
        io_utils.to_uint8(images), args.num_per_class if labels is not None else 8
    )
    png = os.path.join(args.out, "samples.png")
    io_utils.write_png(png, grid)
    io_utils.write_npz(
        os.path.join(args.out, "samples.npz"),
        images=io_utils.to_uint8(images),
        labels=labels if labels is not None else np.zeros(0, "int32"),
    )
    record.finish(
        num_samples=int(total),
        sampling_time_s=round(dt, 3),
        png=os.path.abspath(png),
        sampling_defaults=model.sampling_defaults,
    )
    print(f"Wrote {total} samples to {png} in {dt:.1f}s (incl. compilation).")


# --- inpaint ------------------------------------------------------------------


def _region_mask(kind, size):
    m = np.zeros((size, size), bool)
    q = size // 4
    h = size // 2
    if kind == "center":
        m[q : size - q, q : size - q] = True
    elif kind == "left":
        m[:, :h] = True
    elif kind == "right":
        m[:, h:] = True
    elif kind == "top":
        m[:h] = True
    else:
        m[h:] = True
    return m


def cmd_inpaint(args, argv):
    import keras_givt

    check_task_spec(args.preset)
    record = _record(args, argv, args.out)
    model, card = load_task(args.preset)
    if not isinstance(model, keras_givt.GIVTMaskGIT):
        raise CLIError("inpaint needs a GIVT-MaskGIT model (e.g. givt_maskgit_fashion_mnist).")
    spec = data_spec(args)
    ds, _, _ = load_images(
        dict(spec, max_examples=None), args.split, args.num_images, data_dir=args.data_dir
    )
    batch = next(iter(ds))
    images, labels = batch["images"].numpy(), batch["labels"].numpy()
    mask = np.broadcast_to(_region_mask(args.mask, images.shape[1]), images.shape[:3])
    t0 = time.time()
    out = model.inpaint(
        images,
        mask,
        labels=None if model.backbone.num_labels is None else labels,
        num_steps=args.num_steps,
        choice_temperature=args.choice_temperature,
        temperature=args.temperature,
        cfg_weight=args.cfg_weight,
        seed=args.seed,
    )
    dt = time.time() - t0
    out = keras.ops.convert_to_numpy(out)
    masked = np.where(mask[..., None], 0.0, images)
    rows = np.concatenate([images, masked, out])  # 3 rows: original, masked, inpainted
    png = os.path.join(args.out, "inpaint.png")
    io_utils.write_png(png, io_utils.make_grid(io_utils.to_uint8(rows), len(images)))
    record.finish(
        num_images=int(len(images)),
        inpaint_time_s=round(dt, 3),
        png=os.path.abspath(png),
        rows=["original", "masked", "inpainted"],
    )
    print(f"Wrote {png} (rows: original, masked, inpainted) in {dt:.1f}s.")


# --- evaluate -----------------------------------------------------------------


def _card_dataset(card):
    data = (card.get("data") or {}).get("data") or {}
    if isinstance(data, dict):
        data = data.get("data")
    return data if data in ("fashion_mnist", "mnist") else None


def latent_bits_per_dim(model, images, labels, batch_size=250, bar=None):
    """GIVT-Causal NLL of the VAE posterior means of `images`, in bits per latent dim."""
    from keras_givt.metrics import bits_per_dim

    total, count = 0.0, 0
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size]
        z = model.encode_images(x, sample=False)
        feed = {"tokens": z}
        if model.backbone.num_labels is not None:
            feed["labels"] = keras.ops.convert_to_tensor(
                labels[start : start + batch_size], "int32"
            )
        logits = model.backbone(feed, training=False)
        lp = keras.ops.convert_to_numpy(model.backbone.log_prob(logits, z))  # (B, L[, D])
        total += float(-lp.reshape(len(x), -1).sum())
        count += len(x)
        if bar is not None:
            bar.add(len(x))
    L, D = model.backbone.seq_len, model.backbone.out_dim
    nll = total / count  # nats per example (sum over L x D dims)
    return float(bits_per_dim(nll, L * D)), nll


def score_fd_cnn(metrics, images, fd_dataset, input_mode, floor_at_n=False, seed=0, data_dir=None):
    """Adds the FD-CNN of `images` (N, H, W, C) in [-1, 1] vs. the `fd_dataset` test set to `metrics`.

    With the 10k real-data floor, the noise distance and the class
    histogram; `floor_at_n` adds the real-data floor at N (needs the train
    split).
    """
    from keras_givt.metrics import FDCNN

    total = len(images)
    fd = FDCNN(fd_dataset, input_mode=input_mode)
    print("Scoring FD-CNN...")
    metrics.update(
        fd_cnn=float(fd.distance(images)),
        fd_cnn_floor_10k=fd.floor,
        fd_cnn_noise=fd.noise_distance,
        class_histogram=fd.class_histogram(images).tolist(),
    )
    if floor_at_n:
        metrics["fd_cnn_floor_same_n"] = float(fd.floor_at(total, seed=seed, data_dir=data_dir))
    if total < 10000:
        metrics["fd_cnn_note"] = (
            f"FD-CNN on {total} samples (biased upwards vs. the 10k floor; compare at equal N)."
        )


def cmd_evaluate(args, argv):
    import keras_givt

    check_task_spec(args.preset)
    record = _record(args, argv, args.out)
    model, card = load_task(args.preset)
    fd_dataset = args.fd_dataset or _card_dataset(card) or "fashion_mnist"
    metrics = {"fd_dataset": fd_dataset}
    labels, num = _labels_for(model, None, 1, args.num_samples)
    if labels is not None:  # Balanced classes: N // K per class (+ the first N % K classes).
        k = model.backbone.num_labels
        labels = (np.arange(args.num_samples) % k).astype("int32")
    total = args.num_samples
    print(f"Sampling {total} images...")
    bar = keras.utils.Progbar(total, unit_name="sample")
    # Compile first, so the timing excludes compilation.
    t0 = time.time()
    _generate(
        model,
        labels[: min(args.batch_size, total)] if labels is not None else None,
        args,
        batch_size=args.batch_size,
        num_samples=min(args.batch_size, total),
    )
    metrics["compile_and_first_batch_s"] = round(time.time() - t0, 3)
    t0 = time.time()
    images = _generate(model, labels, args, bar, args.batch_size, total)
    dt = time.time() - t0
    metrics.update(
        num_samples=int(total),
        sampling_time_s=round(dt, 3),
        sampling_ms_per_image=round(1000 * dt / total, 3),
    )
    io_utils.write_png(
        os.path.join(args.out, "samples.png"),
        io_utils.make_grid(io_utils.to_uint8(images[:100]), 10),
    )
    if fd_dataset != "none":
        score_fd_cnn(metrics, images, fd_dataset, args.fd_input_mode)
    bpd_data = args.bpd_data or (fd_dataset if fd_dataset != "none" else "none")
    if bpd_data != "none" and isinstance(model, keras_givt.GIVTCausal):
        from keras_givt import datasets

        loader = datasets.load_fashion_mnist if bpd_data == "fashion_mnist" else datasets.load_mnist
        x, y = loader("test", data_dir=args.data_dir)
        x, y = x[: args.bpd_examples], y[: args.bpd_examples]
        k = model.backbone.num_labels
        if k is not None and y.max() >= k:
            raise CLIError(
                f"--bpd-data {bpd_data} has labels up to {y.max()} but the model has {k} classes; "
                "pass --bpd-data none."
            )
        H = model.vae.decode(
            np.zeros((1, model.backbone.seq_len, model.backbone.out_dim), "float32")
        ).shape
        ds = datasets.arrays_dataset(
            x, y, image_size=int(H[1]), batch_size=len(x), channels=int(H[3])
        )
        imgs = next(iter(ds))["images"].numpy()
        print(f"Latent bits/dim on {len(x)} test images...")
        bpd, nll = latent_bits_per_dim(
            model, imgs, y, bar=keras.utils.Progbar(len(x), unit_name="image")
        )
        metrics.update(
            latent_bits_per_dim=bpd,
            latent_nll_nats_per_image=nll,
            bpd_examples=int(len(x)),
            bpd_note="NLL of the VAE posterior means under GIVT (a density on latents, "
            "not on pixels), per latent dimension.",
        )
    record.finish(**metrics)
    print(json.dumps({k: v for k, v in metrics.items() if k != "class_histogram"}, indent=1))


# --- demo ---------------------------------------------------------------------


def real_floor_at(fd, num_examples, seed=0, data_dir=None):
    """`(floor, source)`: the FD-CNN real-data floor at `num_examples` samples.

    From the table shipped in `keras_givt/cli/fd_floors.py` (measured with
    seed 0, so the demo needs no data set), else measured on the installed
    train split, else `(None, reason)`.
    """
    from keras_givt.cli.fd_floors import FLOORS

    table = FLOORS.get(fd.dataset, {})
    if num_examples in table:
        return table[num_examples], f"shipped table ({num_examples} train images, seed 0)"
    try:
        return (
            float(fd.floor_at(num_examples, seed=seed, data_dir=data_dir)),
            "measured on the train split",
        )
    except Exception as e:  # No data set installed: report without the floor at N.
        return None, f"not in the shipped table ({sorted(table)}) and not measurable: {e}"


def cmd_demo(args, argv):
    from keras_givt.metrics import FDCNN

    print(f"keras-givt demo on the {keras.config.backend()} backend (Keras {keras.__version__}).")
    check_task_spec(args.preset)
    record = _record(args, argv, args.out)
    t_start = time.time()
    model, card = load_task(args.preset)
    t_load = time.time() - t_start
    if not model.backbone.num_labels:
        raise CLIError(
            f"argument --model: the demo needs a class-conditional model; received {args.preset!r}"
        )
    fd = FDCNN(_card_dataset(card) or "fashion_mnist")  # Checks its files before the slow part.
    k = model.backbone.num_labels
    n_total = max(args.num_samples, args.num_per_class * k)
    labels = (np.arange(n_total) % k).astype("int32")
    print(
        f"Loaded {args.preset} in {t_load:.1f}s. Generating {n_total} class-conditional samples "
        f"(CFG {args.cfg_weight if args.cfg_weight is not None else model.sampling_defaults.get('cfg_weight')})..."
    )
    t0 = time.time()
    bar = keras.utils.Progbar(n_total, unit_name="sample")
    images = _generate(model, labels, args, bar, args.batch_size, n_total)
    t_gen = time.time() - t0
    # Grid: one row per class.
    order = np.concatenate([np.where(labels == c)[0][: args.num_per_class] for c in range(k)])
    png = os.path.join(args.out, "demo_grid.png")
    io_utils.write_png(
        png, io_utils.make_grid(io_utils.to_uint8(images[order]), args.num_per_class)
    )
    print("Scoring FD-CNN...")
    score = float(fd.distance(images))
    floor_n, floor_source = real_floor_at(fd, n_total, seed=args.seed)
    total = time.time() - t_start
    metrics = dict(
        fd_cnn=score,
        fd_cnn_num_samples=int(n_total),
        fd_cnn_floor_same_n=floor_n,
        fd_cnn_floor_same_n_source=floor_source,
        fd_cnn_floor_10k=fd.floor,
        generation_time_s=round(t_gen, 3),
        load_time_s=round(t_load, 3),
        total_time_s=round(total, 3),
        png=os.path.abspath(png),
    )
    record.finish(**metrics)
    print(f"Wrote {png}")
    floor_text = (
        f"{floor_n:.2f} for {n_total} real train images" if floor_n is not None else "n/a at this N"
    )
    print(
        f"FD-CNN ({fd.dataset}, {n_total} samples vs. the test set): {score:.2f}  "
        f"(real-data floor: {floor_text}, {fd.floor:.2f} at 10k)"
    )
    print(
        f"Time: load {t_load:.1f}s, generate {t_gen:.1f}s, total {total:.1f}s "
        f"on {keras.config.backend()}. Run record: {record.path} (status: done)."
    )


COMMANDS = {
    "train-vae": cmd_train_vae,
    "encode": cmd_encode,
    "train": cmd_train,
    "sample": cmd_sample,
    "inpaint": cmd_inpaint,
    "evaluate": cmd_evaluate,
    "demo": cmd_demo,
}


def run(args, argv):
    COMMANDS[args.command](args, argv)
