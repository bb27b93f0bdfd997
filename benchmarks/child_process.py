"""One benchmark in a fresh subprocess, with its peak resident memory.

The child is reaped by `os.wait4` alone, which returns its `ru_maxrss`: the
peak RSS of that process only (nothing of an earlier run, no allocator pool of
the parent). A watcher polls the child's current RSS every 50 ms to stop it at
once when it passes `kill_above` bytes (a search for the largest batch that
fits must not exhaust the machine) or runs past `timeout_s`.
"""

import os
import signal
import subprocess
import tempfile
import time

GIB = 1024**3


def current_rss(pid="self"):
    """Resident bytes of process `pid` now (0 where /proc cannot tell)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_measured(argv, env=None, cwd=None, timeout_s=3600.0, kill_above=None):
    """Runs `argv` to the end; returns a dict of its outcome.

    Keys: `returncode` (None when stopped), `stdout`, `stderr`, `peak_rss_bytes`
    (the child's ru_maxrss), `wall_s`, `stopped` (None, "exceeded the budget" or
    "timed out").
    """
    t0 = time.time()
    stopped = None
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err, text=True)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if kill_above is not None and current_rss(proc.pid) > kill_above:
                stopped = "exceeded the budget"
            elif time.time() - t0 > timeout_s:
                stopped = "timed out"
            if stopped:
                proc.send_signal(signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    return {
        "returncode": None if stopped else proc.returncode,
        "stdout": stdout,
        "stderr": stderr,
        "peak_rss_bytes": usage.ru_maxrss * 1024,
        "wall_s": round(time.time() - t0, 3),
        "stopped": stopped,
    }
