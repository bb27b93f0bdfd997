"""google-research/maskgit checkpoints -> keras_givt models.

MaskGIT's published checkpoints (and the fixtures) are
`flax.serialization.to_bytes({"params": ...})` msgpack files, read here with
`keras_givt.conversion.msgpack_reader` (no flax needed).

- VQGAN (`maskgit.nets.vqgan_tokenizer.VQVAE`): `encoder/...`,
  `decoder/...` (the same module names as big_vision's CNN, which is derived
  from it) and `quantizer/codebook`.
- Transformer (`maskgit.nets.maskgit_transformer.Transformer`):
  `Embed_0/{word_embeddings,position_embeddings}/embedding`,
  `Embed_0/embeddings_ln`, `TransformerLayer_<i>/Attention_0/
  {self_attention/{query,key,value,out},attention_output_ln}`,
  `TransformerLayer_<i>/Mlp_0/{intermediate_output,layer_output,layer_output_ln}`,
  `MlmLayer_0/{mlm_dense,mlm_ln,mlm_bias}`.

Every array is checked by `big_vision.assign_checked`: a missing, extra or
mis-shaped array raises a `ValueError` naming it.

`load_vqgan_tokenizer(path, vqvae_config)` (formerly
`VQGANTokenizer.from_maskgit_checkpoint`) and `load_maskgit_backbone(path,
model_kwargs, codebook_size)` build a model and load a checkpoint into it.
"""

import os

from keras_givt.conversion import msgpack_reader
from keras_givt.conversion.big_vision import assign_checked
from keras_givt.conversion.big_vision import checkpoint_params
from keras_givt.conversion.big_vision_vae import vae_weight_map
from keras_givt.models.vq_maskgit.maskgit_backbone import MaskGITBackbone
from keras_givt.models.vqvae.vqgan_tokenizer import VQGANTokenizer

# MaskGIT `config.vqvae` fields -> VQGANTokenizer kwargs (None: checked, not passed).
_VQVAE_FIELDS = {
    "filters": "filters",
    "num_res_blocks": "num_res_blocks",
    "channel_multipliers": "channel_multipliers",
    "embedding_dim": "embedding_dim",
    "codebook_size": "codebook_size",
    "conv_downsample": "conv_downsample",
    "activation_fn": "activation_fn",
    "norm_type": "norm_type",
    "commitment_cost": "commitment_cost",
    "entropy_loss_ratio": "entropy_loss_ratio",
    "entropy_loss_type": "entropy_loss_type",
    "entropy_temperature": "entropy_temperature",
    "quantizer": None,
}


def read_params(path):
    """`{'encoder/Conv_0/kernel': array, ...}` from a MaskGIT msgpack checkpoint
    (the `params/` prefix removed when present)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"MaskGIT checkpoint {path!r} does not exist.")
    flat = msgpack_reader.read_msgpack(path)
    if any(k.startswith("params/") for k in flat):
        flat = {k[len("params/") :]: v for k, v in flat.items() if k.startswith("params/")}
    return flat


def tokenizer_kwargs(vqvae_config):
    """`VQGANTokenizer` kwargs for MaskGIT's `config.vqvae` dict."""
    kwargs = {}
    for key, value in (vqvae_config or {}).items():
        if key not in _VQVAE_FIELDS:
            raise ValueError(f"Unknown MaskGIT vqvae option {key!r} (value {value!r}).")
        if key == "quantizer":
            if value != "vq":
                raise ValueError(f"Only quantizer='vq' is supported; received {value!r}.")
            continue
        kwargs[_VQVAE_FIELDS[key]] = value
    return kwargs


def tokenizer_weight_map(tokenizer):
    if not tokenizer.built or not tokenizer.encoder.built:
        raise ValueError("Build the tokenizer first (`tokenizer.build_for_image_size(256)`).")
    out = {}
    for key, value in vae_weight_map(tokenizer).items():
        out[key.replace("cnn_encoder/", "encoder/").replace("cnn_decoder/", "decoder/")] = value
    cb = tokenizer.quantizer.codebook
    out["quantizer/codebook"] = (cb, tuple(cb.shape))
    return out


def load_tokenizer_params(tokenizer, params):
    """Loads MaskGIT VQGAN params (dict or checkpoint path) into a built tokenizer."""
    params, what = checkpoint_params(params, "MaskGIT tokenizer checkpoint", read_params)
    assign_checked(tokenizer_weight_map(tokenizer), params, what=what)
    return tokenizer


def build_tokenizer(vqvae_config, image_size=256, **kwargs):
    """A built `VQGANTokenizer` for MaskGIT's `config.vqvae` fields."""
    tokenizer = VQGANTokenizer(**tokenizer_kwargs(vqvae_config), **kwargs)
    return tokenizer.build_for_image_size(image_size)


def load_vqgan_tokenizer(path, vqvae_config, image_size=256, **kwargs):
    """Builds a `VQGANTokenizer` for `vqvae_config` and loads `path`.

    Args:
        path: a MaskGIT flax msgpack checkpoint (e.g. the published
            `tokenizer_imagenet256_checkpoint`) or a params dict.
        vqvae_config: dict, MaskGIT's `config.vqvae` fields.
        image_size: int, the image size used to build the variables.
        **kwargs: other `VQGANTokenizer` arguments.

    Example:
    ```python
    from keras_givt.conversion import maskgit
    from keras_givt.models.vqvae.vqvae_presets import VQVAE_CONFIG

    tokenizer = maskgit.load_vqgan_tokenizer("/path/to/checkpoint", VQVAE_CONFIG)
    ```
    """
    if vqvae_config is None:
        raise ValueError("Pass `config` (MaskGIT's config.vqvae fields) with a checkpoint file.")
    tokenizer = build_tokenizer(vqvae_config, image_size=image_size, **kwargs)
    return load_tokenizer_params(tokenizer, path)


# --- transformer -------------------------------------------------------------------


def backbone_kwargs(model_kwargs, codebook_size):
    """`MaskGITBackbone` kwargs for MaskGIT `Transformer(**model_kwargs)`."""
    mk = dict(model_kwargs)
    vocab = mk.pop("vocab_size")
    num_classes = vocab - codebook_size - 1
    if num_classes < 0:
        raise ValueError(
            f"vocab_size={vocab} is smaller than codebook_size + 1 = {codebook_size + 1}."
        )
    seq_len = mk.pop("max_position_embeddings") - 1
    kwargs = {
        "codebook_size": codebook_size,
        "num_classes": num_classes,
        "seq_len": seq_len,
        "hidden_size": mk.pop("hidden_size"),
        "num_layers": mk.pop("num_hidden_layers"),
        "num_heads": mk.pop("num_attention_heads"),
        "intermediate_size": mk.pop("intermediate_size"),
        "dropout": mk.pop("hidden_dropout_prob", 0.1),
        "attention_dropout": mk.pop("attention_probs_dropout_prob", 0.1),
    }
    mk.pop("initializer_range", None)
    if mk:
        raise ValueError(f"Unknown MaskGIT Transformer options: {sorted(mk)}.")
    return kwargs


def backbone_weight_map(backbone):
    m = {}

    def dense(prefix, layer):
        m[prefix + "/kernel"] = layer.kernel
        m[prefix + "/bias"] = layer.bias

    def ln(prefix, layer):
        m[prefix + "/scale"] = layer.scale
        m[prefix + "/bias"] = layer.bias

    emb = backbone.embedding
    m["Embed_0/word_embeddings/embedding"] = emb.word_embeddings
    m["Embed_0/position_embeddings/embedding"] = emb.position_embeddings
    ln("Embed_0/embeddings_ln", emb.ln)
    for i, layer in enumerate(backbone.transformer_layers):
        p = f"TransformerLayer_{i}/"
        for name in ("query", "key", "value", "out"):
            m[p + f"Attention_0/self_attention/{name}/kernel"] = getattr(layer, f"{name}_kernel")
            m[p + f"Attention_0/self_attention/{name}/bias"] = getattr(layer, f"{name}_bias")
        ln(p + "Attention_0/attention_output_ln", layer.attention_ln)
        dense(p + "Mlp_0/intermediate_output", layer.intermediate)
        dense(p + "Mlp_0/layer_output", layer.output_dense)
        ln(p + "Mlp_0/layer_output_ln", layer.mlp_ln)
    head = backbone.mlm_head
    dense("MlmLayer_0/mlm_dense", head.dense)
    ln("MlmLayer_0/mlm_ln", head.ln)
    m["MlmLayer_0/mlm_bias/bias"] = head.bias
    return {k: (v, tuple(v.shape)) for k, v in m.items()}


def load_backbone_params(backbone, params):
    """Loads MaskGIT transformer params (dict or checkpoint path)."""
    params, what = checkpoint_params(params, "MaskGIT transformer checkpoint", read_params)
    assign_checked(backbone_weight_map(backbone), params, what=what)
    return backbone


def load_maskgit_backbone(path, model_kwargs, codebook_size):
    """A `MaskGITBackbone` for MaskGIT `Transformer(**model_kwargs)`, `path` loaded."""
    backbone = MaskGITBackbone(**backbone_kwargs(model_kwargs, codebook_size))
    return load_backbone_params(backbone, path)
