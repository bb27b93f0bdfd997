"""Label-map encodings of UViM's dense tasks (depth bins, panoptic maps).

Dimension letters: B batch, H/W map size.

Depth (big_vision's NYU depth configs): depth in metres is quantised into
`num_bins` (256) bins over [`min_depth`, `max_depth`] = [0.001, 10]:
`bin = floor((d − min) / (max − min) · num_bins)`, clipped to
[0, num_bins − 1]. The inverse maps a bin to its centre,
`min + (bin + ½)·(max − min)/num_bins`, so `dequantize(quantize(d))` is
within half a bin (≈ 0.0195 m) of d inside the range.

Panoptic: a label map `(B, H, W, 2)` holds the semantic class (channel 0)
and the instance id (channel 1; 0 = no instance / stuff), the ViT VAE's
`inout_specs` `{"semantics": (0, S), "instances": (1, I)}`.
"""

import numpy as np
from keras import ops

MIN_DEPTH = 0.001
MAX_DEPTH = 10.0
NUM_DEPTH_BINS = 256


def quantize_depth(depth, min_depth=MIN_DEPTH, max_depth=MAX_DEPTH, num_bins=NUM_DEPTH_BINS):
    """Depth (any shape, metres) -> int32 bins in [0, num_bins) (keras.ops)."""
    if not max_depth > min_depth:
        raise ValueError(
            f"`max_depth` must exceed `min_depth`; received min_depth={min_depth}, "
            f"max_depth={max_depth}."
        )
    d = ops.cast(depth, "float32")
    bins = ops.floor((d - min_depth) / (max_depth - min_depth) * num_bins)
    return ops.cast(ops.clip(bins, 0, num_bins - 1), "int32")


def dequantize_depth(bins, min_depth=MIN_DEPTH, max_depth=MAX_DEPTH, num_bins=NUM_DEPTH_BINS):
    """Bins -> depth in metres at the bin centres (float32, keras.ops)."""
    b = ops.cast(bins, "float32")
    return min_depth + (b + 0.5) * ((max_depth - min_depth) / num_bins)


def panoptic_to_label_map(semantics, instances):
    """(B, H, W) semantic classes and instance ids -> (B, H, W, 2) int32 (NumPy)."""
    semantics, instances = np.asarray(semantics), np.asarray(instances)
    if semantics.shape != instances.shape:
        raise ValueError(
            f"`semantics` and `instances` must have the same shape; received "
            f"{semantics.shape} and {instances.shape}."
        )
    return np.stack([semantics, instances], axis=-1).astype("int32")
