"""big_vision's published ImageNet CNN β-VAEs (GIVT paper), keras-hub preset form.

The files are legacy flax msgpack checkpoints (no extension) under
https://storage.googleapis.com/big_vision/givt/ . The names
`vae_imagenet_2012_beta_<β>_params` follow big_vision's GIVT README
(`big_vision/configs/proj/givt/README.md`) to the best of our knowledge;
they could not be re-checked from this (offline) machine.

Config (`reference/PARAMS.md`): MaskGIT VQGAN-style CNN, filters 128,
channel_multipliers (1, 1, 2, 2, 4), 2 ResBlocks per level, 16-dim codes,
256×256 images -> 16×16 = 256 tokens, malib_ckpt=True.

This file holds data only: `BetaVAE.from_preset(name)` downloads the file,
converts it once (`keras_givt.conversion.registry`) into `model.keras` in the
Keras cache and loads that; `keras_givt.conversion.big_vision_vae.
load_beta_vae(name)` converts without caching.
"""

_URL = "https://storage.googleapis.com/big_vision/givt/vae_imagenet_2012_beta_{}_params"

_CONFIG = {
    "codeword_dim": 16,
    "code_len": 256,
    "filters": 128,
    "num_res_blocks": 2,
    "channel_multipliers": [1, 1, 2, 2, 4],
    "conv_downsample": False,
    "activation_fn": "swish",
    "norm_type": "GN",
    "malib_ckpt": True,
}

_PARAMS = 53_032_611  # reference/PARAMS.md (ema_params only).


def _preset(beta_str, beta):
    return {
        "metadata": {
            "description": (
                f"big_vision GIVT CNN β-VAE trained on ImageNet-2012 at 256×256 with "
                f"β = {beta_str}: 16×16 tokens of 16 channels (EMA params)."
            ),
            "params": _PARAMS,
            "path": "vae",
        },
        "task": "BetaVAE",
        "files": {"vae": _URL.format(beta_str)},
        "config": dict(_CONFIG, beta=beta),
    }


backbone_presets = {
    f"beta_vae_imagenet_256_beta_{s}": _preset(s, b)
    for s, b in (("1e-5", 1e-5), ("2.5e-5", 2.5e-5), ("5e-5", 5e-5), ("1e-4", 1e-4), ("2e-4", 2e-4))
}
