"""How many intra-op threads torch generation uses on CPU (the torch backend only).

torch runs its CPU kernels on an OpenMP team (libgomp in the pip wheels) with
static work sharing: every parallel op splits its work into one fixed chunk
per thread and waits at a barrier for all of them. A GIVT generation on torch
runs eagerly: thousands of small ops per call (AR: one decoder step per
token; MaskGIT: one full forward per step). When another
process keeps one of the cores busy, the thread whose core is taken waits for
a scheduler time slice (milliseconds) at every op, and the whole loop waits
with it. XLA (jax, tensorflow) shares work through a task pool where idle
threads take over, so it slows down gracefully; torch collapses.

Measured on the project's 2-core AMD EPYC VM (family 25, AVX2), torch 2.13,
reference sizes (emb 256, 4 layers, 256 tokens of 16 channels, batch 8),
`benchmarks/compare.py --contended --no-reference --only ar,ar_cfg --iters 3
--rounds 2` (one busy process started by the benchmark; the VM was also
shared with other jobs, load average 8.8-11, so the seconds are slow and only
the back-to-back ratios count). Ratio to jax in the same round:

| torch threads during generation | AR / jax | AR + DB-CFG / jax |
|---|---|---|
| "auto" (1 here) | 0.92, 1.21 | 1.01, 0.92 |
| 1 | 0.98, 1.06 | 0.98, 1.03 |
| 2 with OMP_WAIT_POLICY=PASSIVE | 1.18, 1.36 | 1.19, 1.15 |
| 2 (torch's default, the old behaviour) | 10.1, 14.5 | 9.1, 7.2 |

Single runs without the benchmark's busy process (load 4-9 from other jobs):
AR with 2 threads 33-66 s, `GOMP_SPINCOUNT=0` 8.0 s, PASSIVE 6.7 s, 1 thread
1.6-5.3 s (jax 3.0 s); MaskGIT 16 steps 16-23 s with 2 threads, 12.0-12.5 s
with 1. Quiet, 2 threads decode faster than 1 (session 4, AVX-512 VM:
0.32 s against 0.45 s of decoder steps per AR generation), hence not a
fixed 1. `benchmarks/results/README.md` has the tables.

The policy (`"auto"`, the default) gives generation all of torch's threads
when the other cores are free, and fewer when they are not: at the start of
each `generate` call it counts the runnable tasks of the system
(`/proc/loadavg`) that are not threads of this process, and uses
`min(torch.get_num_threads(), cpus - busy)` threads, at least 1. On a quiet
2-core machine that is 2 (the faster choice there);
with one busy process elsewhere, 1. Where `/proc` cannot be read (not
Linux), torch's own setting stays. The count is taken once per call, so a
process that starts during a long generation is not seen until the next.

Override it with the task attribute `torch_generate_threads` or, when that
is None, the environment variable `KERAS_GIVT_TORCH_THREADS`: an integer
>= 1 (that many threads, at most torch's own setting), `"auto"`, or
`"torch"` (leave torch's setting alone). Other ways to tune OpenMP
(`OMP_WAIT_POLICY`, `GOMP_SPINCOUNT`) are read by libgomp when torch is
first imported and stay the user's choice: keras_givt never sets them.
Inter-op threads (`torch.set_num_interop_threads`) are not used by eager
generation and are left alone. The setting is restored after each call, so
training and user code keep torch's own thread count.
"""

import contextlib
import os

ENV_VAR = "KERAS_GIVT_TORCH_THREADS"
_NAMED = ("auto", "torch")


def parse_setting(setting, name="torch_generate_threads"):
    """`setting` checked: an int >= 1, `"auto"` or `"torch"` (None: the env variable or auto).

    Args:
        setting: the requested setting, or None to read `KERAS_GIVT_TORCH_THREADS`
            (unset or empty: `"auto"`).
        name: how to name `setting` in errors.

    Returns:
        An int >= 1, `"auto"` or `"torch"`.
    """
    if setting is None:
        name = ENV_VAR
        setting = os.environ.get(ENV_VAR, "").strip() or "auto"
    if isinstance(setting, str):
        if setting.lower() in _NAMED:
            return setting.lower()
        try:
            setting = int(setting)
        except ValueError:
            raise ValueError(
                f"{name} must be an integer >= 1, 'auto' or 'torch'; received {setting!r}"
            ) from None
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ValueError(f"{name} must be an integer >= 1, 'auto' or 'torch'; received {setting!r}")
    return setting


def busy_elsewhere():
    """Runnable tasks of the system that are not threads of this process (None: unknown)."""
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
        own = 0
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat") as f:
                    stat = f.read()
            except OSError:  # The thread ended meanwhile.
                continue
            # The state follows the command name, which is in parentheses.
            if stat[stat.rindex(")") + 2 :].startswith("R"):
                own += 1
    except (OSError, ValueError, IndexError):
        return None
    return max(0, running - own)


def _cpus():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def choose_threads(setting, current):
    """Threads for one generation given `setting` (see `parse_setting`) and torch's `current`."""
    if setting == "torch":
        return current
    if setting == "auto":
        busy = busy_elsewhere()
        if busy is None:
            return current
        return max(1, min(current, _cpus() - busy))
    return min(setting, current)


@contextlib.contextmanager
def generation_threads(setting=None):
    """Runs the body with the generation thread count on CPU, then restores torch's.

    Does nothing when torch has CUDA (GPU generation).

    Args:
        setting: an int >= 1, `"auto"`, `"torch"`, or None (the environment
            variable `KERAS_GIVT_TORCH_THREADS`, default `"auto"`).

    Example:
    ```python
    with generation_threads("auto"):
        tokens = sampler(...)
    ```
    """
    import torch

    setting = parse_setting(setting)
    if torch.cuda.is_available():
        yield
        return
    before = torch.get_num_threads()
    threads = choose_threads(setting, before)
    if threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
