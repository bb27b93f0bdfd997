"""Every output of the big_vision GIVT fixtures, on the current backend."""

import io
import os
import shutil
from contextlib import redirect_stdout

import numpy as np
import pytest

from keras_givt.conversion import big_vision
from tests import helpers
from tests.conftest import BIG_VISION_FIXTURES
from tools import check_big_vision_fixtures as checker
from tools import parity


@pytest.mark.parametrize("name", helpers.givt_fixture_names())
def test_givt_fixture_parity(name):
    cdir = helpers.fixture_dir(name)
    want = dict(np.load(os.path.join(cdir, "outputs.npz")))
    got = parity.run_config(cdir, helpers.fixture_entry(name), want)
    problems = [p for k in sorted(want) if (p := checker.compare(k, got.get(k), want[k]))]
    assert not problems, "\n".join(problems)


def test_mask_schedule_parity():
    cdir = helpers.fixture_dir("mask_schedule")
    want = dict(np.load(os.path.join(cdir, "outputs.npz")))
    got = parity.run_config(cdir, helpers.fixture_entry("mask_schedule"), want)
    problems = [p for k in sorted(want) if (p := checker.compare(k, got.get(k), want[k]))]
    assert not problems, "\n".join(problems)


def test_checker_cli_passes_and_fails(tmp_path):
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = checker.main([BIG_VISION_FIXTURES, "--only", "mask_schedule,givt_ar_uncond"])
    lines = buf.getvalue().strip().splitlines()
    assert rc == 0, buf.getvalue()
    assert lines[-1].endswith(" 0 failed") and not lines[-1].startswith("0 passed")

    # A perturbed reference must be reported, with its name and errors.
    src = os.path.join(BIG_VISION_FIXTURES, "givt_ar_uncond")
    root = tmp_path / "fx"
    shutil.copytree(src, root / "givt_ar_uncond")
    shutil.copy(os.path.join(BIG_VISION_FIXTURES, "index.json"), root / "index.json")
    outputs = dict(np.load(root / "givt_ar_uncond" / "outputs.npz"))
    outputs["logits"] = outputs["logits"] + 1e-3
    outputs["made_up_array"] = np.zeros(3, "float32")
    np.savez(root / "givt_ar_uncond" / "outputs.npz", **outputs)
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = checker.main([str(root), "--only", "givt_ar_uncond"])
    text = buf.getvalue()
    assert rc == 1
    assert "FAIL givt_ar_uncond/logits" in text and "max abs err" in text
    assert "made_up_array: not produced" in text
    assert text.strip().splitlines()[-1].endswith(" 2 failed")


def test_scanned_and_unscanned_layouts_agree():
    cdir = helpers.fixture_dir("givt_ar_mvdiag_cfg_scan")
    params = big_vision.read_npz(os.path.join(cdir, "params.npz"))
    assert big_vision.is_scanned(params)
    entry = helpers.fixture_entry("givt_ar_mvdiag_cfg_scan")
    a = big_vision.givt_backbone_from_big_vision_config(entry["model_kwargs"])
    big_vision.load_givt_params(a, params)
    # Split into the per-layer layout and load again.
    unscanned = big_vision.unscan_layers(params, "decoder/EncDecBlock", 2, axis=1)
    assert "decoder/EncDecBlock1/SelfAttn/query/kernel" in unscanned
    b = big_vision.givt_backbone_from_big_vision_config(entry["model_kwargs"])
    big_vision.load_givt_params(b, unscanned)
    for va, vb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(np.asarray(va), np.asarray(vb))


def _tiny_params(name="givt_ar_perchannel"):
    cdir = helpers.fixture_dir(name)
    return big_vision.read_npz(os.path.join(cdir, "params.npz")), helpers.fixture_entry(name)


def test_npz_params_prefix_is_stripped(tmp_path):
    params, entry = _tiny_params()
    path = tmp_path / "full_state.npz"
    np.savez(path, **{"params/" + k: v for k, v in params.items()})
    assert set(big_vision.read_npz(path)) == set(params)


def test_missing_array_is_named():
    params, entry = _tiny_params()
    del params["decoder/EncDecBlock1/MLP/Dense_0/bias"]
    backbone = big_vision.givt_backbone_from_big_vision_config(entry["model_kwargs"])
    with pytest.raises(
        ValueError, match=r"missing array 'decoder/EncDecBlock1/MLP/Dense_0/bias'.*\(64,\)"
    ):
        big_vision.load_givt_params(backbone, params)


def test_extra_array_is_named():
    params, entry = _tiny_params()
    params["decoder/EncDecBlock7/LayerNorm1/scale"] = np.ones(32, "float32")
    backbone = big_vision.givt_backbone_from_big_vision_config(entry["model_kwargs"])
    with pytest.raises(
        ValueError, match="unexpected array 'decoder/EncDecBlock7/LayerNorm1/scale'"
    ):
        big_vision.load_givt_params(backbone, params)


def test_checkpoint_of_another_config_is_rejected():
    params, entry = _tiny_params("givt_ar_perchannel")  # out_dim 4, 3 mixtures
    kwargs = dict(entry["model_kwargs"], num_mixtures=2)
    backbone = big_vision.givt_backbone_from_big_vision_config(kwargs)
    before = [np.asarray(w).copy() for w in backbone.weights]
    with pytest.raises(ValueError, match=r"'decoder/LogitsDense/bias'.*\(36,\).*expects \(24,\)"):
        big_vision.load_givt_params(backbone, params)
    # Nothing was assigned.
    for w, b in zip(backbone.weights, before):
        np.testing.assert_array_equal(np.asarray(w), b)


def test_scanned_layer_count_mismatch():
    cdir = helpers.fixture_dir("givt_ar_mvdiag_cfg_scan")
    entry = helpers.fixture_entry("givt_ar_mvdiag_cfg_scan")
    backbone = big_vision.givt_backbone_from_big_vision_config(
        dict(entry["model_kwargs"], num_decoder_layers=3)
    )
    with pytest.raises(ValueError, match="should have 3 layers on axis 1"):
        big_vision.load_givt_params(backbone, os.path.join(cdir, "params.npz"))


def test_unreadable_npz(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="broken.npz"):
        big_vision.read_npz(path)


def test_unknown_big_vision_option():
    with pytest.raises(ValueError, match="posemb_type='sincos2d'"):
        big_vision.givt_backbone_kwargs({"posemb_type": "sincos2d"})
    with pytest.raises(ValueError, match="Unknown big_vision givt.Model option 'foo'"):
        big_vision.givt_backbone_kwargs({"foo": 1})
