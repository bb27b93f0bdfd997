"""`keras_givt.utils.virtual_devices`: the environment for virtual JAX CPU devices."""

import os
import subprocess
import sys

import pytest

from keras_givt.utils import virtual_devices
from keras_givt.utils.virtual_devices import virtual_cpu_device_env
from tests.helpers import ROOT


def test_env_sets_the_count_and_a_pool_larger_than_the_devices():
    env = virtual_cpu_device_env(8, {"HOME": "/h"})
    assert env["HOME"] == "/h"
    assert env["XLA_FLAGS"] == "--xla_force_host_platform_device_count=8"
    assert int(env["PJRT_NPROC"]) == virtual_devices.PJRT_CPU_POOL_THREADS > 8
    assert int(virtual_cpu_device_env(64, {})["PJRT_NPROC"]) == 64


def test_env_keeps_other_flags_replaces_an_earlier_count_and_a_set_pool():
    before = {
        "XLA_FLAGS": "--xla_cpu_enable_fast_math=false "
        "--xla_force_host_platform_device_count=2 --xla_dump_to=/tmp/d",
        "PJRT_NPROC": "5",
    }
    env = virtual_cpu_device_env(4, before)
    assert env["XLA_FLAGS"].split() == [
        "--xla_cpu_enable_fast_math=false",
        "--xla_dump_to=/tmp/d",
        "--xla_force_host_platform_device_count=4",
    ]
    assert env["PJRT_NPROC"] == "5"
    assert before["XLA_FLAGS"].endswith("/tmp/d")  # The argument is not changed.


@pytest.mark.parametrize("bad", [0, -2, 2.0, "8", True, None])
def test_bad_device_counts_name_the_argument(bad):
    with pytest.raises((ValueError, TypeError), match="num_devices"):
        virtual_cpu_device_env(bad)


@pytest.mark.parametrize("bad", ["XLA_FLAGS=x", [("A", "b")], 3])
def test_a_bad_environ_names_the_argument(bad):
    with pytest.raises(TypeError, match="environ"):
        virtual_cpu_device_env(2, bad)


def test_use_gives_a_fresh_process_the_devices():
    script = (
        "import os; os.environ['KERAS_BACKEND'] = 'jax'\n"
        "from keras_givt.utils.virtual_devices import use_virtual_cpu_devices\n"
        "use_virtual_cpu_devices(3)\n"
        "import jax; print(len(jax.devices('cpu')), os.environ['PJRT_NPROC'])\n"
        "try:\n"
        "    use_virtual_cpu_devices(4)\n"
        "except RuntimeError as e:\n"
        "    print('refused', 'before JAX creates' in str(e))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "PJRT_NPROC")}
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.split("\n")
    assert lines[0] == f"3 {virtual_devices.PJRT_CPU_POOL_THREADS}"
    assert lines[1] == "refused True"
