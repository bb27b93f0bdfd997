"""Reading big_vision checkpoints and building keras_givt models from them.

big_vision saves params-only `.npz` files (`np.savez` of '/'-joined flax
names, optionally prefixed by `params/`). GIVT decoders come in two
layouts: per-layer (`decoder/EncDecBlock{i}/...`) and scanned
(`decoder/EncDecBlock/...`, layers stacked on **axis 1**), which is what the
published ImageNet checkpoints use.

`load_givt_params(backbone, params)` checks every array: a missing, extra or
mis-shaped array raises a `ValueError` naming the array, the expected and
the received shape. Nothing is assigned unless everything matches.

Conversion is one way: this package imports the models, the models never
import it. `vit_encoder_weight_map` (big_vision `models/vit.py` names) is
shared with `big_vision_uvim`.
"""

import os
import re
import zipfile

import numpy as np

from keras_givt.models.givt.givt_backbone import GIVTBackbone

# big_vision `givt.Model` defaults for the fields the backbone uses.
GIVT_DEFAULTS = {
    "num_labels": 1000,
    "seq_len": 256,
    "out_dim": 32,
    "emb_dim": 512,
    "num_decoder_layers": 6,
    "num_heads": 8,
    "mlp_dim": 2048,
    "num_mixtures": 4,
    "per_channel_mixtures": True,
    "multivariate": False,
    "fix_square_plus": False,
    "scale_tol": 1e-6,
    "style": "ar",
    "mask_style": "replace",
    "drop_labels_probability": 0.0,
    "min_masking_rate_training": 0.3,
    "dec_dropout_rate": 0.0,
    "zero_embedding_init": False,
    "num_layers": 0,
    "input_size": None,
    "patches": None,
    "enc_dropout_rate": 0.0,
}
# Fields that change nothing numerically (memory/layout knobs) or that we
# accept only at their neutral value.
_IGNORED = ("scan", "remat_policy")
_NEUTRAL = {"posemb_type": ("learn",)}


def big_vision_options(model_kwargs, fields, ignored, neutral, model_class, big_vision_model):
    """`{key: value}` of the big_vision `model_kwargs` that `model_class` takes.

    Args:
        model_kwargs: dict, the kwargs of a big_vision `big_vision_model`
            (e.g. "givt.Model").
        fields: the keys `model_class` takes; any other key is refused.
        ignored: keys skipped (they change nothing numerically).
        neutral: `{key: accepted values}`: keys skipped at those values only.
        model_class: str, the keras_givt class errors name.
        big_vision_model: str, the big_vision model errors name.
    """
    if not isinstance(model_kwargs, dict):
        raise TypeError(f"`model_kwargs` must be a dict; received {type(model_kwargs).__name__}.")
    kwargs = {}
    for key, value in model_kwargs.items():
        if key in ignored:
            continue
        if key in neutral:
            if value not in neutral[key]:
                raise ValueError(
                    f"big_vision option {key}={value!r} is not supported by {model_class} "
                    f"(supported: {neutral[key]})."
                )
            continue
        if key not in fields:
            raise ValueError(
                f"Unknown big_vision {big_vision_model} option {key!r} (value {value!r})."
            )
        kwargs[key] = value
    return kwargs


def givt_backbone_kwargs(model_kwargs):
    """`GIVTBackbone` kwargs for a big_vision `givt.Model(**model_kwargs)`."""
    kwargs = dict(GIVT_DEFAULTS)
    kwargs.update(
        big_vision_options(
            model_kwargs, GIVT_DEFAULTS, _IGNORED, _NEUTRAL, "GIVTBackbone", "givt.Model"
        )
    )
    # big_vision's `LogitsDense` starts at zero. Loaded weights replace it, but a model built from
    # a big_vision config without weights starts as big_vision's would.
    kwargs["head_init"] = "zeros"
    if kwargs["num_layers"] in (0, None):
        # Encoder fields mean nothing without an encoder.
        kwargs.update(num_layers=0, input_size=None, patches=None)
    else:
        for key in ("input_size", "patches"):
            if isinstance(kwargs[key], dict) and "size" in kwargs[key]:
                kwargs[key] = kwargs[key]["size"]
            if kwargs[key] is not None:
                kwargs[key] = [int(v) for v in kwargs[key]]
    return kwargs


def givt_backbone_from_big_vision_config(model_kwargs, **overrides):
    """Builds a `GIVTBackbone` from big_vision `givt.Model` kwargs."""
    kwargs = givt_backbone_kwargs(model_kwargs)
    kwargs.update(overrides)
    return GIVTBackbone(**kwargs)


# --- npz reading -----------------------------------------------------------


def read_npz(path):
    """Reads a big_vision params-only `.npz` into `{name: array}`.

    A leading `params/` (full train-state files) is stripped.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"The big_vision npz checkpoint {path!r} does not exist.")
    try:
        with np.load(path, allow_pickle=False) as data:
            params = {k: np.asarray(data[k]) for k in data.files}
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError) as e:
        raise ValueError(
            f"The big_vision npz checkpoint {path!r} is truncated or corrupt "
            f"({os.path.getsize(path)} bytes): {type(e).__name__}: {e}"
        ) from e
    if params and all(k.startswith("params/") for k in params):
        params = {k[len("params/") :]: v for k, v in params.items()}
    return params


def checkpoint_params(params, what, read=None):
    """`(params, what)`: a params dict as it is, or the checkpoint at the path
    `params` read by `read` (default `read_npz`), `what` then naming the file."""
    if isinstance(params, dict):
        return params, what
    what = f"{what} {os.fspath(params)!r}"
    return (read or read_npz)(params), what


def unscan_layers(params, prefix, num_layers, axis=1, sep=""):
    """Splits scanned `prefix/...` arrays (layer axis `axis`) into `prefix{sep}{i}/...`.

    big_vision's GIVT decoder scans on axis 1 (`decoder/EncDecBlock/...` ->
    `decoder/EncDecBlock{i}/...`), its ViT encoders on axis 0 with `sep="_"`
    (`encoder/encoderblock/...` -> `encoder/encoderblock_{i}/...`).
    """
    out = {}
    scanned = prefix + "/"
    for name, value in params.items():
        if not name.startswith(scanned):
            out[name] = value
            continue
        rest = name[len(scanned) :]
        if value.ndim <= axis or value.shape[axis] != num_layers:
            raise ValueError(
                f"Scanned array {name!r} should have {num_layers} layers on axis {axis}; "
                f"received shape {value.shape}."
            )
        for i in range(num_layers):
            out[f"{prefix}{sep}{i}/{rest}"] = np.take(value, i, axis=axis)
    return out


def vit_encoder_weight_map(encoder, prefix):
    """`{big_vision name: keras variable}` for a `ViTEncoder` under `prefix`.

    big_vision `models/vit.py` names, per layer (`prefix/encoderblock_{i}/...`);
    scanned checkpoints are unscanned first (`unscan_layers`, layer axis 0).
    Shared by the encoder-decoder GIVT's image encoder and the UViM ViT VAE.
    """
    m = {
        prefix + "/encoder_norm/scale": encoder.encoder_norm.scale,
        prefix + "/encoder_norm/bias": encoder.encoder_norm.bias,
    }
    for i, block in enumerate(encoder.blocks):
        p = f"{prefix}/encoderblock_{i}/"
        for bv, ln in (
            ("LayerNorm_0", block.pre_attention_norm),
            ("LayerNorm_1", block.pre_mlp_norm),
        ):
            m[p + bv + "/scale"] = ln.scale
            m[p + bv + "/bias"] = ln.bias
        for bv, layer in (("Dense_0", block.mlp_dense_0), ("Dense_1", block.mlp_dense_1)):
            m[p + f"MlpBlock_0/{bv}/kernel"] = layer.kernel
            m[p + f"MlpBlock_0/{bv}/bias"] = layer.bias
        for n in ("query", "key", "value", "out"):
            dense = getattr(block.attention, n)
            m[p + f"MultiHeadDotProductAttention_0/{n}/kernel"] = dense.kernel
            m[p + f"MultiHeadDotProductAttention_0/{n}/bias"] = dense.bias
    return m


# --- GIVT weights ----------------------------------------------------------


def givt_weight_map(backbone):
    """`{big_vision name: (keras variable, expected big_vision shape)}`."""
    emb = backbone.embedding
    m = {
        "EmbedLabels/embedding": emb.label_embedding.embeddings,
        "EmbedTargets/kernel": emb.token_embedding.kernel,
        "EmbedTargets/bias": emb.token_embedding.bias,
        "decoder/pos_emb": emb.position_embedding,
        "decoder/LayerNorm/scale": backbone.decoder_norm.scale,
        "decoder/LayerNorm/bias": backbone.decoder_norm.bias,
        "decoder/LogitsDense/kernel": backbone.logits_dense.kernel,
        "decoder/LogitsDense/bias": backbone.logits_dense.bias,
    }
    for i, block in enumerate(backbone.decoder_blocks):
        p = f"decoder/EncDecBlock{i}/"
        m[p + "LayerNorm1/scale"] = block.pre_attention_norm.scale
        m[p + "LayerNorm3/scale"] = block.pre_mlp_norm.scale
        for bv, layer in (("Dense_0", block.mlp_dense_0), ("Dense_1", block.mlp_dense_1)):
            m[p + f"MLP/{bv}/kernel"] = layer.kernel
            m[p + f"MLP/{bv}/bias"] = layer.bias
        for n in ("query", "key", "value", "out"):
            m[p + f"SelfAttn/{n}/kernel"] = getattr(block.self_attention, n).kernel
        if block.cross_attention:
            m[p + "LayerNorm2/scale"] = block.pre_cross_attention_norm.scale
            for n in ("query", "key", "value", "out"):
                m[p + f"CrossAttn/{n}/kernel"] = getattr(block.cross_attention_layer, n).kernel
    if backbone.image_encoder is not None:
        enc = backbone.image_encoder
        m["EmbedPatches/kernel"] = enc.patch_embedding.kernel
        m["EmbedPatches/bias"] = enc.patch_embedding.bias
        m["pos_embedding_encoder"] = enc.position_embedding
        m.update(vit_encoder_weight_map(enc.encoder, "encoder"))
    shapes = {k: tuple(v.shape) for k, v in m.items()}
    shapes["decoder/pos_emb"] = (1,) + shapes["decoder/pos_emb"]
    if "pos_embedding_encoder" in shapes:
        shapes["pos_embedding_encoder"] = (1,) + shapes["pos_embedding_encoder"]
    return {k: (m[k], shapes[k]) for k in m}


def assign_checked(weight_map, params, what="checkpoint"):
    """Assigns `params` to `weight_map` after checking every array.

    Refused (nothing is assigned), each with the array's name: a missing or
    unexpected array, a shape other than the model's, a non-numeric dtype,
    and NaN or ±inf entries (a corrupt or diverged checkpoint).

    Args:
        weight_map: `{name: (keras variable, expected shape)}`.
        params: `{name: array}` read from the checkpoint.
        what: str, the checkpoint in messages (e.g. "GIVT checkpoint
            '/path/params.npz'").
    """
    expected = set(weight_map)
    received = set(params)
    missing = sorted(expected - received)
    extra = sorted(received - expected)
    if missing:
        name = missing[0]
        raise ValueError(
            f"The {what} is missing array {name!r} (expected shape "
            f"{weight_map[name][1]}); {len(missing)} missing in total: {missing[:8]}"
        )
    if extra:
        name = extra[0]
        raise ValueError(
            f"The {what} has unexpected array {name!r} (shape {params[name].shape}); "
            f"{len(extra)} unexpected in total: {extra[:8]}. Was it saved for another config?"
        )
    for name in sorted(expected):
        shape = tuple(np.shape(params[name]))
        if shape != tuple(weight_map[name][1]):
            raise ValueError(
                f"Array {name!r} of the {what} has shape {shape}; the model expects "
                f"{tuple(weight_map[name][1])}. Was it saved for another config?"
            )
    for name in sorted(expected):
        value = np.asarray(params[name])
        if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
            raise TypeError(
                f"Array {name!r} of the {what} has dtype {value.dtype}; expected a float array."
            )
        finite = np.isfinite(value)
        if not finite.all():
            nan, inf = int(np.isnan(value).sum()), int(np.isinf(value).sum())
            first = tuple(int(i) for i in np.argwhere(~finite)[0])
            raise ValueError(
                f"Array {name!r} of the {what} holds {nan} NaN and {inf} inf of "
                f"{value.size} entries (first at index {first}: {value[first]!r}); "
                "the checkpoint is corrupt or diverged. Nothing was loaded."
            )
    for name, (variable, _) in weight_map.items():
        value = np.asarray(params[name], dtype="float32").reshape(tuple(variable.shape))
        variable.assign(value.astype(variable.dtype))


def load_givt_params(backbone, params):
    """Loads big_vision GIVT params (dict or npz path) into `backbone`."""
    params, what = checkpoint_params(params, "GIVT checkpoint")
    params = dict(params)
    if any(k.startswith("decoder/EncDecBlock/") for k in params):
        params = unscan_layers(params, "decoder/EncDecBlock", backbone.num_decoder_layers, axis=1)
    if any(k.startswith("encoder/encoderblock/") for k in params):
        # big_vision's ViT encoder scans on axis 0 (unlike the GIVT decoder).
        params = unscan_layers(params, "encoder/encoderblock", backbone.num_layers, axis=0, sep="_")
    assign_checked(givt_weight_map(backbone), params, what=what)
    return backbone


def is_scanned(params):
    return any(re.match(r"decoder/EncDecBlock/", k) for k in params)
