"""Monocular depth metrics (NYU Depth v2 convention), in NumPy.

Maps are (H, W) or (B, H, W) depths in metres. Only pixels with ground
truth in (`min_depth`, `max_depth`] count. Per image:
- RMSE = √mean((pred − gt)²),
- abs-rel = mean(|pred − gt| / gt),
- δ<1.25 = fraction of pixels with max(pred/gt, gt/pred) < 1.25;
each is averaged over images (images without a valid pixel are skipped).
Predictions are clipped to [`min_depth`, `max_depth`] first.
"""

import numpy as np


def depth_metrics(pred, gt, min_depth=1e-3, max_depth=10.0):
    """{"rmse", "abs_rel", "delta1", "num_images"} averaged over images."""
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"`pred` has shape {pred.shape}; `gt` has shape {gt.shape}.")
    if pred.ndim == 2:
        pred, gt = pred[None], gt[None]
    if pred.ndim != 3:
        raise ValueError(f"Depth maps must be (H, W) or (B, H, W); received shape {pred.shape}.")
    pred = np.clip(pred, min_depth, max_depth)
    rmse, abs_rel, delta1 = [], [], []
    for p, g in zip(pred, gt):
        valid = (g > min_depth) & (g <= max_depth)
        if not valid.any():
            continue
        p, g = p[valid], g[valid]
        rmse.append(np.sqrt(np.mean((p - g) ** 2)))
        abs_rel.append(np.mean(np.abs(p - g) / g))
        delta1.append(np.mean(np.maximum(p / g, g / p) < 1.25))
    if not rmse:
        raise ValueError("No ground-truth pixel lies in (min_depth, max_depth].")
    return {
        "rmse": float(np.mean(rmse)),
        "abs_rel": float(np.mean(abs_rel)),
        "delta1": float(np.mean(delta1)),
        "num_images": len(rmse),
    }
