import numpy as np
import pytest

from keras_givt.metrics import PanopticQuality
from keras_givt.metrics import depth_metrics
from keras_givt.metrics import panoptic_quality


def test_pq_perfect_prediction():
    sem = np.zeros((4, 4), int)
    inst = np.zeros((4, 4), int)
    sem[:2, :2], inst[:2, :2] = 1, 1
    sem[2:, 2:], inst[2:, 2:] = 1, 2
    r = panoptic_quality(sem, inst, sem, inst * 7, num_classes=2, thing_classes=[1])
    assert r["pq"] == r["sq"] == r["rq"] == 1.0
    assert r["per_class"][1]["tp"] == 2 and r["per_class"][0]["tp"] == 1


def test_pq_partial_overlap_known_answer():
    # Thing (class 1) = left half (8 px); prediction misses 2 of its pixels.
    gs = np.zeros((4, 4), int)
    gs[:, :2] = 1
    gi = (gs == 1).astype(int)
    ps = gs.copy()
    ps[0, :2] = 0
    pi = (ps == 1) * 5
    r = panoptic_quality(gs, gi, ps, pi, num_classes=2, thing_classes=[1])
    np.testing.assert_allclose(r["per_class"][1]["pq"], 6 / 8)
    np.testing.assert_allclose(r["per_class"][0]["pq"], 8 / 10)  # stuff background
    np.testing.assert_allclose(r["pq"], (0.75 + 0.8) / 2)
    assert r["rq"] == 1.0
    np.testing.assert_allclose(r["pq_things"], 0.75)
    np.testing.assert_allclose(r["pq_stuff"], 0.8)


def test_pq_iou_must_exceed_half_and_fp_fn():
    # 1x4 row: gt thing at {0, 1}, predicted thing at {1, 2}: IoU 1/3, no match.
    gs, gi = np.array([[1, 1, 0, 0]]), np.array([[1, 1, 0, 0]])
    ps, pi = np.array([[0, 1, 1, 0]]), np.array([[0, 1, 1, 0]])
    r = panoptic_quality(gs, gi, ps, pi, num_classes=2, thing_classes=[1])
    assert r["per_class"][1] == {"pq": 0.0, "sq": 0.0, "rq": 0.0, "tp": 0, "fp": 1, "fn": 1}
    assert r["pq"] == 0.0
    # IoU exactly 1/2 is not a match.
    ps, pi = np.array([[1, 0, 0, 0]]), np.array([[1, 0, 0, 0]])
    r = panoptic_quality(gs, gi, ps, pi, num_classes=2, thing_classes=[1])
    assert r["per_class"][1]["tp"] == 0
    # Two instances of one class: one matched (IoU 1), one missed -> PQ 1/(1 + 0.5).
    gs, gi = np.array([[1, 1, 1, 1]]), np.array([[1, 1, 2, 2]])
    ps, pi = np.array([[1, 1, 0, 0]]), np.array([[3, 3, 0, 0]])
    r = panoptic_quality(gs, gi, ps, pi, num_classes=2, thing_classes=[1])
    np.testing.assert_allclose(r["per_class"][1]["pq"], 1 / 1.5)
    assert r["per_class"][0] == {"pq": 0.0, "sq": 0.0, "rq": 0.0, "tp": 0, "fp": 1, "fn": 0}


def test_pq_void_pixels():
    # gt void (255) at {2, 3}; prediction spills onto void: ignored in the IoU,
    # and a predicted segment lying in void is not a false positive.
    gs, gi = np.array([[1, 1, 255, 255]]), np.array([[1, 1, 0, 0]])
    ps, pi = np.array([[1, 1, 1, 2]]), np.array([[3, 3, 3, 1]])
    r = panoptic_quality(gs, gi, ps, pi, num_classes=3, thing_classes=[1, 2], void_label=255)
    assert r["pq"] == 1.0 and r["num_classes_scored"] == 1
    # Without void handling the same prediction scores IoU 2/3.
    r = panoptic_quality(np.array([[1, 1, 0, 0]]), gi, ps, pi, num_classes=3, thing_classes=[1, 2])
    np.testing.assert_allclose(r["per_class"][1]["sq"], 2 / 3)


def test_pq_accumulates_over_images_and_validates():
    metric = PanopticQuality(num_classes=2, thing_classes=[1], ignore_classes=[0])
    a = np.array([[1, 1, 0, 0]])
    metric.update(a, a, a, a)  # perfect
    metric.update(a, a, np.zeros_like(a), np.zeros_like(a))  # thing missed
    r = metric.result()
    np.testing.assert_allclose(r["pq"], 1 / 1.5)  # TP 1, FN 1 over both images
    assert 0 not in r["per_class"]
    with pytest.raises(ValueError, match="pred_semantics"):
        metric.update(a, a, np.zeros((2, 4)), a)


def test_depth_metrics_known_answer():
    gt = np.array([[1.0, 2.0], [4.0, 0.0]])  # 0 = no ground truth
    pred = np.array([[1.0, 2.0], [2.0, 5.0]])
    r = depth_metrics(pred, gt)
    np.testing.assert_allclose(r["rmse"], np.sqrt(4 / 3))
    np.testing.assert_allclose(r["abs_rel"], 0.5 / 3)
    np.testing.assert_allclose(r["delta1"], 2 / 3)
    # Averaged per image.
    r2 = depth_metrics(np.stack([pred, gt]), np.stack([gt, gt]))
    np.testing.assert_allclose(r2["rmse"], np.sqrt(4 / 3) / 2)
    with pytest.raises(ValueError, match="shape"):
        depth_metrics(pred, gt[0])
