"""Panoptic quality PQ = SQ · RQ (Kirillov et al., 2019), in NumPy.

Maps are (H, W) or (B, H, W) integer arrays: a semantic class per pixel and
an instance id per pixel. A *segment* is the set of pixels of one
(class, instance id) pair for thing classes, and all pixels of the class for
stuff classes (instance ids ignored). Pixels whose ground-truth class is
`void_label` are void.

Per class c, over all images:
- a predicted and a ground-truth segment of class c *match* when their IoU
  > 0.5 (matches are then unique); the IoU ignores the predicted pixels
  that fall on void: `union = |p \\ void| + |g| − |p ∩ g|`;
- TP = matches, FN = unmatched ground-truth segments, FP = unmatched
  predicted segments, except those more than half void (not counted);
- `PQ_c = Σ_TP IoU / (TP + ½FP + ½FN)`, `SQ_c = Σ_TP IoU / TP`,
  `RQ_c = TP / (TP + ½FP + ½FN)`.
PQ/SQ/RQ are the means over classes with TP + FP + FN > 0 (SQ over classes
with TP > 0 counts 0 for the others, as in the COCO panoptic API, where
SQ_c = 0 when TP_c = 0); `pq_things`/`pq_stuff` restrict the mean.
"""

import numpy as np


class PanopticQuality:
    """Accumulates panoptic quality over images.

    Args:
        num_classes: int. Semantic classes 0..num_classes-1.
        thing_classes: iterable of class ids with instances (others are
            stuff). None: every class except `void_label` is a thing.
        void_label: int or None. Ground-truth class marking void pixels (not
            a class of its own).
        ignore_classes: classes left out of the averages (e.g. a background
            class that is not scored).

    Example:
    ```python
    pq = PanopticQuality(num_classes=11, thing_classes=range(1, 11), void_label=None)
    pq.update(gt_semantics, gt_instances, pred_semantics, pred_instances)
    pq.result()  # {"pq": ..., "sq": ..., "rq": ..., "per_class": {...}, ...}
    ```
    """

    def __init__(self, num_classes, thing_classes=None, void_label=None, ignore_classes=()):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"`num_classes` must be an int >= 1; received {num_classes!r}.")
        self.num_classes = num_classes
        self.void_label = void_label
        if thing_classes is None:
            thing_classes = [c for c in range(num_classes) if c != void_label]
        self.thing_classes = {int(c) for c in thing_classes}
        self.ignore_classes = {int(c) for c in ignore_classes}
        self.reset()

    def reset(self):
        self.tp = np.zeros(self.num_classes, np.int64)
        self.fp = np.zeros(self.num_classes, np.int64)
        self.fn = np.zeros(self.num_classes, np.int64)
        self.iou_sum = np.zeros(self.num_classes, np.float64)

    def _segments(self, sem, inst):
        """{(class, id): boolean mask} of one image."""
        segments = {}
        for c in np.unique(sem):
            c = int(c)
            if c == self.void_label or c < 0 or c >= self.num_classes:
                continue
            in_class = sem == c
            if c in self.thing_classes:
                for i in np.unique(inst[in_class]):
                    segments[(c, int(i))] = in_class & (inst == i)
            else:
                segments[(c, 0)] = in_class
        return segments

    def update(self, gt_semantics, gt_instances, pred_semantics, pred_instances):
        """Adds one image (H, W) or a batch (B, H, W)."""
        arrays = [
            np.asarray(a) for a in (gt_semantics, gt_instances, pred_semantics, pred_instances)
        ]
        shape = arrays[0].shape
        for name, a in zip(("gt_instances", "pred_semantics", "pred_instances"), arrays[1:]):
            if a.shape != shape:
                raise ValueError(
                    f"`{name}` has shape {a.shape}; expected {shape} like `gt_semantics`."
                )
        if len(shape) == 2:
            arrays = [a[None] for a in arrays]
        elif len(shape) != 3:
            raise ValueError(f"Maps must be (H, W) or (B, H, W); received shape {shape}.")
        for gs, gi, ps, pi in zip(*arrays):
            self._update_image(gs, gi, ps, pi)
        return self

    def _update_image(self, gs, gi, ps, pi):
        void = gs == self.void_label if self.void_label is not None else np.zeros(gs.shape, bool)
        gt = self._segments(gs, gi)
        pred = self._segments(ps, pi)
        matched_gt, matched_pred = set(), set()
        for (c, gid), gmask in gt.items():
            for (pc, pid), pmask in pred.items():
                if pc != c or (pc, pid) in matched_pred:
                    continue
                inter = np.sum(gmask & pmask)
                if inter == 0:
                    continue
                union = np.sum(pmask & ~void) + np.sum(gmask) - inter
                iou = inter / union
                if iou > 0.5:
                    self.tp[c] += 1
                    self.iou_sum[c] += iou
                    matched_gt.add((c, gid))
                    matched_pred.add((pc, pid))
                    break
        for key in gt:
            if key not in matched_gt:
                self.fn[key[0]] += 1
        for key, pmask in pred.items():
            if key in matched_pred:
                continue
            if np.sum(pmask & void) > 0.5 * np.sum(pmask):
                continue  # Mostly void: not a false positive.
            self.fp[key[0]] += 1

    def result(self):
        """{"pq", "sq", "rq", "pq_things", "pq_stuff", "per_class", "num_classes_scored"}."""
        per_class = {}
        for c in range(self.num_classes):
            if c == self.void_label or c in self.ignore_classes:
                continue
            tp, fp, fn = int(self.tp[c]), int(self.fp[c]), int(self.fn[c])
            if tp + fp + fn == 0:
                continue
            denom = tp + 0.5 * fp + 0.5 * fn
            sq = self.iou_sum[c] / tp if tp else 0.0
            rq = tp / denom
            per_class[c] = {"pq": sq * rq, "sq": sq, "rq": rq, "tp": tp, "fp": fp, "fn": fn}

        def mean(key, classes):
            vals = [per_class[c][key] for c in classes if c in per_class]
            return float(np.mean(vals)) if vals else 0.0

        all_c = list(per_class)
        things = [c for c in all_c if c in self.thing_classes]
        stuff = [c for c in all_c if c not in self.thing_classes]
        return {
            "pq": mean("pq", all_c),
            "sq": mean("sq", all_c),
            "rq": mean("rq", all_c),
            "pq_things": mean("pq", things),
            "pq_stuff": mean("pq", stuff),
            "per_class": per_class,
            "num_classes_scored": len(all_c),
        }


def panoptic_quality(
    gt_semantics,
    gt_instances,
    pred_semantics,
    pred_instances,
    num_classes,
    thing_classes=None,
    void_label=None,
    ignore_classes=(),
):
    """PQ/SQ/RQ of a batch of maps (see `PanopticQuality`)."""
    metric = PanopticQuality(num_classes, thing_classes, void_label, ignore_classes)
    metric.update(gt_semantics, gt_instances, pred_semantics, pred_instances)
    return metric.result()
