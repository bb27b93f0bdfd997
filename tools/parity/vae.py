"""Parity runners for big_vision's CNN VAE and iRevNet adaptor fixtures.

Interface of `tools.parity`: `run_<kind>(cdir, entry, want)`
-> `{output name: numpy array}` for every array of the config's outputs.npz.

`z_random` is a draw from JAX's PRNG that only JAX can reproduce: it is read
from the fixture (`want`) and passed through; everything computed from it
(`decoded_z_random`, `decoder_raw_z_random`) is computed.
"""

import os

import numpy as np

from keras_givt.conversion import big_vision_vae
from keras_givt.conversion.msgpack_reader import is_msgpack_file
from keras_givt.utils.tensor_utils import to_numpy
from tools.parity.fixture_files import model_config
from tools.parity.fixture_files import read_inputs


def run_vae(cdir, entry, want=None):
    want = want or {}
    model_kwargs, extras, files = model_config(cdir, entry)
    inputs = read_inputs(cdir)
    images = inputs["images"].astype("float32")
    vae = big_vision_vae.build_vae(model_kwargs, image_size=images.shape[1])
    path = os.path.join(cdir, files[0])
    params = big_vision_vae.read_vae_params(path, use_ema_params=True)
    big_vision_vae.load_vae_params(vae, params)

    out = {}
    mu, logvar = vae.encode(images)
    out["mu"], out["logvar"] = mu, logvar
    out["encoder_raw"] = vae.encode_raw(images)
    out["decoded_mu"] = vae.decode(mu)
    z = want.get("z_random", inputs.get("z_random"))
    if z is not None:
        z = np.asarray(z, "float32")
        out["z_random"] = z
        out["decoded_z_random"] = vae.decode(z)
        out["decoder_raw_z_random"] = vae.decode_raw(z)

    x20 = extras.get("x20_params")
    if x20:
        scaled = dict(params)
        for name in x20:
            scaled[name] = params[name] * 20.0
        big_vision_vae.load_vae_params(vae, scaled)
        out["mu_x20"], out["logvar_x20"] = vae.encode(images)
        big_vision_vae.load_vae_params(vae, params)

    if is_msgpack_file(path):
        g = big_vision_vae.read_vae_params(path, use_ema_params=False)
        big_vision_vae.load_vae_params(vae, g)
        out["mu_g_params"] = vae.encode(images)[0]
        big_vision_vae.load_vae_params(vae, params)
    return {k: to_numpy(v) for k, v in out.items()}


def run_adaptor(cdir, entry, want=None):
    model_kwargs, extras, files = model_config(cdir, entry)
    x = read_inputs(cdir)["x"].astype("float32")
    adaptor = big_vision_vae.build_adaptor(model_kwargs, code_len=x.shape[1])
    big_vision_vae.load_adaptor_params(adaptor, os.path.join(cdir, files[0]))
    out = {}
    # big_vision's forward/inverse default to train=True (harmless with dropout 0);
    # we run inference mode, identical when dropout_rate == 0.
    fwd = adaptor.forward(x)
    out["forward"] = fwd
    out["call"] = adaptor(x)
    out["inverse_of_forward"] = adaptor.inverse(fwd)
    out["inverse"] = adaptor.inverse(x)
    return {k: to_numpy(v) for k, v in out.items()}
