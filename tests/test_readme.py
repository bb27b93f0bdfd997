"""README.md's first Python example runs as written (a newcomer copies it)."""

import os
import re

import pytest

from tests.paths import ROOT


def _python_blocks():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_has_an_offline_example():
    blocks = _python_blocks()
    assert blocks and 'from_preset("givt_causal_fashion_mnist")' in blocks[0]


@pytest.mark.filterwarnings("ignore")
def test_readme_offline_example_runs(tmp_path, monkeypatch):
    # The first block uses only bundled presets and made-up data: it must run here as written.
    # (The second one downloads big_vision's ImageNet checkpoints.)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    namespace = {"__name__": "readme_example"}
    exec(compile(_python_blocks()[0], "README.md", "exec"), namespace)
    assert tuple(namespace["images"].shape) == (2, 32, 32, 3)
    assert tuple(namespace["z"].shape) == (2, 16, 4)
