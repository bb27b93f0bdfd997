"""Sampling and FD-CNN scoring shared by the `sample`, `evaluate`, `evaluate-vq`, `demo` commands.

`generate_in_chunks` draws N images in batches of one shape (no retracing);
`timed_generation` does so after a compiling first batch and adds the
sampling time to a metrics dict; `balanced_labels` and `class_rows` give
class-balanced labels and a one-row-per-class grid order.
`score_fd_cnn` adds the FD-CNN of generated images and its reference points
(real-data floor, noise distance, class histogram) to a metrics dict;
`real_floor_at` gives the real-data floor at the number of samples scored
(from the table in `fd_floors.py` when it has that N). The FD-CNN itself is
library code: `keras_givt.metrics.FDCNN` (imported on first use).

Dimension letters: N samples, K classes, H/W/C image.
"""

import time


def generate_in_chunks(model, total, batch_size, seed, labels=None, bar=None, **generate_kwargs):
    """Images (N, H, W, C) of `model.generate` in chunks of `batch_size` (one shape: no retracing).

    Chunk i is drawn with seed `seed + i`; the last chunk's labels are
    padded with class 0 to the chunk size and the padding samples dropped.

    Args:
        model: a task with `generate(labels=... or num_samples=..., seed=..., **kwargs)`.
        total: N, the number of images.
        batch_size: images per `generate` call (the chunk size, at most N).
        seed: the seed of the first chunk.
        labels: (N,) int class labels, or None: unconditional samples.
        bar: a `keras.utils.Progbar` to advance, or None.
        **generate_kwargs: passed on to `generate` (sampling settings).
    """
    import keras
    import numpy as np

    chunk = min(batch_size, total)
    out = []
    for i, start in enumerate(range(0, total, chunk)):
        n = min(chunk, total - start)
        if labels is not None:
            lab = np.asarray(labels[start : start + chunk])
            if n < chunk:
                lab = np.concatenate([lab, np.zeros(chunk - n, lab.dtype)])
            images = model.generate(labels=lab, seed=seed + i, **generate_kwargs)
        else:
            images = model.generate(num_samples=chunk, seed=seed + i, **generate_kwargs)
        out.append(keras.ops.convert_to_numpy(images)[:n])
        if bar is not None:
            bar.add(n)
    return np.concatenate(out)


def timed_generation(metrics, model, total, batch_size, seed, labels=None, **generate_kwargs):
    """`generate_in_chunks` of N images, timed without compilation; the times go to `metrics`.

    A first batch is drawn (and thrown away) to compile generation
    (`compile_and_first_batch_s`); then all N, with a progress bar
    (`num_samples`, `sampling_time_s`, `sampling_ms_per_image`).

    Args:
        metrics: the dict to update.
        model, total, batch_size, seed, labels, **generate_kwargs: as for
            `generate_in_chunks`.
    """
    import keras

    first = min(batch_size, total)
    t0 = time.time()  # Compile first, so the timing excludes compilation.
    generate_in_chunks(
        model,
        first,
        batch_size,
        seed,
        labels=labels[:first] if labels is not None else None,
        **generate_kwargs,
    )
    metrics["compile_and_first_batch_s"] = round(time.time() - t0, 3)
    bar = keras.utils.Progbar(total, unit_name="sample")
    t0 = time.time()
    images = generate_in_chunks(
        model, total, batch_size, seed, labels=labels, bar=bar, **generate_kwargs
    )
    dt = time.time() - t0
    metrics.update(
        num_samples=int(total),
        sampling_time_s=round(dt, 3),
        sampling_ms_per_image=round(1000 * dt / total, 3),
    )
    return images


def balanced_labels(total, num_classes):
    """(N,) int32 labels 0, 1, ..., K-1, 0, ...: N // K per class (+ the first N % K classes).

    Args:
        total: N, the number of labels.
        num_classes: K.
    """
    import numpy as np

    return (np.arange(total) % num_classes).astype("int32")


def class_rows(labels, num_classes, per_class):
    """Indices of the first `per_class` samples of each class in turn: a grid with a row per class.

    Args:
        labels: (N,) int class labels.
        num_classes: K, the number of rows.
        per_class: samples per row.
    """
    import numpy as np

    return np.concatenate([np.where(labels == c)[0][:per_class] for c in range(num_classes)])


def score_fd_cnn(
    metrics, images, fd_dataset, input_mode, floor_at_n=False, seed=0, data_dir=None, labels=None
):
    """Adds the FD-CNN of `images` (N, H, W, C) in [-1, 1] vs. the `fd_dataset` test set to `metrics`.

    With the 10k real-data floor, the noise distance and the class
    histogram; with `labels` (the classes the images were generated for) the
    class consistency (the classifier's accuracy on them, mean and per class)
    beside its accuracy on the real test images; `floor_at_n` adds the
    real-data floor at N (needs the train split).

    Args:
        metrics: the dict to update (`fd_cnn`, `fd_cnn_floor_10k`,
            `fd_cnn_noise`, `class_histogram`, `class_consistency`, ...).
        images: (N, H, W, C) generated images in [-1, 1].
        fd_dataset: `"fashion_mnist"` or `"mnist"`: the reference test set.
        input_mode: `"crop"` or `"resize"`: how images reach the classifier's 28x28.
        floor_at_n: also measure the real-data floor at N.
        seed: seed of the real-data draw for `floor_at_n`.
        data_dir: folder of the IDX files (default: the installed data sets).
        labels: optional (N,) int conditioning classes of `images`.
    """
    import numpy as np

    from keras_givt.metrics import FDCNN
    from keras_givt.metrics.fd_cnn import NUM_CLASSES

    total = len(images)
    fd = FDCNN(fd_dataset, input_mode=input_mode)
    if labels is not None and np.max(labels) >= NUM_CLASSES:
        metrics["class_consistency_note"] = (
            f"not scored: the model has classes beyond the classifier's {NUM_CLASSES}."
        )
        labels = None
    print("Scoring FD-CNN...")
    metrics.update(fd.score(images, labels))
    metrics.update(fd_cnn_floor_10k=fd.floor, fd_cnn_noise=fd.noise_distance)
    if labels is not None:
        metrics["class_consistency_real"] = fd.accuracy
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
