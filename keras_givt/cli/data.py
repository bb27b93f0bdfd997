"""The data of the `keras-givt` commands: image data sets and cached-latent streams.

`data_spec` turns the data flags into a dict (stored in run records and model
cards, reused by later commands); `load_images` builds the tf.data pipeline of
a spec (Fashion-MNIST/MNIST or an image folder, images in [-1, 1]). Training
streams are infinite, seeded and position-determined, so that a resumed run
continues exactly where the checkpointed one stopped: `fresh_stream` and
`image_stream` give each `fit` call a fresh copy of the pipeline,
`seeded_epoch_order` and `latents_dataset` draw their orders and noise
statelessly. `held_out_images` gives the images a tokenizer's reconstruction
is measured on.

Dimension letters: N examples, B batch, H/W/C image, L tokens, D token dim.

No Keras import at module level; TensorFlow and the data sets load on first use.
"""

import os

from keras_givt.cli.errors import CLIError


def is_builtin(data):
    """True for the data sets that ship as IDX files (`fashion_mnist`, `mnist`), not a folder."""
    return data in ("fashion_mnist", "mnist")


def data_spec(args):
    """The data arguments as a dict (stored in run JSONs and reused by later commands)."""
    resize = args.resize_mode or ("pad" if is_builtin(args.data) else "resize")
    return {
        "data": args.data if is_builtin(args.data) else os.path.abspath(args.data),
        "image_size": args.image_size,
        "channels": args.channels,
        "resize_mode": resize,
        "max_examples": args.max_examples,
    }


def image_preprocessor(spec, output_range=(-1.0, 1.0)):
    """The `ImagePreprocessor` that turns raw images into what a model trained
    on `spec` (a `data_spec`) saw: its size, channels and resize mode, scaled
    to `output_range`. Attached to the tasks the CLI trains, so their presets
    take raw images as the data pipeline fed them. None without a spec."""
    if not spec:
        return None
    from keras_givt.models.image_preprocessor import ImagePreprocessor

    return ImagePreprocessor(
        spec["image_size"],
        channels=spec["channels"],
        resize_mode=spec["resize_mode"],
        output_range=output_range,
    )


def load_images(
    spec,
    split,
    batch_size,
    shuffle=False,
    seed=None,
    repeat=False,
    drop_remainder=False,
    data_dir=None,
):
    """`(tf.data of {"images", "labels"}, num_examples, class_names)` of a `data_spec`.

    Images are (B, H, W, C) floats in [-1, 1], labels (B,) int class ids.
    Raises `CLIError` when a built-in data set is not installed.
    """
    from keras_givt import datasets

    data = spec["data"]
    options = dict(  # The same for both kinds of data.
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        channels=spec["channels"],
        resize_mode=spec["resize_mode"],
        drop_remainder=drop_remainder,
    )
    if is_builtin(data):
        loader = datasets.load_fashion_mnist if data == "fashion_mnist" else datasets.load_mnist
        try:
            images, labels = loader(split, data_dir=data_dir)
        except Exception as e:  # Missing files: the loader's message says how to install them.
            raise CLIError(f"could not load {data} ({split}): {e}")
        if spec.get("max_examples"):
            images, labels = images[: spec["max_examples"]], labels[: spec["max_examples"]]
        names = list(
            datasets.FASHION_MNIST_CLASS_NAMES
            if data == "fashion_mnist"
            else datasets.MNIST_CLASS_NAMES
        )
        ds = datasets.arrays_dataset(
            images, labels, image_size=spec["image_size"], repeat=repeat, **options
        )
        return ds, len(images), names
    from keras_givt.datasets.image_folder import list_image_folder

    paths, _, names = list_image_folder(data)
    n = len(paths)
    ds = datasets.image_folder_dataset(
        data, spec["image_size"], repeat=repeat and not spec.get("max_examples"), **options
    )
    if spec.get("max_examples"):
        n = min(n, spec["max_examples"])
        ds = ds.unbatch().take(n)
        if repeat:
            ds = ds.repeat()
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds, n, names


def fresh_stream(first, make):
    """A function returning `first` on its first call, then `make()` (a fresh, identical pipeline)."""
    pending = [first]

    def stream():
        return pending.pop() if pending else make()

    return stream


def training_images(spec, args):
    """`load_images` of the train split, shuffled by `--seed`, repeated, in `--batch-size` batches.

    Args:
        spec: a `data_spec`.
        args: the parsed training arguments (`batch_size`, `seed`, `data_dir`).
    """
    return load_images(
        spec,
        "train",
        args.batch_size,
        shuffle=True,
        seed=args.seed,
        repeat=True,
        drop_remainder=True,
        data_dir=args.data_dir,
    )


def image_stream(spec, args, transform=lambda ds: ds):
    """`(stream, num_examples, class_names)` of the training images of `spec`.

    `stream` is the `fresh_stream` of `training_images`, mapped by `transform`
    (a function of the tf.data; default: unchanged).

    Args:
        spec: a `data_spec`.
        args: the parsed training arguments (`batch_size`, `seed`, `data_dir`).
        transform: maps the tf.data of {"images", "labels"} to what `fit` takes.
    """
    first, n, names = training_images(spec, args)

    def make():
        return transform(training_images(spec, args)[0])

    return fresh_stream(transform(first), make), n, names


def held_out_images(spec, data_dir, batch_size=250, num_batches=4):
    """`(batches, split)`: held-out images of `spec` to measure a reconstruction on.

    The test split of a built-in data set (all of it, not only `max_examples`),
    else the train split of the image folder; the first `num_batches`.

    Args:
        spec: a `data_spec`.
        data_dir: folder of the IDX files (default: the installed data sets).
        batch_size: images per batch.
        num_batches: the number of batches.
    """
    split = "test" if is_builtin(spec["data"]) else "train"
    ds, _, _ = load_images(
        dict(spec, max_examples=None) if split == "test" else spec,
        split,
        batch_size,
        data_dir=data_dir,
    )
    return ds.take(num_batches), split


def seeded_epoch_order(n, seed):
    """tf.data of example indices: epoch after epoch, each a permutation drawn statelessly from (seed, epoch).

    Unlike `shuffle(reshuffle_each_iteration=True)`, whose orders depend on
    how many iterators the same dataset object has served, the stream is a
    pure function of `seed` and the position: `skip(k)` on a fresh copy is
    exactly the continuation after k elements.
    """
    import tensorflow as tf

    def epoch(e):
        key = tf.stack([tf.constant(seed, tf.int64), e])
        return tf.data.Dataset.from_tensor_slices(
            tf.random.experimental.stateless_shuffle(tf.range(n), seed=key)
        )

    return tf.data.Dataset.counter().flat_map(epoch)


def latents_dataset(mu, logvar, labels, batch_size, seed, shuffle=True, repeat=True):
    """tf.data of `{"latents": mu + exp(logvar/2)·ε (fresh ε per step), "labels"}`.

    Deterministic given `seed`: the order comes from `seeded_epoch_order`
    and ε of batch i from a stateless draw keyed by (seed, i), so `skip(k)`
    gives exactly the stream a run that consumed k batches continues with.
    """
    import tensorflow as tf

    mu_t, lv_t, y_t = tf.constant(mu), tf.constant(logvar), tf.constant(labels.astype("int32"))
    if shuffle and repeat:
        idx = seeded_epoch_order(len(mu), seed)
    else:
        idx = tf.data.Dataset.range(len(mu))
        if shuffle:
            idx = idx.shuffle(len(mu), seed=seed)
        if repeat:
            idx = idx.repeat()
    ds = idx.batch(batch_size, drop_remainder=True).enumerate()

    def sample(i, index):
        m, lv, y = tf.gather(mu_t, index), tf.gather(lv_t, index), tf.gather(y_t, index)
        key = tf.stack([tf.constant(seed, tf.int64), tf.cast(i, tf.int64)])
        eps = tf.random.stateless_normal(tf.shape(m), seed=key, dtype=m.dtype)
        return {"latents": m + tf.exp(0.5 * lv) * eps, "labels": y}

    return ds.map(sample, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
