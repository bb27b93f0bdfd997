"""`AutoencoderLosses`: the perceptual + adversarial training recipe of the image autoencoders.

One implementation, used by `BetaVAE` and `VQGANTokenizer` (MaskGIT's VQGAN
recipe, as the GIVT paper's VAEs were trained). Each model computes its own
terms (reconstruction; β·KL or the quantizer losses) and adds these with
`self.add_recipe_losses(...)`:

    perceptual_weight · P(x, x̂)
  + [step >= adversarial_start_step] · (λ · adversarial_weight · G(x̂) + D(x, x̂))

- P(x, x̂) = Σ_levels mean (φ(x) − φ(x̂))² with φ a frozen feature network:
  a `keras.Model` images in [0, 1] → a tensor or a list of tensors, or the
  name of a shipped one (`"fashion_mnist_features"`, see
  `keras_givt.models.perceptual_network` for why a trained feature net).
- G, D: the generator and discriminator losses of `adversarial_loss`,
  "non_saturating": G = softplus(−D(x̂)), D = softplus(−D(x)) + softplus(D(x̂));
  "hinge": G = −D(x̂), D = relu(1 − D(x)) + relu(1 + D(x̂)); plus the R1
  penalty r1_gamma/2 · E‖∇ₓD(x)‖² in D (0 = off).
  G sees the discriminator through stop-gradient weights and D sees
  stop-gradient reconstructions, so the gradient of the one scalar w.r.t.
  each network is exactly its own objective: one optimizer step of plain
  `fit` is one simultaneous GAN step, on every backend.
- The start step: G and D are both off before `adversarial_start_step`
  training steps (the loss then equals the loss without a discriminator),
  and `ops.cond` skips the discriminator's passes there (bundled-VAE
  architecture, batch 32, jax on a busy 2-core CPU: 1.14 CPU-s per step
  before the start step, 0.94 without a discriminator, 1.70 with it on); the
  trackers record 0 for G, D and λ there. The steps are counted by a
  non-trainable int32 variable `adversarial_step` of the model (created only
  when the start step is > 0), incremented by every
  `compute_loss(training=True)`; a variable of the model, unlike
  `optimizer.iterations`, is part of the state that the JAX trainer threads
  through its compiled step, and it is saved with the weights (so
  `--resume` continues the count).
- λ: 1, or with `adaptive_adversarial_weight=True` VQGAN's adaptive weight
  ‖∇_W L_nll‖ / (‖∇_W G‖ + 1e-4), clipped to [0, `adaptive_weight_max`] and
  stop-gradient, where W is the kernel of the decoder's last conv
  (`decoder.out_conv`) and L_nll = reconstruction + perceptual_weight · P.
  Both gradients are taken with `value_gradient` (the backend-guarded
  `jax.grad` / `tf.GradientTape` / `torch.autograd.grad`, as the R1 term):
  the last conv is re-applied to its input features h (stop-gradient,
  handed from `call` to `compute_loss` of the same step, see
  `_keep_decoder_features`) with W as the differentiated argument, so the
  extra cost is one pass of the last conv, the perceptual network and the
  discriminator, not a second decoder pass.

The perceptual network and the discriminator see images in [0, 1]: a model
training on [−1, 1] images sets `recipe_image_range = (-1.0, 1.0)` and the
recipe maps (x + 1) / 2.

Configuration keys (`recipe_config`): `perceptual_network` (None, a name,
or a serialized model), `perceptual_weight`, `discriminator`,
`adversarial_loss`, `adversarial_weight`, `r1_gamma`,
`adversarial_start_step`, `adaptive_adversarial_weight`,
`adaptive_weight_max`; configs without the last three (saved before they
existed) load with them off. `without_training_networks()` gives the
inference copy (same weights, no discriminator or perceptual network) that
`train-vae` / `train-vq` save.

Dimension letters: B batch, H/W image size, C channels.
"""

import keras
from keras import ops

from keras_givt.utils import validation

ADVERSARIAL_LOSSES = ("non_saturating", "hinge")
ADAPTIVE_EPSILON = 1e-4


def input_gradient(fn, x):
    """∇ₓ Σ fn(x), differentiable again (for the R1 penalty); backend-guarded."""
    return value_gradient(fn, x, differentiable=True)


def value_gradient(fn, x, differentiable=False):
    """∇ₓ Σ fn(x) of a tensor x (an input, or a variable's current value).

    Args:
        fn: a function of one tensor, built from `keras.ops`.
        x: the tensor to differentiate at.
        differentiable: bool. Keep the gradient differentiable (a second
            order term such as R1); else it is a constant (stop-gradient).
    """
    backend = keras.config.backend()
    if backend == "jax":
        import jax

        grad = jax.grad(lambda v: ops.sum(fn(v)))(x)
        return grad if differentiable else jax.lax.stop_gradient(grad)
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            y = ops.sum(fn(x))
        grad = tape.gradient(y, x)
        return grad if differentiable else tf.stop_gradient(grad)
    import torch

    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        y = ops.sum(fn(x))
        create_graph = differentiable and torch.is_grad_enabled()
        grad = torch.autograd.grad(y, x, create_graph=create_graph)[0]
        return grad if differentiable else grad.detach()


def check_recipe_arguments(
    perceptual_network,
    perceptual_weight,
    discriminator,
    adversarial_loss,
    adversarial_weight,
    r1_gamma,
    adversarial_start_step,
    adaptive_adversarial_weight,
    adaptive_weight_max,
):
    """The recipe's constructor arguments checked and normalized (a dict), before any work.

    Raises:
        ValueError / TypeError naming the argument and the received value.
    """
    from keras_givt.models.perceptual_network import PERCEPTUAL_NETWORKS

    if isinstance(perceptual_network, str):
        validation.check_choice("perceptual_network", perceptual_network, PERCEPTUAL_NETWORKS)
    elif perceptual_network is not None and not isinstance(perceptual_network, keras.layers.Layer):
        raise TypeError(
            "`perceptual_network` must be None, a name in "
            f"{PERCEPTUAL_NETWORKS} or a keras.Model; received "
            f"perceptual_network={perceptual_network!r} (of type {type(perceptual_network).__name__})"
        )
    if discriminator is not None and not isinstance(discriminator, keras.layers.Layer):
        raise TypeError(
            "`discriminator` must be None or a keras.Model (images -> (B,) logits); received "
            f"discriminator={discriminator!r} (of type {type(discriminator).__name__})"
        )
    validation.check_choice("adversarial_loss", adversarial_loss, ADVERSARIAL_LOSSES)
    return dict(
        perceptual_network=perceptual_network,
        perceptual_weight=validation.check_float("perceptual_weight", perceptual_weight, 0.0),
        discriminator=discriminator,
        adversarial_loss=adversarial_loss,
        adversarial_weight=validation.check_float("adversarial_weight", adversarial_weight, 0.0),
        r1_gamma=validation.check_float("r1_gamma", r1_gamma, 0.0),
        adversarial_start_step=validation.check_int(
            "adversarial_start_step", adversarial_start_step, 0
        ),
        adaptive_adversarial_weight=validation.check_bool(
            "adaptive_adversarial_weight", adaptive_adversarial_weight
        ),
        adaptive_weight_max=validation.check_float(
            "adaptive_weight_max", adaptive_weight_max, 0.0, min_inclusive=False
        ),
    )


class AutoencoderLosses:
    """Mixin of an image autoencoder `keras.Model`: perceptual + adversarial losses.

    A model lists it before `keras.Model`, checks its arguments with
    `check_recipe_arguments` before `super().__init__()`, then calls
    `_init_recipe(**checked)` after creating its own trackers; its decoder
    is a `CNNDecoder` attribute `decoder` whose `call` accepts
    `return_features=True`. In `call` it decodes with
    `self._decode_with_recipe(decoder_input)`; `compute_loss` ends with
    `self.add_recipe_losses(loss, real, fake, reconstruction)` and the model provides
    `_reconstruction(real, fake)` and `_finish_decoding(raw)` (decoder
    output → the images the losses see).

    Args (of `_init_recipe`, the model's constructor arguments):
        perceptual_network: None, a shipped network's name
            (`"fashion_mnist_features"`) or a frozen `keras.Model` images in
            [0, 1] → features (a tensor or a list of tensors).
        perceptual_weight: float >= 0.
        discriminator: None or a `keras.Model` images in [0, 1] → (B,)
            logits, e.g. `StyleGANDiscriminator`.
        adversarial_loss: "non_saturating" or "hinge".
        adversarial_weight: float >= 0. Weight of the generator's term.
        r1_gamma: float >= 0. R1 penalty weight (0 = off).
        adversarial_start_step: int >= 0. Training steps with both
            adversarial terms off.
        adaptive_adversarial_weight: bool. Scale the generator's term by
            VQGAN's adaptive weight.
        adaptive_weight_max: float > 0. Upper clip of the adaptive weight.

    Example:
    ```python
    vae = keras_givt.BetaVAE(
        codeword_dim=16, filters=32, num_res_blocks=1, channel_multipliers=[1, 2, 2, 2],
        perceptual_network="fashion_mnist_features", perceptual_weight=0.1,
        discriminator=keras_givt.models.vqvae.StyleGANDiscriminator(filters=32),
        adversarial_weight=0.1, adversarial_start_step=1000,
        adaptive_adversarial_weight=True,
    )
    ```
    """

    # The range of the images the model trains on; the perceptual network
    # and the discriminator see them mapped to [0, 1].
    recipe_image_range = (0.0, 1.0)

    def _init_recipe(
        self,
        perceptual_network,
        perceptual_weight,
        discriminator,
        adversarial_loss,
        adversarial_weight,
        r1_gamma,
        adversarial_start_step,
        adaptive_adversarial_weight,
        adaptive_weight_max,
    ):
        self.perceptual_network_name = None
        if isinstance(perceptual_network, str):
            from keras_givt.models.perceptual_network import load_perceptual_network

            self.perceptual_network_name = perceptual_network
            perceptual_network = load_perceptual_network(perceptual_network)
        self.perceptual_network = perceptual_network
        if perceptual_network is not None:
            perceptual_network.trainable = False
        self.discriminator = discriminator
        self.perceptual_weight = perceptual_weight
        self.adversarial_loss = adversarial_loss
        self.adversarial_weight = adversarial_weight
        self.r1_gamma = r1_gamma
        self.adversarial_start_step = adversarial_start_step
        self.adaptive_adversarial_weight = adaptive_adversarial_weight
        self.adaptive_weight_max = adaptive_weight_max
        self._decoder_features = None
        # Trackers, in the order VQGANTokenizer always created them.
        self.perceptual_loss_tracker = keras.metrics.Mean(name="perceptual_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="generator_loss")
        self.d_loss_tracker = keras.metrics.Mean(name="discriminator_loss")
        self.adaptive_weight_tracker = None
        if adaptive_adversarial_weight:
            self.adaptive_weight_tracker = keras.metrics.Mean(name="adaptive_weight")
        self.adversarial_step = None
        if adversarial_start_step:
            self.adversarial_step = self.add_weight(
                shape=(),
                initializer="zeros",
                dtype="int32",
                trainable=False,
                name="adversarial_step",
            )

    def build_for_image_size(self, image_size, channels=3):
        """Creates every variable (the discriminator's too) with a (1, H, W, C) dummy
        batch; `image_size` is an int S or a pair (H, W)."""
        super().build_for_image_size(image_size, channels)
        if self.discriminator is not None and not self.discriminator.built:
            self.discriminator(self._dummy_images(image_size, channels))
        return self

    # --- helpers -------------------------------------------------------------------

    def _to_unit(self, images):
        """Images in the model's range → [0, 1] float32 (no op for [0, 1] models)."""
        images = ops.cast(images, "float32")
        low, high = self.recipe_image_range
        if (low, high) == (0.0, 1.0):
            return images
        return (images - low) / (high - low)

    def _uses_adaptive_weight(self):
        return self.discriminator is not None and self.adaptive_adversarial_weight

    def _decode_with_recipe(self, decoder_input):
        """`self.decoder(decoder_input)`; keeps the last conv's input h when the
        adaptive weight needs it (see `_keep_decoder_features`)."""
        if not self._uses_adaptive_weight():
            return self.decoder(decoder_input)
        raw, features = self.decoder(decoder_input, return_features=True)
        self._keep_decoder_features(features)
        return raw

    def _keep_decoder_features(self, features):
        """Hands h (B, H, W, F) from `call` to the `compute_loss` of the same step.

        Keras calls `call` then `compute_loss` inside one traced train/test
        step on every backend (as it hands `add_loss` values over);
        `compute_loss` takes the value and clears it.
        """
        self._decoder_features = ops.stop_gradient(features)

    def _d_logits(self, images, frozen=False):
        disc = self.discriminator
        if not frozen:
            return disc(images)
        trainable = [ops.stop_gradient(v.value) for v in disc.trainable_variables]
        non_trainable = [v.value for v in disc.non_trainable_variables]
        logits, _ = disc.stateless_call(trainable, non_trainable, images)
        return logits

    def _generator_loss(self, g_logits):
        if self.adversarial_loss == "hinge":
            return -ops.mean(g_logits)
        return ops.mean(ops.softplus(-g_logits))

    # --- the terms -------------------------------------------------------------------

    def adversarial_losses(self, real, fake):
        """`(generator_loss, discriminator_loss)` (the latter with R1) of images in the
        model's range."""
        real = self._to_unit(real)
        fake = self._to_unit(fake)
        g_logits = ops.cast(self._d_logits(fake, frozen=True), "float32")
        d_real = ops.cast(self._d_logits(real), "float32")
        d_fake = ops.cast(self._d_logits(ops.stop_gradient(fake)), "float32")
        g = self._generator_loss(g_logits)
        if self.adversarial_loss == "hinge":
            d = ops.mean(ops.relu(1.0 - d_real)) + ops.mean(ops.relu(1.0 + d_fake))
        else:
            d = ops.mean(ops.softplus(-d_real)) + ops.mean(ops.softplus(d_fake))
        if self.r1_gamma:
            grad = input_gradient(lambda v: self._d_logits(v), real)
            penalty = ops.mean(ops.sum(ops.square(ops.reshape(grad, (ops.shape(grad)[0], -1))), -1))
            d = d + 0.5 * self.r1_gamma * penalty
        return g, d

    def _perceptual_features(self, images):
        features = self.perceptual_network(images)
        if not isinstance(features, (list, tuple)):
            features = [features]
        return [ops.cast(f, "float32") for f in features]

    def _perceptual_from(self, real_features, fake):
        """P given φ(real) (a list) and fake images in [0, 1]."""
        terms = [
            ops.mean(ops.square(u - v))
            for u, v in zip(real_features, self._perceptual_features(fake))
        ]
        return ops.sum(ops.stack(terms))

    def perceptual_loss(self, real, fake):
        """P(x, x̂) = Σ_levels mean (φ(x) − φ(x̂))² of images in the model's range."""
        real, fake = self._to_unit(real), self._to_unit(fake)
        return self._perceptual_from(self._perceptual_features(real), fake)

    def _adversarial_gate(self, training):
        """None (always on), or whether the start step is reached; counts training steps."""
        if self.adversarial_step is None:
            return None
        step = self.adversarial_step.value
        gate = ops.greater_equal(step, self.adversarial_start_step)
        if training:
            self.adversarial_step.assign(step + 1)
        return gate

    def adaptive_adversarial_weight_value(self, real, nll_fn, features=None):
        """VQGAN's ‖∇_W L_nll‖ / (‖∇_W G‖ + 1e-4), clipped, stop-gradient.

        Args:
            real: the target images (B, H, W, C) in the model's range.
            nll_fn: fake images (model range) → the non-adversarial loss
                L_nll (a scalar).
            features: h (B, H, W, F), the input of the decoder's last conv
                (default: the one kept by this step's `call`).
        """
        if features is None:
            features = self._decoder_features
        if features is None:
            raise ValueError(
                "adaptive_adversarial_weight needs the decoder features of the same forward "
                "pass: call the model on the batch before `compute_loss`."
            )
        del real  # The generator term depends on the reconstruction only.
        conv = self.decoder.out_conv
        features = ops.stop_gradient(features)
        kernel = ops.stop_gradient(ops.convert_to_tensor(conv.kernel))
        bias = None if conv.bias is None else ops.stop_gradient(ops.convert_to_tensor(conv.bias))

        def fake_of(w):
            raw = ops.conv(features, w, strides=1, padding="same")  # (B, H, W, C)
            if bias is not None:
                raw = raw + bias
            return ops.cast(self._finish_decoding(raw), "float32")

        def g_fn(w):
            fake = self._to_unit(fake_of(w))
            return self._generator_loss(ops.cast(self._d_logits(fake, frozen=True), "float32"))

        grad_nll = value_gradient(lambda w: nll_fn(fake_of(w)), kernel)
        grad_g = value_gradient(g_fn, kernel)
        ratio = ops.sqrt(ops.sum(ops.square(ops.cast(grad_nll, "float32")))) / (
            ops.sqrt(ops.sum(ops.square(ops.cast(grad_g, "float32")))) + ADAPTIVE_EPSILON
        )
        return ops.stop_gradient(ops.clip(ratio, 0.0, self.adaptive_weight_max))

    def add_recipe_losses(self, loss, real, fake, reconstruction, training=True):
        """`loss` plus the perceptual and adversarial terms (`loss` itself when both are off).

        Args:
            loss: the model's own loss so far (a scalar).
            real: target images (B, H, W, C) in the model's range, float32.
            fake: the reconstruction (B, H, W, C) in the model's range, float32.
            reconstruction: the model's reconstruction loss (scalar) of them.
            training: bool. Count the step (adversarial_start_step).
        """
        features, self._decoder_features = self._decoder_features, None
        use_perceptual = self.perceptual_network is not None and self.perceptual_weight
        real_features = None
        if use_perceptual:
            real_features = self._perceptual_features(self._to_unit(real))
            p = self._perceptual_from(real_features, self._to_unit(fake))
            self.perceptual_loss_tracker.update_state(p)
            loss = loss + self.perceptual_weight * p
        if self.discriminator is None:
            return loss

        def adversarial_terms():
            g, d = self.adversarial_losses(real, fake)
            if not self.adaptive_adversarial_weight:
                return g, d, None

            def nll_fn(fake_images):
                value = self._reconstruction(real, fake_images)
                if use_perceptual:
                    value = value + self.perceptual_weight * self._perceptual_from(
                        real_features, self._to_unit(fake_images)
                    )
                return value

            return g, d, self.adaptive_adversarial_weight_value(real, nll_fn, features)

        gate = self._adversarial_gate(training)
        if gate is None:
            g, d, adaptive = adversarial_terms()
        else:
            # Before the start step the terms are not computed at all (0, no gradient).
            zero = ops.zeros((), "float32")
            g, d, adaptive = ops.cond(
                gate,
                lambda: tuple(zero if v is None else v for v in adversarial_terms()),
                lambda: (zero, zero, zero),
            )
            if not self.adaptive_adversarial_weight:
                adaptive = None
        self.g_loss_tracker.update_state(g)
        self.d_loss_tracker.update_state(d)
        weight = self.adversarial_weight
        if adaptive is not None:
            self.adaptive_weight_tracker.update_state(adaptive)
            weight = weight * adaptive
        return loss + weight * g + d

    # --- metrics and config ------------------------------------------------------------

    @property
    def metrics(self):
        unused = []
        if self.perceptual_network is None:
            unused.append(self.perceptual_loss_tracker)
        if self.discriminator is None:
            unused += [self.g_loss_tracker, self.d_loss_tracker]
            if self.adaptive_weight_tracker is not None:
                unused.append(self.adaptive_weight_tracker)
        return [m for m in super().metrics if all(m is not u for u in unused)]

    def recipe_config(self):
        """The recipe's config entries (a dict)."""
        if self.perceptual_network_name is not None:
            perceptual = self.perceptual_network_name
        elif self.perceptual_network is None:
            perceptual = None
        else:
            perceptual = keras.layers.serialize(self.perceptual_network)
        return {
            "perceptual_network": perceptual,
            "perceptual_weight": self.perceptual_weight,
            "discriminator": (
                None if self.discriminator is None else keras.layers.serialize(self.discriminator)
            ),
            "adversarial_loss": self.adversarial_loss,
            "adversarial_weight": self.adversarial_weight,
            "r1_gamma": self.r1_gamma,
            "adversarial_start_step": self.adversarial_start_step,
            "adaptive_adversarial_weight": self.adaptive_adversarial_weight,
            "adaptive_weight_max": self.adaptive_weight_max,
        }

    def without_training_networks(self):
        """A copy for inference: the same weights, no discriminator, no perceptual network.

        The recipe's weights stay in its config as a record of the training
        (inert without the networks); the start step and the adaptive weight
        are turned off. `train-vae` / `train-vq` save this copy, so the saved
        tokenizer (and every GIVT preset that carries it) holds only the
        encoder/decoder(/codebook) weights.
        """
        config = self.get_config()
        config.update(
            perceptual_network=None,
            discriminator=None,
            adversarial_start_step=0,
            adaptive_adversarial_weight=False,
        )
        copy = type(self).from_config(config)
        targets = {
            layer.name: layer for layer in copy._flatten_layers(include_self=False, recursive=False)
        }
        training_only = [self.perceptual_network, self.discriminator]
        for layer in self._flatten_layers(include_self=False, recursive=False):
            if any(layer is other for other in training_only):
                continue
            targets[layer.name].set_weights(layer.get_weights())
        return copy

    @staticmethod
    def deserialize_recipe_config(config):
        """A copy of `config` with the serialized networks deserialized."""
        config = dict(config)
        for key in ("perceptual_network", "discriminator"):
            if isinstance(config.get(key), dict):
                config[key] = keras.layers.deserialize(config[key])
        return config
