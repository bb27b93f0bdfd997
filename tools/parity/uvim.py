"""Fixture runners for big_vision's UViM models (ViT VAE, encoder-decoder GIVT).

Interface of `keras_givt.conversion.fixtures`: `run_<kind>(cdir, entry, want)`
-> `{output name: numpy array}`. `z_random` is a draw from JAX's PRNG: it is
read from the fixture and passed through; its decoding is computed.
"""

import os

import numpy as np

from keras_givt.conversion import big_vision_uvim
from keras_givt.conversion.fixtures import run_givt
from keras_givt.conversion.fixtures_vae import _config
from keras_givt.conversion.fixtures_vae import _inputs
from keras_givt.utils.tensor_utils import to_numpy


def run_vit_vae(cdir, entry, want=None):
    want = want or {}
    model_kwargs, extras, files = _config(cdir, entry)
    vae = big_vision_uvim.vit_vae_from_big_vision_config(model_kwargs)
    big_vision_uvim.load_vit_vae_params(vae, os.path.join(cdir, files[0]))
    x = _inputs(cdir)["x"]
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


def run_givt_uvim(cdir, entry, want=None):
    return run_givt(cdir, entry, want)


RUNNERS = {"vit_vae": run_vit_vae, "givt_uvim": run_givt_uvim}
