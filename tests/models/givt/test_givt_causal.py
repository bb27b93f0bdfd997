import json

import keras
import numpy as np
import pytest
from keras import ops

from keras_givt import GIVTBackbone
from keras_givt import GIVTCausal
from keras_givt.mixture import guidance
from keras_givt.samplers.autoregressive import ar_generate
from tests import helpers


def _np(x):
    return ops.convert_to_numpy(x)


def _model(seed=0, **overrides):
    return GIVTCausal(helpers.tiny_guided_backbone(seed=seed, **overrides), seed=seed)


def _full_log_prob(model, tokens, labels, temperature=1.0, temperature_probs=1.0):
    """Log-likelihood of `tokens` from ONE full forward pass (no cache)."""
    bb = model.backbone
    feed = {"tokens": ops.convert_to_tensor(tokens)}
    if bb.num_labels is not None:
        feed["labels"] = ops.convert_to_tensor(labels, "int32")
    logits = bb(feed)
    lp = bb.log_prob(logits, tokens, temperature, temperature_probs)
    return _np(ops.sum(ops.reshape(lp, (tokens.shape[0], -1)), axis=1))


@pytest.mark.parametrize("temperature", [1.0, 0.8])
def test_cached_generation_equals_full_forward(temperature):
    model = _model()
    labels = np.array([1, 4, 7], "int32")
    tokens, lp = model.generate(
        labels=labels,
        seed=3,
        temperature=temperature,
        temperature_probs=1.2,
        return_latents=True,
        return_log_probs=True,
    )
    want = _full_log_prob(model, _np(tokens), labels, temperature, 1.2)
    np.testing.assert_allclose(_np(lp), want, rtol=1e-4, atol=1e-3)


def test_unconditional_generation():
    model = _model(num_labels=None, drop_labels_probability=0.0, per_channel_mixtures=True)
    tokens, lp = model.generate(num_samples=2, seed=0, return_latents=True, return_log_probs=True)
    assert tuple(tokens.shape) == (2, 16, 4)
    np.testing.assert_allclose(
        _np(lp), _full_log_prob(model, _np(tokens), None), rtol=1e-4, atol=1e-3
    )


def test_seeded_reproducibility():
    model = _model()
    a = _np(model.generate(labels=[2, 3], seed=11, return_latents=True))
    b = _np(model.generate(labels=[2, 3], seed=11, return_latents=True))
    c = _np(model.generate(labels=[2, 3], seed=12, return_latents=True))
    d = _np(model.generate(labels=[2, 3], return_latents=True))  # continues the stream
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3 and np.abs(a - d).max() > 1e-3


def test_no_retrace_on_numeric_arguments():
    Counting, traces = helpers.counting_task(GIVTCausal)
    base = _model()
    model = Counting(base.backbone, seed=0)
    model.generate(labels=[1, 2], seed=0, temperature=1.0, cfg_weight=0.4, return_latents=True)
    n = len(traces)
    model.generate(
        labels=[3, 4],
        seed=1,
        temperature=0.7,
        temperature_probs=2.0,
        cfg_weight=0.1,
        return_latents=True,
    )
    assert len(model.generate_functions) == 1
    if keras.config.backend() != "torch":  # torch runs eagerly (no tracing).
        assert n == 1 and len(traces) == 1
    model.compile()  # `compile()` resets the compiled functions.
    assert model.generate_functions == {}


def test_prefix_completion():
    model = _model()
    prefix = np.random.default_rng(0).normal(size=(2, 6, 4)).astype("float32")
    out = _np(model.generate(labels=[1, 2], seed=0, prefix=prefix, return_latents=True))
    np.testing.assert_array_equal(out[:, :6], prefix)
    free = _np(model.generate(labels=[1, 2], seed=0, return_latents=True))
    assert np.abs(out[:, 6:] - free[:, 6:]).max() > 1e-3  # Later tokens depend on the prefix.


def test_beam_search_returns_highest_likelihood_beam():
    model = _model()
    bb = model.backbone
    labels = ops.convert_to_tensor(np.array([1, 5], "int32"))
    model._set_seed(4)
    beams, scores = ar_generate(
        bb, labels, 2, model.seed_generator, beam_size=3, fan_size=4, return_all_beams=True
    )
    beams, scores = _np(beams), _np(scores)
    assert beams.shape == (2, 3, 16, 4)
    # Scores are the true log-likelihoods of each beam (cache reordering is right).
    for k in range(3):
        want = _full_log_prob(model, beams[:, k], np.array([1, 5]))
        np.testing.assert_allclose(scores[:, k], want, rtol=1e-4, atol=1e-3)
    model._set_seed(4)
    best, best_lp = ar_generate(bb, labels, 2, model.seed_generator, beam_size=3, fan_size=4)
    np.testing.assert_allclose(_np(best_lp), scores.max(1), rtol=1e-6)
    np.testing.assert_array_equal(_np(best), beams[np.arange(2), scores.argmax(1)])
    # And better than plain sampling on average.
    _, lp = model.generate(labels=[1, 5] * 4, seed=4, return_latents=True, return_log_probs=True)
    assert scores.max(1).mean() > _np(lp).mean()


def test_beam_search_with_cfg_and_stochastic_beams():
    model = _model()
    z, lp = model.generate(
        labels=[1, 5],
        seed=0,
        beam_size=2,
        fan_size=3,
        cfg_weight=0.4,
        stochastic_beams=True,
        return_latents=True,
        return_log_probs=True,
    )
    assert tuple(z.shape) == (2, 16, 4) and np.all(np.isfinite(_np(lp)))


def test_label_dropout_is_applied_in_training():
    model = _model(drop_labels_probability=1.0)
    tokens, labels = helpers.digits_tokens(4)
    out = model({"latents": tokens, "labels": labels}, training=True)
    nolabel = np.full(4, model.backbone.special_ids["nolabel"], "int32")
    want = model.backbone({"tokens": tokens, "labels": nolabel})
    np.testing.assert_allclose(_np(out["logits"]), _np(want), atol=1e-5)
    out = model({"latents": tokens, "labels": labels}, training=False)
    np.testing.assert_allclose(
        _np(out["logits"]), _np(model.backbone({"tokens": tokens, "labels": labels})), atol=1e-5
    )


def test_fit_on_digits_lowers_nll():
    tokens, labels = helpers.digits_tokens(256)
    backbone = GIVTBackbone(
        **helpers.tiny_kwargs(
            num_mixtures=2, per_channel_mixtures=True, drop_labels_probability=0.1
        )
    )
    model = GIVTCausal(backbone, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    data = {"latents": tokens, "labels": labels}
    before = model.evaluate(data, batch_size=64, verbose=0)
    model.fit(data, batch_size=32, epochs=4, verbose=0)
    after = model.evaluate(data, batch_size=64, verbose=0)
    assert after < before - 0.2, (before, after)


def test_fit_on_tf_data():
    import tensorflow as tf

    tokens, labels = helpers.digits_tokens(64)
    ds = tf.data.Dataset.from_tensor_slices({"latents": tokens, "labels": labels}).batch(16)
    model = _model()
    history = model.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_db_cfg_sample_moments():
    # Normalisable target: exact product Gaussian, checked by numerical integration.
    lc, sc, lu, su, w = 0.3, 0.8, -0.5, 1.5, 0.4
    params_c = {
        "head_type": "per_channel",
        "mixture_logits": np.zeros((20000, 1, 1), "float32"),
        "loc": np.full((20000, 1, 1), lc, "float32"),
        "scale": np.full((20000, 1, 1), sc, "float32"),
    }
    params_u = dict(
        params_c,
        loc=np.full((20000, 1, 1), lu, "float32"),
        scale=np.full((20000, 1, 1), su, "float32"),
    )
    cfg = guidance.CFGDensity(params_c, params_u, w)
    x = _np(cfg.sample(seed=keras.random.SeedGenerator(0)))[:, 0]
    mean, std = guidance.guided_log_prob_moments(lc, sc, lu, su, w)
    assert abs(x.mean() - mean) < 0.02 and abs(x.std() - std) < 0.02, (x.mean(), mean, x.std(), std)
    # Guidance pushes away from the unconditional mode.
    assert mean > lc
    # Non-normalisable target (scale_u << scale_c): big_vision's rejection fallback, finite.
    params_u2 = dict(params_u, scale=np.full((20000, 1, 1), 0.2, "float32"))
    cfg2 = guidance.CFGDensity(params_c, params_u2, w)
    assert not np.any(_np(cfg2.exact_params()[2]))
    y = _np(cfg2.sample(seed=keras.random.SeedGenerator(1)))
    assert np.all(np.isfinite(y)) and np.abs(y - lc).max() <= 10 * 2 * sc + 1e-3


def test_task_serialization_and_save(tmp_path):
    model = _model()
    config = model.get_config()
    clone = GIVTCausal.from_config(json.loads(json.dumps(config)))
    assert clone.backbone.get_config() == model.backbone.get_config()
    path = str(tmp_path / "causal.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    tokens, labels = helpers.digits_tokens(2)
    np.testing.assert_allclose(
        _np(restored({"latents": tokens, "labels": labels})["logits"]),
        _np(model({"latents": tokens, "labels": labels})["logits"]),
        atol=1e-5,
    )
    preset = str(tmp_path / "preset")
    model.save_to_preset(preset)
    loaded = GIVTCausal.from_preset(preset)
    np.testing.assert_allclose(
        _np(loaded({"latents": tokens, "labels": labels})["logits"]),
        _np(model({"latents": tokens, "labels": labels})["logits"]),
        atol=1e-5,
    )


def test_bad_generate_arguments():
    model = _model()
    with pytest.raises(ValueError, match=r"labels.*\[0, 10\).*\[12\]"):
        model.generate(labels=[1, 12])
    with pytest.raises(ValueError, match="beam_size"):
        model.generate(labels=[1], beam_size=0)
    with pytest.raises(ValueError, match="prefix"):
        model.generate(labels=[1], prefix=np.zeros((1, 3, 5), "float32"))
    with pytest.raises(TypeError, match="seed"):
        model.generate(labels=[1], seed="x")
    plain = GIVTCausal(GIVTBackbone(**helpers.tiny_kwargs()))
    with pytest.raises(ValueError, match="drop_labels_probability"):
        plain.generate(labels=[1], cfg_weight=0.4)
    with pytest.raises(ValueError, match="style='ar'"):
        GIVTCausal(GIVTBackbone(**helpers.tiny_kwargs(style="masked")))
    with pytest.raises(ValueError, match="no VAE"):
        model.generate(labels=[1])


_PARALLEL_SCRIPT = """
import json, numpy as np, keras
from keras_givt import GIVTBackbone, GIVTCausal
from tests import helpers
devices = keras.distribution.list_devices("cpu")
tokens, labels = helpers.digits_tokens(64)
data = {"latents": tokens, "labels": labels}
out = {}
kw = helpers.tiny_kwargs(emb_dim=32, num_heads=4, mlp_dim=64, drop_labels_probability=0.1)
dp = keras.distribution.DataParallel(devices=devices)
with dp.scope():
    m = GIVTCausal(GIVTBackbone(**kw), seed=0)
    out["dp"] = m.fit(data, batch_size=16, epochs=2, verbose=0).history["loss"]
mesh = keras.distribution.DeviceMesh((2, 2), ["batch", "model"], devices)
mp = keras.distribution.ModelParallel(layout_map=GIVTBackbone.get_layout_map(mesh), batch_dim_name="batch")
with mp.scope():
    m = GIVTCausal(GIVTBackbone(**kw), seed=0)
    out["mp"] = m.fit(data, batch_size=16, epochs=2, verbose=0).history["loss"]
    out["mp_spec"] = [str(a) for a in m.backbone.get_layer("decoder_block_0").mlp_dense_0.kernel.value.sharding.spec]
print("JSON" + json.dumps(out))
"""


@pytest.mark.skipif(keras.config.backend() != "jax", reason="virtual CPU devices: JAX backend")
def test_data_and_model_parallel_fit():
    # 4 virtual devices, not 8: every collective waits for all of them; a (2, 2)
    # mesh still shards the batch and the model axes.
    proc = helpers.run_on_virtual_cpu_devices(_PARALLEL_SCRIPT, 4)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("JSON", 1)[1])
    for key in ("dp", "mp"):
        assert all(np.isfinite(out[key])) and out[key][1] < out[key][0], out
    assert out["mp_spec"] == ["None", "model"]


def _compiled(fn, gen):
    """`fn` compiled as the generate loops are (jax.jit / tf.function(XLA) / eager torch)."""
    backend = keras.config.backend()
    if backend == "jax":
        import jax

        @jax.jit
        def f(state):
            with keras.StatelessScope(state_mapping=[(gen.state, state)]):
                return fn()

        return lambda: f(gen.state.value)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True)
    return fn


def test_db_cfg_compiled_fallback():
    """In compiled code the rejection fallback runs (via ops.cond) only where needed."""
    n = 4000
    lc = np.zeros((n, 2, 1), "float32")
    sc = np.ones((n, 2, 1), "float32")
    su = np.ones((n, 2, 1), "float32")
    su[:, 1] = 0.2  # Channel 1: (1+w)/sc² − w/su² < 0, not normalisable.
    params_c = {
        "head_type": "per_channel",
        "mixture_logits": np.zeros_like(lc),
        "loc": lc,
        "scale": sc,
    }
    params_u = dict(params_c, loc=lc + 0.5, scale=su)
    gen = keras.random.SeedGenerator(0)
    cfg = guidance.CFGDensity(params_c, params_u, 0.4)
    x = _np(_compiled(lambda: cfg.sample(seed=gen), gen)())
    assert x.shape == (n, 2) and np.all(np.isfinite(x))
    mean, std = guidance.guided_log_prob_moments(0.0, 1.0, 0.5, 1.0, 0.4)
    assert abs(x[:, 0].mean() - mean) < 0.05 and abs(x[:, 0].std() - std) < 0.05
    assert np.abs(x[:, 1]).max() <= 20.0 + 1e-3  # Proposals from N(loc_c, 2·max(σ)).
    # All channels normalisable: the exact branch alone.
    cfg_ok = guidance.CFGDensity(params_c, dict(params_u, scale=np.ones_like(su)), 0.4)
    y = _np(_compiled(lambda: cfg_ok.sample(seed=gen), gen)())
    assert abs(y.mean() - mean) < 0.05


def test_fit_with_mixed_precision_and_callbacks(tmp_path):
    tokens, labels = helpers.digits_tokens(64)
    backbone = GIVTBackbone(
        **helpers.tiny_kwargs(per_channel_mixtures=False, drop_labels_probability=0.1),
        dtype="mixed_bfloat16",
    )
    model = GIVTCausal(backbone, seed=0)
    seen = []
    callbacks = [
        keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(logs["loss"])),
        keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
    ]
    model.fit(
        {"latents": tokens, "labels": labels},
        batch_size=16,
        epochs=2,
        verbose=0,
        callbacks=callbacks,
    )
    assert len(seen) == 2 and all(np.isfinite(seen))
    assert (tmp_path / "log.csv").read_text().count("\n") == 3
    out = model({"latents": tokens[:2], "labels": labels[:2]})
    assert keras.backend.standardize_dtype(out["logits"].dtype) == "bfloat16"
    z = model.generate(labels=[1], seed=0, return_latents=True)
    assert np.all(np.isfinite(_np(z)))


def test_cache_update_is_functional_outside_generation():
    # In-place writes belong to the torch engine alone (test_torch_generation.py).
    from keras import ops

    from keras_givt.utils.tensor_utils import update_slice

    cache = ops.zeros((2, 3, 4))
    out = update_slice(cache, [0, 1, 0], ops.ones((2, 1, 4)))
    assert float(ops.sum(cache)) == 0.0 and float(ops.sum(out)) == 8.0


def test_generate_restores_torch_threads():
    if keras.config.backend() != "torch":
        return  # torch-only setting; nothing to restore elsewhere.
    import torch

    before = torch.get_num_threads()
    bb = GIVTBackbone(
        seq_len=4, out_dim=2, num_labels=3, emb_dim=8, num_decoder_layers=1, num_heads=2, mlp_dim=16
    )
    GIVTCausal(bb, seed=0).generate(labels=[0, 1], seed=0, return_latents=True)
    assert torch.get_num_threads() == before
