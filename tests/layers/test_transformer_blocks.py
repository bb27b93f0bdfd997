"""GIVTDecoderBlock and ViTEncoderBlock on their shared pre-LN base.

Each block keeps its own weight names, `.weights.h5` layout (by attribute
name), registered name and config, which converted checkpoints and the
bundled presets depend on.
"""

import os

import h5py
import keras
import numpy as np
import pytest
from keras import ops

from keras_givt.layers.transformer_block import GIVTDecoderBlock
from keras_givt.layers.transformer_block import PreLNTransformerBlock
from keras_givt.layers.vit_encoder import ViTEncoder
from keras_givt.layers.vit_encoder import ViTEncoderBlock

E, H, F = 16, 2, 32


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _h5_datasets(model, tmp_path):
    path = os.path.join(tmp_path, "m.weights.h5")
    model.save_weights(path)
    names = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return sorted(names)


def test_givt_decoder_block_weight_names():
    block = GIVTDecoderBlock(E, H, F, cross_attention=True, name="blk")
    block.build((None, 5, E), (None, 3, E))
    attn = [f"{n}/kernel" for n in ("query", "key", "value", "out")]
    assert [v.path for v in block.weights] == (
        ["blk/pre_attention_norm/scale"]
        + [f"blk/self_attention/{a}" for a in attn]
        + ["blk/pre_cross_attention_norm/scale"]
        + [f"blk/cross_attention/{a}" for a in attn]
        + ["blk/pre_mlp_norm/scale"]
        + [f"blk/mlp_dense_{i}/{w}" for i in (0, 1) for w in ("kernel", "bias")]
    )


def test_vit_encoder_block_weight_names():
    block = ViTEncoderBlock(E, H, F, name="blk")
    block.build((None, 5, E))
    sw = ("scale", "bias")
    kb = ("kernel", "bias")
    assert [v.path for v in block.weights] == (
        [f"blk/pre_attention_norm/{w}" for w in sw]
        + [f"blk/attention/{n}/{w}" for n in ("query", "key", "value", "out") for w in kb]
        + [f"blk/pre_mlp_norm/{w}" for w in sw]
        + [f"blk/mlp_dense_{i}/{w}" for i in (0, 1) for w in kb]
    )


def test_weights_h5_layout(tmp_path):
    x, e = keras.Input((5, E)), keras.Input((3, E))
    givt = GIVTDecoderBlock(E, H, F, cross_attention=True)
    vit = ViTEncoderBlock(E, H, F)
    model = keras.Model([x, e], [givt(x, encoded=e), vit(x)])
    attn = [f"{n}/vars/0" for n in ("key", "out", "query", "value")]
    mlp = [f"mlp_dense_{i}/vars/{j}" for i in (0, 1) for j in (0, 1)]
    want_givt = (
        [f"cross_attention_layer/{a}" for a in attn]
        + mlp
        + [
            f"{n}/vars/0"
            for n in ("pre_attention_norm", "pre_cross_attention_norm", "pre_mlp_norm")
        ]
        + [f"self_attention/{a}" for a in attn]
    )
    want_vit = (
        [f"attention/{n}/vars/{j}" for n in ("key", "out", "query", "value") for j in (0, 1)]
        + mlp
        + [f"{n}/vars/{j}" for n in ("pre_attention_norm", "pre_mlp_norm") for j in (0, 1)]
    )
    # A model's layers are saved under their snake-cased class names, then by
    # attribute name: both have to stay as they are for saved weights to load.
    want = sorted(
        [f"layers/givt_decoder_block/{p}" for p in want_givt]
        + [f"layers/vi_t_encoder_block/{p}" for p in want_vit]
    )
    assert _h5_datasets(model, tmp_path) == want


@pytest.mark.parametrize(
    "make, args",
    [
        (lambda: GIVTDecoderBlock(E, H, F, 0.1, causal=False, cross_attention=True), 2),
        (lambda: ViTEncoderBlock(E, H, F, 0.1, layer_norm_epsilon=1e-5), 1),
        (lambda: ViTEncoder(2, E, H, F, 0.1), 1),
    ],
)
def test_serialization_round_trip(make, args):
    layer = make()
    inputs = [_x((2, 5, E)), _x((2, 3, E), seed=1)][:args]
    y = _np(layer(*inputs))
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == f"keras_givt>{type(layer).__name__}"
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is type(layer)
    assert restored.get_config() == layer.get_config()
    restored(*inputs)
    restored.set_weights(layer.get_weights())
    np.testing.assert_allclose(_np(restored(*inputs)), y, rtol=1e-6, atol=1e-6)


def test_blocks_share_the_base():
    assert issubclass(GIVTDecoderBlock, PreLNTransformerBlock)
    assert issubclass(ViTEncoderBlock, PreLNTransformerBlock)
    config = ViTEncoderBlock(E, H, F, 0.2, 1e-5).get_config()
    for key, value in dict(
        hidden_dim=E, num_heads=H, mlp_dim=F, dropout_rate=0.2, layer_norm_epsilon=1e-5
    ).items():
        assert config[key] == value
    config = GIVTDecoderBlock(E, H, F, causal=False).get_config()
    assert config["causal"] is False and config["cross_attention"] is False


def test_causal_and_bidirectional_attention():
    x = _x((1, 6, E))
    x2 = x.copy()
    x2[:, -1] = _x((1, E), seed=1)
    causal = GIVTDecoderBlock(E, H, F, causal=True)
    np.testing.assert_allclose(_np(causal(x))[:, :-1], _np(causal(x2))[:, :-1], atol=1e-6)
    for block in (GIVTDecoderBlock(E, H, F, causal=False), ViTEncoderBlock(E, H, F)):
        assert not np.allclose(_np(block(x))[:, 0], _np(block(x2))[:, 0])


@pytest.mark.parametrize("cache_form", ["layer", "stacked"])
@pytest.mark.parametrize("variant", ["plain", "bias", "lora"])
def test_cached_attention_equals_the_causal_forward(variant, cache_form):
    # call_with_cache projects q, k and v in one product (kernels side by
    # side) where all three are plain, and through each layer otherwise
    # (LoRA); token by token it must give the causal forward's outputs, with
    # the cache as this layer's (2, B, H, L, Dh) or as layer 1 of a stacked
    # (N, 2, B, H, L, Dh); the keys land in their layer and no other.
    from keras_givt.layers.transformer_block import GIVTAttention

    b, t = 2, 5
    attention = GIVTAttention(H, E, use_bias=variant == "bias")
    attention.build((b, t, E))
    rng = np.random.default_rng(3)
    if variant == "bias":
        for layer in (attention.query, attention.key, attention.value, attention.out):
            layer.bias.assign(rng.normal(size=layer.bias.shape).astype("float32"))
    if variant == "lora":
        attention.key.enable_lora(2)
        attention.key.lora_kernel_b.assign(
            rng.normal(size=attention.key.lora_kernel_b.shape).astype("float32")
        )
    x = _x((b, t, E), seed=4)
    full = _np(attention(x, is_causal=True))
    layer_shape = (2, b, H, t, E // H)
    if cache_form == "layer":
        cache, kwargs = ops.zeros(layer_shape), {}
    else:
        cache, kwargs = ops.zeros((3,) + layer_shape), {"layer_index": 1}
    steps = []
    for i in range(t):
        y, cache = attention.call_with_cache(x[:, i : i + 1], cache, i, **kwargs)
        steps.append(_np(y))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, rtol=1e-5, atol=1e-5)
    written = _np(cache)
    assert written.shape == ((3,) + layer_shape if kwargs else layer_shape)
    if kwargs:
        assert not written[0].any() and not written[2].any()
        written = written[1]
    keys = _np(attention.key(x)).transpose(0, 2, 1, 3)  # (B, H, T, Dh)
    np.testing.assert_allclose(written[0], keys, rtol=1e-5, atol=1e-5)


def test_query_key_and_value_start_different():
    # flax draws each projection with its own key; a shared unseeded Keras
    # initializer would give q = k = v at init.
    from keras_givt.layers.transformer_block import GIVTAttention

    attention = GIVTAttention(H, E)
    attention.build((1, 3, E))
    kernels = [_np(layer.kernel) for layer in (attention.query, attention.key, attention.value)]
    for i in range(3):
        for j in range(i):
            assert not np.allclose(kernels[i], kernels[j])
    block = GIVTDecoderBlock(E, H, F)
    block.build((1, 3, E))
    assert not np.allclose(_np(block.self_attention.query.kernel), kernels[0])
