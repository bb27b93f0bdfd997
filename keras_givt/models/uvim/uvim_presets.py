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
size) is read from the downloaded files (`infer_*_config`); only what the
shapes cannot tell (style, head type, the split of the classes into
`inout_specs`, the resize bottleneck's `code_len`) comes from the configs.

`GIVTUViM.from_preset(name)` downloads both files with
`keras.utils.get_file`, converts them once into a keras-hub preset directory
in the Keras cache and loads it from there; offline, pass local files with
`keras_givt.utils.preset_utils.resolve_preset(name, files={"givt": ...,
"vae": ...})`.
"""

import numpy as np

from keras_givt.utils import preset_utils

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


def build_from_big_vision(entry, local_files):
    """A `GIVTUViM` from a preset entry and local big_vision files."""
    from keras_givt.conversion import big_vision
    from keras_givt.conversion import big_vision_uvim
    from keras_givt.models.uvim.givt_uvim import GIVTUViM

    vae_params = big_vision.read_npz(local_files["vae"])
    vae = big_vision_uvim.vit_vae_from_big_vision_config(
        infer_vit_vae_config(vae_params, entry["vae_config"])
    )
    big_vision_uvim.load_vit_vae_params(vae, vae_params)
    givt_params = big_vision.read_npz(local_files["givt"])
    backbone = big_vision.givt_backbone_from_big_vision_config(
        infer_givt_config(givt_params, entry["model_kwargs"])
    )
    big_vision.load_givt_params(backbone, givt_params)
    return GIVTUViM(
        backbone,
        vae,
        task_type=entry["task_type"],
        sampling_defaults=entry.get("sampling_defaults"),
    )


def registry_entries(presets=None):
    """Entries for `keras_givt.utils.preset_utils.register_presets`."""
    return preset_utils.task_registry_entries(
        uvim_presets if presets is None else presets, build_from_big_vision
    )
