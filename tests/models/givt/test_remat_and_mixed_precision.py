"""`GIVTBackbone(remat=True)` and bf16 mixed precision.

Remat recomputes each decoder block in the backward pass instead of keeping
its activations: the loss, the gradients and the trained weights must be the
same as without it. The recomputation itself is checked per backend: on jax
the gradient's jaxpr holds one recomputing `cond` per block, and the compiled
gradient keeps fewer bytes of temporaries; on tensorflow and
torch the backward pass calls each block's forward a second time. With
dropout the recomputed blocks must draw the same masks as the forward pass
(and the seed generators advance as without remat).
"""

import functools

import keras
import numpy as np
import pytest
from keras import ops

from keras_givt import GIVTBackbone
from keras_givt import GIVTCausal
from keras_givt.layers.transformer_block import GIVTDecoderBlock
from keras_givt.models.givt.givt_loss import givt_nll
from tests import helpers

# Remat reruns the same ops on the same values; XLA may fuse the recomputed
# graph differently, so allow float32 rounding (measured: exactly equal).
RTOL, ATOL = 1e-6, 1e-7


def _backbone(remat, **overrides):
    keras.utils.set_random_seed(0)  # The same dropout seed states in every build.
    kwargs = helpers.tiny_kwargs(**overrides)
    return helpers.randomize_weights(GIVTBackbone(remat=remat, **kwargs), seed=1)


def _batch(backbone, batch=3, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.normal(size=(batch, backbone.seq_len, backbone.out_dim)).astype("float32")
    labels = rng.integers(0, backbone.num_labels, size=(batch,)).astype("int32")
    return tokens, labels


def _loss_and_grads(backbone, tokens, labels):
    """(loss, [gradients], [non-trainable values after the step], number of
    recomputations (`cond` equations, see `keras_givt/layers/remat.py`) in jax's
    gradient jaxpr or None)."""
    feed = {"tokens": tokens, "labels": labels}
    backend = keras.config.backend()
    keras.utils.set_random_seed(0)  # torch's global generator (its unseeded Dropout).
    if backend == "jax":
        import jax

        trainable = [v.value for v in backbone.trainable_variables]
        fixed = [v.value for v in backbone.non_trainable_variables]

        def loss_fn(trainable):
            logits, fixed_out = backbone.stateless_call(trainable, fixed, feed, training=True)
            return givt_nll(backbone, logits, ops.convert_to_tensor(tokens)), fixed_out

        jaxpr = jax.make_jaxpr(jax.grad(loss_fn, has_aux=True))(trainable).jaxpr
        remats = sum(e.primitive.name == "cond" for e in jaxpr.eqns)
        (loss, fixed_out), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(trainable)
        states = [np.asarray(v) for v in fixed_out]
        return float(loss), [np.asarray(g) for g in grads], states, remats
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = givt_nll(backbone, backbone(feed, training=True), ops.convert_to_tensor(tokens))
        grads = tape.gradient(loss, backbone.trainable_variables)
        grads = [tf.convert_to_tensor(g).numpy() for g in grads]
    else:
        loss = givt_nll(backbone, backbone(feed, training=True), ops.convert_to_tensor(tokens))
        loss.backward()
        grads = [v.value.grad.detach().cpu().numpy() for v in backbone.trainable_variables]
    states = [helpers.to_numpy(v) for v in backbone.non_trainable_variables]
    return float(loss), grads, states, None


@pytest.fixture
def block_calls(monkeypatch):
    """Counts `GIVTDecoderBlock.call` runs (patched before the blocks are built)."""
    calls = []
    original = GIVTDecoderBlock.call

    @functools.wraps(original)
    def counted(self, *args, **kwargs):
        calls.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(GIVTDecoderBlock, "call", counted)
    return calls


def test_remat_config_round_trip_and_default():
    plain = GIVTBackbone(**helpers.tiny_kwargs())
    assert plain.remat is False and plain.get_config()["remat"] is False
    config = GIVTBackbone(remat=True, **helpers.tiny_kwargs()).get_config()
    assert config["remat"] is True
    assert GIVTBackbone.from_config(config).remat is True
    # A config saved before the option existed still loads (remat off).
    del config["remat"]
    old = GIVTBackbone.from_config(config)
    assert old.remat is False
    assert all(block._remat_mode is None for block in old.decoder_blocks)
    with pytest.raises(TypeError, match="remat"):
        GIVTBackbone(remat="yes", **helpers.tiny_kwargs())


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_remat_gives_the_same_loss_and_gradients(block_calls, dropout):
    results = {}
    for remat in (False, True):
        backbone = _backbone(remat, num_decoder_layers=3, dec_dropout_rate=dropout)
        tokens, labels = _batch(backbone)
        block_calls.clear()
        results[remat] = _loss_and_grads(backbone, tokens, labels) + (len(block_calls),)
    loss0, grads0, states0, remats0, calls0 = results[False]
    loss1, grads1, states1, remats1, calls1 = results[True]
    np.testing.assert_allclose(loss1, loss0, rtol=RTOL, atol=ATOL)
    assert len(grads1) == len(grads0)
    for g1, g0 in zip(grads1, grads0):
        np.testing.assert_allclose(g1, g0, rtol=RTOL, atol=ATOL)
    # The dropout seed generators advanced alike (once per layer and step).
    for s1, s0 in zip(states1, states0):
        np.testing.assert_array_equal(s1, s0)
    if dropout:  # Dropout did act: the training loss is not the inference one.
        # (The gap depends on the random init: 7e-4 on tensorflow for one init,
        # against the 1e-6 tolerance of the comparison above.)
        tokens, labels = _batch(backbone)
        logits = backbone({"tokens": tokens, "labels": labels}, training=False)
        assert abs(float(givt_nll(backbone, logits, ops.convert_to_tensor(tokens))) - loss0) > 1e-4
    if keras.config.backend() == "jax":
        assert (remats0, remats1) == (0, 3)
    else:
        # Without remat each block runs once; with it the backward pass reruns it.
        assert calls0 == 3 and calls1 == 6, (calls0, calls1)


def test_remat_trains_to_the_same_weights():
    tokens, labels = helpers.digits_tokens(32)
    weights, losses = {}, {}
    for remat in (False, True):
        backbone = _backbone(remat, drop_labels_probability=0.1, dec_dropout_rate=0.2)
        model = GIVTCausal(backbone, seed=0)
        keras.utils.set_random_seed(0)  # Shuffling; torch's dropout generator.
        history = model.fit(
            {"latents": tokens, "labels": labels}, batch_size=16, epochs=1, verbose=0
        )
        losses[remat] = history.history["loss"]
        weights[remat] = [helpers.to_numpy(w) for w in model.backbone.weights]
    np.testing.assert_allclose(losses[True], losses[False], rtol=RTOL, atol=ATOL)
    for w1, w0 in zip(weights[True], weights[False]):
        np.testing.assert_allclose(w1, w0, rtol=1e-5, atol=1e-6)


def test_mixed_bfloat16_policy_trains_with_float32_mixture_maths():
    # With remat on: bf16 activations through the recomputed blocks too.
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")  # conftest resets it.
    backbone = _backbone(
        True, per_channel_mixtures=False, drop_labels_probability=0.1, dec_dropout_rate=0.2
    )
    assert backbone.compute_dtype == "bfloat16" and backbone.variable_dtype == "float32"
    tokens, labels = _batch(backbone, batch=4)
    logits = backbone({"tokens": tokens, "labels": labels})
    assert keras.backend.standardize_dtype(logits.dtype) == "bfloat16"
    log_prob = backbone.log_prob(logits, tokens)  # (B, L)
    assert keras.backend.standardize_dtype(log_prob.dtype) == "float32"
    assert np.all(np.isfinite(helpers.to_numpy(log_prob)))
    model = GIVTCausal(backbone, seed=0)
    loss = model.train_on_batch({"latents": tokens, "labels": labels})
    assert np.isfinite(loss)
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in backbone.weights)


@pytest.mark.skipif(
    keras.config.backend() != "jax",
    reason="reads XLA's compiled memory analysis; torch and tensorflow free the activations "
    "at run time (benchmarks/memory.py measures their peaks)",
)
def test_remat_shrinks_the_compiled_gradients_temporaries_on_jax():
    # Keras' plain `jax.checkpoint` left these at the no-remat size on XLA's
    # CPU compiler (remat.py). Blocks of 64 x 64 tokens keep activations far
    # above the weights' and gradients' bytes. With dropout, each extra block
    # must add little more than its saved input (XLA drew every block's
    # random bits at the start of the step and kept them).
    import jax

    def temporaries(remat, layers):
        backbone = _backbone(remat, num_decoder_layers=layers, seq_len=64, dec_dropout_rate=0.4)
        tokens, labels = _batch(backbone, batch=64)
        feed = {"tokens": tokens, "labels": labels}
        trainable = [v.value for v in backbone.trainable_variables]
        fixed = [v.value for v in backbone.non_trainable_variables]

        def loss_fn(trainable):
            logits, _ = backbone.stateless_call(trainable, fixed, feed, training=True)
            return givt_nll(backbone, logits, ops.convert_to_tensor(tokens))

        compiled = jax.jit(jax.grad(loss_fn)).lower(trainable).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    plain = {n: temporaries(False, n) for n in (2, 6)}
    remat = {n: temporaries(True, n) for n in (2, 6)}
    assert remat[6] < 0.5 * plain[6], (plain, remat)
    per_block_plain = (plain[6] - plain[2]) / 4
    per_block_remat = (remat[6] - remat[2]) / 4
    assert per_block_remat < 0.1 * per_block_plain, (plain, remat)
