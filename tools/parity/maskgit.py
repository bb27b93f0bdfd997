"""Parity runners for google-research/maskgit (VQGAN, transformer, mask schedules).

Interface of `tools.parity`: `run_<kind>(cdir, entry, want)`
-> `{output name: numpy array}`. `random_indices` is a draw from JAX's PRNG:
it is read from the fixture and passed through; what is computed from it
(`decoded_random_indices`) is computed.

Kind `functions` is shared with big_vision's `mask_schedule` fixture:
`tools.parity.run_functions` sends the MaskGIT one (recognised by its
`total_unknown` input) to `run_maskgit_schedule`.
"""

import os

import numpy as np
from keras import ops

from keras_givt.conversion import maskgit
from keras_givt.samplers import schedules
from keras_givt.utils.tensor_utils import to_numpy
from tools.parity.fixture_files import merged_config
from tools.parity.fixture_files import read_inputs


def run_vqgan(cdir, entry, want=None):
    want = want or {}
    config = merged_config(cdir, entry)
    inputs = read_inputs(cdir)
    images = inputs["images"].astype("float32")
    files = config.get("param_files", ["checkpoint"])
    tokenizer = maskgit.load_vqgan_tokenizer(
        os.path.join(cdir, files[0]), config["config"]["vqvae"], image_size=images.shape[1]
    )
    out = {}
    features = tokenizer.encode(images)
    out["encoder_features"] = features
    indices = tokenizer.quantizer.get_indices(features)
    out["encoding_indices"] = indices
    quantized = tokenizer.quantizer.decode_ids(indices)
    out["quantized"] = quantized
    out["decoded_from_indices"] = tokenizer.decode_from_indices(indices)
    out["decoded_quantized"] = tokenizer.decode(quantized)
    random_indices = want.get("random_indices", inputs.get("random_indices"))
    if random_indices is not None:
        random_indices = np.asarray(random_indices, "int32")
        out["random_indices"] = random_indices
        out["decoded_random_indices"] = tokenizer.decode_from_indices(random_indices)
    losses = tokenizer.quantizer.quantizer_losses(features)
    for key, value in losses.items():
        out["train/" + key] = value
    return {k: to_numpy(v) for k, v in out.items()}


def run_maskgit_transformer(cdir, entry, want=None):
    config = merged_config(cdir, entry)
    extras = config.get("extras", {})
    inputs = read_inputs(cdir)
    files = config.get("param_files", ["checkpoint"])
    backbone = maskgit.load_maskgit_backbone(
        os.path.join(cdir, files[0]), config["model_kwargs"], int(extras["codebook_size"])
    )
    logits = backbone(ops.convert_to_tensor(inputs["input_ids"].astype("int32")), training=False)
    return {"logits": to_numpy(logits)}


def run_maskgit_schedule(cdir, entry, want=None):
    """MaskGIT's `mask_schedule.schedule` fixture (`schedule/<method>`)."""
    inputs = read_inputs(cdir)
    want = want or {}
    ratios = inputs["ratios"].astype("float32")
    total = inputs["total_unknown"]
    out = {}
    for key in want:
        if key.startswith("schedule/"):
            method = key[len("schedule/") :]
            r = np.where(ratios == 0, 1e-3, ratios).astype("float32") if method == "log" else ratios
            out[key] = schedules.maskgit_mask_ratio(r, total, method)
    return {k: to_numpy(v) for k, v in out.items()}
