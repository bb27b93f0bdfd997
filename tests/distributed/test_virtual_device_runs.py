"""The virtual-device runner retries XLA's rendezvous abort and nothing else."""

import pytest

from tests import helpers

# Aborts like XLA on the first run (a marker file does not exist yet), passes on the second.
_ABORT_ONCE = """
import os, sys
marker = {marker!r}
if not os.path.exists(marker):
    open(marker, "w").close()
    sys.stderr.write("rendezvous.cc:127] {message} `all reduce RendezvousKey{{...}}`\\n")
    os.abort()
print("second run")
"""


def test_rendezvous_abort_is_run_again_with_a_warning(tmp_path):
    script = _ABORT_ONCE.format(marker=str(tmp_path / "ran"), message=helpers._RENDEZVOUS_ABORT)
    with pytest.warns(UserWarning, match="rendezvous time-out"):
        proc = helpers.run_on_virtual_cpu_devices(script, 2)
    assert proc.returncode == 0 and "second run" in proc.stdout


def test_other_failures_are_returned_at_once(tmp_path):
    script = _ABORT_ONCE.format(marker=str(tmp_path / "ran"), message="Check failed")
    proc = helpers.run_on_virtual_cpu_devices(script, 2)
    assert proc.returncode != 0 and "second run" not in proc.stdout


def test_a_second_abort_is_returned(tmp_path):
    script = "import os, sys\nsys.stderr.write(%r)\nos.abort()\n" % helpers._RENDEZVOUS_ABORT
    with pytest.warns(UserWarning):
        proc = helpers.run_on_virtual_cpu_devices(script, 2)
    assert proc.returncode != 0 and helpers._RENDEZVOUS_ABORT in proc.stderr


def test_the_pool_is_larger_than_the_devices():
    proc = helpers.run_on_virtual_cpu_devices(
        "import os; print(os.environ['PJRT_NPROC'], os.environ['XLA_FLAGS'])", 8
    )
    pool, flags = proc.stdout.split(" ", 1)
    assert int(pool) > 8 and "device_count=8" in flags
