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
# and `run(args, argv)`, and may define `check_args(args)` (pre-import checks,
# raising CLIError); `add(name, help)` returns a subparser that has
# `--backend` already. Missing modules are skipped.
PLUGINS = ("keras_givt.cli.vq_commands", "keras_givt.cli.uvim_commands")


def _version():
    import keras_givt

    return keras_givt.__version__


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


from keras_givt.cli.errors import CLIError  # noqa: E402  (one class under `python -m` too)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line usage errors: `keras-givt train: error: argument --x: ...` (exit 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default; keeps the description's line breaks."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        hidden = (
            default is None or default is False or default is argparse.SUPPRESS or default == ""
        )
        if "%(default)" in text or hidden or not action.option_strings:
            return text
        return text + " (default: %(default)s)"

    def _fill_text(self, text, width, indent):
        return "".join(indent + line for line in text.splitlines(keepends=True))


def _received(text):
    return f"received {text!r}"


def _int_at_least(minimum):
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}; {_received(text)}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}; {_received(text)}")
        return value

    parse.__name__ = f"int>={minimum}"
    return parse


_positive_int = _int_at_least(1)
_nonneg_int = _int_at_least(0)


def _float(text):
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; {_received(text)}")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number; {_received(text)}")
    return value


def _nonneg_float(text):
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0; {_received(text)}")
    return value


def _positive_float(text):
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0; {_received(text)}")
    return value


def _probability(text):
    value = _float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1]; {_received(text)}")
    return value


def _dropout_rate(text):
    value = _float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a rate in [0, 1); {_received(text)}")
    return value


def _int_list(text, minimum=None):
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers; {_received(text)}")
    if not values or (minimum is not None and min(values) < minimum):
        what = "integers" if minimum is None else f"integers >= {minimum}"
        raise argparse.ArgumentTypeError(f"expected comma-separated {what}; {_received(text)}")
    return values


def _positive_int_list(text):
    return _int_list(text, minimum=1)


def _nonneg_int_list(text):
    return _int_list(text, minimum=0)


def _add_backend(parser, default):
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=default,
        help="Keras backend; sets KERAS_BACKEND before Keras is imported (default: $KERAS_BACKEND, "
        "else Keras' default).",
    )


def _add_data_args(p, default_data=None):
    p.add_argument(
        "--data",
        default=default_data,
        required=default_data is None,
        help="'fashion_mnist', 'mnist' or a folder of images (one subfolder per class).",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="Folder of the MNIST/Fashion-MNIST IDX files (default: the installed data sets).",
    )
    p.add_argument(
        "--image-size", type=_positive_int, default=32, help="Image height and width in pixels."
    )
    p.add_argument(
        "--channels",
        type=int,
        choices=(1, 3),
        default=3,
        help="1 (gray) or 3 (RGB; gray is tiled).",
    )
    p.add_argument(
        "--resize-mode",
        choices=("pad", "resize"),
        default=None,
        help="'pad' (default for MNIST-like data: 28 -> 32 with background -1) or 'resize' "
        "(default for image folders).",
    )
    p.add_argument(
        "--max-examples",
        type=_positive_int,
        default=None,
        help="Use only the first N examples (default: all).",
    )


def _add_train_args(p, default_lr):
    p.add_argument("--out", required=True, help="Output folder (checkpoints, JSON, the model).")
    p.add_argument(
        "--batch-size", type=_positive_int, default=64, help="Examples per optimizer step."
    )
    p.add_argument(
        "--epochs", type=_positive_int, default=1, help="Epochs (when --steps is not given)."
    )
    p.add_argument(
        "--steps-per-epoch",
        type=_positive_int,
        default=None,
        help="Optimizer steps per epoch (default: one pass over the data).",
    )
    p.add_argument(
        "--steps",
        type=_positive_int,
        default=None,
        help="Total optimizer steps (default: epochs x steps-per-epoch). With --resume, "
        "training continues up to this total.",
    )
    p.add_argument(
        "--learning-rate", type=_positive_float, default=default_lr, help="Adam learning rate."
    )
    p.add_argument(
        "--lr-schedule",
        choices=("constant", "cosine"),
        default="constant",
        help="Learning-rate schedule (cosine: decay to 0 over the run, after --warmup-steps).",
    )
    p.add_argument(
        "--warmup-steps",
        type=_nonneg_int,
        default=0,
        help="Linear warm-up steps of the cosine schedule.",
    )
    p.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        default=None,
        help="Checkpoint every N steps (default: every epoch). Also at the end and on Ctrl-C.",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="Continue from <out>/checkpoint (weights, optimizer, step, data position, history).",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="Delete <out>/checkpoint and start afresh."
    )
    p.add_argument(
        "--seed", type=_nonneg_int, default=0, help="Random seed (weights, data order, noise)."
    )
    p.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="Progress output: 0 silent, 1 progress bar, 2 one line per epoch.",
    )


def _add_sampling_args(p):
    p.add_argument(
        "--model",
        dest="preset",
        required=True,
        help="A preset name (e.g. givt_causal_fashion_mnist), a preset folder written by "
        "`train`, or a `train` output folder.",
    )
    p.add_argument("--seed", type=_nonneg_int, default=0, help="Sampling seed.")
    p.add_argument(
        "--temperature",
        type=_positive_float,
        default=None,
        help="Mixture-component temperature (default: the model's sampling default).",
    )
    p.add_argument(
        "--temperature-probs",
        type=_positive_float,
        default=None,
        help="Temperature of the mixture weights (default: the model's sampling default).",
    )
    p.add_argument(
        "--cfg-weight",
        type=_nonneg_float,
        default=None,
        help="Density-based CFG weight (default: the model's sampling default).",
    )
    p.add_argument(
        "--num-steps",
        type=_positive_int,
        default=None,
        help="MaskGIT decoding steps (default: the model's).",
    )
    p.add_argument(
        "--choice-temperature",
        type=_nonneg_float,
        default=None,
        help="MaskGIT t_C (default: the model's).",
    )
    p.add_argument(
        "--batch-size", type=_positive_int, default=100, help="Samples per generate call."
    )


def build_parser():
    env_backend = os.environ.get("KERAS_BACKEND")
    env_backend = env_backend if env_backend in BACKENDS else None
    parser = ArgumentParser(
        prog="keras-givt",
        description="Train, sample and evaluate GIVT models (Keras 3: JAX, TensorFlow, PyTorch).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    _add_backend(parser, env_backend)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    # Subparsers get their own --backend with SUPPRESS default, so the flag
    # works before or after the subcommand.
    def add(name, help_text):
        p = sub.add_parser(
            name, help=help_text, description=help_text, formatter_class=HelpFormatter
        )
        p.add_argument(
            "--backend",
            choices=BACKENDS,
            default=argparse.SUPPRESS,
            help="Keras backend (as the same flag before the command).",
        )
        return p

    p = add("train-vae", "Train a β-VAE tokenizer (images in [-1, 1]).")
    _add_data_args(p)
    _add_train_args(p, default_lr=1e-3)
    p.add_argument(
        "--codeword-dim", type=_positive_int, default=4, help="Channels of each latent token."
    )
    p.add_argument(
        "--filters", type=_positive_int, default=32, help="Base width of the CNN encoder/decoder."
    )
    p.add_argument(
        "--num-res-blocks", type=_positive_int, default=1, help="Residual blocks per resolution."
    )
    p.add_argument(
        "--channel-multipliers",
        type=_positive_int_list,
        default=[1, 2, 2],
        help="Width multiplier per resolution (comma-separated); each one after the first halves the size.",
    )
    p.add_argument("--beta", type=_nonneg_float, default=5e-4, help="Weight of the KL term.")
    p.add_argument(
        "--reconstruction-loss", choices=("l2", "xent"), default="l2", help="Reconstruction loss."
    )

    p = add("encode", "Cache the VAE posterior (mu, logvar) of a data set to an .npz file.")
    _add_data_args(p)
    p.add_argument("--vae", required=True, help="A `train-vae` output folder (or its vae/ folder).")
    p.add_argument(
        "--split", choices=("train", "test"), default="train", help="Data split to encode."
    )
    p.add_argument(
        "--out", required=True, help="Output .npz file (a JSON file is written next to it)."
    )
    p.add_argument("--batch-size", type=_positive_int, default=256, help="Images per encoder call.")

    p = add("train", "Train GIVT-Causal or GIVT-MaskGIT on cached latents or images.")
    p.add_argument(
        "--model", choices=("causal", "maskgit"), required=True, help="Which GIVT to train."
    )
    p.add_argument(
        "--latents", default=None, help="An `encode` .npz (fastest); or use --data with --vae."
    )
    p.add_argument(
        "--vae", default=None, help="VAE folder (needed with --data; attached to the saved model)."
    )
    _add_data_args(p, default_data="")
    _add_train_args(p, default_lr=1e-3)
    p.add_argument("--emb-dim", type=_positive_int, default=128, help="Transformer width.")
    p.add_argument("--num-layers", type=_positive_int, default=4, help="Transformer blocks.")
    p.add_argument(
        "--num-heads",
        type=_positive_int,
        default=4,
        help="Attention heads (must divide --emb-dim).",
    )
    p.add_argument(
        "--mlp-dim", type=_positive_int, default=512, help="Hidden width of the MLP blocks."
    )
    p.add_argument(
        "--num-mixtures",
        type=_positive_int,
        default=4,
        help="Gaussian mixture components per token.",
    )
    p.add_argument(
        "--drop-labels-probability",
        type=_probability,
        default=0.1,
        help="Label dropout in training (enables classifier-free guidance).",
    )
    p.add_argument(
        "--dropout", type=_dropout_rate, default=0.0, help="Dropout rate of the decoder."
    )
    p.add_argument("--unconditional", action="store_true", help="Ignore labels.")

    p = add("sample", "Write a class-conditional sample grid (PNG) and the samples (.npz).")
    _add_sampling_args(p)
    p.add_argument("--out", required=True, help="Output folder.")
    p.add_argument(
        "--labels",
        type=_nonneg_int_list,
        default=None,
        help="Classes, comma-separated (default: all).",
    )
    p.add_argument(
        "--num-per-class", type=_positive_int, default=8, help="Samples per class (one grid row)."
    )
    p.add_argument(
        "--num-samples",
        type=_positive_int,
        default=None,
        help="Samples of an unconditional model (default: 8 x --num-per-class).",
    )

    p = add("inpaint", "GIVT-MaskGIT: regenerate a masked region of real images.")
    _add_sampling_args(p)
    _add_data_args(p, default_data="fashion_mnist")
    p.add_argument("--out", required=True, help="Output folder.")
    p.add_argument(
        "--split", choices=("train", "test"), default="test", help="Data split of the images."
    )
    p.add_argument("--num-images", type=_positive_int, default=10, help="Images to inpaint.")
    p.add_argument(
        "--mask",
        choices=("center", "left", "right", "top", "bottom"),
        default="center",
        help="Region to regenerate.",
    )

    p = add("evaluate", "FD-CNN vs. the real-data floor, bits/dim and sampling time.")
    _add_sampling_args(p)
    p.add_argument("--out", required=True, help="Output folder.")
    p.add_argument(
        "--num-samples", type=_int_at_least(2), default=10000, help="Samples scored by FD-CNN."
    )
    p.add_argument(
        "--fd-dataset",
        choices=("fashion_mnist", "mnist", "none"),
        default=None,
        help="FD-CNN reference (default: the data set in the model card, else fashion_mnist).",
    )
    p.add_argument(
        "--fd-input-mode",
        choices=("crop", "resize"),
        default="crop",
        help="How samples are brought to 28x28 for the FD-CNN classifier.",
    )
    p.add_argument(
        "--bpd-data",
        choices=("fashion_mnist", "mnist", "none"),
        default=None,
        help="Data set for bits/dim (default: the FD data set; 'none' to skip).",
    )
    p.add_argument(
        "--bpd-examples", type=_positive_int, default=2000, help="Test examples for bits/dim."
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="Folder of the MNIST/Fashion-MNIST IDX files (default: the installed data sets).",
    )

    p = add("demo", "Bundled Fashion-MNIST GIVT-Causal: CFG grid (PNG), FD-CNN and timing.")
    p.add_argument("--out", default="givt_demo", help="Output folder.")
    p.add_argument(
        "--model",
        dest="preset",
        default="givt_causal_fashion_mnist",
        help="A GIVT preset or folder.",
    )
    p.add_argument(
        "--num-per-class", type=_positive_int, default=10, help="Samples per class in the grid."
    )
    p.add_argument(
        "--num-samples", type=_int_at_least(2), default=1000, help="Samples scored by FD-CNN."
    )
    p.add_argument(
        "--cfg-weight", type=_nonneg_float, default=None, help="CFG weight (default: the model's)."
    )
    p.add_argument(
        "--temperature",
        type=_positive_float,
        default=None,
        help="Sampling temperature (default: the model's).",
    )
    p.add_argument("--seed", type=_nonneg_int, default=0, help="Sampling seed.")
    p.add_argument(
        "--batch-size", type=_positive_int, default=500, help="Samples per generate call."
    )

    for plugin in _plugins():
        before = set(sub.choices)
        plugin.add_parsers(add)
        for name in set(sub.choices) - before:
            sub.choices[name].set_defaults(_plugin=plugin.__name__)
    return parser


def _check_args(args):
    """Checks argparse cannot express, before Keras is imported (raises CLIError)."""
    from keras_givt.cli import checks

    checks.check_args(args)
    plugin = getattr(args, "_plugin", None)
    if plugin:
        import importlib

        module = importlib.import_module(plugin)
        if hasattr(module, "check_args"):
            module.check_args(args)


def _finish_open_records(status, reason):
    commands = sys.modules.get("keras_givt.cli.givt_commands")
    if commands is not None:
        commands.finish_open_records(status, reason)


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt("SIGTERM")


def main(argv=None):
    """Entry point of the `keras-givt` console script. Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command_parser = parser._subparsers._group_actions[0].choices[args.command]
    try:
        _check_args(args)
    except CLIError as e:
        command_parser.error(str(e))
    if args.backend:
        import importlib.util

        if importlib.util.find_spec(args.backend) is None:
            parser.error(f"argument --backend: the {args.backend!r} package is not installed")
        if "keras" in sys.modules:
            # Called as a function after Keras was imported (e.g. in tests):
            # as a command, restart the process with KERAS_BACKEND set;
            # called as a function, refuse.
            already = sys.modules["keras"].config.backend()
            if already != args.backend:
                if argv is None and not os.environ.get(_REEXEC_ENV):
                    env = dict(os.environ, KERAS_BACKEND=args.backend, **{_REEXEC_ENV: "1"})
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os.execve(
                        sys.executable,
                        [sys.executable, "-m", "keras_givt_cli"] + sys.argv[1:],
                        env,
                    )
                parser.error(
                    f"argument --backend: Keras is already imported with backend {already!r} in this "
                    f"process, received {args.backend!r}; run the command in a new process "
                    f"(or set KERAS_BACKEND={args.backend})"
                )
        os.environ["KERAS_BACKEND"] = args.backend
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    else:
        previous = None
    try:
        import keras_givt

        keras_givt._load_all()  # Models and presets (Keras): after KERAS_BACKEND is set.
        from keras_givt.cli import givt_commands as commands

        run = commands.run
        if getattr(args, "_plugin", None):
            import importlib

            run = importlib.import_module(args._plugin).run
        run(args, argv if argv is not None else sys.argv[1:])
    except CLIError as e:
        _finish_open_records("failed", str(e))
        print(f"keras-givt {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        _finish_open_records("interrupted", f"interrupted ({e or 'Ctrl-C'})")
        print(f"keras-givt {args.command}: interrupted.", file=sys.stderr)
        return 130
    except Exception as e:
        _finish_open_records("failed", f"{type(e).__name__}: {e}")
        raise
    finally:
        commands = sys.modules.get("keras_givt.cli.givt_commands")
        if commands is not None:
            commands.release_locks()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
