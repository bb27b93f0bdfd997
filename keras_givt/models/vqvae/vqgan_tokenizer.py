"""`VQGANTokenizer`: MaskGIT's VQGAN (`maskgit.nets.vqgan_tokenizer.VQVAE`).

Dimension letters: B batch, H/W image size, C image channels, h/w token grid
(H/2^(n−1) with n = len(channel_multipliers)), D `embedding_dim`, K
`codebook_size`, L = h·w tokens.

Architecture (number for number MaskGIT's, shared with big_vision's CNN VAE
in `keras_givt.models.vae.vae_layers`): images in **[0, 1]** → CNN encoder
(ResBlocks with GroupNorm(32) + swish, 2×2 average-pool or strided-conv
downsampling) → (B, h, w, D) → `VectorQuantizer` (K codes) → CNN decoder
(nearest ×2 upsampling + conv) → images (B, H, W, C), not clipped.

Training (`fit(images)`; `compute_loss`):

    reconstruction ("l2": mean (x − x̂)², or "l1")
  + quantizer loss (commitment + codebook + entropy, see `VectorQuantizer`)
  + the perceptual and adversarial terms of the shared recipe
    (`keras_givt.models.autoencoder_losses.AutoencoderLosses`, also used by
    `BetaVAE`): perceptual_weight · P(x, x̂) with a frozen feature network,
    and with a `discriminator` the generator term adversarial_weight ·
    g_loss(D(x̂)) (optionally VQGAN's adaptive weight, from
    `adversarial_start_step` on) and the discriminator term d_loss + R1, so
    one optimizer step of plain `fit` is one simultaneous GAN step on every
    backend.
"""

import keras
from keras import ops

from keras_givt.layers.vector_quantizer import VectorQuantizer
from keras_givt.layers.vector_quantizer import codebook_statistics
from keras_givt.models.autoencoder_losses import AutoencoderLosses
from keras_givt.models.autoencoder_losses import check_recipe_arguments
from keras_givt.models.autoencoder_losses import input_gradient  # noqa: F401 (public here too)
from keras_givt.models.image_autoencoder import ImageAutoencoder
from keras_givt.models.vae.vae_layers import CNNDecoder
from keras_givt.models.vae.vae_layers import CNNEncoder
from keras_givt.utils.validation import check_choice
from keras_givt.utils import validation


@keras.saving.register_keras_serializable(package="keras_givt")
class VQGANTokenizer(AutoencoderLosses, ImageAutoencoder, keras.Model):
    """MaskGIT's VQGAN tokenizer, trainable with `fit`.

    Args:
        filters: int. Base channel count (GroupNorm needs multiples of 32).
        num_res_blocks: int. ResBlocks per level.
        channel_multipliers: list of int. Channel multiplier per level.
        embedding_dim: int. D, code dimension.
        codebook_size: int. K.
        conv_downsample: bool. 4×4 strided conv instead of average pooling.
        activation_fn: str. "swish" (MaskGIT) or "relu".
        norm_type: str. Only "GN".
        commitment_cost, entropy_loss_ratio, entropy_loss_type,
            entropy_temperature, dead_code_threshold: see `VectorQuantizer`.
        output_dim: int. Image channels.
        reconstruction_loss: "l2" or "l1".
        perceptual_network: None, a shipped network's name
            (`"fashion_mnist_features"`) or a frozen `keras.Model` images in
            [0, 1] → features (a tensor or a list of tensors).
        perceptual_weight: float.
        discriminator: optional `keras.Model` images → (B,) logits, e.g.
            `StyleGANDiscriminator`.
        adversarial_loss: "non_saturating" or "hinge".
        adversarial_weight: float. Weight of the generator's adversarial term.
        r1_gamma: float. R1 penalty weight (0 = off).
        adversarial_start_step: int. Training steps before the adversarial
            terms start (0: from the first).
        adaptive_adversarial_weight: bool. VQGAN's adaptive weight on the
            generator term (see `AutoencoderLosses`).
        adaptive_weight_max: float. Its upper clip.
        image_size: (H, W, C) the variables are built for (recorded).

    Example:
    ```python
    tok = keras_givt.VQGANTokenizer(
        filters=32, num_res_blocks=1, channel_multipliers=[1, 2],
        embedding_dim=8, codebook_size=64,
    )
    tok.compile(optimizer="adam")
    tok.fit(images, epochs=1)            # images (N, 16, 16, 3) in [0, 1]
    ids = tok.encode_to_indices(images)  # (N, 8, 8)
    recon = tok.decode_from_indices(ids)
    ```
    """

    preset_description = "VQGAN"

    def __init__(
        self,
        filters=128,
        num_res_blocks=2,
        channel_multipliers=(1, 1, 2, 2, 4),
        embedding_dim=256,
        codebook_size=1024,
        conv_downsample=False,
        activation_fn="swish",
        norm_type="GN",
        commitment_cost=0.25,
        entropy_loss_ratio=0.1,
        entropy_loss_type="softmax",
        entropy_temperature=0.01,
        dead_code_threshold=0.0,
        output_dim=3,
        reconstruction_loss="l2",
        perceptual_network=None,
        perceptual_weight=0.1,
        discriminator=None,
        adversarial_loss="non_saturating",
        adversarial_weight=0.1,
        r1_gamma=10.0,
        adversarial_start_step=0,
        adaptive_adversarial_weight=False,
        adaptive_weight_max=1e4,
        image_size=None,
        **kwargs,
    ):
        # Numeric arguments: finite, in range, numpy scalars accepted.
        filters = validation.check_positive_int("filters", filters)
        num_res_blocks = validation.check_int("num_res_blocks", num_res_blocks, 0)
        validation.check_int_list("channel_multipliers", channel_multipliers)
        embedding_dim = validation.check_positive_int("embedding_dim", embedding_dim)
        codebook_size = validation.check_positive_int("codebook_size", codebook_size)
        commitment_cost = validation.check_float("commitment_cost", commitment_cost, 0.0)
        entropy_loss_ratio = validation.check_float("entropy_loss_ratio", entropy_loss_ratio, 0.0)
        entropy_temperature = validation.check_float(
            "entropy_temperature", entropy_temperature, 0.0, min_inclusive=False
        )
        dead_code_threshold = validation.check_float(
            "dead_code_threshold", dead_code_threshold, 0.0
        )
        output_dim = validation.check_positive_int("output_dim", output_dim)
        recipe = check_recipe_arguments(
            perceptual_network=perceptual_network,
            perceptual_weight=perceptual_weight,
            discriminator=discriminator,
            adversarial_loss=adversarial_loss,
            adversarial_weight=adversarial_weight,
            r1_gamma=r1_gamma,
            adversarial_start_step=adversarial_start_step,
            adaptive_adversarial_weight=adaptive_adversarial_weight,
            adaptive_weight_max=adaptive_weight_max,
        )
        if norm_type != "GN":
            raise ValueError(f"Only norm_type='GN' is supported; received norm_type={norm_type!r}.")
        check_choice("reconstruction_loss", reconstruction_loss, ("l2", "l1"))
        super().__init__(**kwargs)
        # === Layers ===
        self.encoder = CNNEncoder(
            filters,
            num_res_blocks,
            list(channel_multipliers),
            embedding_dim,
            conv_downsample=conv_downsample,
            activation_fn=activation_fn,
            dtype=self.dtype_policy,
            name="encoder",
        )
        self.quantizer = VectorQuantizer(
            codebook_size,
            commitment_cost=commitment_cost,
            entropy_loss_ratio=entropy_loss_ratio,
            entropy_loss_type=entropy_loss_type,
            entropy_temperature=entropy_temperature,
            dead_code_threshold=dead_code_threshold,
            dtype=self.dtype_policy,
            name="quantizer",
        )
        self.decoder = CNNDecoder(
            filters,
            num_res_blocks,
            list(channel_multipliers),
            output_dim=output_dim,
            activation_fn=activation_fn,
            dtype=self.dtype_policy,
            name="decoder",
        )
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.quantizer_loss_tracker = keras.metrics.Mean(name="quantizer_loss")
        self.perplexity_tracker = keras.metrics.Mean(name="perplexity")
        self.usage_tracker = keras.metrics.Mean(name="codebook_usage")
        self._init_recipe(**recipe)
        # === Config ===
        self.filters = filters
        self.num_res_blocks = num_res_blocks
        self.channel_multipliers = list(channel_multipliers)
        self.embedding_dim = embedding_dim
        self.codebook_size = codebook_size
        self.conv_downsample = conv_downsample
        self.activation_fn = activation_fn
        self.norm_type = norm_type
        self.commitment_cost = commitment_cost
        self.entropy_loss_ratio = entropy_loss_ratio
        self.entropy_loss_type = entropy_loss_type
        self.entropy_temperature = entropy_temperature
        self.dead_code_threshold = dead_code_threshold
        self.output_dim = output_dim
        self.reconstruction_loss = reconstruction_loss
        self.image_size = None if image_size is None else [int(v) for v in image_size]

    # --- MaskGIT's API -------------------------------------------------------

    def encode(self, images):
        """Encoder features (B, h, w, D) of images in [0, 1], before quantization."""
        return self.encoder(ops.cast(images, self.compute_dtype))

    def encode_to_indices(self, images):
        """Code indices (B, h, w) int32 of images (B, H, W, C) in [0, 1]."""
        return self.quantizer.get_indices(self.encode(images))

    def decode(self, quantized):
        """Decoder output (B, H, W, C) of code vectors (B, h, w, D) (no clip)."""
        return self.decoder(ops.cast(quantized, self.compute_dtype))

    def _finish_decoding(self, raw):
        """The decoder's output is the reconstruction (no clip)."""
        return raw

    def decode_from_indices(self, indices):
        """Images (B, H, W, C) (no clip) from code indices (B, h, w)."""
        return self.decode(self.quantizer.decode_ids(indices))

    def call(self, images, training=False):
        """`{"reconstruction": (B, H, W, C), "indices": (B, h, w)}`."""
        if self.image_size is None and None not in tuple(images.shape[1:]):
            self.image_size = [int(v) for v in images.shape[1:]]
        features = self.encode(images)
        quantized, indices = self.quantizer(features, training=training)
        reconstruction = self._decode_with_recipe(ops.cast(quantized, self.compute_dtype))
        return {"reconstruction": reconstruction, "indices": indices}

    # --- training ----------------------------------------------------------------

    def _reconstruction(self, real, fake):
        if self.reconstruction_loss == "l2":
            return ops.mean(ops.square(real - fake))
        return ops.mean(ops.abs(real - fake))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        real = ops.cast(x if y is None else y, "float32")
        fake = ops.cast(y_pred["reconstruction"], "float32")
        rec = self._reconstruction(real, fake)
        quant = (
            ops.sum(ops.stack([ops.cast(v, "float32") for v in self.losses]))
            if self.losses
            else 0.0
        )
        loss = rec + quant
        self.reconstruction_loss_tracker.update_state(rec)
        self.quantizer_loss_tracker.update_state(quant)
        perplexity, usage = codebook_statistics(y_pred["indices"], self.codebook_size)
        self.perplexity_tracker.update_state(perplexity)
        self.usage_tracker.update_state(usage)
        return self.add_recipe_losses(loss, real, fake, rec, training=training)

    # --- config --------------------------------------------------------------------

    def get_config(self):
        config = self._base_config()
        config.update(
            {
                "filters": self.filters,
                "num_res_blocks": self.num_res_blocks,
                "channel_multipliers": list(self.channel_multipliers),
                "embedding_dim": self.embedding_dim,
                "codebook_size": self.codebook_size,
                "conv_downsample": self.conv_downsample,
                "activation_fn": self.activation_fn,
                "norm_type": self.norm_type,
                "commitment_cost": self.commitment_cost,
                "entropy_loss_ratio": self.entropy_loss_ratio,
                "entropy_loss_type": self.entropy_loss_type,
                "entropy_temperature": self.entropy_temperature,
                "dead_code_threshold": self.dead_code_threshold,
                "output_dim": self.output_dim,
                "reconstruction_loss": self.reconstruction_loss,
                **self.recipe_config(),
                "image_size": self.image_size,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        model = cls(**cls.deserialize_recipe_config(config))
        # Build now, so nested loading (task presets, `.keras` files) finds the variables.
        size = model.image_size or [16 * model.downsampling_factor] * 2 + [model.output_dim]
        return model.build_for_image_size(size[:2], size[2])


class DeadCodeRestart(keras.callbacks.Callback):
    """Restarts the tokenizer's dead codes every `every_n_steps` training steps.

    Needs a tokenizer built with `dead_code_threshold > 0`.

    Args:
        every_n_steps: int.
        verbose: bool. Print how many codes were restarted.
    """

    def __init__(self, every_n_steps=100, verbose=False):
        super().__init__()
        self.every_n_steps = every_n_steps
        self.verbose = verbose
        self.restarted = 0
        self._step = 0

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._step % self.every_n_steps:
            return
        model = self.model
        if keras.config.backend() == "jax" and hasattr(model, "jax_state_sync"):
            model.jax_state_sync()  # The next step re-reads the variables.
        num = model.quantizer.restart_dead_codes()
        self.restarted += num
        if self.verbose and num:
            print(f"DeadCodeRestart: restarted {num} codes at step {self._step}.")
