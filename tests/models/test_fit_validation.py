"""fit/evaluate: preprocessing, batch checks before tracing, non-finite loss stop,
frozen image models, compile arguments and summary."""

import io

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_givt
from keras_givt import BetaVAE
from keras_givt import GIVTBackbone
from keras_givt import GIVTCausal
from keras_givt.models.image_preprocessor import ImagePreprocessor
from keras_givt.models.training_checks import NonFiniteLossError
from tests import helpers

# Tiny sizes: 8x8x3 images, a 2x-downsampling VAE -> 4x4 = 16 latents of 4 channels.
IMAGE = 8


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _vae():
    vae = BetaVAE(
        codeword_dim=4, code_len=16, filters=32, num_res_blocks=1, channel_multipliers=[1, 2]
    )
    return vae.build_for_image_size(IMAGE)


def _model(preprocessor=True, vae=True, **kwargs):
    keras.utils.set_random_seed(0)
    backbone = GIVTBackbone(**helpers.tiny_kwargs(num_mixtures=2, drop_labels_probability=0.1))
    return GIVTCausal(
        backbone,
        vae=_vae() if vae else None,
        preprocessor=ImagePreprocessor(IMAGE, resize_mode="pad") if preprocessor else None,
        seed=0,
        **kwargs,
    )


def _raw(n=16, seed=0, channel_axis=True):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 28, 28, 1) if channel_axis else (n, 28, 28), dtype=np.uint8)
    return x, rng.integers(0, 10, (n,)).astype("int64")


def _weights(model):
    return [_np(v) for v in model.trainable_variables]


def test_fit_on_raw_uint8_images_through_the_preprocessor():
    model = _model()
    x, y = _raw(16)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)  # (B, 28, 28, 1) uint8 + labels.
    before = _weights(model)
    history = model.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(a, b) for a, b in zip(before, _weights(model)))
    x2, y2 = _raw(8, seed=1, channel_axis=False)  # (B, 28, 28) arrays, as Keras' datasets give.
    history = model.fit(x2, y2, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


# (batch as the user gives it, error pattern, whether the model has a preprocessor)
_BAD_FIRST_BATCHES = {
    "wrong key": (lambda x, y: {"image": x, "labels": y}, r"unexpected key\(s\) \['image'\]", True),
    "no labels": (lambda x, y: {"images": x}, r"needs x\['labels'\]", True),
    "wrong shape": (
        lambda x, y: {"latents": np.zeros((len(y), 15, 4), "float32"), "labels": y},
        r"x\['latents'\]` must have shape \(B, 16, 4\).*\(8, 15, 4\)",
        True,
    ),
    "0-255 floats": (
        lambda x, y: {"images": np.repeat(x[:, :8, :8].astype("float32"), 3, -1), "labels": y},
        r"must be in \[-1, 1\].*max=2\d\d.*0-255 pixels.*preprocessor.*x / 127.5 - 1",
        False,
    ),
    "labels out of range": (
        lambda x, y: {"images": x, "labels": y + 10},
        r"must be in \[0, 10\)",
        True,
    ),
    "float labels": (
        lambda x, y: {"images": x, "labels": y.astype("float32")},
        r"must be integers",
        True,
    ),
    "pairs without preprocessor": (lambda x, y: (x, y), r"takes dicts", False),
    "NaN latents": (
        lambda x, y: {"latents": np.full((len(y), 16, 4), np.nan, "float32"), "labels": y},
        r"x\['latents'\]` must be finite",
        True,
    ),
}


def test_bad_first_batches_are_refused_before_anything_is_traced():
    x, y = _raw(8)
    models = {True: _model(preprocessor=True), False: _model(preprocessor=False)}
    before = {k: _weights(m) for k, m in models.items()}
    for case, (make, match, with_preprocessor) in _BAD_FIRST_BATCHES.items():
        model = models[with_preprocessor]
        ds = tf.data.Dataset.from_tensors(make(x, y))
        with pytest.raises(ValueError, match="Batch 1 of the training data: .*" + match):
            model.fit(ds, verbose=0)
        if case == "labels out of range":
            with pytest.raises(ValueError, match="Batch 1 of the evaluation data: .*" + match):
                model.evaluate(ds, verbose=0)
    for key, model in models.items():
        # Nothing was touched (on jax a failed first step would leave the variables empty).
        assert all(v.value is not None for v in model.variables)
        for a, b in zip(before[key], _weights(model)):
            np.testing.assert_array_equal(a, b)
    # And the model still trains and runs.
    model = models[True]
    history = model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(4), verbose=0)
    assert np.isfinite(history.history["loss"][0])
    out = model({"latents": np.zeros((2, 16, 4), "float32"), "labels": np.array([1, 2])})
    assert np.all(np.isfinite(_np(out["logits"])))


def test_a_bad_later_batch_is_named_and_the_weights_stay_good():
    model = _model(preprocessor=False, vae=False)
    tokens, labels = helpers.digits_tokens(12)
    labels[9] = 10  # Batch 3 (of 4 examples each).
    with pytest.raises(
        ValueError,
        match=r"Batch 3 of the training data: `x\['labels'\]` must be in \[0, 10\).*\[10\]",
    ):
        model.fit({"latents": tokens, "labels": labels}, batch_size=4, shuffle=False, verbose=0)
    assert all(np.all(np.isfinite(w)) for w in _weights(model))
    history = model.fit(
        {"latents": tokens[:8], "labels": labels[:8]},
        batch_size=4,
        validation_data={"latents": tokens[:4], "labels": labels[:4]},
        verbose=0,
    )
    assert np.isfinite(history.history["val_loss"][0])
    with pytest.raises(ValueError, match=r"Batch 3 of the validation data: .*must be in \[0, 10\)"):
        model.fit(
            {"latents": tokens[:8], "labels": labels[:8]},
            batch_size=4,
            verbose=0,
            validation_data={"latents": tokens, "labels": labels},
        )
    with pytest.raises(ValueError, match=r"Batch 1 of the evaluation data: .*must be in \[0, 10\)"):
        model.evaluate({"latents": tokens, "labels": labels}, batch_size=12, verbose=0)


def test_non_finite_loss_stops_training_and_undoes_the_bad_step():
    model = _model(preprocessor=False, vae=False)
    model.optimizer.build(model.trainable_variables)
    state = list(model.variables) + list(model.optimizer.variables)
    start = [_np(v) for v in state]
    tokens, labels = helpers.digits_tokens(12)
    huge = tokens.copy()
    huge[8:] *= 1e30  # Finite inputs, but an infinite NLL in step 3.
    with pytest.raises(
        NonFiniteLossError, match=r"epoch 1, step 3: the loss is (nan|inf).*after epoch 1, step 2"
    ):
        model.fit({"latents": huge, "labels": labels}, batch_size=4, shuffle=False, verbose=0)
    stopped = _weights(model)
    assert all(np.all(np.isfinite(w)) for w in stopped)
    # The state equals that of a run of the two good steps from the same start.
    for v, value in zip(state, start):
        v.assign(value)
    model.fit({"latents": tokens[:8], "labels": labels[:8]}, batch_size=4, shuffle=False, verbose=0)
    for a, b in zip(stopped, _weights(model)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_an_update_to_non_finite_weights_is_undone_from_the_last_finite_state():
    # Step 1's loss is finite but its update (infinite learning rate) makes the
    # weights non-finite; step 2's loss is then NaN. The guard never copied the
    # non-finite state, so it puts back the state from the start of training.
    model = _model(preprocessor=False, vae=False)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=float("inf")))
    model.optimizer.build(model.trainable_variables)
    start = _weights(model)
    tokens, labels = helpers.digits_tokens(8)
    with pytest.raises(
        NonFiniteLossError,
        match=r"epoch 1, step 2: the loss is (nan|inf).*at the start of training",
    ):
        model.fit({"latents": tokens, "labels": labels}, batch_size=4, shuffle=False, verbose=0)
    for a, b in zip(_weights(model), start):
        np.testing.assert_array_equal(a, b)


def test_frozen_image_model_is_not_trainable_on_any_backend():
    # Deserialized (trainable=False in its config, built afterwards), as from a preset.
    model = GIVTCausal.from_config(_model().get_config())
    backbone_count = len(model.backbone.trainable_variables)
    assert backbone_count == 28  # Same number on jax, tensorflow and torch.
    assert len(model.trainable_variables) == backbone_count
    assert not any(v.trainable for v in model.vae.weights)
    model.optimizer.build(model.trainable_variables)
    # Adam: `iterations`, `learning_rate` and two slots per trainable variable (none for the VAE).
    assert len(model.optimizer.variables) == 2 + 2 * backbone_count


def test_compile_refuses_a_loss_and_metrics_it_would_ignore():
    model = _model(vae=False, preprocessor=False)
    with pytest.raises(
        ValueError,
        match=r"`loss` cannot be set: GIVTCausal trains on the GIVT mixture .*loss='mse'",
    ):
        model.compile(loss="mse")
    with pytest.raises(ValueError, match=r"`metrics` are not supported.*metrics=\['accuracy'\]"):
        model.compile(metrics=["accuracy"])
    with pytest.raises(ValueError, match="loss_weights"):
        model.compile(loss_weights=[1.0])
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="auto", metrics=[])
    assert isinstance(model.optimizer, keras.optimizers.SGD)


def test_summary_of_a_task_built_from_config_has_real_shapes():
    model = GIVTCausal.from_config(_model().get_config())
    out = io.StringIO()
    model.summary(print_fn=lambda line, line_break=True: out.write(line + "\n"), line_length=120)
    text = out.getvalue()
    assert "?" not in text, text
    assert f"(None, {IMAGE}, {IMAGE}, 3)" in text and "(None, 16, " in text, text
    assert model.losses == []


def test_maskgit_image_generator_batches_are_checked():
    tok = keras_givt.VQGANTokenizer(
        filters=32, num_res_blocks=1, channel_multipliers=[1, 2], embedding_dim=4, codebook_size=32
    ).build_for_image_size(IMAGE)
    backbone = keras_givt.MaskGITBackbone(
        codebook_size=32,
        num_classes=10,
        seq_len=16,
        hidden_size=16,
        num_layers=1,
        num_heads=2,
        intermediate_size=32,
    )
    model = keras_givt.MaskGITImageGenerator(
        backbone, tok, preprocessor=ImagePreprocessor(IMAGE, output_range=(0, 1))
    )
    assert len(model.trainable_variables) == len(backbone.trainable_variables)
    x, y = _raw(8)
    with pytest.raises(ValueError, match=r"Batch 1 .*`x\['tokens'\]` must be in \[0, 32\)"):
        model.fit({"tokens": np.full((8, 16), 40), "labels": y}, verbose=0)
    with pytest.raises(ValueError, match="`loss` cannot be set"):
        model.compile(loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_uvim_batches_are_checked():
    from tests.models.uvim import helpers as uvim_helpers

    model = uvim_helpers.tiny_uvim()
    images, maps = uvim_helpers.panoptic_data(8)
    assert len(model.trainable_variables) == len(model.backbone.trainable_variables)
    cases = [
        ((images * 127.5 + 127.5, maps), r"Batch 1 .*`x` must be in \[-1, 1\].*0-255 pixels"),
        ((images[:, :8], maps), r"`x` must have shape \(B, 16, 16, 3\)"),
        ((images, maps + 5), r"`y\[..., 0\] \(semantics\)` must be in \[0, 5\)"),
        ((images, None), r"needs \(images, targets\) pairs"),
    ]
    for (x, y), match in cases:
        with pytest.raises(ValueError, match=match):
            model.fit(x, y, batch_size=8, verbose=0)
    # 0-255 images are fine through a preprocessor (UViM keeps the targets as `y`).
    model.preprocessor = ImagePreprocessor(16, pack_labels=False)
    history = model.fit((images * 127.5 + 127.5).astype("uint8"), maps, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_a_step_that_fails_to_trace_leaves_the_variables_in_place(monkeypatch):
    model = _model(preprocessor=False, vae=False)
    tokens, labels = helpers.digits_tokens(8)
    before = _weights(model)

    def broken(*args, **kwargs):
        raise RuntimeError("broken loss")

    monkeypatch.setattr(model, "compute_loss", broken)
    with pytest.raises(RuntimeError, match="broken loss"):
        model.fit({"latents": tokens, "labels": labels}, batch_size=4, verbose=0)
    monkeypatch.undo()
    for a, b in zip(before, _weights(model)):  # On jax they were purged by the failed step.
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(
        model.evaluate({"latents": tokens, "labels": labels}, batch_size=4, verbose=0)
    )
