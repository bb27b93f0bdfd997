"""Discrete MaskGIT: backbone, masked training, parallel decoding, editing, presets."""

import json
import math
import os
import shutil

import keras
import numpy as np
import pytest

import keras_givt
from keras_givt.models.vq_maskgit import maskgit_presets
from keras_givt.utils import preset_utils
from tests import helpers
from tests.conftest import FIXTURES_DIR

MASKGIT_FIXTURES = os.path.join(FIXTURES_DIR, "maskgit")
K = 16


_np = helpers.to_numpy


def _backbone(num_classes=3, seq_len=16):
    return helpers.tiny_maskgit_backbone(num_classes, num_layers=2, seq_len=seq_len)


_tokenizer = helpers.tiny_vqgan_tokenizer


def _expected_counts(n0, num_steps, schedule):
    """MaskGIT's mask_len per step (numpy float32), 0 after the last step."""
    f = np.float32
    out, unknown = [], n0
    for s in range(num_steps):
        r = f(s + 1) / f(num_steps)
        if schedule == "uniform":
            m = f(1) - r
        elif schedule == "cosine":
            m = np.cos(f(math.pi / 2) * r)
        elif schedule.startswith("pow"):
            m = f(1) - r ** f(schedule[3:])
        elif schedule == "log":
            m = -np.log2(r) / np.log2(f(n0))
        else:
            m = f(1) - f(2) ** (-np.log2(f(n0)) * (f(1) - r))
        m = np.clip(f(m), f(1e-6), f(1))
        mask_len = max(1, min(unknown - 1, int(np.floor(f(n0) * m))))
        unknown = mask_len
        out.append(0 if s == num_steps - 1 else mask_len)
    return out


def test_backbone_mask_token_and_class_token():
    bb = _backbone()
    assert bb.vocab_size == K + 3 + 1 and bb.mask_token_id == K + 3
    ids = np.array([[K + 1] + [-1] * 16], "int32")
    same = np.array([[K + 1] + [bb.mask_token_id] * 16], "int32")
    np.testing.assert_allclose(_np(bb(ids)), _np(bb(same)), rtol=1e-6)
    logits = bb.token_logits(np.full((1, 16), -1), np.array([1]))
    assert tuple(logits.shape) == (1, 16, K)
    np.testing.assert_allclose(_np(logits), _np(bb(ids))[:, 1:, :K], rtol=1e-6)
    with pytest.raises(ValueError, match="num_heads"):
        keras_givt.MaskGITBackbone(K, 3, 16, hidden_size=30, num_layers=1, num_heads=4)


def test_training_mask_follows_maskgit():
    model = keras_givt.MaskGITImageGenerator(_backbone(), min_masking_rate=0.5, seed=0)
    mask = _np(model.training_mask(256))
    counts = mask.sum(1)
    assert counts.min() >= 8 and counts.max() <= 16  # ceil(16 · max(cos, 0.5)).
    assert len(np.unique(counts)) > 3


def test_fit_on_tokens_lowers_loss():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 96).astype("int32")
    base = np.stack([np.arange(16) % K, (np.arange(16) * 3) % K, (np.arange(16) * 5 + 1) % K])
    tokens = base[labels].copy()
    noise = rng.random(tokens.shape) < 0.1
    tokens[noise] = rng.integers(0, K, noise.sum())
    keras.utils.set_random_seed(0)
    model = keras_givt.MaskGITImageGenerator(_backbone(), label_dropout=0.1, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    hist = model.fit({"tokens": tokens, "labels": labels}, epochs=6, batch_size=32, verbose=0)
    loss = hist.history["loss"]
    assert loss[-1] < loss[0] - 0.5
    out = _np(model.generate(labels=[0, 1, 2], num_steps=4, seed=0, return_tokens=True))
    # The class patterns start to come back (chance level: 1/16).
    assert np.mean(out == base) > 0.15


@pytest.mark.parametrize(
    "schedule,num_steps", [("cosine", 5), ("uniform", 3), ("pow2", 7), ("log", 4), ("exp", 6)]
)
def test_decoding_unmasks_the_scheduled_number_per_step(schedule, num_steps):
    model = keras_givt.MaskGITImageGenerator(_backbone(), seed=0)
    out, counts = model.generate(
        labels=[0, 2],
        num_steps=num_steps,
        schedule=schedule,
        seed=1,
        return_tokens=True,
        return_num_masked=True,
    )
    want = _expected_counts(16, num_steps, schedule)
    np.testing.assert_array_equal(_np(counts), np.array([want, want], "float32"))
    out = _np(out)
    assert out.shape == (2, 16) and out.min() >= 0 and out.max() < K


def test_seeded_reproducibility_and_no_retrace():
    Counting, traces = helpers.counting_task(keras_givt.MaskGITImageGenerator)
    model = Counting(_backbone(), label_dropout=0.1, seed=0)
    a = _np(model.generate(labels=[1, 2], num_steps=4, seed=5, cfg_weight=0.5, return_tokens=True))
    b = _np(model.generate(labels=[1, 2], num_steps=4, seed=5, cfg_weight=0.5, return_tokens=True))
    np.testing.assert_array_equal(a, b)
    c = _np(
        model.generate(
            labels=[1, 2],
            num_steps=4,
            seed=6,
            cfg_weight=2.0,
            temperature=0.5,
            choice_temperature=1.0,
            return_tokens=True,
        )
    )
    assert np.any(a != c)
    assert len(model.generate_functions) == 1
    if keras.config.backend() != "torch":
        assert len(traces) == 1
    with pytest.raises(ValueError, match="label dropout"):
        keras_givt.MaskGITImageGenerator(_backbone(), seed=0).generate(labels=[1], cfg_weight=1.0)
    with pytest.raises(ValueError, match="schedule"):
        model.generate(labels=[1], schedule="linear")
    with pytest.raises(ValueError, match="labels"):
        model.generate(labels=[7])


def test_editing_keeps_tokens_outside_the_box():
    tok = _tokenizer()
    model = keras_givt.MaskGITImageGenerator(_backbone(), tok, seed=0)
    rng = np.random.default_rng(0)
    images = rng.random((2, 8, 8, 3)).astype("float32")
    mask = np.zeros((2, 8, 8), bool)
    mask[:, 2:6, 0:4] = True  # Tokens (1..2, 0..1) of the 4x4 grid.
    token_mask = np.zeros((4, 4), bool)
    token_mask[1:3, 0:2] = True
    token_mask = np.broadcast_to(token_mask.reshape(1, 16), (2, 16))
    original = _np(model.encode_images(images))
    # Images in the VQGAN's own [0, 1]: `image_range=(0, 1)` (the default is [-1, 1]).
    out, counts = model.inpaint(
        images,
        mask,
        labels=[2, 0],
        num_steps=3,
        seed=0,
        return_tokens=True,
        return_num_masked=True,
        image_range=(0, 1),
    )
    out = _np(out)
    np.testing.assert_array_equal(out[~token_mask], original[~token_mask])
    np.testing.assert_array_equal(_np(counts), [_expected_counts(4, 3, "cosine")] * 2)
    # Outpainting on tokens directly: keep only the box.
    out2 = _np(
        model.inpaint(original, ~token_mask, labels=[1, 1], num_steps=4, seed=0, return_tokens=True)
    )
    np.testing.assert_array_equal(out2[token_mask], original[token_mask])
    edited = _np(
        model.inpaint(images, mask, labels=[1, 1], num_steps=3, seed=0, image_range=(0, 1))
    )
    assert edited.shape == (2, 8, 8, 3) and edited.min() >= 0 and edited.max() <= 1
    np.testing.assert_array_equal(edited[~mask], images[~mask])  # Known pixels pasted back.
    signed = _np(model.inpaint(2.0 * images - 1.0, mask, labels=[1, 1], num_steps=3, seed=0))
    np.testing.assert_allclose(signed, 2.0 * edited - 1.0, atol=1e-5)  # The default [-1, 1].


def test_shared_generation_task_config_and_checks():
    from keras_givt.models.generation_task import GenerationTask

    assert issubclass(keras_givt.MaskGITImageGenerator, GenerationTask)
    assert issubclass(keras_givt.GIVTMaskGIT, GenerationTask)
    model = keras_givt.MaskGITImageGenerator(
        _backbone(), _tokenizer(), label_dropout=0.1, seed=3, sampling_defaults={"num_steps": 3}
    )
    config = model.get_config()
    assert config["tokenizer"]["class_name"] == "VQGANTokenizer"
    assert (config["seed"], config["sampling_defaults"]) == (3, {"num_steps": 3})
    again = keras_givt.MaskGITImageGenerator.from_config(config)
    assert again.tokenizer.codebook_size == K and again.label_dropout == 0.1
    assert again.seed == 3 and again.sampling_defaults == {"num_steps": 3}
    with pytest.raises(ValueError, match="must match the number of labels"):
        model.generate(labels=[0, 1], num_samples=3)
    with pytest.raises(TypeError, match="takes dicts"):
        model.tokens_from_inputs(np.zeros((2, 16), "int32"))
    with pytest.raises(ValueError, match=r"\(B, L\) tokens"):
        model.inpaint(np.zeros((16,), "int32"), np.zeros((16,), bool))
    with pytest.raises(ValueError, match="token mask"):
        model.inpaint(np.zeros((2, 16), "int32"), np.zeros((2, 15), bool))


@pytest.fixture
def local_presets(tmp_path, monkeypatch):
    """MaskGIT presets whose URLs are file:// copies of fixture checkpoints."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    src = tmp_path / "published"
    src.mkdir()
    shutil.copy(
        os.path.join(MASKGIT_FIXTURES, "maskgit_transformer", "checkpoint"),
        src / "maskgit_tiny_checkpoint",
    )
    shutil.copy(
        os.path.join(MASKGIT_FIXTURES, "vqgan_tokenizer", "checkpoint"),
        src / "tokenizer_tiny_checkpoint",
    )
    with open(os.path.join(MASKGIT_FIXTURES, "index.json")) as f:
        configs = json.load(f)["configs"]
    vq_config = configs["vqgan_tokenizer"]["config"]["vqvae"]
    entry = {
        "metadata": {"description": "test", "params": 0, "path": "maskgit"},
        "task": "MaskGITImageGenerator",
        "files": {
            "transformer": (src / "maskgit_tiny_checkpoint").as_uri(),
            "tokenizer": (src / "tokenizer_tiny_checkpoint").as_uri(),
        },
        "model_kwargs": configs["maskgit_transformer"]["model_kwargs"],
        "codebook_size": 32,
        "vqvae_config": vq_config,
        "image_size": 8,
        "sampling_defaults": {"num_steps": 3, "choice_temperature": 4.5},
    }
    vq_entry = {
        "metadata": {"description": "t", "params": 0, "path": "vqvae"},
        "task": "VQGANTokenizer",
        "files": {"tokenizer": (src / "tokenizer_tiny_checkpoint").as_uri()},
        "config": vq_config,
        "image_size": 16,
    }
    preset_utils.register_presets({"test_maskgit_tiny": entry, "test_vqgan_tiny": vq_entry})
    yield src
    preset_utils.PRESETS.pop("test_maskgit_tiny", None)
    preset_utils.PRESETS.pop("test_vqgan_tiny", None)


def test_presets_convert_published_format_once(local_presets):
    model = keras_givt.MaskGITImageGenerator.from_preset("test_maskgit_tiny")
    assert model.sampling_defaults["num_steps"] == 3
    d = os.path.join(MASKGIT_FIXTURES, "maskgit_transformer")
    ids = np.load(os.path.join(d, "inputs.npz"))["input_ids"]
    want = np.load(os.path.join(d, "outputs.npz"))["logits"]
    np.testing.assert_allclose(_np(model.backbone(ids)), want, atol=1e-5, rtol=1e-4)
    d = os.path.join(MASKGIT_FIXTURES, "vqgan_tokenizer")
    images = np.load(os.path.join(d, "inputs.npz"))["images"]
    want = np.load(os.path.join(d, "outputs.npz"))["encoding_indices"]
    np.testing.assert_array_equal(_np(model.tokenizer.encode_to_indices(images)), want)
    images_out = _np(model.generate(labels=[3], seed=0))
    assert images_out.shape == (1, 8, 8, 3)
    shutil.rmtree(local_presets)  # Converted once: the published files are not needed again.
    again = keras_givt.MaskGITImageGenerator.from_preset("test_maskgit_tiny")
    np.testing.assert_allclose(_np(again.backbone(ids)), _np(model.backbone(ids)), rtol=1e-6)
    assert keras_givt.MaskGITBackbone.from_preset("test_maskgit_tiny").num_layers == 2
    tok = keras_givt.VQGANTokenizer.from_preset("test_vqgan_tiny")
    np.testing.assert_array_equal(_np(tok.encode_to_indices(images)), want)


def test_builtin_presets_are_listed():
    names = set(keras_givt.MaskGITImageGenerator.presets)
    assert {"maskgit_imagenet256", "maskgit_imagenet512"} <= names
    for entry in maskgit_presets.maskgit_presets.values():
        for url in entry["files"].values():
            assert url.startswith("https://storage.googleapis.com/maskgit-public/checkpoints/")
    assert {"vqgan_tokenizer_imagenet256", "vqgan_tokenizer_imagenet512"} <= set(
        preset_utils.PRESETS
    )
