"""tools/check_full_size_conversion.py: the big_vision configs it builds, its comparison, its runs.

The fast tests check what needs no big_vision: the configs the tool builds in
big_vision are the presets' (so a full-size run compares the published
architecture), the `--scale small` configs fit together, and the comparison
passes float32 rounding and fails real differences. The `large` tests run the
whole pipeline at `--scale small` on the current backend: they need the
big_vision venv (`../shared/reference/big_vision_bench/setup.sh`, built into
/tmp/bv_bench_venv) and are skipped without it.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_givt.models.givt.givt_presets import givt_presets
from keras_givt.models.vae.vae_presets import backbone_presets as vae_presets
from tools import check_full_size_conversion as tool

GIVT_ARCHS = [a for a in tool.ARCHS if tool.ARCHS[a]["kind"] == "givt"]


@pytest.mark.parametrize("arch", GIVT_ARCHS)
def test_big_vision_config_is_the_presets(arch):
    spec = tool.make_spec(arch, "full", "/tmp/unused")
    preset = givt_presets[arch]
    # remat_policy changes memory only; the preset does not carry it.
    bv = {k: v for k, v in spec["bv_model_kwargs"].items() if k != "remat_policy"}
    assert bv == preset["model_kwargs"]
    vae = {k: v for k, v in preset["vae_config"].items() if k != "beta"}  # Keras-side only.
    assert spec["vae_model_kwargs"] == vae
    assert spec["preset_overrides"] == {}
    assert spec["expected_arrays"] == 18 and spec["expected_params"] == preset["metadata"]["params"]


def test_vae_config_is_the_presets():
    arch = "beta_vae_imagenet_256_beta_5e-5"
    spec = tool.make_spec(arch, "full", "/tmp/unused")
    config = {k: v for k, v in vae_presets[arch]["config"].items() if k != "beta"}
    assert spec["bv_model_kwargs"] == config
    assert spec["expected_params"] == vae_presets[arch]["metadata"]["params"]


@pytest.mark.parametrize("arch", list(tool.ARCHS))
def test_small_scale_specs_fit_together(arch):
    full = tool.make_spec(arch, "full", "/tmp/w")
    small = tool.make_spec(arch, "small", "/tmp/w")
    assert "expected_params" not in small
    vae_small = small["vae_model_kwargs"]
    assert vae_small["code_len"] * 16 == full["vae_model_kwargs"]["code_len"]
    assert vae_small["filters"] % 32 == 0  # GroupNorm's 32 groups.
    if small["kind"] == "givt":
        bv = small["bv_model_kwargs"]
        assert bv["seq_len"] == vae_small["code_len"]
        assert bv["out_dim"] == vae_small["codeword_dim"]
        assert bv["num_decoder_layers"] == 2 and bv["emb_dim"] == 64
        assert small["givt_path"].startswith("/tmp/w/small/" + arch + "/")
    # Every architecture of one scale shares one VAE file.
    assert small["vae_path"] == os.path.join("/tmp/w/small", tool.VAE_FILE)


def test_compare_passes_rounding_and_fails_differences():
    rng = np.random.RandomState(0)
    want = rng.normal(size=(2, 16, 32)).astype(np.float32) * 3.0
    ok, abs_err, rel_err, n_bad = tool.compare(want.copy(), want)
    assert ok and abs_err == 0.0 and rel_err == 0.0 and n_bad == 0
    rounded = want * (1 + np.float32(2e-7) * rng.choice([-1, 1], size=want.shape))
    ok, abs_err, _, _ = tool.compare(rounded.astype(np.float32), want)
    assert ok and 0 < abs_err < 1e-5
    off = want.copy()
    off[1, 3, 4] += 1e-2
    ok, abs_err, rel_err, n_bad = tool.compare(off, want)
    assert not ok and n_bad == 1 and abs_err == pytest.approx(1e-2, rel=1e-3)
    assert tool.compare(want[:1], want)[0] is False  # Wrong shape.
    assert tool.compare(None, want)[0] is False  # Not produced.
    nan = want.copy()
    nan[0, 0, 0] = np.nan
    assert tool.compare(nan, want)[0] is False


def test_arguments_are_checked():
    with pytest.raises(SystemExit):
        tool.parse_args(["--arch", "givt_causal_imagenet1024"])
    with pytest.raises(SystemExit):
        tool.parse_args(["--backends", "jax,numpy"])
    with pytest.raises(SystemExit):  # GBs of checkpoints never go into the repository.
        tool.parse_args(["--work-dir", os.path.join(tool.REPO_ROOT, "tmp")])
    with pytest.raises(SystemExit):
        tool.parse_args(["--max-rss-gb", "0"])
    args = tool.parse_args(["--arch", "all", "--backends", "torch", "--scale", "small"])
    assert args.arch == list(tool.ARCHS) and args.backends == ["torch"]


def _needs_big_vision():
    if not os.path.exists(tool.DEFAULT_BV_PYTHON):
        pytest.skip(
            f"no big_vision venv at {tool.DEFAULT_BV_PYTHON} (build it with "
            "../shared/reference/big_vision_bench/setup.sh)"
        )
    if not os.path.isdir(tool.DEFAULT_BV_SRC):
        pytest.skip(f"no big_vision source at {tool.DEFAULT_BV_SRC}")


@pytest.mark.large
@pytest.mark.parametrize("arch", list(tool.ARCHS))
def test_small_scale_conversion_matches_big_vision(arch, tmp_path):
    _needs_big_vision()
    backend = keras.config.backend()
    cmd = [sys.executable, os.path.join(tool.REPO_ROOT, "tools", "check_full_size_conversion.py")]
    cmd += ["--scale", "small", "--arch", arch, "--backends", backend]
    cmd += ["--work-dir", str(tmp_path), "--python", sys.executable]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " 0 failed" in proc.stdout
    folder = tmp_path / "small" / arch
    # The same check fails a real difference in any one output.
    want = dict(np.load(folder / "reference.npz"))
    got = dict(np.load(folder / f"got_{backend}.npz"))
    for key in want:
        tampered = dict(got)
        scale = max(1.0, float(np.sqrt(np.mean(np.square(want[key], dtype=np.float64)))))
        tampered[key] = got[key] + 10 * tool.ATOL * scale  # 10x the tolerance, everywhere.
        np.savez(folder / "got_tampered.npz", **tampered)
        passed, failed, _ = tool.check_outputs(str(folder), "tampered", verbose=False)
        assert (passed, failed) == (len(want) - 1, 1), key
