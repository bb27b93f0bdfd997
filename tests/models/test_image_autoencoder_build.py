"""`ImageAutoencoder.build_for_image_size`: its dummy forward records nothing for autograd.

On torch, eager ops are recorded for autograd unless they run under
`torch.no_grad()`; the build's dummy forward at the full image size would
keep every activation alive (over 10 GB for the 512px ImageNet VAE, which
each conversion and each load of its presets builds). The variables still
train afterwards.
"""

import keras
import numpy as np
import pytest

from keras_givt.models.vae import BetaVAE
from keras_givt.models.vqvae.vqgan_tokenizer import VQGANTokenizer

TINY_VQGAN = dict(
    filters=32, num_res_blocks=1, channel_multipliers=[1, 1], embedding_dim=4, codebook_size=16
)
TINY_VAE = dict(
    codeword_dim=4, code_len=16, filters=32, num_res_blocks=1, channel_multipliers=[1, 2]
)


def _saved_for_backward(build):
    """Tensors torch autograd saved while `build()` ran."""
    import torch

    saved = []

    def pack(tensor):
        saved.append(tuple(tensor.shape))
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        build()
    return saved


@pytest.mark.skipif(keras.config.backend() != "torch", reason="torch autograd only")
@pytest.mark.parametrize("model", ["vae", "vqgan"])
def test_build_records_nothing_for_autograd_and_still_trains(model):
    import torch

    ae = BetaVAE(**TINY_VAE) if model == "vae" else VQGANTokenizer(**TINY_VQGAN)
    saved = _saved_for_backward(lambda: ae.build_for_image_size(8))
    assert saved == []
    assert ae.trainable_variables
    assert all(v.value.requires_grad for v in ae.trainable_variables)
    images = np.random.default_rng(0).uniform(-1, 1, (2, 8, 8, 3)).astype("float32")
    ae.zero_grad()
    out = ae(images)
    tensors = [t for t in keras.tree.flatten(out) if torch.is_tensor(t) and t.is_floating_point()]
    loss = sum(torch.mean(torch.square(t)) for t in tensors)
    loss.backward()
    grads = [v.value.grad for v in ae.trainable_variables]
    assert sum(g is not None and bool(torch.any(g != 0)) for g in grads) > len(grads) // 2


def test_build_creates_the_variables():
    ae = BetaVAE(**TINY_VAE)
    assert not ae.built
    assert ae.build_for_image_size(8) is ae
    assert ae.built and len(ae.weights) > 0
