"""Adam and AdamW that update one variable at a time on every backend.

On torch, Keras swaps `keras.optimizers.Adam`/`AdamW` for its own
`torch._foreach_*` versions, which update all variables at once and hold
several parameter-sized temporaries while they do (m * alpha, sqrt(v) + eps,
their quotient, g * g). A subclass is not swapped: it runs Keras' generic
`update_step`, variable by variable, with `keras.ops` -- the code jax and
tensorflow run -- so the temporaries are one variable's size.

Global-norm clipping is applied the same way, inside `update_step` (Keras
makes a clipped copy of every gradient first).

Measured on torch (2-core CPU, GIVT backbone with 102.6M parameters, 8 layers,
width 1024, batch 2; growth of the peak RSS over one `train_on_batch`): Keras'
torch Adam +2.81 / +2.98 GiB (two runs), this Adam +1.93 GiB, SGD +0.97 GiB.
Clipping inside `update_step` and `GenerationTask.train_step` freeing the
gradients after the update (session 12, same model, two steps): peak growth
over the built model 1.46 -> 1.04 GiB. At GIVT-Causal 256's size the torch
train step peaks at 7.7 GiB (big_vision 8.0 GiB; 11.6 GiB with Keras' Adam).
The numbers are Keras Adam's: the same formula, the same variable names (so
saved optimizer state loads either way); `tests/models/test_optimizers.py`
checks 16 clipped, scheduled steps of a GIVT against Keras' class on every
backend, and the clipping of gradients of global norm 30, 0.2 and NaN. On jax
and tensorflow Keras does not swap, so there the classes run Keras' update
formulas (the clipping scale applied per variable instead of up front).
"""

import keras
from keras import ops
from keras.src.optimizers.base_optimizer import global_norm


class _PerVariableUpdates:
    """Global-norm clipping applied inside `update_step`, one variable at a time.

    Keras clips by global norm before the updates: `clip_by_global_norm`
    returns a scaled copy of every gradient, all alive beside the gradients
    themselves until the last update (+1 parameter size at the peak on torch,
    where nothing fuses them away). Here `_clip_gradients` computes Keras's
    scale (the same formula, so the same numbers) and `update_step` scales
    each gradient as it uses it.
    """

    _global_norm_scale = None

    def _clip_gradients(self, grads):
        if not (self.global_clipnorm and self.global_clipnorm > 0) or (
            self.clipnorm and self.clipnorm > 0
        ):
            self._global_norm_scale = None
            return super()._clip_gradients(grads)
        # The scale of Keras's `clip_by_global_norm`.
        use_norm = global_norm(grads)
        scale_for_finite = self.global_clipnorm * ops.minimum(
            1.0 / use_norm, 1.0 / self.global_clipnorm
        )
        self._global_norm_scale = scale_for_finite + (use_norm - use_norm)  # NaN if not finite.
        return grads

    def update_step(self, gradient, variable, learning_rate):
        if self._global_norm_scale is not None:
            gradient = gradient * self._global_norm_scale
        super().update_step(gradient, variable, learning_rate)


@keras.saving.register_keras_serializable(package="keras_givt")
class PerVariableAdam(_PerVariableUpdates, keras.optimizers.Adam):
    """`keras.optimizers.Adam`, updating one variable at a time on every backend.

    Takes the arguments of `keras.optimizers.Adam`. The task's default
    optimizer (`GIVTTask`, the CLI's `train`).

    Example:

    ```python
    optimizer = keras_givt.models.optimizers.PerVariableAdam(3e-4, global_clipnorm=1.0)
    model.compile(optimizer=optimizer)
    ```
    """

    def __init__(self, *args, **kwargs):
        # Keras' name, so the optimizer variables (and saved optimizer state) keep their paths.
        kwargs.setdefault("name", "adam")
        super().__init__(*args, **kwargs)


@keras.saving.register_keras_serializable(package="keras_givt")
class PerVariableAdamW(_PerVariableUpdates, keras.optimizers.AdamW):
    """`keras.optimizers.AdamW`, updating one variable at a time on every backend.

    Takes the arguments of `keras.optimizers.AdamW` (MaskGIT's default:
    `PerVariableAdamW(1e-4, weight_decay=0.045, beta_2=0.96, global_clipnorm=1.0)`).

    Example:

    ```python
    optimizer = keras_givt.models.optimizers.PerVariableAdamW(1e-4, weight_decay=0.045)
    model.compile(optimizer=optimizer)
    ```
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("name", "adam_w")  # Keras' name (see `PerVariableAdam`).
        super().__init__(*args, **kwargs)
