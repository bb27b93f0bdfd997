"""`GIVTCausal.score` and `metrics.latent_bits_per_dim` (the CLI `evaluate` bits/dim)."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_givt import BetaVAE
from keras_givt import GIVTBackbone
from keras_givt import GIVTCausal
from keras_givt.metrics import bits_per_dim
from keras_givt.metrics import latent_bits_per_dim
from tests import helpers

IMAGE = 8  # 8x8 images -> 4x4 = 16 latent tokens of 4 dims (helpers.TINY)


def _model(per_channel_mixtures=False, num_labels=10, vae=False):
    keras.utils.set_random_seed(0)
    backbone = GIVTBackbone(
        **helpers.tiny_kwargs(
            num_mixtures=2, per_channel_mixtures=per_channel_mixtures, num_labels=num_labels
        )
    )
    rng = np.random.default_rng(0)
    for w in backbone.weights:
        w.assign((0.2 * rng.normal(size=w.shape)).astype("float32"))
    if vae:
        vae = BetaVAE(
            codeword_dim=4, code_len=16, filters=32, num_res_blocks=1, channel_multipliers=[1, 2]
        ).build_for_image_size(IMAGE)
    return GIVTCausal(backbone, vae=vae or None, seed=0)


def _latents(model, batch=3, seed=1):
    inputs = helpers.tiny_inputs(model.backbone, batch=batch, seed=seed)
    return inputs["tokens"], inputs.get("labels")


def _cli_latent_bits_per_dim(model, images, labels, batch_size=250):
    """The `evaluate` command's bits/dim before `GIVTCausal.score` (cli/commands.py, verbatim)."""
    total, count = 0.0, 0
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size]
        z = model.encode_images(x, sample=False)
        feed = {"tokens": z}
        if model.backbone.num_labels is not None:
            feed["labels"] = keras.ops.convert_to_tensor(
                labels[start : start + batch_size], "int32"
            )
        logits = model.backbone(feed, training=False)
        lp = keras.ops.convert_to_numpy(model.backbone.log_prob(logits, z))  # (B, L[, D])
        total += float(-lp.reshape(len(x), -1).sum())
        count += len(x)
    L, D = model.backbone.seq_len, model.backbone.out_dim
    nll = total / count
    return float(bits_per_dim(nll, L * D)), nll


@pytest.mark.parametrize("per_channel_mixtures", [False, True])
def test_bits_per_dim_is_the_backbone_nll_per_latent_dim(per_channel_mixtures):
    model = _model(per_channel_mixtures)
    bb = model.backbone
    tokens, labels = _latents(model)
    logits = bb({"tokens": tokens, "labels": labels}, training=False)
    log_prob = ops.convert_to_numpy(bb.log_prob(logits, tokens)).astype("float64")
    assert log_prob.shape == ((3, 16, 4) if per_channel_mixtures else (3, 16))
    manual = -log_prob.reshape(3, -1).sum(axis=1) / (bb.seq_len * bb.out_dim * math.log(2.0))

    bpd = ops.convert_to_numpy(model.score(tokens, labels))
    assert bpd.shape == (3,) and bpd.dtype == np.float32
    np.testing.assert_allclose(bpd, manual, rtol=1e-5)
    assert model.score(tokens, labels, scoring_mode="bits_per_dim").shape == (3,)

    per_token = ops.convert_to_numpy(model.score(tokens, labels, scoring_mode="log_prob"))
    assert per_token.shape == (3, 16)
    expected = log_prob.sum(axis=-1) if per_channel_mixtures else log_prob
    np.testing.assert_allclose(per_token, expected, rtol=1e-5, atol=1e-5)


def test_score_depends_on_the_label_and_unconditional_models_take_none():
    model = _model()
    tokens, labels = _latents(model)
    other = (labels + 1) % model.backbone.num_labels
    assert not np.allclose(
        ops.convert_to_numpy(model.score(tokens, labels)),
        ops.convert_to_numpy(model.score(tokens, other)),
    )
    unconditional = _model(num_labels=None)
    tokens, _ = _latents(unconditional)
    assert ops.convert_to_numpy(unconditional.score(tokens)).shape == (3,)


def test_latent_bits_per_dim_matches_the_old_cli_number():
    model = _model(vae=True)
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, size=(7, IMAGE, IMAGE, 3)).astype("float32")
    labels = rng.integers(0, 10, size=(7,)).astype("int32")
    # Batches of 3: two full batches and a partial one, as the CLI's --bpd-examples may give.
    old_bpd, old_nll = _cli_latent_bits_per_dim(model, images, labels, batch_size=3)
    bpd, nll = latent_bits_per_dim(model, images, labels, batch_size=3)
    assert (bpd, nll) == (old_bpd, old_nll)  # The same sums in the same order: bit-identical.
    assert bpd > 0 and math.isfinite(bpd)
    # The mean of the per-example scores is the same number.
    per_example = ops.convert_to_numpy(
        model.score(model.encode_images(images, sample=False), labels)
    )
    np.testing.assert_allclose(per_example.mean(), old_bpd, rtol=1e-5)
    progbar = keras.utils.Progbar(len(images), verbose=0)
    assert latent_bits_per_dim(model, images, labels, batch_size=250, progbar=progbar) == (
        pytest.approx(old_bpd, rel=1e-6),
        pytest.approx(old_nll, rel=1e-6),
    )
    assert progbar._seen_so_far == len(images)


def test_bad_score_arguments():
    model = _model()
    tokens, labels = _latents(model)
    with pytest.raises(ValueError, match="scoring_mode"):
        model.score(tokens, labels, scoring_mode="logits")
    with pytest.raises(ValueError, match="latents"):
        model.score(tokens[:, :8], labels)
    with pytest.raises(ValueError, match="class-conditional"):
        model.score(tokens)
    with pytest.raises(ValueError, match="unconditional"):
        _model(num_labels=None).score(tokens, labels)
