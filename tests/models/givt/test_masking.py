"""big_vision's masks: masked-training mask counts and exact bottom-k with ties."""

import math

import numpy as np
import pytest
from keras import ops

from keras_givt import GIVTBackbone
from keras_givt import GIVTMaskGIT
from keras_givt.samplers import schedules
from tests import helpers


def _np(x):
    return ops.convert_to_numpy(x)


def _reference_bottom_k(confidence, k):
    # big_vision `_get_per_batch_mask`: stable argsort, the first k masked.
    out = np.zeros(confidence.shape, bool)
    for b in range(confidence.shape[0]):
        order = np.argsort(confidence[b], kind="stable")
        out[b, order[: int(k[b])]] = True
    return out


def test_bottom_k_mask_ties_masks_exactly_k_lowest_index_first():
    conf = np.array([[1.0, 1.0, 1.0, 1.0], [3.0, 1.0, 1.0, 0.0], [np.inf] * 4], "float32")
    k = np.array([[2], [2], [3]], "int32")
    got = _np(schedules.bottom_k_mask(conf, k))
    want = np.array([[1, 1, 0, 0], [0, 1, 0, 1], [1, 1, 1, 0]], bool)
    np.testing.assert_array_equal(got, want)
    assert got.sum(1).tolist() == [2, 2, 3]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bottom_k_mask_matches_stable_argsort_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    conf = rng.integers(0, 4, size=(32, 24)).astype("float32")  # Lots of ties.
    conf[rng.random(conf.shape) < 0.2] = np.inf  # Known tokens.
    k = rng.integers(0, 26, size=(32, 1))  # Includes 0 and > L.
    got = _np(schedules.bottom_k_mask(conf, k.astype("float32")))
    np.testing.assert_array_equal(got, _reference_bottom_k(conf, k[:, 0]))
    np.testing.assert_array_equal(got.sum(1), np.minimum(k[:, 0], 24))


def test_bottom_k_mask_scalar_k_broadcasts():
    conf = np.zeros((3, 5), "float32")
    got = _np(schedules.bottom_k_mask(conf, 2))
    np.testing.assert_array_equal(got, np.tile([True, True, False, False, False], (3, 1)))


def test_cutoff_mask_keeps_maskgit_strict_cut():
    # google-research/maskgit: confidence < sorted[k]; ties with the cut stay unmasked.
    conf = np.array([[1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 1.0, 2.0]], "float32")
    got = _np(schedules.cutoff_mask(conf, np.array([[2], [2]])))
    np.testing.assert_array_equal(got, [[0, 0, 0, 0], [1, 0, 0, 0]])


def _count_probabilities(seq_len, min_rate):
    # keep ~ U[0, 1 - m); count = ceil(L cos(pi/2 keep)) (big_vision, float-exact
    # except on a measure-zero set). count <= c  <=>  keep >= (2/pi) arccos(c / L).
    top = 1.0 - min_rate

    def p_at_most(c):
        a = 2.0 / math.pi * math.acos(min(max(c / seq_len, 0.0), 1.0))
        return (top - min(a, top)) / top

    return {c: p_at_most(c) - p_at_most(c - 1) for c in range(1, seq_len + 1)}


def test_training_mask_counts_formula():
    keep = np.array([0.0, 0.3, 0.5, 0.6999, 0.999999, 1.0], "float32")
    got = _np(schedules.training_mask_counts(keep, 16))[:, 0]
    ratio = np.clip(np.cos(np.pi / 2 * keep.astype("float64")), 1e-6, 1.0)
    np.testing.assert_array_equal(got, np.ceil(ratio * 16).astype(int))
    assert got.tolist()[0] == 16 and got.tolist()[-1] == 1  # At least one masked.


@pytest.mark.parametrize("min_rate,seq_len,min_count", [(0.3, 16, 8), (0.5, 16, 12), (0.0, 9, 1)])
def test_training_mask_distribution_matches_big_vision(min_rate, seq_len, min_count):
    kwargs = helpers.tiny_kwargs(
        style="masked",
        mask_style="concat",
        num_mixtures=2,
        per_channel_mixtures=False,
    )
    kwargs.update(seq_len=seq_len, min_masking_rate_training=min_rate)
    model = GIVTMaskGIT(GIVTBackbone(**kwargs), seed=0)
    n = 20000
    mask = _np(model.training_mask(n))
    assert mask.shape == (n, seq_len) and mask.dtype == bool
    counts = mask.sum(1)
    probs = _count_probabilities(seq_len, min_rate)
    # The smallest count the formula allows (cos(pi/2 (1 - m)) L, rounded up).
    assert min(c for c, p in probs.items() if p > 0) == min_count
    assert counts.min() == min_count, np.bincount(counts)
    assert counts.max() == seq_len
    hist = np.bincount(counts, minlength=seq_len + 1)[1:] / n
    want = np.array([probs[c] for c in range(1, seq_len + 1)])
    # Binomial standard error for n = 20000 is <= 0.0036; 0.015 is > 4 sigma.
    np.testing.assert_allclose(hist, want, atol=0.015)
    # Masked positions are a uniform random subset: every position equally often.
    per_position = mask.mean(0)
    np.testing.assert_allclose(per_position, counts.mean() / seq_len, atol=0.02)


def test_training_mask_count_rounds_up():
    # ratio = cos(0.35 pi * 0.99986) = 0.4541 -> 7.27 of 16 -> 8 masked (not 7).
    keep = np.float32(0.6999)
    count = int(_np(schedules.training_mask_counts(np.array([keep]), 16))[0, 0])
    assert count == 8
