"""big_vision's published GIVT-UViM checkpoints (COCO panoptic, NYU depth).

Each preset pairs a ViT VAE over label maps (stage 1) with an
image-conditioned encoder-decoder GIVT (stage 2), both params-only `.npz`
files in big_vision's scanned layout, listed in big_vision's GIVT README
(`big_vision/configs/proj/givt/README.md`) under
https://storage.googleapis.com/big_vision/givt/ . The file names and the
configs below follow big_vision's `configs/proj/givt/givt_coco_panoptic.py`,
`givt_nyu_depth.py`, `vae_coco_panoptic.py` and `vae_nyu_depth.py` as far as
they are known here: **neither the URLs nor the configs could be verified
from the offline development machine.** To make a wrong guess harmless,
every field that is visible in the parameter shapes (widths, depths, heads,
MLP widths, patch sizes, token count and dim, number of mixtures, image
size) is read from the downloaded files by the converter
(`keras_givt.conversion.big_vision_uvim.infer_*_config`); only what the
shapes cannot tell (style, head type, the split of the classes into
`inout_specs`, the resize bottleneck's `code_len`) comes from the configs.

This file holds data only. `GIVTUViM.from_preset(name)` downloads both
files, converts them once (`keras_givt.conversion.registry`) into a keras-hub
preset directory in the Keras cache and loads it from there; offline, pass
local files with `keras_givt.utils.preset_utils.resolve_preset(name,
files={"givt": ..., "vae": ...})`.
"""

_BASE = "https://storage.googleapis.com/big_vision/givt/"

# Stage 1: big_vision `proj.givt.vit` (vae_*.py configs).
_VAE_COMMON = dict(
    input_size=[512, 512],
    patch_size=[16, 16],
    code_len=256,
    codeword_dim=16,
    width=768,
    enc_depth=6,
    dec_depth=12,
    mlp_dim=3072,
    num_heads=12,
    bottleneck_resize=True,
    scan=True,
)
# Stage 2: big_vision `proj.givt.givt` with an image encoder (givt_*.py configs).
_GIVT_COMMON = dict(
    style="ar",
    num_labels=None,
    seq_len=256,
    out_dim=16,
    emb_dim=1024,
    num_layers=6,
    num_decoder_layers=6,
    num_heads=16,
    mlp_dim=4096,
    num_mixtures=16,
    per_channel_mixtures=False,
    fix_square_plus=True,
    scale_tol=1e-6,
    input_size=[512, 512],
    patches=[16, 16],
    posemb_type="learn",
    scan=True,
)

uvim_presets = {
    "givt_uvim_coco_panoptic": {
        "metadata": {
            "description": (
                "GIVT-UViM for COCO panoptic segmentation (512x512): a ViT VAE over "
                "(semantics: 133 classes + void, instances: 100 ids) label maps and an "
                "image-conditioned encoder-decoder GIVT-Causal. Paper: PQ 40.2 on COCO "
                "val. Sampling: beam search 4 beams x fan 8, temperature 0.85."
            ),
            "params": None,
            "path": "givt_uvim",
        },
        "task": "GIVTUViM",
        "task_type": "panoptic",
        "files": {
            "givt": _BASE + "givt_coco_panoptic_params.npz",
            "vae": _BASE + "vae_coco_panoptic_params.npz",
        },
        "model_kwargs": dict(_GIVT_COMMON),
        "vae_config": dict(_VAE_COMMON, inout_specs={"semantics": [0, 134], "instances": [1, 100]}),
        "sampling_defaults": {"temperature": 0.85, "beam_size": 4, "fan_size": 8},
    },
    "givt_uvim_nyu_depth": {
        "metadata": {
            "description": (
                "GIVT-UViM for NYU Depth v2 monocular depth (512x512): a ViT VAE over "
                "depth quantised into 256 bins over [0.001, 10] m and an image-conditioned "
                "encoder-decoder GIVT-Causal. Paper: RMSE 0.474. Sampling: beam search "
                "2 beams x fan 8, temperature 0.9."
            ),
            "params": None,
            "path": "givt_uvim",
        },
        "task": "GIVTUViM",
        "task_type": "depth",
        "files": {
            "givt": _BASE + "givt_nyu_depth_params.npz",
            "vae": _BASE + "vae_nyu_depth_params.npz",
        },
        "model_kwargs": dict(_GIVT_COMMON),
        "vae_config": dict(_VAE_COMMON, inout_specs={"depth": [0, 256]}),
        "sampling_defaults": {"temperature": 0.9, "beam_size": 2, "fan_size": 8},
    },
}
