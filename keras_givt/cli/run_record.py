"""The run record of a `keras-givt` command: `<out>/<command>.json`.

Every command writes one: its command line, config (the parsed arguments),
environment (backend, versions, machine), metrics and status, rewritten
atomically (`io_utils.write_json`) as the command progresses. `open_record`
starts one; `main` ends the records still open when a command fails or is
interrupted (`finish_open_records`).

Keras is imported only when a record is created (for the backend name and
version), so `main` can import this module before the backend is chosen.
"""

import os
import platform
import time

from keras_givt.cli import io_utils

RUN_JSON = "{command}.json"

_OPEN_RECORDS = []


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
        import keras  # The backend is chosen by now (`main` sets KERAS_BACKEND first).

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


def open_record(args, argv, out_dir, name=None, keep_previous=False):
    """Starts the run record `<out_dir>/<name or args.command>.json` (status "running").

    Args:
        args: the parsed `argparse.Namespace` (stored as the record's config).
        argv: the command-line arguments after `keras-givt`.
        out_dir: the folder of the record (created if needed).
        name: the record's file name without `.json` (default: the command).
        keep_previous: keep an earlier record of this file under
            `previous_runs` (a resumed training run).

    Returns:
        The `RunRecord`; end it with `record.finish(...)`.
    """
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, RUN_JSON.format(command=name or args.command))
    return RunRecord(path, args, argv, keep_previous=keep_previous)
