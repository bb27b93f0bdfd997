"""Adam and AdamW that update a bounded group of variables at a time on every backend.

On torch, Keras swaps `keras.optimizers.Adam`/`AdamW` for its own
`torch._foreach_*` versions, which update all variables at once and hold
several parameter-sized temporaries while they do (m * alpha, sqrt(v) + eps,
their quotient, g * g). A subclass is not swapped. On torch these classes update
groups of at most `_TORCH_GROUP_ELEMENTS` (8M) elements with in-place
`torch._foreach_*` ops, so the temporaries are one group's size; on jax and
tensorflow they run Keras' generic `update_step`, variable by variable.

Global-norm clipping is applied the same way, to each gradient as it is used
(Keras makes a clipped copy of every gradient first).

Memory, measured on torch (2-core CPU, GIVT backbone with 102.6M parameters,
8 layers, width 1024, batch 2; growth of the peak RSS over one
`train_on_batch`): Keras' torch Adam +2.81 / +2.98 GiB (two runs), the
per-variable Adam +1.93 GiB, SGD +0.97 GiB. Clipping inside the update and
`GenerationTask.train_step` freeing the gradients after the update (session
12, same model, two steps): peak growth over the built model 1.46 -> 1.04 GiB.
At GIVT-Causal 256's size the torch train step peaked at 7.7 GiB (big_vision
8.0 GiB; 11.6 GiB with Keras' Adam).

Speed: the first GPU run (H200, bf16, GIVT-Causal 256, batch 32) had a torch
train step of 0.53 s against jax's 0.082 s. Keras' generic per-variable update
costs ~115 torch ops per variable, each a kernel launch on a GPU: 5,527 of the
8,383 torch ops of a reference-size train step (48 variables; 82 of its 304 ms
on this CPU). The grouped update and a fused global norm (`torch._foreach_norm`)
make the optimizer's `apply` 30 top-level torch calls for those 48 variables
(15 ms on this CPU); not yet re-measured on a GPU. On this CPU, at the 102.6M-parameter
size above (`benchmarks/memory.py --backend torch --layers 8 --batch 2 --iters 2
--remat off --dtype float32`, run after run): 4.39 s per step against 6.39 s, peak RSS
3.34 against 3.43 GiB (1.63 / 1.75 GiB after the build: equal within run-to-run noise).

The numbers are Keras Adam's: the same formula up to float rounding, the same
variable names (so saved optimizer state loads either way);
`tests/models/test_optimizers.py` checks 16 clipped, scheduled steps of a GIVT
against Keras' class on every backend, and the clipping of gradients of global
norm 30, 0.2 and NaN.
"""

import math

import keras
from keras import ops
from keras.src.optimizers.base_optimizer import global_norm

# Elements of the variables one torch update works on together (32 MiB of float32): its at
# most two temporaries of that size (scaled gradients, the denominator) bound the memory it
# adds, while a published-size GIVT (304M parameters) needs about 40 groups instead of one
# pass per variable.
_TORCH_GROUP_ELEMENTS = 8 * 2**20


class _PerVariableUpdates:
    """Global-norm clipping applied inside the update; torch's grouped Adam update.

    Keras clips by global norm before the updates: `clip_by_global_norm`
    returns a scaled copy of every gradient, all alive beside the gradients
    themselves until the last update (+1 parameter size at the peak on torch,
    where nothing fuses them away). Here `_clip_gradients` computes Keras's
    scale (the same formula; on torch the norm of fused per-gradient norms) and
    the update scales each gradient as it uses it.
    """

    _global_norm_scale = None

    def _clip_gradients(self, grads):
        if not (self.global_clipnorm and self.global_clipnorm > 0) or (
            self.clipnorm and self.clipnorm > 0
        ):
            self._global_norm_scale = None
            return super()._clip_gradients(grads)
        # The scale of Keras's `clip_by_global_norm`.
        if keras.config.backend() == "torch":
            import torch  # One fused norm per gradient instead of Keras' square + sum each.

            norms = torch._foreach_norm([ops.convert_to_tensor(g) for g in grads])
            use_norm = torch.linalg.vector_norm(torch.stack(norms))
        else:
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

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if keras.config.backend() != "torch":
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        # Keras' generic loop costs ~115 torch ops per variable (keras.ops casts, scalar
        # tensors, the Adam formula): 5,527 of a reference-size train step's 8,383 ops on
        # torch, each a kernel launch on a GPU. Grouped in-place updates: ~10 per group.
        import torch

        # Groups of one dtype and device (the foreach ops' requirement), in variable order.
        groups, open_groups = [], {}
        for grad, var in zip(grads, trainable_variables):
            key = (var.value.dtype, var.value.device)
            n = int(math.prod(var.shape))
            group = open_groups.get(key)
            if group is None or (group[1] and group[1] + n > _TORCH_GROUP_ELEMENTS):
                group = open_groups[key] = [[], 0]
                groups.append(group[0])
            group[0].append((grad, var))
            group[1] += n
        # The step size once per dtype and call, not per group.
        step = ops.convert_to_tensor(self.iterations) + 1
        lr = ops.convert_to_tensor(learning_rate)
        alphas = {}
        for dtype, _ in open_groups:
            t, lr_t = step.to(dtype), lr.to(dtype)
            alphas[dtype] = lr_t * torch.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)
        with torch.no_grad():
            for group in groups:
                self._torch_adam_update(group, alphas[group[0][1].value.dtype])

    def _torch_adam_update(self, group, alpha):
        """Adam's update of a group of variables with `torch._foreach_*` ops, in place.

        Keras' formula (`keras.optimizers.Adam.update_step`): m += (g - m)(1 - b1),
        v += (g^2 - v)(1 - b2), var -= alpha m / (sqrt(v) + eps) with
        alpha = lr sqrt(1 - b2^t) / (1 - b1^t), t = iterations + 1 (`alpha`: a tensor of
        the group's dtype); AdamW's decay is Keras' own `_apply_weight_decay`, before this.
        """
        import torch

        variables = [v.value for _, v in group]
        dtype = variables[0].dtype
        grads = [ops.convert_to_tensor(g).to(dtype) for g, _ in group]
        if self._global_norm_scale is not None:
            grads = torch._foreach_mul(grads, self._global_norm_scale.to(dtype))
        index = [self._get_variable_index(v) for _, v in group]
        m = [self._momentums[i].value for i in index]
        v = [self._velocities[i].value for i in index]
        torch._foreach_lerp_(m, grads, 1 - self.beta_1)
        torch._foreach_mul_(v, self.beta_2)
        torch._foreach_addcmul_(v, grads, grads, value=1 - self.beta_2)
        del grads
        if self.amsgrad:
            v_hat = [self._velocity_hats[i].value for i in index]
            torch._foreach_maximum_(v_hat, v)
            v = v_hat
        denom = torch._foreach_sqrt(v)
        torch._foreach_add_(denom, self.epsilon)
        torch._foreach_div_(denom, alpha)  # (sqrt(v) + eps) / alpha
        torch._foreach_addcdiv_(variables, m, denom, value=-1.0)


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
