"""VectorQuantizer: nearest code, straight-through gradient, MaskGIT's losses, restart."""

import os

import numpy as np
import pytest
from keras import ops

from keras_givt.conversion import maskgit
from keras_givt.layers.vector_quantizer import VectorQuantizer
from keras_givt.layers.vector_quantizer import codebook_statistics
from keras_givt.models.vqvae.vqgan_tokenizer import input_gradient
from tests.conftest import FIXTURES_DIR

VQGAN_FIXTURE = os.path.join(FIXTURES_DIR, "maskgit", "vqgan_tokenizer")


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _vq(k=8, d=3, **kwargs):
    vq = VectorQuantizer(k, **kwargs)
    vq.build((None, d))
    return vq


def test_nearest_code_and_lookup():
    vq = _vq()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    q, idx = vq(x)
    cb = _np(vq.codebook)
    want = np.argmin(((x[..., None, :] - cb) ** 2).sum(-1), -1)
    np.testing.assert_array_equal(_np(idx), want)
    np.testing.assert_allclose(_np(q), cb[want], rtol=1e-6)
    # The distance keeps MaskGIT's ‖a‖² − 2ab + ‖b‖² form.
    np.testing.assert_allclose(
        _np(vq.distances(x)), ((x[..., None, :] - cb) ** 2).sum(-1), atol=1e-5
    )


def test_straight_through_gradient():
    vq = _vq()
    rng = np.random.default_rng(1)
    x = ops.convert_to_tensor(rng.normal(size=(4, 3)).astype("float32"))
    w = ops.convert_to_tensor(rng.normal(size=(4, 3)).astype("float32"))
    # d/dx Σ w·q(x) = w: the decoder's gradient passes to the encoder unchanged.
    grad = input_gradient(lambda v: ops.sum(vq(v, training=True)[0] * w), x)
    np.testing.assert_allclose(_np(grad), _np(w), rtol=1e-6)
    # The commitment loss pulls x towards its (fixed) code: 2·β·(x − q) / size.
    q = _np(vq(x)[0])
    grad = input_gradient(lambda v: vq.quantizer_losses(v)["e_latent_loss"], x)
    np.testing.assert_allclose(_np(grad), 2 * 0.25 * (_np(x) - q) / q.size, rtol=1e-4, atol=1e-7)


def test_losses_match_maskgit_fixture():
    params = maskgit.read_params(os.path.join(VQGAN_FIXTURE, "checkpoint"))
    out = dict(np.load(os.path.join(VQGAN_FIXTURE, "outputs.npz")))
    vq = VectorQuantizer(32, commitment_cost=0.25, entropy_loss_ratio=0.1, entropy_temperature=0.01)
    vq.build((None, 8))
    vq.codebook.assign(params["quantizer/codebook"])
    losses = vq.quantizer_losses(out["encoder_features"])
    for key in ("quantizer_loss", "e_latent_loss", "q_latent_loss", "entropy_loss"):
        np.testing.assert_allclose(_np(losses[key]), out["train/" + key], rtol=1e-4, atol=1e-5)
    # add_loss in training mode registers the same total.
    vq(out["encoder_features"], training=True)
    np.testing.assert_allclose(_np(vq.losses[0]), out["train/quantizer_loss"], rtol=1e-4)


def test_entropy_loss_prefers_confident_uniform_usage():
    k = 4
    vq = _vq(k=k, d=2, entropy_loss_ratio=1.0, entropy_temperature=0.01)
    vq.codebook.assign(np.array([[0, 0], [10, 0], [0, 10], [10, 10]], "float32"))
    spread = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], "float32")
    collapsed = np.zeros((4, 2), "float32")
    e_spread = float(_np(vq.quantizer_losses(spread)["entropy_loss"]))
    e_coll = float(_np(vq.quantizer_losses(collapsed)["entropy_loss"]))
    assert e_spread < e_coll
    np.testing.assert_allclose(e_spread, -np.log(k), atol=1e-3)


def test_codebook_statistics():
    perplexity, usage = codebook_statistics(np.array([[0, 1], [2, 3]]), 8)
    np.testing.assert_allclose(_np(perplexity), 4.0, rtol=1e-5)
    np.testing.assert_allclose(_np(usage), 0.5)
    perplexity, usage = codebook_statistics(np.zeros((3, 3), "int32"), 8)
    np.testing.assert_allclose(_np(perplexity), 1.0, rtol=1e-5)


def test_dead_code_restart():
    vq = _vq(k=8, d=2, dead_code_threshold=0.5, usage_decay=0.5)
    cb = np.stack([np.arange(8.0), np.zeros(8)], 1).astype("float32") * 10
    vq.codebook.assign(cb)
    x = np.random.default_rng(0).normal(size=(64, 2)).astype("float32") * 0.1 + [100.0, 0.0]
    for _ in range(6):  # Everything lands on code 7.
        vq(x, training=True)
    usage = _np(vq.usage)
    assert usage[7] > 0.9 and usage[:7].max() < 0.05
    assert vq.restart_dead_codes() == 7
    new = _np(vq.codebook)
    np.testing.assert_array_equal(new[7], cb[7])
    # Restarted codes sit on encoder outputs of the latest batch.
    assert np.abs(new[:7] - [100.0, 0.0]).max() < 1.0
    assert vq.restart_dead_codes() == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="entropy_loss_type"):
        VectorQuantizer(8, entropy_loss_type="gumbel")
    with pytest.raises(TypeError, match="codebook_size"):
        VectorQuantizer(8.5)
    with pytest.raises(ValueError, match="dead_code_threshold=0"):
        _vq().restart_dead_codes()
