"""`keras-givt`: the command line of keras_givt.

Subcommands (each writes `<out>/<command>.json` with its config and metrics,
atomically, next to its outputs):

  train-vae   train a β-VAE tokenizer on an image data set
  encode      cache the VAE posterior (mu, logvar) of a data set to an .npz
  train       train GIVT-Causal (`--model causal`) or GIVT-MaskGIT
              (`--model maskgit`) on cached latents or on images
  sample      class-conditional sample grid (PNG) from a model or preset
  inpaint     GIVT-MaskGIT inpainting of real images (PNG)
  evaluate    FD-CNN vs. the real-data floor, latent bits/dim, sampling time
  demo        the bundled Fashion-MNIST GIVT-Causal: CFG grid + FD-CNN + time

`--backend jax|tensorflow|torch` (before or after the subcommand) sets
`KERAS_BACKEND` before Keras is imported. Training checkpoints (weights +
optimizer state + step counter) go to `<out>/checkpoint/` every
`--checkpoint-every` steps, at the end and on Ctrl-C; `--resume` continues
from the last one without losing or repeating steps.
"""

import argparse
import os
import sys

BACKENDS = ("jax", "tensorflow", "torch")
_REEXEC_ENV = "KERAS_GIVT_CLI_REEXEC"
COMMANDS = ("train-vae", "encode", "train", "sample", "inpaint", "evaluate", "demo")
# Command plugins of other model families. Each module defines
# `add_parsers(add)` (argparse only: it must not import keras at module level)
# and `run(args, argv)`; `add(name, help)` returns a subparser that has
# `--backend` already. Missing modules are skipped.
PLUGINS = ("keras_givt.cli.vq_cli", "keras_givt.cli.uvim_cli")


def _plugins():
    import importlib

    found = []
    for name in PLUGINS:
        try:
            found.append(importlib.import_module(name))
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
    return found


from keras_givt.cli.io_utils import CLIError  # noqa: E402  (one class under `python -m` too)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _nonneg_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _positive_float(text):
    value = _nonneg_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _int_list(text):
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    return values


def _add_backend(parser, default):
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=default,
        help="Keras backend (sets KERAS_BACKEND before importing keras; "
        "default: $KERAS_BACKEND, else Keras' default).",
    )


def _add_data_args(p, default_data=None):
    p.add_argument(
        "--data",
        default=default_data,
        required=default_data is None,
        help="'fashion_mnist', 'mnist' or a folder of images (one subfolder per class).",
    )
    p.add_argument("--data-dir", default=None, help="Folder of the IDX files (MNIST/Fashion-MNIST).")
    p.add_argument("--image-size", type=_positive_int, default=32)
    p.add_argument("--channels", type=int, choices=(1, 3), default=3)
    p.add_argument(
        "--resize-mode",
        choices=("pad", "resize"),
        default=None,
        help="'pad' (default for MNIST-like data: 28 -> 32 with background -1) or 'resize' "
        "(default for image folders).",
    )
    p.add_argument(
        "--max-examples", type=_positive_int, default=None, help="Use only the first N examples."
    )


def _add_train_args(p, default_lr):
    p.add_argument("--out", required=True, help="Output folder (checkpoints, JSON, the model).")
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--epochs", type=_positive_int, default=1)
    p.add_argument(
        "--steps-per-epoch", type=_positive_int, default=None, help="Default: one pass over the data."
    )
    p.add_argument(
        "--steps",
        type=_positive_int,
        default=None,
        help="Total optimizer steps (default: epochs x steps-per-epoch). With --resume, "
        "training continues up to this total.",
    )
    p.add_argument("--learning-rate", type=_positive_float, default=default_lr)
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant")
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        default=None,
        help="Checkpoint every N steps (default: every epoch). Also at the end and on Ctrl-C.",
    )
    p.add_argument("--resume", action="store_true", help="Continue from <out>/checkpoint.")
    p.add_argument(
        "--overwrite", action="store_true", help="Start afresh even if <out> has a checkpoint."
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1, help="Keras fit verbosity.")


def _add_sampling_args(p):
    p.add_argument(
        "--model",
        dest="preset",
        required=True,
        help="A preset name (e.g. givt_causal_fashion_mnist), a preset folder written by "
        "`train`, or a `train` output folder.",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=_positive_float, default=None)
    p.add_argument("--temperature-probs", type=_positive_float, default=None)
    p.add_argument("--cfg-weight", type=_nonneg_float, default=None, help="Density-based CFG weight.")
    p.add_argument("--num-steps", type=_positive_int, default=None, help="MaskGIT decoding steps.")
    p.add_argument("--choice-temperature", type=_nonneg_float, default=None, help="MaskGIT t_C.")
    p.add_argument("--batch-size", type=_positive_int, default=100, help="Samples per generate call.")


def build_parser():
    env_backend = os.environ.get("KERAS_BACKEND")
    env_backend = env_backend if env_backend in BACKENDS else None
    parser = argparse.ArgumentParser(
        prog="keras-givt",
        description="Train, sample and evaluate GIVT models (Keras 3: JAX, TensorFlow, PyTorch).",
    )
    _add_backend(parser, env_backend)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    # Subparsers get their own --backend with SUPPRESS default, so the flag
    # works before or after the subcommand.
    def add(name, help_text):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--backend", choices=BACKENDS, default=argparse.SUPPRESS, help="Keras backend.")
        return p

    p = add("train-vae", "Train a β-VAE tokenizer (images in [-1, 1]).")
    _add_data_args(p)
    _add_train_args(p, default_lr=1e-3)
    p.add_argument("--codeword-dim", type=_positive_int, default=4)
    p.add_argument("--filters", type=_positive_int, default=32)
    p.add_argument("--num-res-blocks", type=_positive_int, default=1)
    p.add_argument("--channel-multipliers", type=_int_list, default=[1, 2, 2])
    p.add_argument("--beta", type=_nonneg_float, default=5e-4)
    p.add_argument("--reconstruction-loss", choices=("l2", "xent"), default="l2")

    p = add("encode", "Cache the VAE posterior (mu, logvar) of a data set to an .npz file.")
    _add_data_args(p)
    p.add_argument("--vae", required=True, help="A `train-vae` output folder (or its vae/ folder).")
    p.add_argument("--split", choices=("train", "test"), default="train")
    p.add_argument("--out", required=True, help="Output .npz file (a JSON file is written next to it).")
    p.add_argument("--batch-size", type=_positive_int, default=256)

    p = add("train", "Train GIVT-Causal or GIVT-MaskGIT on cached latents or images.")
    p.add_argument("--model", choices=("causal", "maskgit"), required=True)
    p.add_argument("--latents", default=None, help="An `encode` .npz (fastest).")
    p.add_argument(
        "--vae", default=None, help="VAE folder (needed with --data; attached to the saved model)."
    )
    _add_data_args(p, default_data="")
    _add_train_args(p, default_lr=1e-3)
    p.add_argument("--emb-dim", type=_positive_int, default=128)
    p.add_argument("--num-layers", type=_positive_int, default=4)
    p.add_argument("--num-heads", type=_positive_int, default=4)
    p.add_argument("--mlp-dim", type=_positive_int, default=512)
    p.add_argument("--num-mixtures", type=_positive_int, default=4)
    p.add_argument("--drop-labels-probability", type=_nonneg_float, default=0.1)
    p.add_argument("--dropout", type=_nonneg_float, default=0.0)
    p.add_argument("--unconditional", action="store_true", help="Ignore labels.")

    p = add("sample", "Write a class-conditional sample grid (PNG) and the samples (.npz).")
    _add_sampling_args(p)
    p.add_argument("--out", required=True, help="Output folder.")
    p.add_argument("--labels", type=_int_list, default=None, help="Classes (default: all).")
    p.add_argument("--num-per-class", type=_positive_int, default=8)
    p.add_argument("--num-samples", type=_positive_int, default=None, help="Unconditional models.")

    p = add("inpaint", "GIVT-MaskGIT: regenerate a masked region of real images.")
    _add_sampling_args(p)
    _add_data_args(p, default_data="fashion_mnist")
    p.add_argument("--out", required=True)
    p.add_argument("--split", choices=("train", "test"), default="test")
    p.add_argument("--num-images", type=_positive_int, default=10)
    p.add_argument(
        "--mask", choices=("center", "left", "right", "top", "bottom"), default="center",
        help="Region to regenerate.",
    )

    p = add("evaluate", "FD-CNN vs. the real-data floor, bits/dim and sampling time.")
    _add_sampling_args(p)
    p.add_argument("--out", required=True)
    p.add_argument("--num-samples", type=_positive_int, default=10000)
    p.add_argument(
        "--fd-dataset",
        choices=("fashion_mnist", "mnist", "none"),
        default=None,
        help="FD-CNN reference (default: the data set in the model card, else fashion_mnist).",
    )
    p.add_argument("--fd-input-mode", choices=("crop", "resize"), default="crop")
    p.add_argument(
        "--bpd-data", default=None,
        help="Data set for bits/dim (default: the FD data set; 'none' to skip).",
    )
    p.add_argument("--bpd-examples", type=_positive_int, default=2000, help="Test examples for bits/dim.")
    p.add_argument("--data-dir", default=None)

    p = add("demo", "Bundled Fashion-MNIST GIVT-Causal: CFG grid (PNG), FD-CNN and timing.")
    p.add_argument("--out", default="givt_demo", help="Output folder (default ./givt_demo).")
    p.add_argument("--model", dest="preset", default="givt_causal_fashion_mnist")
    p.add_argument("--num-per-class", type=_positive_int, default=10)
    p.add_argument("--num-samples", type=_positive_int, default=1000, help="Samples scored by FD-CNN.")
    p.add_argument("--cfg-weight", type=_nonneg_float, default=None)
    p.add_argument("--temperature", type=_positive_float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=_positive_int, default=500)

    for plugin in _plugins():
        before = set(sub.choices)
        plugin.add_parsers(add)
        for name in set(sub.choices) - before:
            sub.choices[name].set_defaults(_plugin=plugin.__name__)
    return parser


def _check_args(args):
    """Cross-argument checks that argparse cannot express."""
    if args.command == "train":
        if args.latents is None and not args.data:
            raise CLIError("train: pass --latents FILE (from `encode`) or --data with --vae.")
        if args.latents is not None and args.data:
            raise CLIError("train: pass either --latents or --data, not both.")
        if args.data and args.vae is None:
            raise CLIError("train: --data needs --vae (images are encoded by the VAE).")
        if args.latents is not None and not os.path.isfile(args.latents):
            raise CLIError(f"train: --latents file not found: {args.latents!r}.")
        if args.emb_dim % args.num_heads:
            raise CLIError(
                f"train: --emb-dim ({args.emb_dim}) must be divisible by --num-heads ({args.num_heads})."
            )
        if args.drop_labels_probability > 1:
            raise CLIError("train: --drop-labels-probability must be in [0, 1].")
    if args.command in ("train", "train-vae"):
        if args.resume and args.overwrite:
            raise CLIError(f"{args.command}: --resume and --overwrite exclude each other.")
    if getattr(args, "data", None) and args.data not in ("fashion_mnist", "mnist"):
        if not os.path.isdir(args.data):
            raise CLIError(
                f"{args.command}: --data must be 'fashion_mnist', 'mnist' or an existing image "
                f"folder; {args.data!r} is none of these."
            )
    for name in ("vae",):
        path = getattr(args, name, None)
        if path is not None and not os.path.isdir(path):
            raise CLIError(f"{args.command}: --{name} folder not found: {path!r}.")


def main(argv=None):
    """Entry point of the `keras-givt` console script. Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _check_args(args)
    except CLIError as e:
        parser.error(str(e))
    if args.backend:
        import importlib.util

        if importlib.util.find_spec(args.backend) is None:
            parser.error(f"--backend {args.backend}: the {args.backend!r} package is not installed.")
        if "keras" in sys.modules:
            # `import keras_givt.cli` runs keras_givt/__init__.py, which imports
            # keras with $KERAS_BACKEND. As a command, restart the process with
            # KERAS_BACKEND set; called as a function, refuse.
            already = sys.modules["keras"].config.backend()
            if already != args.backend:
                if argv is None and not os.environ.get(_REEXEC_ENV):
                    env = dict(os.environ, KERAS_BACKEND=args.backend, **{_REEXEC_ENV: "1"})
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os.execve(
                        sys.executable,
                        [sys.executable, "-m", "keras_givt.cli.main"] + sys.argv[1:],
                        env,
                    )
                parser.error(
                    f"--backend {args.backend}: Keras is already imported with backend "
                    f"{already!r} in this process; run the command in a new process "
                    f"(or set KERAS_BACKEND={args.backend})."
                )
        os.environ["KERAS_BACKEND"] = args.backend
    from keras_givt.cli import commands  # Imports keras: after KERAS_BACKEND is set.

    run = commands.run
    if getattr(args, "_plugin", None):
        import importlib

        run = importlib.import_module(args._plugin).run
    try:
        run(args, argv if argv is not None else sys.argv[1:])
    except CLIError as e:
        print(f"keras-givt {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"keras-givt {args.command}: interrupted.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
