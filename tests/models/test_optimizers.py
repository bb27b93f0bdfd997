"""PerVariableAdam / PerVariableAdamW: Keras' Adam numbers, one variable at a time on torch."""

import keras
import numpy as np
import pytest

import keras_givt
from keras_givt.models.givt.givt_causal import GIVTCausal
from keras_givt.models.optimizers import PerVariableAdam
from keras_givt.models.optimizers import PerVariableAdamW
from tests import helpers

PAIRS = [
    (keras.optimizers.Adam, PerVariableAdam, {}),
    (keras.optimizers.AdamW, PerVariableAdamW, {"weight_decay": 0.05, "beta_2": 0.96}),
]


def _trained_weights(optimizer):
    keras.utils.set_random_seed(0)
    model = GIVTCausal(keras_givt_backbone(), seed=0)
    model.compile(optimizer=optimizer)
    tokens, labels = helpers.digits_tokens(64)
    model.fit(
        {"latents": tokens, "labels": labels}, batch_size=4, epochs=1, shuffle=False, verbose=0
    )
    return [helpers.to_numpy(v) for v in model.trainable_variables], model.optimizer


def keras_givt_backbone():
    return keras_givt.GIVTBackbone(**helpers.tiny_kwargs(num_mixtures=2))


@pytest.mark.parametrize("keras_cls,ours,kwargs", PAIRS, ids=["adam", "adamw"])
def test_same_updates_as_keras(keras_cls, ours, kwargs):
    # 16 steps of a GIVT with global-norm clipping and a schedule, from one start.
    schedule = keras.optimizers.schedules.CosineDecay(3e-3, 16, warmup_target=None)
    reference, _ = _trained_weights(keras_cls(schedule, global_clipnorm=1.0, **kwargs))
    schedule = keras.optimizers.schedules.CosineDecay(3e-3, 16, warmup_target=None)
    weights, optimizer = _trained_weights(ours(schedule, global_clipnorm=1.0, **kwargs))
    # Our class runs as itself (Keras' torch backend would swap in its foreach class a
    # `keras.optimizers.Adam`, not a subclass).
    assert type(optimizer) is ours
    assert int(helpers.to_numpy(optimizer.iterations)) == 16
    changed = 0
    for a, b in zip(reference, weights):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
        changed += int(np.any(a != 0))
    assert changed > len(reference) // 2


@pytest.mark.parametrize("keras_cls,ours,kwargs", PAIRS, ids=["adam", "adamw"])
def test_serialization_round_trip(keras_cls, ours, kwargs):
    optimizer = ours(1e-3, global_clipnorm=1.0, **kwargs)
    config = keras.optimizers.serialize(optimizer)
    assert config["registered_name"] == f"keras_givt>{ours.__name__}"
    restored = keras.optimizers.deserialize(config)
    assert type(restored) is ours
    assert restored.get_config() == optimizer.get_config()
    # The variable names (and so saved optimizer state) are Keras' own.
    assert restored.name == keras_cls(1e-3).name


@pytest.mark.parametrize("keras_cls,ours,kwargs", PAIRS, ids=["adam", "adamw"])
@pytest.mark.parametrize("scale", [30.0, 0.2, float("nan")], ids=["clipped", "unclipped", "nan"])
def test_global_norm_clipping_as_keras(keras_cls, ours, kwargs, scale):
    # Gradients of global norm 30 (clipped to 1), 0.2 (left alone) and NaN: the
    # clipping ours applies inside `update_step` gives Keras's updates. A large
    # epsilon makes Adam's step depend on the gradients' scale.
    rng = np.random.default_rng(0)
    start = [rng.normal(size=s).astype("float32") for s in ((3, 4), (4,), (2, 2, 2))]
    grads = [rng.normal(size=v.shape).astype("float32") for v in start]
    norm = np.sqrt(sum(float((g**2).sum()) for g in grads))
    grads = [g * (scale / norm) for g in grads]
    results = []
    for cls in (keras_cls, ours):
        variables = [keras.Variable(v) for v in start]
        optimizer = cls(0.1, global_clipnorm=1.0, epsilon=1.0, **kwargs)
        for _ in range(2):
            optimizer.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
        results.append([helpers.to_numpy(v) for v in variables])
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
    if np.isnan(scale):
        assert all(np.isnan(b).all() for b in results[1])
    else:
        assert all(np.abs(b - v).max() > 1e-5 for b, v in zip(results[1], start))


def test_tasks_default_to_them():
    model = GIVTCausal(keras_givt_backbone(), seed=0)
    model.compile()
    assert type(model.optimizer) is PerVariableAdam
    assert keras_givt.MaskGITImageGenerator._default_optimizer(None).__class__ is PerVariableAdamW


@pytest.mark.skipif(keras.config.backend() != "torch", reason="torch's `.grad` buffers")
def test_torch_train_step_frees_the_gradients():
    # Keras' torch trainer would keep them until after the next forward pass.
    model = GIVTCausal(keras_givt_backbone(), seed=0)
    model.compile()
    tokens, labels = helpers.digits_tokens(8)
    before = [helpers.to_numpy(v) for v in model.trainable_variables]
    for _ in range(2):
        model.train_on_batch({"latents": tokens, "labels": labels})
    assert all(v.value.grad is None for v in model.trainable_variables)
    after = [helpers.to_numpy(v) for v in model.trainable_variables]
    assert sum(int(np.any(a != b)) for a, b in zip(before, after)) > len(before) // 2


def _numpy_adam(start, grads, steps, lr=0.01, b1=0.9, b2=0.999, eps=1e-7, amsgrad=False):
    """Adam's formula (Keras' form) in float64."""
    out = []
    for x, g in zip(start, grads):
        x, g = x.astype("float64"), g.astype("float64")
        m, v, v_hat = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
        for t in range(1, steps + 1):
            m += (g - m) * (1 - b1)
            v += (g * g - v) * (1 - b2)
            v_hat = np.maximum(v_hat, v)
            alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
            x = x - alpha * m / (np.sqrt(v_hat if amsgrad else v) + eps)
        out.append(x)
    return out


@pytest.mark.parametrize("amsgrad", [False, True], ids=["adam", "amsgrad"])
def test_groups_and_mixed_dtypes_follow_adams_formula(monkeypatch, amsgrad):
    # float32 and float16 variables interleaved, groups of a few elements (several groups of
    # each dtype on torch). The float32 ones follow Adam's formula in float64; the float16
    # ones move as they do when updated alone (no group mixes dtypes).
    from keras_givt.models import optimizers

    monkeypatch.setattr(optimizers, "_TORCH_GROUP_ELEMENTS", 20)
    rng = np.random.default_rng(1)
    shapes = [(3, 4), (4,), (5, 3), (2, 2, 2), (7,), (6, 6)]
    dtypes = ["float32", "float16", "float32", "float16", "float32", "float32"]
    start = [rng.normal(size=s).astype("float32") for s in shapes]
    grads = [rng.normal(size=s).astype("float32") for s in shapes]

    def run(indices):
        variables = [keras.Variable(start[i], dtype=dtypes[i]) for i in indices]
        optimizer = PerVariableAdam(0.01, amsgrad=amsgrad)
        for _ in range(3):
            optimizer.apply([keras.ops.cast(grads[i], dtypes[i]) for i in indices], variables)
        return [helpers.to_numpy(keras.ops.cast(v, "float32")) for v in variables]

    together = run(range(len(shapes)))
    half = [i for i, d in enumerate(dtypes) if d == "float16"]
    alone = dict(zip(half, run(half)))
    expected = _numpy_adam(start, grads, 3, amsgrad=amsgrad)
    for i, got in enumerate(together):
        if dtypes[i] == "float16":
            np.testing.assert_array_equal(got, alone[i])
        else:
            np.testing.assert_allclose(got, expected[i], rtol=1e-5, atol=1e-6)
            assert np.abs(got - start[i]).max() > 0.02  # three steps of ~0.01
