"""Train the frozen FD-CNN classifier and write its weights + reference statistics.

Usage:
    KERAS_BACKEND=jax python tools/train_fd_cnn.py --dataset fashion_mnist
    KERAS_BACKEND=jax python tools/train_fd_cnn.py --dataset mnist

Writes (temp file, then rename) into --out-dir (default keras_givt/metrics/data):
    fd_cnn_<dataset>.weights.npz      {"<layer>/<variable>": array}
    fd_cnn_<dataset>_test_stats.npz   mu, sigma (test-set features, float64), floor
                                      (FD of --floor-examples real train images vs. test),
                                      accuracy, noise_fd, class_histogram, metadata.
Fixed seed; 2 epochs at batch 256 take about a minute on 2 CPU cores.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_givt import datasets  # noqa: E402
from keras_givt.metrics import fd_cnn  # noqa: E402
from keras_givt.metrics.frechet import frechet_distance  # noqa: E402
from keras_givt.metrics.frechet import gaussian_statistics  # noqa: E402

LOADERS = {"fashion_mnist": datasets.load_fashion_mnist, "mnist": datasets.load_mnist}


def to_model_input(images):
    return (images.astype("float32") / 127.5 - 1.0)[..., None]


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", required=True, choices=fd_cnn.DATASETS)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--floor-examples", type=int, default=10000)
    parser.add_argument("--out-dir", default=fd_cnn.DATA_DIR)
    parser.add_argument(
        "--data-dir", default=None, help="directory of the IDX files (default: installed package)"
    )
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    x_train, y_train = LOADERS[args.dataset]("train", data_dir=args.data_dir)
    x_test, y_test = LOADERS[args.dataset]("test", data_dir=args.data_dir)
    x_train, x_test = to_model_input(x_train), to_model_input(x_test)

    model = fd_cnn.build_fd_cnn_classifier()
    trainer = keras.Model(model.input, model.output["logits"])
    trainer.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.time()
    trainer.fit(
        x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, shuffle=True, verbose=2
    )
    train_seconds = time.time() - start

    def outputs(x):
        feats, logits = [], []
        for i in range(0, len(x), 1000):
            out = model.predict_on_batch(x[i : i + 1000])
            feats.append(np.asarray(out["features"]))
            logits.append(np.asarray(out["logits"]))
        return np.concatenate(feats), np.concatenate(logits)

    test_features, test_logits = outputs(x_test)
    predictions = test_logits.argmax(-1)
    accuracy = float((predictions == y_test).mean())
    test_stats = gaussian_statistics(test_features)

    rng = np.random.default_rng(args.seed)
    floor_idx = rng.permutation(len(x_train))[: args.floor_examples]
    floor = frechet_distance(gaussian_statistics(outputs(x_train[floor_idx])[0]), test_stats)
    noise = rng.uniform(-1.0, 1.0, size=(args.floor_examples, 28, 28, 1)).astype("float32")
    noise_fd = frechet_distance(gaussian_statistics(outputs(noise)[0]), test_stats)
    dead = int((test_features.max(axis=0) <= 0).sum())

    os.makedirs(args.out_dir, exist_ok=True)
    weights_file = os.path.join(args.out_dir, f"fd_cnn_{args.dataset}.weights.npz")
    stats_file = os.path.join(args.out_dir, f"fd_cnn_{args.dataset}_test_stats.npz")
    fd_cnn.save_weights_npz(model, weights_file)
    fd_cnn._savez_atomic(
        stats_file,
        dict(
            mu=test_stats["mu"],
            sigma=test_stats["sigma"],
            num_examples=np.int64(len(x_test)),
            floor=np.float64(floor),
            floor_num_examples=np.int64(len(floor_idx)),
            accuracy=np.float64(accuracy),
            noise_fd=np.float64(noise_fd),
            class_histogram=np.bincount(predictions, minlength=fd_cnn.NUM_CLASSES).astype(np.int64),
            dead_features=np.int64(dead),
            seed=np.int64(args.seed),
            epochs=np.int64(args.epochs),
            batch_size=np.int64(args.batch_size),
            train_seconds=np.float64(train_seconds),
            backend=np.str_(keras.config.backend()),
            keras_version=np.str_(keras.__version__),
        ),
    )
    sizes = {f: os.path.getsize(f) for f in (weights_file, stats_file)}
    print(
        f"dataset={args.dataset} backend={keras.config.backend()} train_seconds={train_seconds:.1f} "
        f"test_accuracy={accuracy:.4f} floor_fd={floor:.4f} noise_fd={noise_fd:.2f} dead_features={dead}"
    )
    for f, s in sizes.items():
        print(f"wrote {f} ({s} bytes)")


if __name__ == "__main__":
    main()
