"""The rotation of backend-independent test files over the backends (tests/conftest.py)."""

import os

from tests import conftest


def test_rotation_names_existing_files_and_covers_every_backend():
    for key in conftest.ONE_BACKEND:
        path = os.path.join(conftest.TESTS_DIR, key)
        assert os.path.isdir(path) if key.endswith("/") else os.path.isfile(path), key
    assert set(conftest.ONE_BACKEND.values()) == {"jax", "tensorflow", "torch"}


def test_one_backend_of_matches_files_and_folders():
    root = conftest.TESTS_DIR
    assert conftest.one_backend_of(os.path.join(root, "cli", "test_cli.py")) == "torch"
    assert conftest.one_backend_of(os.path.join(root, "datasets", "test_mnist.py")) == "torch"
    assert conftest.one_backend_of(os.path.join(root, "tools", "x.py")) == "jax"
    assert conftest.one_backend_of(os.path.join(root, "mixture", "test_head.py")) is None
    assert conftest.one_backend_of(os.path.join(root, "test_presets_extra.py")) is None


def test_other_backends_runs_are_marked_large():
    import keras

    class Item:
        def __init__(self, path):
            self.path, self.marks = path, []

        def add_marker(self, mark):
            self.marks.append(mark)

    other = {"jax": "torch", "torch": "tensorflow", "tensorflow": "jax"}[keras.config.backend()]
    mine = [k for k, v in conftest.ONE_BACKEND.items() if v == keras.config.backend()][0]
    theirs = [k for k, v in conftest.ONE_BACKEND.items() if v == other][0]
    items = [Item(os.path.join(conftest.TESTS_DIR, k)) for k in (mine, theirs, "layers/")]
    conftest.pytest_collection_modifyitems(None, items)
    assert [[m.name for m in i.marks] for i in items] == [[], ["large"], []]
