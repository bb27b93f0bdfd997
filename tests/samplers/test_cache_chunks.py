"""AR decoding in chunks over growing cache windows (`samplers.autoregressive`)."""

import keras
import numpy as np
import pytest

import keras_givt
from keras_givt.samplers import autoregressive
from tests import helpers


@pytest.mark.parametrize(
    "num_steps, num_chunks, expected",
    [
        (255, 4, [(0, 64), (64, 128), (128, 191), (191, 255)]),
        (3, 4, [(0, 1), (1, 2), (2, 3)]),
        (5, 1, [(0, 5)]),
        (1, 4, [(0, 1)]),
        (0, 4, []),
    ],
)
def test_cache_chunks_cover_the_steps_in_order(num_steps, num_chunks, expected):
    assert autoregressive.cache_chunks(num_steps, num_chunks) == expected


def test_the_cache_window_is_the_first_positions():
    decoder = autoregressive.as_decoder(helpers.tiny_guided_backbone())
    cache = keras.ops.reshape(keras.ops.arange(2 * 2 * 1 * 2 * 16 * 8, dtype="float32"),
                              (2, 2, 1, 2, 16, 8))  # fmt: skip
    window = decoder.cache_window(cache, 5)
    assert tuple(window.shape) == (2, 2, 1, 2, 5, 8)
    assert decoder.cache_window(cache, 16) is cache
    merged = decoder.cache_merge(keras.ops.zeros_like(cache), window)
    got = keras.ops.convert_to_numpy(merged)
    want = keras.ops.convert_to_numpy(cache).copy()
    want[:, :, :, :, 5:] = 0
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"cfg_weight": 0.4}, {"beam_size": 2, "fan_size": 2}],
    ids=["sample", "db_cfg", "beams"],
)
def test_chunked_decoding_equals_one_chunk(monkeypatch, kwargs):
    """Same seed, 1 or 4 chunks: the same tokens (the draws continue across
    chunks; attention over a window equals attention over the masked cache)."""
    backbone = helpers.tiny_guided_backbone()  # 16 tokens: 4 chunks of 4
    out = {}
    for chunks in (1, 4):
        monkeypatch.setattr(autoregressive, "CACHE_CHUNKS", chunks)
        model = keras_givt.GIVTCausal(backbone, seed=3)
        out[chunks] = keras.ops.convert_to_numpy(
            model.generate(labels=[1, 2], seed=7, return_latents=True, **kwargs)
        )
    assert out[1].shape == (2, 16, backbone.out_dim)
    np.testing.assert_allclose(out[4], out[1], rtol=1e-5, atol=1e-5)
