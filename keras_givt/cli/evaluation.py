"""FD-CNN scoring shared by the `evaluate`, `evaluate-vq` and `demo` commands.

`score_fd_cnn` adds the FD-CNN of generated images and its reference points
(real-data floor, noise distance, class histogram) to a metrics dict;
`real_floor_at` gives the real-data floor at the number of samples scored
(from the table in `fd_floors.py` when it has that N). The FD-CNN itself is
library code: `keras_givt.metrics.FDCNN` (imported on first use).
"""


def score_fd_cnn(metrics, images, fd_dataset, input_mode, floor_at_n=False, seed=0, data_dir=None):
    """Adds the FD-CNN of `images` (N, H, W, C) in [-1, 1] vs. the `fd_dataset` test set to `metrics`.

    With the 10k real-data floor, the noise distance and the class
    histogram; `floor_at_n` adds the real-data floor at N (needs the train
    split).

    Args:
        metrics: the dict to update (`fd_cnn`, `fd_cnn_floor_10k`,
            `fd_cnn_noise`, `class_histogram`, ...).
        images: (N, H, W, C) generated images in [-1, 1].
        fd_dataset: `"fashion_mnist"` or `"mnist"`: the reference test set.
        input_mode: `"crop"` or `"resize"`: how images reach the classifier's 28x28.
        floor_at_n: also measure the real-data floor at N.
        seed: seed of the real-data draw for `floor_at_n`.
        data_dir: folder of the IDX files (default: the installed data sets).
    """
    from keras_givt.metrics import FDCNN

    total = len(images)
    fd = FDCNN(fd_dataset, input_mode=input_mode)
    print("Scoring FD-CNN...")
    metrics.update(
        fd_cnn=float(fd.distance(images)),
        fd_cnn_floor_10k=fd.floor,
        fd_cnn_noise=fd.noise_distance,
        class_histogram=fd.class_histogram(images).tolist(),
    )
    if floor_at_n:
        metrics["fd_cnn_floor_same_n"] = float(fd.floor_at(total, seed=seed, data_dir=data_dir))
    if total < 10000:
        metrics["fd_cnn_note"] = (
            f"FD-CNN on {total} samples (biased upwards vs. the 10k floor; compare at equal N)."
        )


def real_floor_at(fd, num_examples, seed=0, data_dir=None):
    """`(floor, source)`: the FD-CNN real-data floor at `num_examples` samples.

    From the table shipped in `keras_givt/cli/fd_floors.py` (measured with
    seed 0, so the demo needs no data set), else measured on the installed
    train split, else `(None, reason)`.

    Args:
        fd: a `keras_givt.metrics.FDCNN`.
        num_examples: the number of samples scored.
        seed: seed of the real-data draw when measured.
        data_dir: folder of the IDX files (default: the installed data sets).
    """
    from keras_givt.cli.fd_floors import FLOORS

    table = FLOORS.get(fd.dataset, {})
    if num_examples in table:
        return table[num_examples], f"shipped table ({num_examples} train images, seed 0)"
    try:
        return (
            float(fd.floor_at(num_examples, seed=seed, data_dir=data_dir)),
            "measured on the train split",
        )
    except Exception as e:  # No data set installed: report without the floor at N.
        return None, f"not in the shipped table ({sorted(table)}) and not measurable: {e}"
