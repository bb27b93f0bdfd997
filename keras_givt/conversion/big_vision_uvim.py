"""big_vision UViM checkpoints (ViT VAE) -> keras_givt.

The encoder-decoder GIVT loads through `big_vision.load_givt_params` (its
image encoder is part of `GIVTBackbone`). This module handles
`big_vision.models.proj.givt.vit.Model`, the ViT VAE over label maps:
params-only `.npz`, per-layer (`encoder/encoderblock_{i}/...`) or scanned
(`encoder/encoderblock/...`, layers stacked on **axis 0**) layout.

`load_vit_vae(path, config)` builds a `ViTVAE` and loads it (formerly
`ViTVAE.from_big_vision_checkpoint`).

The order of `inout_specs` fixes the one-hot and logit channel order; the
converter orders the entries by input channel (see `vit_vae_kwargs`).

The published UViM presets (`keras_givt.models.uvim.uvim_presets`) name only
what the parameter shapes cannot tell; `infer_vit_vae_config` and
`infer_givt_config` read every shape-visible field (widths, depths, heads,
MLP widths, patch sizes, token count and dim, number of mixtures, image
size) from the downloaded files.
"""

import numpy as np

from keras_givt.conversion.big_vision import assign_checked
from keras_givt.conversion.big_vision import big_vision_options
from keras_givt.conversion.big_vision import checkpoint_params
from keras_givt.conversion.big_vision import unscan_layers
from keras_givt.conversion.big_vision import vit_encoder_weight_map
from keras_givt.models.uvim.vit_vae import ViTVAE

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
    kwargs = big_vision_options(
        model_kwargs, VIT_VAE_FIELDS, _IGNORED, _NEUTRAL, "ViTVAE", "vit.Model"
    )
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
    params, what = checkpoint_params(params, "ViT-VAE checkpoint")
    params = dict(params)
    for prefix, depth in (("encoder", vae.enc_depth), ("decoder", vae.dec_depth)):
        if any(k.startswith(f"{prefix}/encoderblock/") for k in params):
            params = unscan_layers(params, f"{prefix}/encoderblock", depth, axis=0, sep="_")
    assign_checked(vit_vae_weight_map(vae), params, what=what)
    return vae


def load_vit_vae(path, config, **overrides):
    """A `ViTVAE` from big_vision `vit.Model` kwargs and a params npz (path or dict).

    Example:
    ```python
    from keras_givt.conversion import big_vision_uvim

    vae = big_vision_uvim.load_vit_vae("/path/to/vae_params.npz", vit_model_kwargs)
    ```
    """
    vae = vit_vae_from_big_vision_config(config, **overrides)
    return load_vit_vae_params(vae, path)


# --- Reading the architecture from the parameter shapes --------------------


def _blocks(params, prefix, axis):
    """Number of blocks under `prefix` (scanned: size of the layer axis)."""
    scanned = [v for k, v in params.items() if k.startswith(prefix + "/")]
    if scanned:
        return int(scanned[0].shape[axis]), True
    names = {k[len(prefix) :].split("/")[0] for k in params if k.startswith(prefix)}
    return len([n for n in names if n.lstrip("_").isdigit()]), False


def _square_grid(num_patches, patch):
    side = int(round(np.sqrt(num_patches)))
    if side * side != num_patches:
        return None
    return [side * patch[0], side * patch[1]]


def infer_vit_vae_config(params, config):
    """`config` with the fields visible in the ViT-VAE `params` shapes replaced."""
    config = dict(config)
    kernel = params["embedding/kernel"]  # (ph, pw, C, E)
    config["patch_size"] = [int(kernel.shape[0]), int(kernel.shape[1])]
    config["width"] = int(kernel.shape[3])
    config["codeword_dim"] = int(params["decoder_stem/kernel"].shape[0])
    for prefix, key in (("encoder", "enc_depth"), ("decoder", "dec_depth")):
        depth, scanned = _blocks(params, f"{prefix}/encoderblock", 0)
        config[key] = depth
        first = f"{prefix}/encoderblock/" if scanned else f"{prefix}/encoderblock_0/"
        q = params[first + "MultiHeadDotProductAttention_0/query/kernel"]
        config["num_heads"] = int(q.shape[-2])
        config["mlp_dim"] = int(params[first + "MlpBlock_0/Dense_0/kernel"].shape[-1])
    size = _square_grid(params["pos_embedding_encoder"].shape[1], config["patch_size"])
    if size is not None:
        config["input_size"] = size
    if "bottleneck_downsample" in params:
        config["bottleneck_resize"] = False
        config["code_len"] = int(params["bottleneck_downsample"].shape[1])
    classes = sum(int(v[1]) for v in config["inout_specs"].values())
    if classes != kernel.shape[2]:
        raise ValueError(
            f"The VAE checkpoint embeds {kernel.shape[2]} input classes; the preset's "
            f"inout_specs {config['inout_specs']} have {classes}."
        )
    return config


def infer_givt_config(params, config):
    """`config` with the fields visible in the GIVT `params` shapes replaced."""
    config = dict(config)
    targets = params["EmbedTargets/kernel"]  # (D, E)
    config["out_dim"], config["emb_dim"] = int(targets.shape[0]), int(targets.shape[1])
    config["seq_len"] = int(params["decoder/pos_emb"].shape[1])
    depth, scanned = _blocks(params, "decoder/EncDecBlock", 1)
    config["num_decoder_layers"] = depth
    first = "decoder/EncDecBlock/" if scanned else "decoder/EncDecBlock0/"
    q = params[first + "SelfAttn/query/kernel"]  # (E, [N,] H, Dh)
    config["num_heads"] = int(q.shape[-2])
    config["mlp_dim"] = int(params[first + "MLP/Dense_0/kernel"].shape[-1])
    if "EmbedPatches/kernel" in params:
        patch = params["EmbedPatches/kernel"]
        config["patches"] = [int(patch.shape[0]), int(patch.shape[1])]
        config["num_layers"] = _blocks(params, "encoder/encoderblock", 0)[0]
        size = _square_grid(params["pos_embedding_encoder"].shape[1], config["patches"])
        if size is not None:
            config["input_size"] = size
    m, d = int(params["decoder/LogitsDense/kernel"].shape[1]), config["out_dim"]
    if config.get("multivariate"):
        return config
    per_channel = config.get("per_channel_mixtures", True)
    fits = {True: m % (3 * d) == 0, False: m % (1 + 2 * d) == 0}
    if not fits[per_channel] and fits[not per_channel]:
        per_channel = not per_channel  # The head layout the shapes allow.
    config["per_channel_mixtures"] = per_channel
    config["num_mixtures"] = m // (3 * d) if per_channel else m // (1 + 2 * d)
    return config
