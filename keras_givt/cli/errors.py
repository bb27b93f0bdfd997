"""The CLI's user-error class (no imports: loaded before the arguments are parsed)."""


class CLIError(Exception):
    """A user error of the CLI: printed as `keras-givt <command>: error: ...`, exit status 2."""
