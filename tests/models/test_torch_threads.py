"""The torch generation thread policy (`keras_givt.utils.torch_threads`)."""

import os
import subprocess
import sys
import time

import keras
import pytest

from keras_givt import GIVTBackbone
from keras_givt import GIVTCausal
from keras_givt.utils import torch_threads


@pytest.mark.parametrize(
    "setting, expected",
    [(1, 1), (3, 3), ("2", 2), ("auto", "auto"), ("AUTO", "auto"), ("torch", "torch")],
)
def test_parse_setting_accepts(setting, expected):
    assert torch_threads.parse_setting(setting) == expected


@pytest.mark.parametrize("setting", [0, -2, "0", "many", 1.5, True, ""])
def test_parse_setting_rejects_naming_the_value(setting):
    with pytest.raises(ValueError, match="torch_generate_threads.*received"):
        torch_threads.parse_setting(setting)


def test_parse_setting_reads_the_environment(monkeypatch):
    monkeypatch.delenv(torch_threads.ENV_VAR, raising=False)
    assert torch_threads.parse_setting(None) == "auto"
    monkeypatch.setenv(torch_threads.ENV_VAR, " 1 ")
    assert torch_threads.parse_setting(None) == 1
    monkeypatch.setenv(torch_threads.ENV_VAR, "torch")
    assert torch_threads.parse_setting(None) == "torch"
    monkeypatch.setenv(torch_threads.ENV_VAR, "lots")
    with pytest.raises(ValueError, match="KERAS_GIVT_TORCH_THREADS.*'lots'"):
        torch_threads.parse_setting(None)


@pytest.mark.parametrize(
    "busy, cpus, current, expected",
    [(0, 2, 2, 2), (1, 2, 2, 1), (5, 2, 2, 1), (1, 16, 8, 8), (10, 16, 8, 6), (None, 2, 2, 2)],
)
def test_auto_leaves_a_core_to_each_busy_task(monkeypatch, busy, cpus, current, expected):
    monkeypatch.setattr(torch_threads, "busy_elsewhere", lambda: busy)
    monkeypatch.setattr(torch_threads, "_cpus", lambda: cpus)
    assert torch_threads.choose_threads("auto", current) == expected


def test_fixed_settings_are_capped_by_torch():
    assert torch_threads.choose_threads("torch", 2) == 2
    assert torch_threads.choose_threads(1, 2) == 1
    assert torch_threads.choose_threads(4, 2) == 2


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="needs Linux /proc")
def test_busy_elsewhere_sees_a_busy_process():
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        seen = [torch_threads.busy_elsewhere() for _ in range(3)]
    finally:
        proc.kill()
        proc.wait()
    assert all(n is not None and n >= 1 for n in seen), seen


def test_generation_threads_sets_and_restores():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CPU thread policy")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch_threads.generation_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError):
            with torch_threads.generation_threads(1):
                raise RuntimeError("inside")
        assert torch.get_num_threads() == 2
        with torch_threads.generation_threads("torch"):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def _tiny_causal():
    bb = GIVTBackbone(
        seq_len=4, out_dim=2, num_labels=3, emb_dim=8, num_decoder_layers=1, num_heads=2, mlp_dim=16
    )
    return GIVTCausal(bb, seed=0)


def test_generate_uses_the_task_setting(monkeypatch):
    if keras.config.backend() != "torch":
        pytest.skip("torch-only setting")
    import torch

    from keras_givt.models.givt import torch_generation

    seen = []
    step = torch_generation.TorchDecoder.step

    def spy(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch_generation.TorchDecoder, "step", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model = _tiny_causal()
        model.torch_generate_threads = 1
        model.generate(labels=[0, 1], seed=0, return_latents=True)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
        seen.clear()
        model.torch_generate_threads = "torch"
        model.generate(labels=[0, 1], seed=0, return_latents=True)
        assert seen and set(seen) == {2}
    finally:
        torch.set_num_threads(before)


def test_generate_rejects_a_bad_environment_setting(monkeypatch):
    if keras.config.backend() != "torch":
        pytest.skip("torch-only setting")
    monkeypatch.setenv(torch_threads.ENV_VAR, "0")
    with pytest.raises(ValueError, match="KERAS_GIVT_TORCH_THREADS"):
        _tiny_causal().generate(labels=[0, 1], seed=0, return_latents=True)
