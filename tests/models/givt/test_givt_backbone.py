import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

from keras_givt import GIVTBackbone
from tests import helpers
from tests.paths import ROOT


def _randomize(backbone, seed=0):
    return helpers.randomize_weights(backbone, seed, scale=0.3)


def _np(x):
    return ops.convert_to_numpy(x)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(),
        dict(per_channel_mixtures=False),
        dict(multivariate=True, num_mixtures=1),
        dict(num_labels=None),
        dict(style="masked"),
        dict(style="masked", mask_style="concat", drop_labels_probability=0.1),
    ],
)
def test_output_shapes_and_log_prob(overrides):
    backbone = GIVTBackbone(**helpers.tiny_kwargs(**overrides))
    inputs = helpers.tiny_inputs(backbone)
    logits = backbone(inputs)
    assert tuple(logits.shape) == (2, 16, backbone.num_logits)
    lp = backbone.log_prob(logits, inputs["tokens"])
    per_channel = backbone.per_channel_mixtures and not backbone.multivariate
    assert tuple(lp.shape) == ((2, 16, 4) if per_channel else (2, 16))
    assert np.all(np.isfinite(_np(lp)))


def test_label_table_rows():
    assert GIVTBackbone(**helpers.tiny_kwargs()).special_ids == {"num_rows": 10}
    ids = GIVTBackbone(
        **helpers.tiny_kwargs(style="masked", mask_style="concat", drop_labels_probability=0.1)
    ).special_ids
    assert ids == {"mask": 10, "nomask": 11, "replace": 12, "nolabel": 13, "num_rows": 14}
    ids = GIVTBackbone(**helpers.tiny_kwargs(num_labels=None, style="masked")).special_ids
    assert ids == {"mask": 0, "num_rows": 2}


@pytest.mark.parametrize("overrides", [dict(), dict(num_labels=None, per_channel_mixtures=False)])
def test_cached_decoding_equals_full_forward(overrides):
    backbone = _randomize(GIVTBackbone(**helpers.tiny_kwargs(**overrides)))
    inputs = helpers.tiny_inputs(backbone)
    full = _np(backbone(inputs))
    tokens, labels = inputs["tokens"], inputs.get("labels")
    cache = backbone.build_cache(2)
    assert tuple(backbone.build_cache(3).shape) == (2, 2, 3, 2, 16, 16)  # (N, 2, B, H, L, E/H)
    logits, cache = backbone.prefill(labels, cache, batch_size=2)
    steps = [_np(logits)]
    # A multi-token chunk (prompt / prefix), then single steps.
    chunk, cache = backbone.call_with_cache(tokens[:, 0:5], cache, 1)
    steps.append(_np(chunk))
    for i in range(5, 15):
        step, cache = backbone.call_with_cache(tokens[:, i : i + 1], cache, i + 1)
        steps.append(_np(step))
    cached = np.concatenate(steps, axis=1)
    assert np.abs(full).max() > 0.1  # Non-trivial logits.
    np.testing.assert_allclose(cached, full, atol=1e-4, rtol=1e-4)


def test_ar_is_causal_and_masked_is_not():
    ar = _randomize(GIVTBackbone(**helpers.tiny_kwargs()))
    inputs = helpers.tiny_inputs(ar)
    base = _np(ar(inputs))
    changed = dict(inputs, tokens=inputs["tokens"].copy())
    changed["tokens"][:, 8] += 1.0
    out = _np(ar(changed))
    np.testing.assert_allclose(out[:, :9], base[:, :9], atol=1e-6)
    assert np.abs(out[:, 9:] - base[:, 9:]).max() > 1e-3

    masked = _randomize(GIVTBackbone(**helpers.tiny_kwargs(style="masked")))
    inputs = helpers.tiny_inputs(masked)
    inputs["input_mask"][:] = False
    base = _np(masked(inputs))
    changed = dict(inputs, tokens=inputs["tokens"].copy())
    changed["tokens"][:, 8] += 1.0
    assert np.abs(_np(masked(changed))[:, 0] - base[:, 0]).max() > 1e-3
    # A masked token's value is invisible.
    inputs["input_mask"][:, 8] = True
    changed["input_mask"] = inputs["input_mask"]
    np.testing.assert_allclose(_np(masked(changed)), _np(masked(inputs)), atol=1e-6)


def test_config_round_trip():
    backbone = GIVTBackbone(**helpers.tiny_kwargs(style="masked", mask_style="concat"))
    config = backbone.get_config()
    clone = GIVTBackbone.from_config(config)
    assert clone.get_config() == config
    for key, value in helpers.tiny_kwargs(style="masked", mask_style="concat").items():
        assert config[key] == value
    json.dumps(config)


def test_keras_save_and_load(tmp_path):
    backbone = _randomize(GIVTBackbone(**helpers.tiny_kwargs(per_channel_mixtures=False)))
    inputs = helpers.tiny_inputs(backbone)
    path = str(tmp_path / "givt.keras")
    backbone.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, GIVTBackbone)
    np.testing.assert_allclose(_np(restored(inputs)), _np(backbone(inputs)), atol=1e-6)


def test_preset_round_trip(tmp_path):
    backbone = _randomize(GIVTBackbone(**helpers.tiny_kwargs(style="masked")))
    inputs = helpers.tiny_inputs(backbone)
    preset = str(tmp_path / "preset")
    backbone.save_to_preset(preset)
    assert {"config.json", "model.weights.h5", "metadata.json"} <= set(os.listdir(preset))
    restored = GIVTBackbone.from_preset(preset)
    np.testing.assert_allclose(_np(restored(inputs)), _np(backbone(inputs)), atol=1e-6)
    fresh = GIVTBackbone.from_preset(preset, load_weights=False)
    assert fresh.get_config() == backbone.get_config()


_SAVE_SCRIPT = """
import sys, numpy as np
from keras_givt import GIVTBackbone
from tests import helpers
b = GIVTBackbone(**helpers.tiny_kwargs(per_channel_mixtures=False))
rng = np.random.default_rng(1)
for w in b.weights:
    w.assign((0.3 * rng.normal(size=w.shape)).astype("float32"))
inputs = helpers.tiny_inputs(b)
import keras
np.save(sys.argv[2], keras.ops.convert_to_numpy(b(inputs)))
b.save_to_preset(sys.argv[1])
"""


def test_preset_saved_on_another_backend(tmp_path):
    other = {"jax": "torch", "torch": "tensorflow", "tensorflow": "jax"}[keras.config.backend()]
    preset, ref = str(tmp_path / "preset"), str(tmp_path / "ref.npy")
    env = dict(os.environ, KERAS_BACKEND=other)
    subprocess.run(
        [sys.executable, "-c", _SAVE_SCRIPT, preset, ref],
        check=True,
        env=env,
        cwd=ROOT,
        capture_output=True,
    )
    restored = GIVTBackbone.from_preset(preset)
    inputs = helpers.tiny_inputs(restored)
    np.testing.assert_allclose(_np(restored(inputs)), np.load(ref), atol=1e-5)


def test_bad_inputs():
    backbone = GIVTBackbone(**helpers.tiny_kwargs())
    inputs = helpers.tiny_inputs(backbone)
    with pytest.raises(ValueError, match=r"tokens.*16, 4\).*\(2, 16, 5\)"):
        backbone(dict(inputs, tokens=np.zeros((2, 16, 5), "float32")))
    with pytest.raises(ValueError, match=r"labels.*\[0, 10\).*\[3, 42\]"):
        backbone(dict(inputs, labels=np.array([3, 42], "int32")))
    with pytest.raises(ValueError, match="labels"):
        backbone({"tokens": inputs["tokens"]})
    with pytest.raises((TypeError, ValueError), match="dict"):
        backbone(inputs["tokens"])
    masked = GIVTBackbone(**helpers.tiny_kwargs(style="masked"))
    with pytest.raises(ValueError, match="input_mask"):
        masked({"tokens": inputs["tokens"], "labels": inputs["labels"]})
    with pytest.raises(ValueError, match="prefill.*style='ar'"):
        masked.prefill(inputs["labels"], masked.build_cache(2))
    with pytest.raises(ValueError, match="NOLABEL"):
        backbone.drop_labels(inputs["labels"], np.array([True, False]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(style="causal"), "style"),
        (dict(mask_style="stack"), "mask_style"),
        (dict(emb_dim=30, num_heads=4), "divisible"),
        (dict(seq_len=0), "seq_len"),
        (dict(drop_labels_probability=1.5), "drop_labels_probability"),
        (dict(multivariate=True, num_mixtures=2), "num_mixtures=2"),
    ],
)
def test_bad_configs(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        GIVTBackbone(**helpers.tiny_kwargs(**kwargs))


def test_mixed_precision_keeps_mixture_maths_in_float32():
    backbone = GIVTBackbone(**helpers.tiny_kwargs(), dtype="mixed_bfloat16")
    inputs = helpers.tiny_inputs(backbone)
    logits = backbone(inputs)
    assert keras.backend.standardize_dtype(logits.dtype) == "bfloat16"
    lp = backbone.log_prob(logits, inputs["tokens"])
    assert keras.backend.standardize_dtype(lp.dtype) == "float32"
    assert keras.backend.standardize_dtype(backbone.weights[0].dtype) == "float32"


_LAYOUT_SCRIPT = """
import json, os
import keras
from keras_givt import GIVTBackbone
from tests import helpers
devices = keras.distribution.list_devices("cpu")
assert len(devices) == 8, devices
mesh = keras.distribution.DeviceMesh((2, 4), ["batch", "model"], devices)
layout_map = GIVTBackbone.get_layout_map(mesh)
dist = keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch")
with dist.scope():
    b = GIVTBackbone(**helpers.tiny_kwargs(emb_dim=32, num_heads=4, mlp_dim=64))
out = {w.path: [str(a) if a is not None else None for a in w.value.sharding.spec] for w in b.weights}
logits = b(helpers.tiny_inputs(b, batch=4))
out["__logits_shape__"] = list(logits.shape)
print("JSON" + json.dumps(out))
"""


@pytest.mark.skipif(
    keras.config.backend() != "jax", reason="ModelParallel on virtual CPU devices runs on JAX"
)
def test_model_parallel_layout_map_shardings():
    proc = helpers.run_on_virtual_cpu_devices(_LAYOUT_SCRIPT, 8)
    assert proc.returncode == 0, proc.stderr[-3000:]
    specs = json.loads(proc.stdout.split("JSON", 1)[1])
    assert specs["decoder_block_0/self_attention/query/kernel"][:2] == [None, "model"]
    assert specs["decoder_block_1/self_attention/out/kernel"][0] == "model"
    assert specs["decoder_block_0/mlp_dense_0/kernel"] == [None, "model"]
    assert specs["decoder_block_1/mlp_dense_1/kernel"][0] == "model"
    assert specs["embedding/label_embedding/embeddings"] == [None, "model"]
    assert specs["logits_dense/kernel"][0] == "model"
    # Unlisted small weights are replicated.
    assert all(a is None for a in specs["decoder_norm/scale"])
    assert specs["__logits_shape__"] == [4, 16, 36]


def test_layout_map_rejects_unknown_axis():
    class Mesh:
        axis_names = ("data", "tensor")

    with pytest.raises(ValueError, match="'model'"):
        GIVTBackbone.get_layout_map(Mesh())
