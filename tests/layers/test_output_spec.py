"""`compute_output_spec` on NumPy inputs and symbolic calls, for every layer
with a `compute_output_shape` (multi-argument ones included), as Keras'
`Embedding` does; keras-hub's precision test calls it with NumPy arrays."""

import keras
import numpy as np
import pytest

from keras_givt.models.givt.givt_embedding import GIVTEmbedding
from keras_givt.layers.transformer_block import FlatDense
from keras_givt.layers.transformer_block import FlaxLayerNorm
from keras_givt.layers.transformer_block import GIVTAttention
from keras_givt.layers.transformer_block import GIVTDecoderBlock
from keras_givt.layers.vector_quantizer import VectorQuantizer
from keras_givt.layers.vit_encoder import PatchViTEncoder
from keras_givt.layers.vit_encoder import ViTEncoder
from keras_givt.layers.vit_encoder import ViTEncoderBlock
from keras_givt.models.adaptor import IRevNetAdaptor
from keras_givt.models.adaptor import IRevNetBlock
from keras_givt.models.vq_maskgit.maskgit_layers import MaskGITEmbedding
from keras_givt.models.vq_maskgit.maskgit_layers import MaskGITTransformerLayer
from keras_givt.models.vae.vae_layers import FlaxGroupNorm
from keras_givt.models.vae.vae_layers import ResBlock

RNG = np.random.default_rng(0)


def _f(*shape):
    return RNG.normal(size=shape).astype("float32")


def _cases():
    tok, lab, m = _f(2, 6, 4), np.array([0, 2], "int32"), RNG.random((2, 6)) < 0.5
    x8, enc = _f(2, 6, 8), _f(2, 3, 8)
    return {
        # name: (layer factory, positional args, keyword args)
        "givt_embedding_ar": (
            lambda: GIVTEmbedding(out_dim=4, emb_dim=8, seq_len=6, num_labels=3),
            (tok, lab),
            {},
        ),
        "givt_embedding_masked_kw": (
            lambda: GIVTEmbedding(
                out_dim=4, emb_dim=8, seq_len=6, num_labels=3, style="masked", mask_style="concat"
            ),
            (tok,),
            {"labels": lab, "input_mask": m},
        ),
        "givt_embedding_masked_pos": (
            lambda: GIVTEmbedding(out_dim=4, emb_dim=8, seq_len=6, style="masked"),
            (tok, None, m),
            {},
        ),
        "decoder_block_cross": (
            lambda: GIVTDecoderBlock(8, 2, 16, cross_attention=True),
            (x8, enc),
            {},
        ),
        "decoder_block_cross_kw": (
            lambda: GIVTDecoderBlock(8, 2, 16, cross_attention=True),
            (x8,),
            {"encoded": enc},
        ),
        "decoder_block": (lambda: GIVTDecoderBlock(8, 2, 16), (x8,), {}),
        "attention_kv": (lambda: GIVTAttention(2, 8), (x8,), {"kv": enc}),
        "attention": (lambda: GIVTAttention(2, 8), (x8,), {}),
        "flax_layer_norm": (lambda: FlaxLayerNorm(), (x8,), {}),
        "flat_dense": (lambda: FlatDense(5), (x8,), {}),
        "vector_quantizer": (lambda: VectorQuantizer(7), (x8,), {}),
        "vit_block": (lambda: ViTEncoderBlock(8, 2, 16), (x8,), {}),
        "vit_encoder": (lambda: ViTEncoder(1, 8, 2, 16), (x8,), {}),
        "patch_vit": (
            lambda: PatchViTEncoder((4, 4), 4, num_layers=1, hidden_dim=8, num_heads=2, mlp_dim=16),
            (_f(2, 8, 8, 3),),
            {},
        ),
        "group_norm": (lambda: FlaxGroupNorm(2), (_f(2, 4, 4, 8),), {}),
        "res_block": (lambda: ResBlock(8, num_groups=2), (_f(2, 4, 4, 4),), {}),
        "maskgit_embedding": (lambda: MaskGITEmbedding(10, 8, 6), (np.zeros((2, 6), "int32"),), {}),
        "maskgit_layer": (lambda: MaskGITTransformerLayer(2, 16), (x8,), {}),
        "irevnet_block": (lambda: IRevNetBlock(4, 8), (_f(2, 4, 2, 4),), {}),
        "irevnet_adaptor": (
            lambda: IRevNetAdaptor(1, 4, 8, pixel_shuffle_patch_size=(1, 2)),
            (_f(2, 8, 4),),
            {},
        ),
    }


CASES = _cases()


def _flat(x):
    return keras.tree.flatten(x)


@pytest.mark.parametrize("name", sorted(CASES))
def test_compute_output_spec_on_numpy_matches_call(name):
    factory, args, kwargs = CASES[name]
    layer = factory()
    spec = layer.compute_output_spec(*args, **kwargs)  # Unbuilt layer, NumPy inputs.
    out = layer(*args, **kwargs)
    specs, outs = _flat(spec), _flat(out)
    assert len(specs) == len(outs)
    for s, o in zip(specs, outs):
        assert isinstance(s, keras.KerasTensor)
        assert tuple(s.shape) == tuple(o.shape), (name, s.shape, o.shape)
        assert keras.backend.standardize_dtype(s.dtype) == keras.backend.standardize_dtype(o.dtype)


@pytest.mark.parametrize("name", sorted(CASES))
def test_symbolic_call(name):
    factory, args, kwargs = CASES[name]
    layer = factory()

    def sym(a):
        if a is None:
            return None
        return keras.KerasTensor(a.shape, dtype=keras.backend.standardize_dtype(a.dtype))

    out = layer(*[sym(a) for a in args], **{k: sym(v) for k, v in kwargs.items()})
    want = layer(*args, **kwargs)
    for s, o in zip(_flat(out), _flat(want)):
        assert isinstance(s, keras.KerasTensor)
        assert tuple(s.shape) == tuple(o.shape)


def test_embedding_spec_with_unknown_batch():
    layer = GIVTEmbedding(out_dim=4, emb_dim=8, seq_len=6, style="masked")
    spec = layer.compute_output_spec(
        keras.KerasTensor((None, 6, 4)), input_mask=keras.KerasTensor((None, 6), "bool")
    )
    assert tuple(spec.shape) == (None, 7, 8)
