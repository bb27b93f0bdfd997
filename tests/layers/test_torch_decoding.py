"""The eager torch fast path of cached decoding and per-token sampling.

`keras_givt.layers.torch_decoding` re-writes the cached decoder step and the
mixture draw in plain torch for the torch generation loop; these tests hold
it to the Keras path it replaces.
"""

import keras
import numpy as np
import pytest
from keras import ops

from keras_givt import GIVTBackbone
from keras_givt.layers import torch_decoding
from keras_givt.mixture import guidance
from keras_givt.utils.tensor_utils import inplace_cache_updates
from tests import helpers
from tests.models.uvim import helpers as uvim_helpers

TORCH = keras.config.backend() == "torch"
torch_only = pytest.mark.skipif(not TORCH, reason="the torch generation loop's fast path")


def _randomize(model, seed=0, scale=0.3):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign((scale * rng.normal(size=w.shape)).astype("float32"))
    return model


def _np(x):
    return ops.convert_to_numpy(x)


@pytest.fixture(params=["unpacked", "packed"])
def linears(request, monkeypatch):
    """Runs a test with every fast-path product on `F.linear` ("unpacked") or
    on oneDNN's prepacked kernels with fused GELU/residual ("packed"); yields
    the `_Linear`s made, for the test to check which kind ran."""
    import torch

    packed = request.param == "packed"
    if packed and not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no oneDNN")
    monkeypatch.setattr(torch_decoding._Linear, "_PACK_MIN_SIZE", 0 if packed else 1 << 62)
    made = []
    init = torch_decoding._Linear.__init__

    def spy(self, *args, **kwargs):
        init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(torch_decoding._Linear, "__init__", spy)
    yield made
    assert made and all((linear.packed is not None) == packed for linear in made)


def _decode(backbone, tokens, labels, encoded=None):
    """Logits of prefill + a 3-token chunk + single steps, and the final cache."""
    b = tokens.shape[0]
    cache = backbone.build_cache(b)
    logits, cache = backbone.prefill(labels, cache, batch_size=b, encoded=encoded)
    out = [_np(logits)]
    chunk, cache = backbone.call_with_cache(tokens[:, 0:3], cache, 1, encoded=encoded)
    out.append(_np(chunk))
    for i in range(3, backbone.seq_len - 1):
        step, cache = backbone.call_with_cache(tokens[:, i : i + 1], cache, i + 1, encoded=encoded)
        out.append(_np(step))
    return np.concatenate(out, 1), _np(cache)


def test_fast_path_is_off_outside_the_torch_generation_loop():
    backbone = GIVTBackbone(**helpers.tiny_kwargs())
    assert not torch_decoding.is_eligible(backbone)
    assert not torch_decoding.sampling_eligible(backbone.head)
    with inplace_cache_updates():
        assert torch_decoding.is_eligible(backbone) == TORCH
        assert not torch_decoding.is_eligible(backbone, training=True)
        assert torch_decoding.sampling_eligible(backbone.head) == TORCH


@torch_only
@pytest.mark.parametrize("encoder", [False, True])
def test_fast_decoding_equals_keras_path(encoder, linears):
    import torch

    rng = np.random.default_rng(1)
    if encoder:  # UViM: cross-attention to an encoded image.
        backbone = _randomize(uvim_helpers.tiny_backbone(seq_len=8))
        image = rng.uniform(-1, 1, size=(2, 16, 16, 3)).astype("float32")
        encoded, labels = backbone.encode(image), None
    else:
        backbone = _randomize(GIVTBackbone(**helpers.tiny_kwargs()))
        encoded, labels = None, np.array([3, 7], "int32")
    tokens = rng.normal(size=(2, backbone.seq_len, backbone.out_dim)).astype("float32")
    want_logits, want_cache = _decode(backbone, tokens, labels, encoded)
    with torch.no_grad(), inplace_cache_updates():
        assert torch_decoding.is_eligible(backbone)
        got_logits, got_cache = _decode(backbone, tokens, labels, encoded)
    np.testing.assert_allclose(got_logits, want_logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_cache, want_cache, rtol=1e-5, atol=1e-5)


@torch_only
def test_fast_path_steps_aside_for_mixed_precision():
    backbone = GIVTBackbone(**helpers.tiny_kwargs(), dtype="mixed_bfloat16")
    with inplace_cache_updates():
        assert not torch_decoding.is_eligible(backbone)


def _head_and_logits(per_channel, num_mixtures, rows, seed):
    backbone = GIVTBackbone(
        **helpers.tiny_kwargs(per_channel_mixtures=per_channel, num_mixtures=num_mixtures)
    )
    rng = np.random.default_rng(seed)
    m = backbone.head.num_logits
    return backbone.head, rng.normal(size=(rows, m)).astype("float32")


@torch_only
@pytest.mark.parametrize("per_channel", [False, True])
def test_fast_sampling_log_prob_is_the_tempered_mixture_density(per_channel):
    import torch

    head, logits = _head_and_logits(per_channel, 3, rows=64, seed=0)
    seed_gen = keras.random.SeedGenerator(0)
    with torch.no_grad(), inplace_cache_updates():
        x, lp = torch_decoding.sample_from_logits(head, torch.as_tensor(logits), 0.8, 1.3, seed_gen)
    want = head.log_prob(logits, x, 0.8, 1.3)
    want = _np(ops.sum(want, axis=-1)) if per_channel else _np(want)
    np.testing.assert_allclose(_np(lp), want, rtol=1e-5, atol=1e-5)


@torch_only
def test_fast_sampling_moments_and_seeds():
    """Many draws from fixed logits: mixture mean and variance, and the same
    SeedGenerator seed gives the same draws."""
    import torch

    head, logits = _head_and_logits(False, 3, rows=1, seed=2)
    many = torch.as_tensor(np.repeat(logits, 20000, axis=0))

    def draw(seed):
        with torch.no_grad(), inplace_cache_updates():
            return _np(
                torch_decoding.sample_from_logits(
                    head, many, 1.0, 1.0, keras.random.SeedGenerator(seed)
                )[0]
            )

    x = draw(5)
    np.testing.assert_array_equal(x, draw(5))
    assert np.abs(x - draw(6)).max() > 0
    p = head.mixture_params(logits[0])
    probs = _np(ops.softmax(p["mixture_logits"]))  # (K,)
    loc, scale = _np(p["loc"]), _np(p["scale_diag"])  # (K, D)
    mean = probs @ loc
    var = probs @ (scale**2 + loc**2) - mean**2
    np.testing.assert_allclose(x.mean(0), mean, atol=5 * np.sqrt(var / len(x)).max())
    np.testing.assert_allclose(x.var(0), var, rtol=0.05)


@torch_only
def test_fast_cfg_sampling_matches_the_guided_normal():
    import torch

    head, logits_c = _head_and_logits(True, 1, rows=1, seed=3)
    # A nearby unconditional prediction: the guided normal exists everywhere.
    logits_u = logits_c + 0.3 * np.random.default_rng(4).normal(size=logits_c.shape).astype(
        "float32"
    )
    w = 0.4
    dens = guidance.CFGDensity(head.mixture_params(logits_c), head.mixture_params(logits_u), w)
    loc, scale, ok = (_np(v)[0] for v in dens.exact_params())
    assert ok.all()
    n = 20000
    with torch.no_grad(), inplace_cache_updates():
        x, lp = torch_decoding.sample_from_logits(
            head,
            torch.as_tensor(np.repeat(logits_c, n, 0)),
            1.0,
            1.0,
            keras.random.SeedGenerator(0),
            torch.as_tensor(np.repeat(logits_u, n, 0)),
            w,
        )
    x = _np(x)
    np.testing.assert_allclose(x.mean(0), loc, atol=5 * scale.max() / np.sqrt(n))
    np.testing.assert_allclose(x.std(0), scale, rtol=0.05)
    np.testing.assert_allclose(_np(lp), _np(ops.sum(dens.log_prob(x), -1)), rtol=1e-5, atol=1e-4)
    # Where some channel's guided density is not normalisable the fast path
    # steps aside (the Keras path then uses big_vision's rejection sampler).
    _, far = _head_and_logits(True, 1, rows=1, seed=4)
    bad = guidance.CFGDensity(head.mixture_params(logits_c), head.mixture_params(far), w)
    assert not _np(bad.exact_params()[2]).all()
    with torch.no_grad(), inplace_cache_updates():
        out = torch_decoding.sample_from_logits(
            head,
            torch.as_tensor(logits_c),
            1.0,
            1.0,
            keras.random.SeedGenerator(0),
            torch.as_tensor(far),
            w,
        )
    assert out is None


@torch_only
@pytest.mark.parametrize(
    "overrides",
    [
        dict(style="masked", mask_style="replace"),
        dict(style="masked", mask_style="concat", per_channel_mixtures=False),
        dict(style="ar"),
        "encoder",
    ],
)
def test_fast_full_forward_equals_keras_path(overrides, linears, monkeypatch):
    """The MaskGIT decoding step's forward pass (whole sequence, no cache)."""
    import torch

    calls = []
    original = torch_decoding.full_blocks
    monkeypatch.setattr(
        torch_decoding, "full_blocks", lambda *a, **k: calls.append(1) or original(*a, **k)
    )

    if overrides == "encoder":
        backbone = _randomize(uvim_helpers.tiny_backbone(seq_len=8))
        rng = np.random.default_rng(2)
        inputs = {
            "tokens": rng.normal(size=(2, 8, backbone.out_dim)).astype("float32"),
            "image": rng.uniform(-1, 1, size=(2, 16, 16, 3)).astype("float32"),
        }
    else:
        backbone = _randomize(GIVTBackbone(**helpers.tiny_kwargs(**overrides)))
        inputs = helpers.tiny_inputs(backbone)
    want = _np(backbone(inputs))
    assert not calls  # Outside the generation loop: the Keras path.
    with torch.no_grad(), inplace_cache_updates():
        got = _np(backbone(inputs))
    assert calls
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
