"""Helpers shared by the CLI tests: run records, exit statuses, a tiny image folder."""

import json
import os

import numpy as np

from keras_givt.cli import io_utils
from keras_givt.cli.main import main


def read_json(path):
    """The JSON file `path` (a run record, a checkpoint state) as a dict."""
    with open(path) as f:
        return json.load(f)


def exit_status(argv):
    """The exit status of `keras-givt argv`: returned, or raised as SystemExit by a usage error."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def write_image_folder(folder, size, num_classes=10, per_class=2):
    """`folder/class<c>/<i>.png`: `per_class` gray (size, size, 1) images per class, seeded.

    Class c has pixel values 15·c + [0, 100), so the classes differ.
    """
    rng = np.random.default_rng(0)
    for c in range(num_classes):
        os.makedirs(folder / f"class{c}")
        for i in range(per_class):
            img = rng.integers(0, 100, (size, size, 1), dtype=np.uint8) + np.uint8(15 * c)
            io_utils.write_png(folder / f"class{c}" / f"{i}.png", img)
