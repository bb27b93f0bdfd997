"""big_vision UViM checkpoints (ViT VAE) -> keras_givt.

The encoder-decoder GIVT loads through `big_vision.load_givt_params` (its
image encoder is part of `GIVTBackbone`). This module handles
`big_vision.models.proj.givt.vit.Model`, the ViT VAE over label maps:
params-only `.npz`, per-layer (`encoder/encoderblock_{i}/...`) or scanned
(`encoder/encoderblock/...`, layers stacked on **axis 0**) layout.

The order of `inout_specs` fixes the one-hot and logit channel order; the
converter orders the entries by input channel (see `vit_vae_kwargs`).
"""

import os

from keras_givt.conversion.big_vision import _unscan
from keras_givt.conversion.big_vision import assign_checked
from keras_givt.conversion.big_vision import read_npz
from keras_givt.layers.vit_encoder import vit_encoder_weight_map

# big_vision `vit.Model` fields and our defaults for them.
VIT_VAE_FIELDS = (
    "inout_specs",
    "input_size",
    "patch_size",
    "code_len",
    "codeword_dim",
    "width",
    "enc_depth",
    "dec_depth",
    "mlp_dim",
    "num_heads",
    "bottleneck_resize",
    "head_zeroinit",
    "dropout",
)
_IGNORED = ("scan", "remat_policy")
_NEUTRAL = {"posemb": ("learn",), "pool_type": ("none", None)}


def vit_vae_kwargs(model_kwargs):
    """`ViTVAE` kwargs for big_vision `vit.Model(**model_kwargs)`."""
    if not isinstance(model_kwargs, dict):
        raise TypeError(f"`model_kwargs` must be a dict; received {type(model_kwargs).__name__}.")
    kwargs = {}
    for key, value in model_kwargs.items():
        if key in _IGNORED:
            continue
        if key in _NEUTRAL:
            if value not in _NEUTRAL[key]:
                raise ValueError(
                    f"big_vision option {key}={value!r} is not supported by ViTVAE "
                    f"(supported: {_NEUTRAL[key]})."
                )
            continue
        if key not in VIT_VAE_FIELDS:
            raise ValueError(f"Unknown big_vision vit.Model option {key!r} (value {value!r}).")
        kwargs[key] = value
    if not isinstance(kwargs.get("inout_specs"), dict):
        raise ValueError(
            "big_vision vit.Model kwargs need `inout_specs` {name: (channel, classes)}; "
            f"received {kwargs.get('inout_specs')!r}."
        )
    # JSON configs lose the dict order (often sorting the keys); big_vision's
    # configs list the outputs in input-channel order (semantics 0,
    # instances 1), and the one-hot/logit order follows it.
    specs = kwargs["inout_specs"]
    kwargs["inout_specs"] = {k: specs[k] for k in sorted(specs, key=lambda k: int(specs[k][0]))}
    return kwargs


def vit_vae_from_big_vision_config(model_kwargs, **overrides):
    """Builds a `ViTVAE` from big_vision `vit.Model` kwargs."""
    from keras_givt.models.uvim.vit_vae import ViTVAE

    kwargs = vit_vae_kwargs(model_kwargs)
    kwargs.update(overrides)
    return ViTVAE(**kwargs)


def vit_vae_weight_map(vae):
    """`{big_vision name: (keras variable, expected big_vision shape)}`."""
    enc = vae.encoder
    m = {
        "embedding/kernel": enc.patch_embedding.kernel,
        "embedding/bias": enc.patch_embedding.bias,
        "pos_embedding_encoder": enc.position_embedding,
        "encoder_head/kernel": vae.encoder_head.kernel,
        "encoder_head/bias": vae.encoder_head.bias,
        "decoder_stem/kernel": vae.decoder_stem.kernel,
        "decoder_stem/bias": vae.decoder_stem.bias,
        "pos_embedding_decoder": vae.pos_embedding_decoder,
        "decoder_head/kernel": vae.decoder_head.kernel,
        "decoder_head/bias": vae.decoder_head.bias,
    }
    m.update(vit_encoder_weight_map(enc.encoder, "encoder"))
    m.update(vit_encoder_weight_map(vae.decoder, "decoder"))
    if not vae.bottleneck_resize:
        m["bottleneck_downsample"] = vae.bottleneck_downsample
        m["bottleneck_upsample"] = vae.bottleneck_upsample
    shapes = {k: tuple(v.shape) for k, v in m.items()}
    for k in ("pos_embedding_encoder", "pos_embedding_decoder"):
        shapes[k] = (1,) + shapes[k]
    return {k: (m[k], shapes[k]) for k in m}


def load_vit_vae_params(vae, params):
    """Loads big_vision ViT-VAE params (dict or npz path) into `vae`."""
    what = "ViT-VAE checkpoint"
    if not isinstance(params, dict):
        what = f"ViT-VAE checkpoint {os.fspath(params)!r}"
        params = read_npz(params)
    params = dict(params)
    for prefix, depth in (("encoder", vae.enc_depth), ("decoder", vae.dec_depth)):
        if any(k.startswith(f"{prefix}/encoderblock/") for k in params):
            params = _unscan(params, f"{prefix}/encoderblock", depth, axis=0, sep="_")
    assign_checked(vit_vae_weight_map(vae), params, what=what)
    return vae
