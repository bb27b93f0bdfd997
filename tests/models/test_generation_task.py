"""`GenerationTask`: `fit` on in-memory arrays (`models.fit_arrays`, reshuffled every
epoch), and the heap trim once per train function."""

import platform

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_givt import GIVTBackbone
from keras_givt import GIVTCausal
from keras_givt.models import fit_arrays
from keras_givt.utils import heap
from tests import helpers


def _order(dataset):
    return np.concatenate([b["index"].numpy() for b in dataset])


def test_array_dataset_reshuffles_each_epoch_and_keeps_every_example():
    tf.random.set_seed(0)
    arrays = {"index": np.arange(50), "x": np.arange(100.0).reshape(50, 2)}
    ds = fit_arrays.array_dataset(arrays, 8, shuffle=True)
    first, second = _order(ds), _order(ds)
    np.testing.assert_array_equal(np.sort(first), np.arange(50))
    np.testing.assert_array_equal(np.sort(second), np.arange(50))
    assert not np.array_equal(first, second)  # A new order per pass.
    assert not np.array_equal(first, np.arange(50))
    batch = next(iter(ds))  # Rows stay aligned across keys.
    np.testing.assert_array_equal(batch["x"].numpy()[:, 0], 2.0 * batch["index"].numpy())
    ordered = fit_arrays.array_dataset(arrays, 8, shuffle=False)
    np.testing.assert_array_equal(_order(ordered), np.arange(50))
    with pytest.raises(ValueError, match="same number of examples"):
        fit_arrays.array_dataset({"a": np.zeros(3), "b": np.zeros(4)}, 2, True)


def test_fit_on_arrays_shuffles_and_splits_like_keras(monkeypatch):
    calls = []
    real = fit_arrays.array_dataset

    def spy(arrays, batch_size, shuffle):
        calls.append((len(arrays["latents"]), batch_size, shuffle))
        return real(arrays, batch_size, shuffle)

    monkeypatch.setattr(fit_arrays, "array_dataset", spy)
    keras.utils.set_random_seed(0)
    model = GIVTCausal(GIVTBackbone(**helpers.tiny_kwargs()), seed=0)
    tokens, labels = helpers.digits_tokens(40)
    history = model.fit(
        {"latents": tokens, "labels": labels},
        batch_size=8,
        epochs=2,
        validation_split=0.25,
        verbose=0,
    )
    assert calls == [(30, 8, True)]  # The last quarter is held out, as in Keras.
    assert len(history.history["val_loss"]) == 2
    model.fit({"latents": tokens, "labels": labels}, batch_size=8, shuffle=False, verbose=0)
    assert calls[-1] == (40, 8, False)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit({"latents": tokens, "labels": labels}, validation_split=1.5, verbose=0)


def test_the_heap_is_trimmed_once_per_train_function(monkeypatch):
    """`release_freed_heap` before the train function is built, not at every step
    (re-faulting a step's freed temporaries every step would cost time)."""
    calls = []
    monkeypatch.setattr(heap, "MALLOC_TRIM", lambda pad: calls.append(pad) or 1)
    model = GIVTCausal(GIVTBackbone(**helpers.tiny_kwargs()), seed=0)
    model.compile(optimizer="adam")
    tokens, labels = helpers.digits_tokens(4)
    batch = {"latents": tokens, "labels": labels}
    model.train_on_batch(batch)
    model.train_on_batch(batch)
    assert calls == [0]
    model.make_train_function(force=True)
    assert calls == [0, 0]


def test_release_freed_heap_uses_glibc_where_there_is_one():
    assert heap.release_freed_heap() == (heap.MALLOC_TRIM is not None)
    if platform.libc_ver()[0] == "glibc":
        assert heap.MALLOC_TRIM is not None
