"""Numeric constructor arguments of the public models and layers: finite, in
range, numpy scalars accepted as Python numbers; errors name the argument and
show the value, before anything is built."""

import json
import re

import numpy as np
import pytest

from keras_givt import GIVTBackbone
from keras_givt.mixture.head import GaussianMixtureHead
from keras_givt.models.givt.givt_embedding import GIVTEmbedding
from keras_givt.layers.transformer_block import FlaxLayerNorm
from keras_givt.layers.transformer_block import GIVTAttention
from keras_givt.layers.transformer_block import GIVTDecoderBlock
from keras_givt.layers.vector_quantizer import VectorQuantizer
from keras_givt.layers.vit_encoder import PatchViTEncoder
from keras_givt.layers.vit_encoder import ViTEncoder
from keras_givt.models.adaptor import IRevNetAdaptor
from keras_givt.models.adaptor import IRevNetBlock
from keras_givt.models.vq_maskgit.maskgit_backbone import MaskGITBackbone
from keras_givt.models.vq_maskgit.maskgit_layers import MaskGITEmbedding
from keras_givt.models.vq_maskgit.maskgit_layers import MaskGITTransformerLayer
from keras_givt.models.uvim.vit_vae import ViTVAE
from keras_givt.models.vae.beta_vae import BetaVAE
from keras_givt.models.vae.vae_layers import CNNEncoder
from keras_givt.models.vae.vae_layers import FlaxGroupNorm
from keras_givt.models.vqvae.vqgan_tokenizer import VQGANTokenizer
from keras_givt.utils import validation

GIVT = dict(
    seq_len=4,
    out_dim=2,
    num_labels=3,
    emb_dim=8,
    num_decoder_layers=1,
    num_heads=2,
    mlp_dim=16,
    num_mixtures=2,
)
MASKGIT = dict(
    codebook_size=8,
    num_classes=3,
    seq_len=4,
    hidden_size=8,
    num_layers=1,
    num_heads=2,
    intermediate_size=16,
)

# (class, valid kwargs, argument, bad values that must raise ValueError, ... TypeError)
NAN, INF = float("nan"), float("inf")
CASES = [
    (GIVTBackbone, GIVT, "seq_len", [0, -3], [2.5, "4"]),
    (GIVTBackbone, GIVT, "emb_dim", [0], [8.0]),
    (GIVTBackbone, GIVT, "num_mixtures", [-1], [None]),
    (GIVTBackbone, GIVT, "scale_tol", [0.0, -1e-6, NAN, INF], ["tiny"]),
    (GIVTBackbone, GIVT, "drop_labels_probability", [1.5, -0.1, NAN], []),
    (GIVTBackbone, GIVT, "min_masking_rate_training", [1.01, NAN], []),
    (GIVTBackbone, GIVT, "dec_dropout_rate", [1.0, -0.5, INF], []),
    (GIVTBackbone, GIVT, "num_layers", [-1], [1.5]),
    (GIVTBackbone, GIVT, "num_labels", [0], [2.0]),
    (GIVTEmbedding, dict(out_dim=2, emb_dim=8, seq_len=4), "seq_len", [0], [4.5]),
    (GIVTAttention, dict(num_heads=2, hidden_dim=8), "dropout_rate", [1.0, NAN], []),
    (
        GIVTDecoderBlock,
        dict(hidden_dim=8, num_heads=2, mlp_dim=16),
        "layer_norm_epsilon",
        [0.0, NAN],
        [],
    ),
    (GIVTDecoderBlock, dict(hidden_dim=8, num_heads=2, mlp_dim=16), "mlp_dim", [0], [1.5]),
    (FlaxLayerNorm, dict(), "epsilon", [-1.0, INF], []),
    (GaussianMixtureHead, dict(out_dim=2), "scale_tol", [0.0, NAN], []),
    (GaussianMixtureHead, dict(out_dim=2), "num_mixtures", [0], [2.0]),
    (VectorQuantizer, dict(codebook_size=8), "usage_decay", [1.5, NAN], []),
    (VectorQuantizer, dict(codebook_size=8), "commitment_cost", [-0.1, INF], []),
    (VectorQuantizer, dict(codebook_size=8), "entropy_temperature", [0.0, NAN], []),
    (
        ViTEncoder,
        dict(num_layers=1, hidden_dim=8, num_heads=2, mlp_dim=16),
        "num_layers",
        [-1],
        [1.0],
    ),
    (
        PatchViTEncoder,
        dict(patch_size=(2, 2), num_patches=4, num_layers=1, hidden_dim=8, num_heads=2, mlp_dim=16),
        "patch_size",
        [(0, 2), (2, 2, 2)],
        [(2.0, 2)],
    ),
    (FlaxGroupNorm, dict(), "num_groups", [0], [3.5]),
    (
        CNNEncoder,
        dict(filters=8, num_res_blocks=1, channel_multipliers=(1, 2), embedding_dim=4),
        "channel_multipliers",
        [(1, 0), ()],
        [(1, 1.5)],
    ),
    (
        BetaVAE,
        dict(codeword_dim=4, code_len=4, filters=32, num_res_blocks=1, channel_multipliers=(1, 1)),
        "beta",
        [-1.0, NAN],
        [],
    ),
    (
        BetaVAE,
        dict(codeword_dim=4, code_len=4, filters=32, num_res_blocks=1, channel_multipliers=(1, 1)),
        "pixel_shuffle_patch_size",
        [(0, 1)],
        [],
    ),
    (MaskGITBackbone, MASKGIT, "dropout", [1.0, NAN], []),
    (MaskGITBackbone, MASKGIT, "intermediate_size", [0], [16.0]),
    (
        MaskGITTransformerLayer,
        dict(num_heads=2, intermediate_size=16),
        "attention_dropout",
        [-0.1],
        [],
    ),
    (
        MaskGITEmbedding,
        dict(vocab_size=8, hidden_size=8, max_position_embeddings=4),
        "max_position_embeddings",
        [0],
        [4.0],
    ),
    (
        VQGANTokenizer,
        dict(
            filters=32,
            num_res_blocks=1,
            channel_multipliers=(1, 1),
            embedding_dim=4,
            codebook_size=8,
        ),
        "r1_gamma",
        [-1.0, NAN],
        [],
    ),
    (
        ViTVAE,
        dict(
            inout_specs={"x": (0, 2)},
            input_size=(8, 8),
            patch_size=(4, 4),
            code_len=4,
            codeword_dim=2,
            width=8,
            enc_depth=1,
            dec_depth=1,
            mlp_dim=16,
            num_heads=2,
        ),
        "width",
        [0],
        [8.5],
    ),
    (
        IRevNetAdaptor,
        dict(num_blocks=1, num_channels=4, num_channels_bottleneck=8),
        "num_channels",
        [0, 3],
        [4.0],
    ),
    (
        IRevNetAdaptor,
        dict(num_blocks=1, num_channels=4, num_channels_bottleneck=8),
        "dropout_rate",
        [1.0, NAN],
        [],
    ),
    (
        IRevNetAdaptor,
        dict(num_blocks=1, num_channels=4, num_channels_bottleneck=8),
        "pixel_shuffle_patch_size",
        [(1, 0), (1,)],
        [(1, 2.0)],
    ),
    (
        IRevNetBlock,
        dict(num_channels=4, num_channels_bottleneck=8),
        "num_channels_bottleneck",
        [0, 1],
        [8.0],
    ),
]


def _ids():
    return [f"{c.__name__}-{arg}" for c, _, arg, _, _ in CASES]


def _shown(arg, value):
    # The message names the argument and shows the received value.
    return re.escape(f"{arg}={value!r}") if not isinstance(value, tuple) else re.escape(arg)


@pytest.mark.parametrize("cls,kwargs,arg,bad_values,bad_types", CASES, ids=_ids())
def test_bad_numeric_argument_is_refused(cls, kwargs, arg, bad_values, bad_types):
    for value in bad_values:
        with pytest.raises(ValueError, match=rf"`{arg}`.*{_shown(arg, value)}"):
            cls(**dict(kwargs, **{arg: value}))
    for value in bad_types:
        with pytest.raises(TypeError, match=rf"`{arg}`.*{_shown(arg, value)}"):
            cls(**dict(kwargs, **{arg: value}))


def test_numpy_scalars_are_accepted_as_python_numbers():
    kwargs = {k: np.int64(v) for k, v in GIVT.items()}
    backbone = GIVTBackbone(
        **kwargs,
        scale_tol=np.float32(1e-6),
        drop_labels_probability=np.float64(0.1),
        dec_dropout_rate=np.float32(0.0),
        num_layers=np.int32(0),
    )
    config = backbone.get_config()
    json.dumps(config)  # numpy scalars would not serialize.
    for key in GIVT:
        assert type(config[key]) is int and config[key] == GIVT[key]
    assert type(config["scale_tol"]) is float and type(config["num_layers"]) is int
    assert GIVTBackbone.from_config(config).get_config() == config

    adaptor = IRevNetAdaptor(
        num_blocks=np.int64(1),
        num_channels=np.int32(4),
        num_channels_bottleneck=np.int64(8),
        pixel_shuffle_patch_size=np.array([1, 2]),
    )
    json.dumps(adaptor.get_config())
    assert adaptor.get_config()["pixel_shuffle_patch_size"] == [1, 2]
    head = GaussianMixtureHead(out_dim=np.int16(2), num_mixtures=np.uint8(3))
    assert type(head.out_dim) is int and type(head.num_mixtures) is int


def test_error_raised_before_any_layer_is_built():
    # A bad value late in the argument list must fail before the functional
    # model is traced (fast, nothing half-built).
    with pytest.raises(ValueError, match="scale_tol=nan"):
        GIVTBackbone(
            **dict(GIVT, num_decoder_layers=50, emb_dim=1024, mlp_dim=4096), scale_tol=float("nan")
        )


@pytest.mark.parametrize(
    "fn,args,exc,text",
    [
        (validation.check_int, ("n", 2.0), TypeError, "n=2.0 (of type float)"),
        (validation.check_int, ("n", True), TypeError, "n=True"),
        (validation.check_int, ("n", 5, 0, 4), ValueError, "<= 4. Received: n=5"),
        (validation.check_float, ("x", float("nan")), ValueError, "finite number. Received: x=nan"),
        (
            validation.check_float,
            ("x", 0.0, 0.0, None, False),
            ValueError,
            "> 0.0. Received: x=0.0",
        ),
        (validation.check_float, ("x", "1"), TypeError, "x='1'"),
        (validation.check_rate, ("rate", 1.0), ValueError, "< 1.0. Received: rate=1.0"),
        (
            validation.check_int_pair,
            ("p", (1, 2, 3)),
            ValueError,
            "2 entries. Received: p=(1, 2, 3)",
        ),
        (validation.check_int_pair, ("p", 3), TypeError, "p=3"),
        (validation.check_int_list, ("m", []), ValueError, "non-empty"),
    ],
)
def test_validation_helpers(fn, args, exc, text):
    with pytest.raises(exc, match=re.escape(text)):
        fn(*args)


def test_validation_helpers_normalise_numpy_scalars():
    assert type(validation.check_int("n", np.int64(3))) is int
    assert type(validation.check_positive_int("n", np.uint16(3))) is int
    assert type(validation.check_float("x", np.float32(0.5))) is float
    assert validation.check_float("x", np.array(0.25)) == 0.25
    assert validation.check_int_pair("p", np.array([2, 3])) == (2, 3)
    assert validation.check_int("n", None, allow_none=True) is None
