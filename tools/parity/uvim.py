"""Parity runner for big_vision's UViM ViT VAE fixtures (kind `vit_vae`).

Interface of `tools.parity`: `run_<kind>(cdir, entry, want)` -> `{output
name: numpy array}`. `z_random` is a draw from JAX's PRNG: it is read from the
fixture and passed through; its decoding is computed. UViM's encoder-decoder
GIVT (kind `givt_uvim`) runs through `tools.parity.givt.run_givt`.
"""

import os

import numpy as np

from keras_givt.conversion import big_vision_uvim
from keras_givt.utils.tensor_utils import to_numpy
from tools.parity.fixture_files import model_config
from tools.parity.fixture_files import read_inputs


def run_vit_vae(cdir, entry, want=None):
    want = want or {}
    model_kwargs, extras, files = model_config(cdir, entry)
    vae = big_vision_uvim.vit_vae_from_big_vision_config(model_kwargs)
    big_vision_uvim.load_vit_vae_params(vae, os.path.join(cdir, files[0]))
    x = read_inputs(cdir)["x"]
    out = {}
    mu, logvar = vae.encode(x)
    out["mu"], out["logvar"] = mu, logvar
    for name, value in vae.decode(mu).items():
        out["decoded_mu/" + name] = value
    z = want.get("z_random")
    if z is not None:
        z = np.asarray(z, "float32")
        out["z_random"] = z
        for name, value in vae.decode(z).items():
            out["decoded_z_random/" + name] = value
    return {k: to_numpy(v) for k, v in out.items()}
