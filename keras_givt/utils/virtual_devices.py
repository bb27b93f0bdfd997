"""Virtual JAX CPU devices, to try `keras.distribution` on a machine without accelerators.

XLA splits the host CPU into `num_devices` devices when its flags say so, and
reads them once, when JAX first creates its CPU backend; so the environment
has to be set before any array exists (importing `keras_givt` creates none).

XLA's in-process CPU collectives abort the whole process when a participant
has not joined a rendezvous within 10 s (a constant: jaxlib 0.6.2 has no flag
for it). The likely cause is a starved thread pool: a device waiting in a
collective holds a thread of the PJRT CPU client's pool, which is sized from
the core count unless `PJRT_NPROC` says otherwise. Measured on this project's
2-core VM with 4 copies of an 8-device model-parallel fit at once: 1 of 12
copies aborted with the default pool, 0 of 8 with `PJRT_NPROC=32` (too few
runs to prove it); the fit alone took 31 s either way. So the pool is
`PJRT_CPU_POOL_THREADS` threads unless the environment already sets one.
"""

import collections.abc
import os
import re
import sys

from keras_givt.utils import validation

PJRT_CPU_POOL_THREADS = 32
_DEVICE_COUNT_FLAG = re.compile(r"--xla_force_host_platform_device_count=\S*")


def virtual_cpu_device_env(num_devices, environ=None):
    """A copy of `environ` that gives JAX `num_devices` virtual CPU devices.

    `XLA_FLAGS` keeps its other flags (an earlier device count is replaced);
    `PJRT_NPROC` is set to `PJRT_CPU_POOL_THREADS` (at least `num_devices`)
    unless `environ` has one. For a subprocess: pass the result as its `env`.

    Args:
        num_devices: positive int.
        environ: mapping of environment variables (default `os.environ`).

    Returns:
        dict.

    Example:

    ```python
    env = virtual_cpu_device_env(8)
    subprocess.run([sys.executable, "train.py"], env=env)
    ```
    """
    num_devices = validation.check_positive_int("num_devices", num_devices)
    if environ is not None and not isinstance(environ, collections.abc.Mapping):
        raise TypeError(
            "`environ` must be a mapping of environment variables or None; received "
            f"environ={environ!r} ({type(environ).__name__})."
        )
    env = dict(os.environ if environ is None else environ)
    flags = _DEVICE_COUNT_FLAG.sub("", env.get("XLA_FLAGS", "")).split()
    flags.append(f"--xla_force_host_platform_device_count={num_devices}")
    env["XLA_FLAGS"] = " ".join(flags)
    env.setdefault("PJRT_NPROC", str(max(PJRT_CPU_POOL_THREADS, num_devices)))
    return env


def use_virtual_cpu_devices(num_devices):
    """Gives this process `num_devices` virtual JAX CPU devices.

    Sets `os.environ` as `virtual_cpu_device_env` does. Call it before JAX
    creates an array: once its CPU backend exists the flags would do nothing,
    so that raises a RuntimeError instead.

    Args:
        num_devices: positive int.

    Example:

    ```python
    import os
    os.environ["KERAS_BACKEND"] = "jax"
    from keras_givt.utils.virtual_devices import use_virtual_cpu_devices
    use_virtual_cpu_devices(8)
    import keras
    keras.distribution.list_devices()  # 8 CPU devices
    ```
    """
    env = virtual_cpu_device_env(num_devices)
    if _jax_backend_started():
        raise RuntimeError(
            f"use_virtual_cpu_devices(num_devices={num_devices}) must run before JAX "
            "creates its CPU backend (before the first array); call it at the top of the "
            "script, or set XLA_FLAGS and PJRT_NPROC in the environment."
        )
    os.environ.update({k: env[k] for k in ("XLA_FLAGS", "PJRT_NPROC")})


def _jax_backend_started():
    """Whether JAX has already created a backend in this process (False without JAX)."""
    if "jax" not in sys.modules:
        return False
    from jax._src import xla_bridge

    return bool(getattr(xla_bridge, "_backends", None))
