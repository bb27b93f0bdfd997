"""The `keras-givt` console script: arguments are parsed before Keras is imported.

`import keras_givt` imports every model (and with them Keras and the backend),
so that Keras deserialisation and keras-hub's preset lookup find keras_givt's
classes and presets. This entry point imports the package with
`KERAS_GIVT_LAZY_IMPORT=1` instead, so `keras-givt --help`, `--version` and
usage errors answer in a fraction of a second; the command itself loads the
models once its arguments are checked. The CLI's own modules keep to the same
rule (the command-family modules import Keras only inside their command
functions; see the docstring of `keras_givt/cli/main.py`). `python -m
keras_givt_cli ...` is the same command.
"""

import os
import sys

LAZY_IMPORT_ENV = "KERAS_GIVT_LAZY_IMPORT"


def main(argv=None):
    """Runs `keras-givt` with `argv` (default: the process arguments); returns the exit status."""
    previous = os.environ.get(LAZY_IMPORT_ENV)
    os.environ[LAZY_IMPORT_ENV] = "1"
    try:
        from keras_givt.cli.main import main as cli_main
    finally:
        if previous is None:
            os.environ.pop(LAZY_IMPORT_ENV, None)
        else:
            os.environ[LAZY_IMPORT_ENV] = previous
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
