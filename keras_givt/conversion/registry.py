"""The converters that build the published presets (big_vision, MaskGIT).

The families' `*_presets.py` files hold data only. Every published entry has
one shape, `{"metadata": {...}, "task": class name, "files": {key: url}, ...}`
plus the config fields its class's builder reads:

| task                        | files                 | config fields                       |
|-----------------------------|-----------------------|-------------------------------------|
| GIVTCausal, GIVTMaskGIT     | givt, vae             | model_kwargs, vae_config            |
| GIVTUViM                    | givt, vae             | model_kwargs, vae_config, task_type |
| BetaVAE                     | vae                   | config                              |
| VQGANTokenizer              | tokenizer             | config, image_size                  |
| MaskGITImageGenerator       | transformer, tokenizer| model_kwargs, codebook_size,        |
|                             |                       | vqvae_config, image_size            |

(tasks also take `sampling_defaults`). `keras_givt` registers the entries at
import (`keras_givt.utils.preset_utils.register_presets`) with
`"build": "keras_givt.conversion.registry:build_preset"`, a string resolved
only when a published preset is converted for the first time
(`preset_utils.resolve_preset`). So `import keras_givt` imports nothing of
`keras_givt.conversion`, and conversion stays one way: it imports the
models, the models never import it.
"""

import os

from keras_givt.conversion import big_vision
from keras_givt.conversion import big_vision_uvim
from keras_givt.conversion import big_vision_vae
from keras_givt.conversion import download
from keras_givt.conversion import maskgit
from keras_givt.models.givt.givt_causal import GIVTCausal
from keras_givt.models.givt.givt_maskgit import GIVTMaskGIT
from keras_givt.models.uvim.givt_uvim import GIVTUViM
from keras_givt.models.vq_maskgit.maskgit_image_generator import MaskGITImageGenerator
from keras_givt.utils.preset_utils import keras_home


def build_givt_task(entry, local_files):
    """A `GIVTCausal` / `GIVTMaskGIT` from big_vision GIVT params and its CNN VAE."""
    backbone = big_vision.givt_backbone_from_big_vision_config(entry["model_kwargs"])
    big_vision.load_givt_params(backbone, local_files["givt"])
    vae = big_vision_vae.load_beta_vae(local_files["vae"], entry["vae_config"])
    task_cls = {"GIVTCausal": GIVTCausal, "GIVTMaskGIT": GIVTMaskGIT}[entry["task"]]
    return task_cls(backbone, vae=vae, sampling_defaults=entry.get("sampling_defaults"))


def build_givt_uvim(entry, local_files):
    """A `GIVTUViM` from big_vision ViT-VAE and encoder-decoder GIVT params.

    The shape-visible fields of the preset's configs are read from the files
    (`big_vision_uvim.infer_*_config`).
    """
    vae_params = big_vision.read_npz(local_files["vae"])
    vae = big_vision_uvim.vit_vae_from_big_vision_config(
        big_vision_uvim.infer_vit_vae_config(vae_params, entry["vae_config"])
    )
    big_vision_uvim.load_vit_vae_params(vae, vae_params)
    givt_params = big_vision.read_npz(local_files["givt"])
    backbone = big_vision.givt_backbone_from_big_vision_config(
        big_vision_uvim.infer_givt_config(givt_params, entry["model_kwargs"])
    )
    big_vision.load_givt_params(backbone, givt_params)
    return GIVTUViM(
        backbone,
        vae,
        task_type=entry["task_type"],
        sampling_defaults=entry.get("sampling_defaults"),
    )


def build_beta_vae(entry, local_files):
    """A `BetaVAE` from a big_vision CNN VAE checkpoint."""
    return big_vision_vae.load_beta_vae(local_files["vae"], entry["config"])


def build_vqgan_tokenizer(entry, local_files):
    """A `VQGANTokenizer` from a MaskGIT tokenizer checkpoint."""
    return maskgit.load_vqgan_tokenizer(
        local_files["tokenizer"], entry["config"], image_size=entry["image_size"]
    )


def build_maskgit_image_generator(entry, local_files):
    """A `MaskGITImageGenerator` from MaskGIT's transformer and tokenizer checkpoints."""
    backbone = maskgit.load_maskgit_backbone(
        local_files["transformer"], entry["model_kwargs"], entry["codebook_size"]
    )
    tokenizer = maskgit.load_vqgan_tokenizer(
        local_files["tokenizer"], entry["vqvae_config"], image_size=entry["image_size"]
    )
    return MaskGITImageGenerator(
        backbone, tokenizer, sampling_defaults=entry.get("sampling_defaults")
    )


# Preset class name -> `build(entry, local_files)`.
BUILDERS = {
    "GIVTCausal": build_givt_task,
    "GIVTMaskGIT": build_givt_task,
    "GIVTUViM": build_givt_uvim,
    "BetaVAE": build_beta_vae,
    "VQGANTokenizer": build_vqgan_tokenizer,
    "MaskGITImageGenerator": build_maskgit_image_generator,
}


def build_preset(entry, files=None):
    """The model of a published preset `entry`, from its downloaded files.

    Each file of `entry["files"]` is fetched once into the Keras cache
    (`download.fetch`) unless `files` gives a local path for its key. When
    the build rejects a file (`ValueError`: truncated, corrupt, another
    config), the files downloaded into the cache are removed, so a fixed
    file is fetched again.

    Args:
        entry: a published preset entry (see the module docstring).
        files: optional `{key: local path}` overriding the entry's URLs.
    """
    task = entry["task"]
    if task not in BUILDERS:
        raise ValueError(
            f"No converter builds {task!r} presets; known classes: {sorted(BUILDERS)}."
        )
    local, downloaded = {}, []
    for key, url in entry["files"].items():
        if (files or {}).get(key):
            local[key] = files[key]
        else:
            local[key] = download.fetch(url, what=f"{key} checkpoint")
            downloaded.append(local[key])
    try:
        return BUILDERS[task](entry, local)
    except ValueError:
        # A truncated or wrong download must not stay in the cache.
        for path in downloaded:
            if os.path.isfile(path) and path.startswith(keras_home()):
                os.remove(path)
        raise
