"""Train the perceptual feature network `fashion_mnist_features` and write its weights.

Usage:
    KERAS_BACKEND=jax nice -n 10 python tools/train_perceptual_net.py

Writes (temp file, then rename) into --out-dir (default keras_givt/models/data):
    fashion_mnist_features.weights.npz   {"<layer>/<i>": array, "feature_rms": (3,)}
    fashion_mnist_features.json          config, test accuracy, seed, epochs, the command,
                                         backend, seconds

A `PerceptualFeatureNetwork` (see `keras_givt.models.perceptual_network`; not
the FD-CNN classifier, other architecture and seed) is trained as a
Fashion-MNIST classifier on the training split only, on the inputs the
autoencoders see: 28×28 images padded to 32×32 (background 0), in [0, 1],
gray tiled to 3 channels. Then each level's RMS over 10k training images is
stored, so every level's features have unit RMS on real data.
"""

import argparse
import json
import os
import shlex
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from keras_givt import datasets  # noqa: E402
from keras_givt.models import perceptual_network  # noqa: E402

NAME = "fashion_mnist_features"


def to_model_input(images):
    """uint8 (N, 28, 28) -> float32 (N, 32, 32, 3) in [0, 1], padded with 0."""
    x = images.astype("float32") / 255.0
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)))
    return np.repeat(x[..., None], 3, axis=-1)


class _Classifier(keras.Model):
    """The network's classification path as a trainable model."""

    def __init__(self, net, **kwargs):
        super().__init__(**kwargs)
        self.net = net

    def call(self, images):
        return self.net.classify(images)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--widths", default="16,32,64")
    parser.add_argument("--max-examples", type=int, default=None)
    parser.add_argument("--out-dir", default=perceptual_network.DATA_DIR)
    parser.add_argument(
        "--data-dir", default=None, help="directory of the IDX files (default: installed package)"
    )
    args = parser.parse_args(argv)
    widths = [int(w) for w in args.widths.split(",")]

    keras.utils.set_random_seed(args.seed)
    x_train, y_train = datasets.load_fashion_mnist("train", data_dir=args.data_dir)
    x_test, y_test = datasets.load_fashion_mnist("test", data_dir=args.data_dir)
    if args.max_examples:
        x_train, y_train = x_train[: args.max_examples], y_train[: args.max_examples]
    x_train, x_test = to_model_input(x_train), to_model_input(x_test)

    net = perceptual_network.build_perceptual_network(name=NAME, widths=widths)
    trainer = _Classifier(net)
    steps = args.epochs * (len(x_train) // args.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(args.learning_rate, steps)
    trainer.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start, cpu_start = time.time(), time.process_time()
    trainer.fit(
        x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, shuffle=True, verbose=2
    )
    train_seconds = time.time() - start
    train_cpu_seconds = time.process_time() - cpu_start

    logits = np.concatenate(
        [
            np.asarray(ops.convert_to_numpy(net.classify(x_test[i : i + 1000])))
            for i in range(0, len(x_test), 1000)
        ]
    )
    accuracy = float((logits.argmax(-1) == y_test).mean())

    # Per-level RMS on 10k training images: each level gets unit RMS on real data.
    sums, counts = np.zeros(len(widths)), np.zeros(len(widths))
    for i in range(0, min(10000, len(x_train)), 1000):
        for k, level in enumerate(net.raw_features(x_train[i : i + 1000])):
            level = np.asarray(ops.convert_to_numpy(level), dtype="float64")
            sums[k] += np.sum(level**2)
            counts[k] += level.size
    rms = np.sqrt(sums / counts)
    net.feature_rms.assign(rms.astype("float32"))

    os.makedirs(args.out_dir, exist_ok=True)
    weights_file = os.path.join(args.out_dir, f"{NAME}.weights.npz")
    info_file = os.path.join(args.out_dir, f"{NAME}.json")
    perceptual_network.save_weights_npz(net, weights_file)
    info = {
        "name": NAME,
        "config": {"widths": widths, "num_classes": 10},
        "description": "Perceptual feature network of the autoencoder training recipe "
        "(keras_givt.models.perceptual_network); a Fashion-MNIST classifier, not FD-CNN.",
        "input": "images (B, H, W, C) in [0, 1]; channels averaged to gray; trained on 28x28 "
        "Fashion-MNIST padded to 32x32 (background 0), gray tiled to RGB",
        "test_accuracy": accuracy,
        "feature_rms": [float(v) for v in rms],
        "params": int(sum(int(np.prod(v.shape)) for v in net.trainable_weights)),
        "seed": args.seed,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "train_examples": int(len(x_train)),
        "train_seconds": round(train_seconds, 1),
        "train_cpu_seconds": round(train_cpu_seconds, 1),
        "backend": keras.config.backend(),
        "keras_version": keras.__version__,
        "command": "KERAS_BACKEND="
        + keras.config.backend()
        + " nice -n 10 python tools/train_perceptual_net.py "
        + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)),
    }
    tmp = info_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    os.replace(tmp, info_file)
    print(
        f"{NAME}: test_accuracy={accuracy:.4f} train_seconds={train_seconds:.1f} "
        f"(cpu {train_cpu_seconds:.1f}) feature_rms={np.round(rms, 4).tolist()} "
        f"weights={os.path.getsize(weights_file)} bytes"
    )


if __name__ == "__main__":
    main()
