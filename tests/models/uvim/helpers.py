"""Tiny UViM builders shared by the UViM tests."""

import numpy as np

from keras_givt import GIVTBackbone
from keras_givt import GIVTUViM
from keras_givt import ViTVAE


def tiny_vae(**overrides):
    kwargs = dict(
        inout_specs={"semantics": (0, 5), "instances": (1, 3)},
        input_size=(16, 16),
        patch_size=(4, 4),
        code_len=4,
        codeword_dim=4,
        width=32,
        enc_depth=1,
        dec_depth=1,
        mlp_dim=64,
        num_heads=2,
        seed=0,
    )
    kwargs.update(overrides)
    return ViTVAE(**kwargs)


def tiny_backbone(**overrides):
    kwargs = dict(
        seq_len=4,
        out_dim=4,
        num_labels=None,
        emb_dim=32,
        num_decoder_layers=2,
        num_heads=2,
        mlp_dim=64,
        num_mixtures=2,
        per_channel_mixtures=False,
        num_layers=1,
        input_size=(16, 16),
        patches=(4, 4),
    )
    kwargs.update(overrides)
    return GIVTBackbone(**kwargs)


def tiny_uvim(task_type="panoptic", **kwargs):
    if task_type == "depth":
        vae = tiny_vae(inout_specs={"depth": (0, 16)})
    else:
        vae = tiny_vae()
    return GIVTUViM(tiny_backbone(), vae, task_type=task_type, seed=0, **kwargs)


def panoptic_data(n=16, seed=0):
    """Images whose label map is a function of the image (learnable)."""
    rng = np.random.default_rng(seed)
    sem = rng.integers(0, 5, size=(n, 4, 4)).repeat(4, 1).repeat(4, 2)
    inst = (sem > 2).astype("int32")
    images = (sem[..., None] / 2.0 - 1.0).repeat(3, -1).astype("float32")
    return images, np.stack([sem, inst], -1).astype("int32")
