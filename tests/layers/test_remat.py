"""`late_recompute_remat`: jax's CPU rematerialisation gives the plain gradient.

Its backward pass recomputes inside a `lax.cond` whose predicate is always
true; the gradient must equal the plain one for any cotangent, including a
non-finite first element (the element the predicate reads).
"""

import keras
import numpy as np
import pytest

from keras_givt.layers.remat import late_recompute_remat
from keras_givt.layers.remat import on_jax_cpu

pytestmark = pytest.mark.skipif(
    keras.config.backend() != "jax", reason="a jax-only replacement of Keras' jax.checkpoint"
)


def test_on_jax_cpu_follows_the_backend():
    import jax

    assert on_jax_cpu() == (jax.default_backend() == "cpu")


@pytest.mark.parametrize("first", [0.5, np.nan, np.inf])
def test_gradient_equals_the_plain_one(first):
    import jax

    layer = keras.Sequential(
        [keras.layers.Dense(6, activation="tanh"), keras.layers.Dense(3)], name="stack"
    )
    layer.build((4, 5))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 5)).astype("float32")
    cotangent = rng.normal(size=(4, 3)).astype("float32")
    cotangent[0, 0] = first
    variables = layer.trainable_variables

    def run(call):
        def f(values, x):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return call(x)

        out, vjp = jax.vjp(jax.jit(f), [v.value for v in variables], x)
        return [np.asarray(out)] + [
            np.asarray(g) for g in jax.tree_util.tree_leaves(vjp(cotangent))
        ]

    plain = run(layer.call)
    rematerialized = run(late_recompute_remat(layer.call, layer))
    assert len(plain) == len(rematerialized) == 2 + len(variables)
    for a, b in zip(rematerialized, plain):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7, equal_nan=True)
    if not np.isfinite(first):
        last_kernel = plain[3]  # (6, 3): only the column of the non-finite element.
        assert not np.isfinite(last_kernel[:, 0]).any() and np.isfinite(last_kernel[:, 1:]).all()
