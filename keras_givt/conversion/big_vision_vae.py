"""big_vision CNN VAE and iRevNet adaptor checkpoints -> keras_givt models.

- params-only npz (`np.savez` of `cnn_encoder/...`, `cnn_decoder/...`), read
  with `big_vision.read_npz`;
- legacy flax msgpack (the published ImageNet VAE files): `ema_params/...`
  (default) or `g_params/...`, with `encoder/` -> `cnn_encoder/` and
  `decoder/` -> `cnn_decoder/` (big_vision replaces `ema_params/` by `cnn_`).
- adaptor npz (`modules_{i}/...`), optionally nested in GIVT params as
  `params_adaptor/...`.

Every array is checked by `big_vision.assign_checked`: a missing, extra or
mis-shaped array raises a `ValueError` naming it and both shapes.

`load_beta_vae(path, URL or preset name, config)` builds a `BetaVAE` and loads
it (formerly `BetaVAE.from_big_vision_checkpoint`).
"""

import os

from keras import ops

from keras_givt.conversion import download
from keras_givt.conversion import msgpack_reader
from keras_givt.conversion.big_vision import assign_checked
from keras_givt.conversion.big_vision import checkpoint_params
from keras_givt.conversion.big_vision import read_npz
from keras_givt.models.adaptor.irevnet_adaptor import IRevNetAdaptor
from keras_givt.models.vae.beta_vae import BetaVAE
from keras_givt.models.vae.vae_presets import backbone_presets

# big_vision `cnn.Model` defaults (the fields BetaVAE takes).
CNN_DEFAULTS = {
    "codeword_dim": 32,
    "code_len": 256,
    "filters": 128,
    "num_res_blocks": 2,
    "channel_multipliers": (1, 1, 2, 2, 4),
    "conv_downsample": False,
    "activation_fn": "swish",
    "norm_type": "GN",
    "malib_ckpt": False,
    "pixel_shuffle_patch_size": (1, 1),
}
_KERAS_ONLY = ("output_dim", "beta", "reconstruction_loss", "seed", "name", "dtype", "trainable")


def vae_kwargs(model_kwargs):
    """`BetaVAE` kwargs for big_vision `cnn.Model(**model_kwargs)`."""
    kwargs = dict(CNN_DEFAULTS)
    for key, value in (model_kwargs or {}).items():
        if key not in CNN_DEFAULTS and key not in _KERAS_ONLY:
            raise ValueError(f"Unknown big_vision cnn.Model option {key!r} (value {value!r}).")
        kwargs[key] = value
    return kwargs


def build_vae(model_kwargs, image_size=None, cls=BetaVAE):
    """A built `BetaVAE` (or `cls`) for big_vision `cnn.Model(**model_kwargs)`.

    `image_size` defaults to `BetaVAE.default_image_size()` (from `code_len`).
    """
    vae = cls(**vae_kwargs(model_kwargs))
    vae.build_for_image_size(image_size or vae.default_image_size())
    return vae


# --- weight maps -----------------------------------------------------------


def _conv(m, prefix, layer):
    m[prefix + "/kernel"] = layer.kernel
    if layer.use_bias:
        m[prefix + "/bias"] = layer.bias


def _norm(m, prefix, layer):
    m[prefix + "/scale"] = layer.scale
    m[prefix + "/bias"] = layer.bias


def _res_block(m, prefix, block):
    _norm(m, prefix + "/GroupNorm_0", block.norm_0)
    _conv(m, prefix + "/Conv_0", block.conv_0)
    _norm(m, prefix + "/GroupNorm_1", block.norm_1)
    _conv(m, prefix + "/Conv_1", block.conv_1)
    if block.shortcut is not None:
        _conv(m, prefix + "/Conv_2", block.shortcut)


def vae_weight_map(vae):
    """`{big_vision name: (keras variable, shape)}`; the model must be built."""
    if not vae.built or not vae.encoder.built:
        raise ValueError("Build the VAE first (e.g. `vae.build_for_image_size(256)`).")
    m = {}
    enc, dec = vae.encoder, vae.decoder
    # flax numbers the encoder's Convs in creation order: stem, downsample convs, head.
    convs = [enc.stem_conv] + list(enc.downsample_convs) + [enc.out_conv]
    for i, layer in enumerate(convs):
        _conv(m, f"cnn_encoder/Conv_{i}", layer)
    for i, block in enumerate(enc.res_blocks):
        _res_block(m, f"cnn_encoder/ResBlock_{i}", block)
    _norm(m, "cnn_encoder/GroupNorm_0", enc.norm)
    convs = [dec.stem_conv] + list(dec.upsample_convs) + [dec.out_conv]
    for i, layer in enumerate(convs):
        _conv(m, f"cnn_decoder/Conv_{i}", layer)
    for i, block in enumerate(dec.res_blocks):
        _res_block(m, f"cnn_decoder/ResBlock_{i}", block)
    _norm(m, "cnn_decoder/GroupNorm_0", dec.norm)
    return {k: (v, tuple(v.shape)) for k, v in m.items()}


def adaptor_weight_map(adaptor):
    if not adaptor.built:
        raise ValueError("Build the adaptor first (call it on a (B, L, C) batch).")
    m = {}
    for i, block in enumerate(adaptor.blocks):
        p = f"modules_{i}/"
        for j, conv in enumerate((block.conv_0, block.conv_1, block.conv_2)):
            _conv(m, p + f"Conv_{j}", conv)
        for j, gn in enumerate((block.gn_0, block.gn_1, block.gn_2)):
            if gn is not None:
                _norm(m, p + f"gn_{j}", gn)
    return {k: (v, tuple(v.shape)) for k, v in m.items()}


# --- reading ---------------------------------------------------------------


def read_vae_params(path, use_ema_params=True):
    """`{cnn_encoder/..., cnn_decoder/...: array}` from an npz or flax msgpack file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"VAE checkpoint {path!r} does not exist.")
    if msgpack_reader.is_msgpack_file(path):
        subtree = "ema_params" if use_ema_params else "g_params"
        params = msgpack_reader.read_msgpack_params(path, subtree)
        return {"cnn_" + k: v for k, v in params.items()}
    return read_npz(path)


def load_vae_params(vae, params, use_ema_params=True):
    """Loads big_vision VAE params (dict, npz or msgpack path) into a built `vae`."""
    params, what = checkpoint_params(
        params, "VAE checkpoint", lambda path: read_vae_params(path, use_ema_params=use_ema_params)
    )
    assign_checked(vae_weight_map(vae), params, what=what)
    return vae


def load_adaptor_params(adaptor, params):
    """Loads big_vision adaptor params (dict or npz path) into a built adaptor.

    GIVT params holding `params_adaptor/...` are accepted too.
    """
    params, what = checkpoint_params(params, "adaptor checkpoint")
    if any(k.startswith("params_adaptor/") for k in params):
        params = {
            k[len("params_adaptor/") :]: v
            for k, v in params.items()
            if k.startswith("params_adaptor/")
        }
    assign_checked(adaptor_weight_map(adaptor), params, what=what)
    return adaptor


def build_adaptor(model_kwargs, code_len=256):
    """A built `IRevNetAdaptor` for big_vision adaptor kwargs."""
    adaptor = IRevNetAdaptor(**model_kwargs)
    # Tokens are (B, code_len, num_channels) on big_vision's h x w token grid.
    adaptor(ops.zeros((1, code_len, adaptor.num_channels)))
    return adaptor


# --- published checkpoints -------------------------------------------------


def load_beta_vae(path_or_url, config=None, image_size=None, use_ema_params=True, cls=BetaVAE):
    """Builds a `BetaVAE` and loads a big_vision checkpoint into it.

    Args:
        path_or_url: local file (legacy flax msgpack or params-only npz), an
            `https://` / `gs://` / `file://` URL (fetched once with
            `keras_givt.conversion.download.fetch`), or a preset name from
            `keras_givt.models.vae.vae_presets.backbone_presets`.
        config: dict of big_vision `cnn.Model` kwargs (or `BetaVAE` kwargs);
            taken from the preset when `path_or_url` is a preset name (then
            `config` overrides single fields).
        image_size: int. Image size used to build the variables (default:
            `BetaVAE.default_image_size()`, derived from `code_len`).
        use_ema_params: bool. msgpack only: `ema_params` (True) or `g_params`.
        cls: the class to build (a `BetaVAE` subclass).

    Example:
    ```python
    from keras_givt.conversion import big_vision_vae

    vae = big_vision_vae.load_beta_vae("beta_vae_imagenet_256_beta_5e-5")
    vae = big_vision_vae.load_beta_vae("/path/to/params", {"codeword_dim": 16, ...})
    ```
    """
    path = os.fspath(path_or_url)
    if path in backbone_presets:
        preset = backbone_presets[path]
        config = dict(preset["config"], **(config or {}))
        path = preset["files"]["vae"]
    if config is None:
        raise ValueError("Pass `config` (big_vision cnn.Model kwargs) with a file or URL.")
    if download.is_url(path):
        path = download.fetch(path, what="big_vision VAE checkpoint")
    vae = build_vae(config, image_size=image_size, cls=cls)
    return load_vae_params(vae, path, use_ema_params=use_ema_params)
