"""The plain-torch generation engine (`TorchDecoder`) against the Keras `Decoder`.

`keras_givt.models.givt.torch_generation.TorchDecoder` re-writes the cached
decoder step, the full forward pass and the mixture draw in plain torch for
torch generation; these tests hold it to the Keras path it replaces, and
keep the rest of the package free of it.
"""

import pathlib
import re

import keras
import numpy as np
import pytest
from keras import ops

import keras_givt
from keras_givt import GIVTBackbone
from keras_givt.mixture import guidance
from keras_givt.models.givt import torch_generation
from keras_givt.models.givt.torch_generation import TorchDecoder
from keras_givt.samplers.decoder import Decoder
from keras_givt.utils import heap
from tests import helpers
from tests.models.uvim import helpers as uvim_helpers

TORCH = keras.config.backend() == "torch"
torch_only = pytest.mark.skipif(
    not TORCH, reason="TorchDecoder is the torch backend's generation engine"
)


def _randomize(model, seed=0, scale=0.3):
    return helpers.randomize_weights(model, seed, scale)


def _np(x):
    return ops.convert_to_numpy(x)


def _no_grad():
    import torch

    return torch.no_grad()


@pytest.fixture(params=["unpacked", "packed"])
def linears(request, monkeypatch):
    """Runs a test with every engine product on `F.linear` ("unpacked") or
    on oneDNN's prepacked kernels with fused GELU/residual ("packed"); yields
    the `_Linear`s made, for the test to check which kind ran."""
    import torch

    packed = request.param == "packed"
    if packed and not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no oneDNN")
    monkeypatch.setattr(torch_generation._Linear, "_PACK_MIN_SIZE", 0 if packed else 1 << 62)
    made = []
    init = torch_generation._Linear.__init__

    def spy(self, *args, **kwargs):
        init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(torch_generation._Linear, "__init__", spy)
    yield made
    assert made and all((linear.packed is not None) == packed for linear in made)


def _decode(decoder, tokens, labels, encoded=None):
    """Logits of prefill + a 3-token chunk + single steps, and the final cache."""
    b = tokens.shape[0]
    cache = decoder.build_cache(b)
    logits, cache = decoder.prefill(labels, cache, batch_size=b, encoded=encoded)
    out = [_np(logits)]
    chunk, cache = decoder.step(ops.convert_to_tensor(tokens[:, 0:3]), cache, 1, encoded=encoded)
    out.append(_np(chunk))
    for i in range(3, decoder.backbone.seq_len - 1):
        step, cache = decoder.step(
            ops.convert_to_tensor(tokens[:, i : i + 1]), cache, i + 1, encoded=encoded
        )
        out.append(_np(step))
    return np.concatenate(out, 1), _np(cache)


@pytest.fixture
def engine_calls(monkeypatch):
    """Records every call into the engine's decoder stack and draw."""
    calls = []
    for name in ("full_blocks", "block_step"):
        original = getattr(torch_generation, name)
        monkeypatch.setattr(
            torch_generation,
            name,
            lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k),
        )
    draw = TorchDecoder._draw
    monkeypatch.setattr(
        TorchDecoder, "_draw", lambda *a, **k: calls.append("draw") or draw(*a, **k)
    )
    return calls


def test_torch_decoder_serves_only_torch_generation(engine_calls):
    backbone = GIVTBackbone(**helpers.tiny_kwargs())
    assert TorchDecoder.supports(backbone) == TORCH
    task = keras_givt.GIVTCausal(backbone)
    decoder = task._make_decoder()
    assert type(decoder) is (TorchDecoder if TORCH else Decoder)
    assert decoder is not task._make_decoder()  # A fresh one (memo) per generation.
    # Outside generation (training or not) the backbone is the Keras path only.
    inputs = helpers.tiny_inputs(backbone)
    backbone(inputs)
    backbone(inputs, training=True)
    cache = backbone.build_cache(2)
    _, cache = backbone.prefill(inputs["labels"], cache)
    backbone.call_with_cache(inputs["tokens"][:, :1], cache, 1)
    logits = np.zeros((2, backbone.head.num_logits), "float32")
    Decoder(backbone).draw(backbone.head, logits, 1.0, 1.0, keras.random.SeedGenerator(0))
    assert not engine_calls
    if TORCH:  # ... and a task's generation runs the engine.
        task.generate(labels=[1], seed=0, return_latents=True)
        assert {"block_step", "draw"} <= set(engine_calls)


@torch_only
@pytest.mark.parametrize("encoder", [False, True])
def test_fast_decoding_equals_keras_path(encoder, linears):
    rng = np.random.default_rng(1)
    if encoder:  # UViM: cross-attention to an encoded image.
        backbone = _randomize(uvim_helpers.tiny_backbone(seq_len=8))
        image = rng.uniform(-1, 1, size=(2, 16, 16, 3)).astype("float32")
        encoded, labels = backbone.encode(image), None
    else:
        backbone = _randomize(GIVTBackbone(**helpers.tiny_kwargs()))
        encoded, labels = None, np.array([3, 7], "int32")
    tokens = rng.normal(size=(2, backbone.seq_len, backbone.out_dim)).astype("float32")
    want_logits, want_cache = _decode(Decoder(backbone), tokens, labels, encoded)
    with _no_grad():
        decoder = TorchDecoder(backbone)
        assert decoder.runs_blocks
        got_logits, got_cache = _decode(decoder, tokens, labels, encoded)
    np.testing.assert_allclose(got_logits, want_logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_cache, want_cache, rtol=1e-5, atol=1e-5)


@torch_only
@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_fast_decoding_under_mixed_precision_follows_keras_path(policy, engine_calls):
    # The engine runs the blocks in the policy's compute dtype, as the Keras layers do:
    # the same logits and cache up to half-precision rounding. Measured largest error over
    # the largest value: 0.8% (bfloat16), 0.1% (float16), as far as the Keras path's own
    # half-precision result is from its float32 one.
    tol = {"mixed_bfloat16": 0.02, "mixed_float16": 0.003}[policy]
    backbone = _randomize(GIVTBackbone(**helpers.tiny_kwargs(), dtype=policy))
    rng = np.random.default_rng(0)
    tokens = rng.normal(size=(2, 16, 4)).astype("float32")
    labels = np.array([1, 2], "int32")
    with _no_grad():
        decoder = TorchDecoder(backbone)
        assert decoder.runs_blocks
        got_logits, got_cache = _decode(decoder, tokens, labels)
    assert "block_step" in engine_calls
    want_logits, want_cache = _decode(Decoder(backbone), tokens, labels)
    assert got_cache.dtype == want_cache.dtype == np.dtype(policy.split("_")[1])
    for got, want in ((got_logits, want_logits), (got_cache, want_cache)):
        got, want = got.astype("float32"), want.astype("float32")
        assert np.isfinite(got).all()
        assert np.abs(got - want).max() <= tol * np.abs(want).max()
    # The whole-sequence forward (MaskGIT's step) too.
    inputs = {k: ops.convert_to_tensor(v) for k, v in helpers.tiny_inputs(backbone).items()}
    with _no_grad():
        got = _np(TorchDecoder(backbone).forward(inputs)).astype("float32")
    want = _np(backbone(inputs)).astype("float32")
    assert np.abs(got - want).max() <= tol * np.abs(want).max()


@torch_only
def test_fast_path_steps_aside_for_float64():
    # A compute dtype outside the engine's: the Keras blocks decode, the engine still draws.
    backbone = GIVTBackbone(**helpers.tiny_kwargs(), dtype="float64")
    assert not TorchDecoder(backbone).runs_blocks
    assert TorchDecoder.supports(backbone)


def _head_and_logits(per_channel, num_mixtures, rows, seed):
    backbone = GIVTBackbone(
        **helpers.tiny_kwargs(per_channel_mixtures=per_channel, num_mixtures=num_mixtures)
    )
    rng = np.random.default_rng(seed)
    m = backbone.head.num_logits
    return backbone.head, rng.normal(size=(rows, m)).astype("float32")


def _engine():
    """A TorchDecoder (its draws take the head to draw from explicitly)."""
    return TorchDecoder(GIVTBackbone(**helpers.tiny_kwargs()))


@torch_only
@pytest.mark.parametrize("per_channel", [False, True])
def test_fast_sampling_log_prob_is_the_tempered_mixture_density(per_channel):
    import torch

    head, logits = _head_and_logits(per_channel, 3, rows=64, seed=0)
    seed_gen = keras.random.SeedGenerator(0)
    with _no_grad():
        x, lp = _engine()._draw(head, torch.as_tensor(logits), 0.8, 1.3, seed_gen)
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
        with _no_grad():
            return _np(_engine()._draw(head, many, 1.0, 1.0, keras.random.SeedGenerator(seed))[0])

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
    with _no_grad():
        x, lp = _engine()._draw(
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
    # Where some channel's guided density is not normalisable the engine draws
    # the step with DB-CFG's own sampler: the guided normal at the other
    # channels, big_vision's rejection sampler at those; the same
    # distribution per channel as the Keras path, and its log-density.
    _, far = _head_and_logits(True, 1, rows=1, seed=4)
    bad = guidance.CFGDensity(head.mixture_params(logits_c), head.mixture_params(far), w)
    loc, scale, ok = (_np(v)[0] for v in bad.exact_params())
    assert not ok.all() and ok.any()
    n = 2000
    args = (head, torch.as_tensor(np.repeat(logits_c, n, 0)), 1.0, 1.0)
    with _no_grad():
        x, lp = _engine()._draw(
            *args, keras.random.SeedGenerator(0), torch.as_tensor(np.repeat(far, n, 0)), w
        )
        keras_x = Decoder(GIVTBackbone(**helpers.tiny_kwargs())).draw(
            *args, keras.random.SeedGenerator(1), torch.as_tensor(np.repeat(far, n, 0)), w
        )[0]
    x, keras_x = _np(x), _np(keras_x)
    np.testing.assert_allclose(x.mean(0)[ok], loc[ok], atol=5 * scale.max() / np.sqrt(n))
    np.testing.assert_allclose(x.std(0)[ok], scale[ok], rtol=0.1)
    spread = keras_x.std(0)[~ok]
    np.testing.assert_allclose(
        x.mean(0)[~ok], keras_x.mean(0)[~ok], atol=7 * spread.max() / np.sqrt(n)
    )
    np.testing.assert_allclose(x.std(0)[~ok], spread, rtol=0.15)
    bad_rows = guidance.CFGDensity(
        head.mixture_params(np.repeat(logits_c, n, 0)), head.mixture_params(np.repeat(far, n, 0)), w
    )
    np.testing.assert_allclose(
        _np(lp), _np(ops.sum(bad_rows.log_prob(x), -1)), rtol=1e-5, atol=1e-4
    )


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
def test_fast_full_forward_equals_keras_path(overrides, linears, engine_calls):
    """The MaskGIT decoding step's forward pass (whole sequence, no cache)."""
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
    assert _np(Decoder(backbone).forward(inputs)).tobytes() == want.tobytes()
    assert not engine_calls  # The backbone and `Decoder`: the Keras path.
    inputs = {k: ops.convert_to_tensor(v) for k, v in inputs.items()}
    with _no_grad():
        got = _np(TorchDecoder(backbone).forward(inputs))
    assert "full_blocks" in engine_calls
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@torch_only
@pytest.mark.parametrize("per_channel", [True, False])
def test_decoder_and_torch_decoder_agree(per_channel):
    """`Decoder` and `TorchDecoder` on one tiny backbone: the same prefill,
    step and forward outputs (to float rounding), the same greedy tokens, the
    same token-buffer writes (in place for the engine), and draws from the
    same density (the random streams differ: each draw's log-density is the
    Keras density at the drawn tokens)."""
    import torch

    backbone = _randomize(
        GIVTBackbone(**helpers.tiny_kwargs(per_channel_mixtures=per_channel)), seed=3
    )
    keras_path, engine = Decoder(backbone), TorchDecoder(backbone)
    rng = np.random.default_rng(5)
    tokens = rng.normal(size=(2, backbone.seq_len, backbone.out_dim)).astype("float32")
    labels = np.array([4, 9], "int32")
    want = _decode(keras_path, tokens, labels)
    with _no_grad():
        got = _decode(engine, tokens, labels)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)

    masked = _randomize(
        GIVTBackbone(**helpers.tiny_kwargs(style="masked", per_channel_mixtures=per_channel))
    )
    feed = {k: ops.convert_to_tensor(v) for k, v in helpers.tiny_inputs(masked).items()}
    want = _np(Decoder(masked).forward(feed))
    with _no_grad():
        got = _np(TorchDecoder(masked).forward(feed))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    head = backbone.head
    logits = torch.as_tensor(rng.normal(size=(8, head.num_logits)).astype("float32"))
    for g, w in zip(engine.greedy(head, logits), keras_path.greedy(head, logits)):
        np.testing.assert_array_equal(_np(g), _np(w))
    with _no_grad():
        x, lp = engine.draw(head, logits, 0.9, 1.1, keras.random.SeedGenerator(1))
    x_keras, _ = keras_path.draw(head, logits, 0.9, 1.1, keras.random.SeedGenerator(1))
    assert _np(x).shape == _np(x_keras).shape
    density = head.log_prob(logits, x, 0.9, 1.1)
    density = _np(ops.sum(density, axis=-1)) if per_channel else _np(density)
    np.testing.assert_allclose(_np(lp), density, rtol=1e-5, atol=1e-5)

    buffer = ops.zeros((2, 3, 4))
    update = ops.ones((2, 1, 4))
    functional = keras_path.update_slice(buffer, [0, 1, 0], update)
    assert float(ops.sum(buffer)) == 0.0  # The Keras path leaves its input alone ...
    in_place = engine.update_slice(buffer, [0, 1, 0], update)
    assert in_place is buffer  # ... the engine writes it (no copy per token).
    np.testing.assert_array_equal(_np(in_place), _np(functional))


# Names of the engine and of the old process-global switch.
_ENGINE_NAMES = re.compile(r"torch_decoding|_InplaceScope|is_eligible|inplace_cache_updates")


def test_only_the_torch_engine_knows_torch_generation():
    """The backbone and the samplers hold no torch code and no backend checks;
    the engine's names live in its own file only."""
    root = pathlib.Path(keras_givt.__file__).parent
    engine = root / "models" / "givt" / "torch_generation.py"
    for path in sorted(root.rglob("*.py")):
        if path != engine:
            text = path.read_text()
            assert not _ENGINE_NAMES.search(text), path
    neutral = [root / "models" / "givt" / "givt_backbone.py"] + [
        root / "samplers" / name for name in ("autoregressive.py", "masked.py", "decoder.py")
    ]
    for path in neutral:
        code = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+torch\b", code, re.M), path
        assert "config.backend()" not in code, path
        assert "torch_generation" not in re.sub(r'"""[\s\S]*?"""', "", code), path


@torch_only
def test_weight_preparation_returns_the_freed_heap_once(monkeypatch):
    """The C heap is trimmed before and after the weights are prepared (the
    build's and the packing's freed blocks), once per decoder."""
    calls = []
    monkeypatch.setattr(heap, "MALLOC_TRIM", lambda pad: calls.append(pad) or 1)
    backbone = _randomize(GIVTBackbone(**helpers.tiny_kwargs(style="masked")))
    inputs = {k: ops.convert_to_tensor(v) for k, v in helpers.tiny_inputs(backbone).items()}
    with _no_grad():
        decoder = TorchDecoder(backbone)
        decoder.forward(inputs)
        decoder.forward(inputs)
    assert calls == [0, 0]
