"""Checks of the `keras-givt` arguments that argparse cannot express.

They run after parsing and before Keras (or any backend) is imported, and
before anything is written: a bad path, a folder of the wrong kind, an
`--out` that is a file, a VAE trained for other channels, an existing
checkpoint without `--resume`... Each raises `CLIError` with one line that
names the flag and the received value; `main` turns it into an
argparse-style usage error (exit status 2). Only the standard library (and
numpy for `.npz` headers) is used here.
"""

import json
import os

from keras_givt.cli.errors import CLIError

BUILTIN_DATA = ("fashion_mnist", "mnist")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
# Model families the GIVT sampling commands cannot run, and where to go instead.
OTHER_FAMILIES = {
    "MaskGITImageGenerator": "the VQ MaskGIT commands (`keras-givt evaluate-vq`, `train-maskgit-vq`)",
    "GIVTUViM": "the UViM commands (`keras-givt uvim-evaluate`, `uvim-train`)",
}
GIVT_TASKS = ("GIVTCausal", "GIVTMaskGIT")


def _flag(name):
    return "--" + name.replace("_", "-")


def _bad(flag, value, why):
    return CLIError(f"argument {flag}: {why}; received {value!r}")


def read_json_or_none(path):
    """The JSON content of `path`, or None when it is missing or not valid JSON."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# --- paths ----------------------------------------------------------------------


def check_out_folder(value, flag="--out"):
    """`--out` must be a folder or a path that does not exist yet (not a file)."""
    if os.path.exists(value) and not os.path.isdir(value):
        raise _bad(flag, value, "is an existing file, expected an output folder")
    parent = os.path.dirname(os.path.abspath(value))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise _bad(flag, value, f"cannot be created: {parent!r} is a file")


def check_out_file(value, flag="--out"):
    """`--out` names a file to write: it must not be a folder, and its folder must be creatable."""
    if os.path.isdir(value):
        raise _bad(flag, value, "is an existing folder, expected an output file path")
    check_out_folder(os.path.dirname(os.path.abspath(value)) or ".", flag)


def check_data(value, flag="--data"):
    """'fashion_mnist', 'mnist' or a folder with class subfolders holding images."""
    if value in BUILTIN_DATA:
        return
    if not os.path.exists(value):
        raise _bad(
            flag, value, "must be 'fashion_mnist', 'mnist' or an existing image folder; not found"
        )
    if not os.path.isdir(value):
        raise _bad(flag, value, "must be 'fashion_mnist', 'mnist' or an image folder; it is a file")
    classes = sorted(d for d in os.listdir(value) if os.path.isdir(os.path.join(value, d)))
    for name in classes:
        for _, _, files in os.walk(os.path.join(value, name)):
            if any(f.lower().endswith(IMAGE_EXTENSIONS) for f in files):
                return
    raise _bad(
        flag,
        value,
        f"is not an image folder: expected <folder>/<class>/<image{'|'.join(IMAGE_EXTENSIONS)}>, "
        f"found {len(classes)} class subfolders and no images",
    )


def check_dir(value, flag):
    if not os.path.exists(value):
        raise _bad(flag, value, "folder not found")
    if not os.path.isdir(value):
        raise _bad(flag, value, "must be a folder; it is a file")


def model_folder(value, flag, subfolder, weights, command):
    """The folder holding `weights` (`value` or `value/subfolder`), else a CLIError."""
    check_dir(value, flag)
    for path in (os.path.join(value, subfolder), value):
        if os.path.isfile(os.path.join(path, weights)):
            return path
    raise _bad(flag, value, f"has no {weights} (expected a `{command}` output folder)")


def check_latents(value, flag="--latents"):
    """An `encode` .npz with mu (N, L, D), logvar and labels. Returns `(seq_len, token_dim)`."""
    if not os.path.exists(value):
        raise _bad(flag, value, "file not found")
    if not os.path.isfile(value):
        raise _bad(flag, value, "must be an `encode` .npz file; it is a folder")
    import zipfile

    import numpy as np

    try:
        with np.load(value) as z:
            files = set(z.files)
            missing = {"mu", "logvar", "labels"} - files
            if missing:
                raise _bad(flag, value, f"is not an `encode` .npz: missing {sorted(missing)}")
            mu_shape = _npz_shape(z, "mu")
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise _bad(flag, value, f"is not a readable .npz file ({type(e).__name__})")
    if mu_shape is not None and len(mu_shape) != 3:
        raise _bad(flag, value, f"mu must have shape (N, L, D), has {mu_shape}")
    return mu_shape


def _npz_shape(z, key):
    """The shape of `z[key]` from its header only (no data read)."""
    import numpy as np

    try:
        with z.zip.open(key + ".npy") as f:
            fmt = np.lib.format
            version = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, _ = read(f)
            return tuple(shape)
    except Exception:
        return None


# --- models -----------------------------------------------------------------------


def _task_class(path):
    """The class name in `path/task.json` ('' if unreadable)."""
    info = read_json_or_none(os.path.join(path, "task.json")) or {}
    return str(info.get("class_name") or info.get("registered_name", "")).split(">")[-1]


def resolve_model(value, flag="--model", families=GIVT_TASKS, command_hint=None):
    """Checks a `--model` preset name / preset folder / train output folder.

    Returns `(kind, class_name)`: kind 'folder' (class read from task.json),
    'bundled' (class known) or 'name' (a registry name: checked after Keras is
    imported, before any work). Raises CLIError for a missing path, a folder
    that is not a model, or a model of another family than `families`.
    """
    from keras_givt.models import bundled  # Light: no keras.

    if os.path.isdir(value):
        for path in (os.path.join(value, "preset"), value):
            if os.path.isfile(os.path.join(path, "task.json")):
                cls = _task_class(path)
                _check_family(flag, value, cls, families, command_hint)
                return "folder", cls
        raise _bad(
            flag,
            value,
            "is a folder without task.json (expected a preset folder or a training output folder)",
        )
    if os.path.exists(value):
        raise _bad(flag, value, "is a file; expected a preset name or a model folder")
    if value in bundled.BUNDLED:
        _check_family(flag, value, bundled.BUNDLED[value], families, command_hint)
        return "bundled", bundled.BUNDLED[value]
    if os.sep in value or value.startswith(".") or (os.altsep and os.altsep in value):
        raise _bad(flag, value, "folder not found")
    return "name", None


def _check_family(flag, value, cls, families, command_hint):
    if not cls or cls in families:
        return
    where = OTHER_FAMILIES.get(cls) or command_hint or "another command"
    raise _bad(flag, value, f"is a {cls}, expected {' or '.join(families)}; use {where}")


def check_vae(value, args, flag="--vae"):
    """A `train-vae` folder whose VAE matches `--channels` and `--image-size` (if the command has them)."""
    path = model_folder(value, flag, "vae", "model.keras", "train-vae")
    info = read_json_or_none(os.path.join(path, "vae.json")) or {}
    config = info.get("config") or {}
    channels = getattr(args, "channels", None)
    if channels is not None and getattr(args, "data", None):
        vae_channels = config.get("output_dim") or (info.get("data") or {}).get("channels")
        if vae_channels and int(vae_channels) != channels:
            raise CLIError(
                f"argument --channels: the VAE in {flag} {value!r} was trained on {vae_channels}-channel "
                f"images; received {channels}"
            )
        multipliers = config.get("channel_multipliers")
        if multipliers and args.image_size % 2 ** (len(multipliers) - 1):
            raise CLIError(
                f"argument --image-size: must be divisible by {2 ** (len(multipliers) - 1)}, the "
                f"downsampling factor of the VAE in {flag} {value!r}; received {args.image_size}"
            )
    return path


def _is_bundled(value):
    from keras_givt.models import bundled

    return value in bundled.BUNDLED


def _card_dataset_of(value):
    """The data set named in a bundled preset's or a model folder's model_card.json (None if unknown)."""
    from keras_givt.models import bundled

    if value in bundled.BUNDLED:
        card = bundled.model_card(value)
    else:
        path = (
            os.path.join(value, "preset") if os.path.isdir(os.path.join(value, "preset")) else value
        )
        card = read_json_or_none(os.path.join(path, "model_card.json")) or {}
    data = (card.get("data") or {}).get("data") or {}
    if isinstance(data, dict):
        data = data.get("data")
    return data if data in BUILTIN_DATA else None


def check_fd_cnn_files(dataset):
    """The FD-CNN classifier weights and test statistics ship in keras_givt/metrics/data/."""
    import keras_givt

    folder = os.path.join(os.path.dirname(keras_givt.__file__), "metrics", "data")
    for name in (f"fd_cnn_{dataset}.weights.npz", f"fd_cnn_{dataset}_test_stats.npz"):
        if not os.path.isfile(os.path.join(folder, name)):
            raise CLIError(
                f"FD-CNN file missing: {os.path.join(folder, name)!r} (reinstall keras_givt, or regenerate it "
                f"with `python tools/train_fd_cnn.py --dataset {dataset}`)"
            )


# --- checkpoints -------------------------------------------------------------------


def check_resume(args):
    """`--resume` needs `<out>/checkpoint`; a run into a folder holding one needs `--resume` or `--overwrite`."""
    from keras_givt.cli import io_utils

    if args.resume and args.overwrite:
        raise CLIError("argument --overwrite: not allowed with --resume (they exclude each other)")
    ckpt = os.path.join(args.out, "checkpoint")
    exists = os.path.isdir(args.out) and io_utils.dir_exists(ckpt)
    if args.resume and not exists:
        raise CLIError(
            f"argument --resume: no checkpoint in {ckpt!r}; run without --resume to start training"
        )
    if exists and not args.resume and not args.overwrite:
        raise CLIError(
            f"argument --out: {args.out!r} already has a checkpoint; pass --resume to continue it, "
            "another --out to start a new run, or --overwrite to discard it"
        )


# --- per command ---------------------------------------------------------------------


def _check_divisible(flag, value, by_flag, by):
    if value % by:
        raise CLIError(f"argument {flag}: must be divisible by {by_flag} ({by}); received {value}")


def check_givt_args(args):
    """All pre-import checks of the GIVT commands (`givt_commands.check_args`).

    The VQ and UViM families have their own `check_args`, built from the same checks.
    """
    command = args.command
    data = getattr(args, "data", None)
    if getattr(args, "data_dir", None):
        check_dir(args.data_dir, "--data-dir")
    if command == "encode":
        check_out_file(args.out)
    elif getattr(args, "out", None) is not None:
        check_out_folder(args.out)
    if command == "train":
        if args.latents is None and not data:
            raise CLIError(
                "argument --latents: pass --latents FILE (from `encode`) or --data with --vae"
            )
        if args.latents is not None and data:
            raise CLIError(f"argument --data: not allowed with --latents; received --data {data!r}")
        if data and args.vae is None:
            raise CLIError("argument --vae: required with --data (images are encoded by the VAE)")
        if args.latents is not None:
            check_latents(args.latents)
        _check_divisible("--emb-dim", args.emb_dim, "--num-heads", args.num_heads)
    if data:
        check_data(data)
    if getattr(args, "vae", None) is not None and command in ("encode", "train"):
        check_vae(args.vae, args)
    if command == "evaluate-vae" and not _is_bundled(args.vae):
        check_vae(args.vae, args)
    if command == "train-vae":
        down = 2 ** (len(args.channel_multipliers) - 1)
        if args.image_size % down:
            raise CLIError(
                f"argument --image-size: must be divisible by {down} (2 ** (len(--channel-multipliers) - 1)); "
                f"received {args.image_size}"
            )
    if command in ("sample", "evaluate", "demo"):
        resolve_model(args.preset)
    if command == "demo":
        check_fd_cnn_files(_card_dataset_of(args.preset) or "fashion_mnist")
    if command == "inpaint":
        resolve_model(args.preset, families=("GIVTMaskGIT",))
    if command in ("train", "train-vae") and getattr(args, "process_id", 0) == 0:
        check_resume(args)  # Process 0 owns --out in a multi-process run.


def check_autoencoder_loss_args(args):
    """The perceptual/adversarial flags of `train-vae` and `train-vq`.

    A flag of a term that is off is refused (it would do nothing): a
    `--perceptual-network` needs `--perceptual-weight` > 0, and the
    discriminator flags need `--adversarial-weight` > 0. An
    `--adversarial-start-step` at or past `--steps` is refused too.
    """
    if args.perceptual_network is not None and not args.perceptual_weight:
        raise _bad(
            "--perceptual-network",
            args.perceptual_network,
            "needs --perceptual-weight > 0 (the perceptual loss is off)",
        )
    if not args.adversarial_weight:
        for name in (
            "adversarial_loss",
            "adversarial_start_step",
            "adaptive_adversarial_weight",
            "r1_gamma",
            "discriminator_filters",
            "discriminator_channel_multipliers",
        ):
            value = getattr(args, name)
            if value is not None:
                if isinstance(value, list):
                    value = ",".join(str(v) for v in value)
                raise _bad(
                    _flag(name),
                    value,
                    "needs --adversarial-weight > 0 (no discriminator is trained)",
                )
    start, steps = args.adversarial_start_step, getattr(args, "steps", None)
    if start and steps is not None and start >= steps:
        raise _bad(
            "--adversarial-start-step",
            start,
            f"must be below --steps ({steps}), or the adversarial terms never start",
        )
