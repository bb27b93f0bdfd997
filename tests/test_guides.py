"""The keras.io guides in guides/: format (tools/validate_guides.py) and a fast-mode run.

Every guide runs in a subprocess with `KERAS_GIVT_GUIDE_FAST=1` on the current
`KERAS_BACKEND` (tiny data, models and sample counts; about a minute on CPU).
The default run (`make test`) runs each guide on one backend of a rotation
that covers all three (`CI_BACKEND`); `pytest -m large` runs the rest.
"""

import glob
import os
import subprocess
import sys
import time

import keras
import pytest

from tests.paths import ROOT

GUIDES_DIR = os.path.join(ROOT, "guides")
GUIDES = sorted(glob.glob(os.path.join(GUIDES_DIR, "*.py")))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import validate_guides  # noqa: E402

JAX_ONLY = {
    "distributed_givt.py": "ModelParallel on virtual CPU devices needs JAX",
}
TIMEOUT_S = 300


def test_guides_exist():
    assert len(GUIDES) >= 4, GUIDES


def test_validator_passes_on_guides(capsys):
    assert validate_guides.main([GUIDES_DIR]) == 0, capsys.readouterr().out


BAD_GUIDE = '''"""
Title: A guide with a broken header
Author: someone
Date created: 2026-11-23
Last modified: 2026/11/23
Description: no capital letter and no period
"""

"""One-line text cells are not allowed."""

''' + "x = 1 \n"  # Trailing space.


def test_validator_reports_bad_guide(tmp_path, capsys):
    path = tmp_path / "bad_guide.py"
    path.write_text(BAD_GUIDE)
    assert validate_guides.main([str(path)]) == 1
    out = capsys.readouterr().out
    assert "yyyy/mm/dd" in out
    assert "capitalized" in out
    assert "period" in out
    assert "one-line" in out
    assert "trailing whitespace" in out


def test_validator_reports_field_order_and_pdf_links(tmp_path):
    text = (
        '"""\nAuthor: a\nTitle: b\nDate created: 2026/11/23\n'
        "Last modified: 2026/11/23\nDescription: Fine.\n"
        '"""\n\n"""\nSee https://arxiv.org/pdf/2312.02116.\n"""\n'
    )
    path = tmp_path / "order.py"
    path.write_text(text)
    messages = [m for _, m in validate_guides.validate_file(str(path), check_black=False)]
    assert any("`Title: ...`" in m for m in messages)
    assert any("arxiv" in m for m in messages)


def test_validator_counts_lines_of_code(tmp_path):
    header = (
        '"""\nTitle: t\nAuthor: a\nDate created: 2026/11/23\n'
        'Last modified: 2026/11/23\nDescription: Fine.\n"""\n'
    )
    body = "".join(f"x{i} = {i}\n" for i in range(validate_guides.MAX_LOC + 1))
    path = tmp_path / "long.py"
    path.write_text(header + '\n"""\ntext\n"""\n\n' + body)
    messages = [m for _, m in validate_guides.validate_file(str(path), check_black=False)]
    assert any("lines of code" in m for m in messages)


# Each guide runs in `make test` on one backend (a rotation that covers all
# three); its runs on the other backends are marked `large` (`pytest -m large`).
# Placed by measured cost in the fresh-clone `make test` (session 10): the
# generation guide took 171 s on tensorflow (tf.function traces per sampling
# setting) against ~40 s for a guide of its kind on torch; the training guide
# 54 s on jax.
CI_BACKEND = {
    "distributed_givt.py": "jax",
    "generating_images_with_givt.py": "torch",
    "givt_maskgit_inpainting.py": "torch",
    "training_givt_causal_on_fashion_mnist.py": "tensorflow",
}


def _guide_cases():
    backend = keras.config.backend()
    for path in GUIDES:
        guide = os.path.basename(path)
        if guide in JAX_ONLY and backend != "jax":
            continue  # Not collected: the guide itself requires JAX (see JAX_ONLY).
        in_ci = CI_BACKEND.get(guide, "jax") == backend
        yield pytest.param(guide, marks=() if in_ci else (pytest.mark.large,), id=guide)


def test_every_guide_has_a_ci_backend():
    assert sorted(CI_BACKEND) == sorted(os.path.basename(g) for g in GUIDES)
    assert set(CI_BACKEND.values()) == {"jax", "tensorflow", "torch"}


@pytest.mark.parametrize("guide", list(_guide_cases()))
def test_guide_runs_in_fast_mode(guide, tmp_path):
    backend = keras.config.backend()
    env = dict(os.environ)
    env["KERAS_BACKEND"] = backend
    env["KERAS_GIVT_GUIDE_FAST"] = "1"
    # The figure-writing branch runs too: a guide as written saves its figures.
    figures = tmp_path / "figures"
    env["GIVT_GUIDE_OUT"] = str(figures)
    env["KERAS_HOME"] = str(tmp_path / "keras_home")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    start = time.time()
    result = subprocess.run(
        [sys.executable, os.path.join(GUIDES_DIR, guide)],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    elapsed = time.time() - start
    print(f"{guide} on {backend}: {elapsed:.1f}s")
    assert result.returncode == 0, (
        f"{guide} failed on {backend} after {elapsed:.0f}s:\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    )
    with open(os.path.join(GUIDES_DIR, guide)) as f:
        writes_figures = "GIVT_GUIDE_OUT" in f.read()
    if writes_figures:
        written = sorted(p.name for p in figures.glob("*.png")) if figures.exists() else []
        assert written, f"{guide} on {backend} wrote no figure into GIVT_GUIDE_OUT"
        for name in written:
            with open(figures / name, "rb") as f:
                assert f.read(8) == b"\x89PNG\r\n\x1a\n", name
