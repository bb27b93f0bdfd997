"""`keras-givt`: the command line of keras_givt.

Subcommands, by family (each writes `<out>/<command>.json` with its config and
metrics, atomically, next to its outputs):

  givt_commands   train-vae, encode, train, sample, inpaint, evaluate, demo
  distributed     launch (N local processes of a multi-process `train`, JAX)
  vq_commands     train-vq, train-maskgit-vq, evaluate-vq
  uvim_commands   uvim-train-vae, uvim-train, uvim-evaluate

`--backend jax|tensorflow|torch` (before or after the subcommand) sets
`KERAS_BACKEND` before Keras is imported. Training checkpoints (weights +
optimizer state + step counter) go to `<out>/checkpoint/` every
`--checkpoint-every` steps, at the end and on Ctrl-C; `--resume` continues
from the last one without losing or repeating steps.

Layout of `keras_givt/cli/`:

  main.py           this file: the parser, the pre-import checks, the backend, running a command
  arguments.py      argparse value types and the flag groups several commands share
  checks.py         checks argparse cannot express (paths, folder kinds, shapes, --resume)
  errors.py         CLIError (a user error: one line, exit status 2)
  givt_commands.py  vq_commands.py  uvim_commands.py   one module per command family
  run_record.py     RunRecord: the `<out>/<command>.json` of every command
  training.py       Checkpointer, the resumable fit loop (`fit_steps`), run-folder preparation,
                    the steps every training command shares (step counts, optimizer, run record)
  data.py           data specs, image data sets, seeded training streams, held-out images,
                    cached latents
  model_io.py       model folders: VAE, tokenizer, task presets and model cards, `--model`
                    resolution
  evaluation.py     chunked, timed sampling and FD-CNN scoring shared by sample, evaluate,
                    evaluate-vq and demo
  io_utils.py       atomic files, crash-safe folder swaps, folder locks, PNG grids
  distributed.py    multi-process data parallel on JAX: the `train` flags, `launch`, process 0
                    as the only writer, per-process data shards, the checkpoint broadcast
  fd_floors.py      the shipped FD-CNN real-data floors

Each family module defines `COMMANDS` (its subcommand names), `add_parsers(add)`,
`check_args(args)` and `run(args, argv)`, and is imported here plainly.

Import rule: `keras-givt --help`, `--version` and usage errors must answer
fast and without Keras or a backend (the console script imports the package
lazily, see `keras_givt_cli.py`; tests/cli/test_cli_validation.py checks it).
So this module and the family modules import, at module level, only the
standard library and the keras-free `arguments`, `checks` and `errors`; the
command functions import Keras, numpy and the Keras-using helpers
(`training`, `data`, `model_io`, `run_record`, `evaluation`, `io_utils`) in
their bodies, which run only after `main` has checked the arguments and set
`KERAS_BACKEND`.
"""

import argparse
import os
import sys

from keras_givt.cli import distributed
from keras_givt.cli import givt_commands
from keras_givt.cli import uvim_commands
from keras_givt.cli import vq_commands
from keras_givt.cli.errors import CLIError

BACKENDS = ("jax", "tensorflow", "torch")
_REEXEC_ENV = "KERAS_GIVT_CLI_REEXEC"
# The command families, in the order of `keras-givt --help`.
FAMILIES = (givt_commands, vq_commands, uvim_commands, distributed)
# Subcommand name -> its family module.
FAMILY_OF_COMMAND = {name: family for family in FAMILIES for name in family.COMMANDS}
COMMANDS = tuple(FAMILY_OF_COMMAND)


def _version():
    import keras_givt

    return keras_givt.__version__


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


def _add_backend(parser, default):
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=default,
        help="Keras backend; sets KERAS_BACKEND before Keras is imported (default: $KERAS_BACKEND, "
        "else Keras' default).",
    )


def build_parser():
    """The `keras-givt` parser: global flags, then each family's subcommands (`add_parsers`)."""
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

    for family in FAMILIES:
        family.add_parsers(add)
    return parser


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt("SIGTERM")


def main(argv=None):
    """Entry point of the `keras-givt` console script. Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    family = FAMILY_OF_COMMAND[args.command]
    command_parser = parser._subparsers._group_actions[0].choices[args.command]
    try:
        family.check_args(args)  # Before Keras is imported.
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
    if family is distributed:  # The launcher only starts processes: no Keras here.
        return distributed.run(args, argv)
    # The arguments are checked and the backend is set: Keras may load now.
    import signal
    import threading

    from keras_givt.cli import io_utils
    from keras_givt.cli import run_record

    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    else:
        previous = None
    try:
        import keras_givt

        keras_givt._load_all()  # Models and presets (Keras): after KERAS_BACKEND is set.
        family.run(args, argv if argv is not None else sys.argv[1:])
    except CLIError as e:
        run_record.finish_open_records("failed", str(e))
        print(f"keras-givt {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        run_record.finish_open_records("interrupted", f"interrupted ({e or 'Ctrl-C'})")
        print(f"keras-givt {args.command}: interrupted.", file=sys.stderr)
        return 130
    except Exception as e:
        run_record.finish_open_records("failed", f"{type(e).__name__}: {e}")
        raise
    finally:
        io_utils.release_folder_locks()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
