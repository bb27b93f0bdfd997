"""big_vision's published GIVT ImageNet checkpoints as keras_givt presets.

Each preset pairs a GIVT decoder (`givt_imagenet_2012_*_params.npz`,
params-only npz in big_vision's scanned layout, see `reference/PARAMS.md`)
with the β = 5e-5 ImageNet CNN VAE (legacy flax msgpack) and big_vision's
README sampling defaults. This file holds data only:
`GIVTCausal.from_preset(name)` downloads both files, converts them once
(`keras_givt.conversion.registry`) into a keras-hub preset directory in the
Keras cache and loads it from there.

The URLs follow big_vision's GIVT README (`gs://big_vision/givt/...`, served
at https://storage.googleapis.com/big_vision/givt/); they could not be
re-checked from the offline development machine.
"""

from keras_givt.models.vae.vae_presets import backbone_presets as _vae_presets

_BASE = "https://storage.googleapis.com/big_vision/givt/"
_VAE_CONFIG = dict(_vae_presets["beta_vae_imagenet_256_beta_5e-5"]["config"])
VAE_URL = _BASE + "vae_imagenet_2012_beta_5e-5_params"

_COMMON = dict(
    dec_dropout_rate=0.2,
    drop_labels_probability=0.1,
    emb_dim=1024,
    fix_square_plus=True,
    mask_style="concat",
    min_masking_rate_training=0.3,
    mlp_dim=4096,
    num_decoder_layers=24,
    num_heads=16,
    num_labels=1000,
    num_layers=0,
    num_mixtures=16,
    out_dim=16,
    per_channel_mixtures=False,
    posemb_type="learn",
    scale_tol=1e-6,
    scan=True,
    seq_len=256,
    style="ar",
)

givt_presets = {
    "givt_causal_imagenet256": {
        "metadata": {
            "description": (
                "GIVT-Causal (24 layers, width 1024) trained on ImageNet-2012 256x256 "
                "class-conditional, on the beta=5e-5 CNN VAE (16x16 tokens of 16 dims). "
                "Sampling defaults from big_vision's README: temperature 0.95, DB-CFG 0.4."
            ),
            "params": 304_009_744,
            "path": "givt",
        },
        "task": "GIVTCausal",
        "files": {"givt": _BASE + "givt_imagenet_2012_causal_params.npz", "vae": VAE_URL},
        "model_kwargs": dict(_COMMON),
        "sampling_defaults": {"temperature": 0.95, "cfg_weight": 0.4},
        "vae_config": dict(_VAE_CONFIG),
    },
    "givt_maskgit_imagenet256": {
        "metadata": {
            "description": (
                "GIVT-MaskGIT (24 layers, width 1024) trained on ImageNet-2012 256x256 "
                "class-conditional, on the beta=5e-5 CNN VAE. Sampling defaults from "
                "big_vision's README: choice temperature 35, DB-CFG 0.1, 16 steps."
            ),
            "params": 304_013_840,
            "path": "givt",
        },
        "task": "GIVTMaskGIT",
        "files": {"givt": _BASE + "givt_imagenet_2012_maskgit_params.npz", "vae": VAE_URL},
        "model_kwargs": dict(_COMMON, style="masked", dec_dropout_rate=0.4),
        "sampling_defaults": {"choice_temperature": 35.0, "cfg_weight": 0.1, "num_steps": 16},
        "vae_config": dict(_VAE_CONFIG),
    },
    "givt_maskgit_imagenet512": {
        "metadata": {
            "description": (
                "GIVT-MaskGIT (24 layers, width 1024) trained on ImageNet-2012 512x512 "
                "class-conditional (32x32 tokens), on the beta=5e-5 CNN VAE. Sampling "
                "defaults from big_vision's README: choice temperature 140, 16 steps."
            ),
            "params": 304_800_272,
            "path": "givt",
        },
        "task": "GIVTMaskGIT",
        "files": {"givt": _BASE + "givt_imagenet_2012_maskgit_512_params.npz", "vae": VAE_URL},
        "model_kwargs": dict(_COMMON, style="masked", dec_dropout_rate=0.4, seq_len=1024),
        "sampling_defaults": {"choice_temperature": 140.0, "num_steps": 16},
        "vae_config": dict(_VAE_CONFIG, code_len=1024),
    },
}
