"""`BetaVAE`: big_vision's CNN β-VAE (`big_vision.models.proj.givt.cnn.Model`).

Dimension letters: B batch, H/W image height/width, h/w latent grid,
D codeword dim, L = (h/ph)·(w/pw) latent tokens, P = D·ph·pw token dim.

Numerics match big_vision's `cnn.Model` number for number:
- `malib_ckpt=True` (the published ImageNet VAE): input `(x + 1) / 2`,
  logvar clipped to [−30, 20], decoder output `2·x − 1`.
- The encoder output (2·D channels) is split `[mu | logvar]`; both are
  turned into tokens with `b (h ph) (w pw) c -> b (h w) (c ph pw)`.
- `decode` inverts the pixel shuffle (the pre-shuffle latent grid is assumed
  square, as in big_vision) and clips the output to [−1, 1].

Training (`fit`): `call(images, training=True)` samples
z = mu + exp(logvar/2)·ε and decodes it; the loss (`compute_loss`) is

    reconstruction + beta · KL + perceptual + adversarial

with the last two from the recipe shared with `VQGANTokenizer`
(`keras_givt.models.autoencoder_losses.AutoencoderLosses`; both off by
default): perceptual_weight · P(x, x̂) through a frozen feature network, and
with a `discriminator` the generator term adversarial_weight · g_loss(D(x̂))
(optionally VQGAN's adaptive weight) plus the discriminator's own loss with
R1, from `adversarial_start_step` on; one optimizer step of `fit` is one
simultaneous GAN step. The perceptual network and the discriminator see the
images mapped from [−1, 1] to [0, 1].

- reconstruction `"l2"`: mean over batch, pixels and channels of
  (x − x̂)²; `"xent"`: sigmoid cross-entropy between (x+1)/2 and the
  decoder's output mapped to [0, 1] (clipped to [1e-6, 1 − 1e-6]), same mean.
- KL(q(z|x) || N(0, I)) = ½ Σ (mu² + exp(logvar) − 1 − logvar), **summed
  over tokens and channels, averaged over the batch** (our choice: big_vision
  has no open-source CNN-VAE trainer to copy; this is the usual β-VAE
  convention).
`call` registers the KL with `add_loss` (so it works in `fit` on every
backend); `compute_loss` reports `reconstruction_loss` and `kl_loss` as
separate metrics. `sample_weight` is ignored.
"""

import math

import keras
from keras import ops

from keras_givt.models.autoencoder_losses import AutoencoderLosses
from keras_givt.models.autoencoder_losses import check_recipe_arguments
from keras_givt.models.image_autoencoder import ImageAutoencoder
from keras_givt.models.vae.vae_layers import CNNDecoder
from keras_givt.models.vae.vae_layers import CNNEncoder
from keras_givt.models.vae.vae_layers import pixel_shuffle
from keras_givt.models.vae.vae_layers import pixel_unshuffle
from keras_givt.utils import validation


@keras.saving.register_keras_serializable(package="keras_givt")
class BetaVAE(AutoencoderLosses, ImageAutoencoder, keras.Model):
    """big_vision CNN β-VAE (MaskGIT VQGAN-style encoder/decoder).

    Args:
        codeword_dim: int. D, latent channels per grid position.
        code_len: int. Number of latent tokens L for the training image size
            (kept for big_vision parity; shapes are inferred from the inputs).
        filters: int. Base channel count (multiple of 32).
        num_res_blocks: int. ResBlocks per level.
        channel_multipliers: list of int. Channel multiplier per level.
        conv_downsample: bool. Strided conv instead of average pooling.
        activation_fn: str. "swish" (big_vision default).
        norm_type: str. Only "GN".
        malib_ckpt: bool. The published checkpoints' [0, 1] input/output
            convention and logvar clip.
        pixel_shuffle_patch_size: (ph, pw). Space-to-depth of the latents.
        output_dim: int. Image channels produced by the decoder.
        beta: float. Weight of the KL term in the training loss.
        reconstruction_loss: "l2" or "xent".
        seed: int or None. Seed of the model's `SeedGenerator`.
        image_size: (H, W, C) the variables are built for (recorded).
        perceptual_network: None, a shipped network's name
            (`"fashion_mnist_features"`) or a frozen `keras.Model` images in
            [0, 1] → features.
        perceptual_weight: float. Weight of the perceptual term.
        discriminator: None or a `keras.Model` images in [0, 1] → (B,)
            logits, e.g. `keras_givt.models.vqvae.StyleGANDiscriminator`.
        adversarial_loss: "non_saturating" or "hinge".
        adversarial_weight: float. Weight of the generator's term.
        r1_gamma: float. R1 penalty weight of the discriminator (0 = off).
        adversarial_start_step: int. Training steps before the adversarial
            terms start (0: from the first).
        adaptive_adversarial_weight: bool. Scale the generator's term by
            VQGAN's adaptive weight (see `AutoencoderLosses`).
        adaptive_weight_max: float. Upper clip of the adaptive weight.

    Example:
    ```python
    vae = keras_givt.BetaVAE(
        codeword_dim=16, code_len=16, filters=32, num_res_blocks=1,
        channel_multipliers=[1, 2, 2, 2], beta=2e-4,
        perceptual_network="fashion_mnist_features", perceptual_weight=0.1,
        discriminator=keras_givt.models.vqvae.StyleGANDiscriminator(filters=32),
        adversarial_weight=0.1, adversarial_start_step=500,
    )
    vae.build_for_image_size(32)
    vae.compile(optimizer="adam")
    vae.fit(images, epochs=1)  # images (N, 32, 32, 3) in [-1, 1]
    mu, logvar = vae.encode(images)  # (N, 16, 16) each
    ```
    """

    preset_description = "VAE"
    recipe_image_range = (-1.0, 1.0)

    def __init__(
        self,
        codeword_dim=32,
        code_len=256,
        filters=128,
        num_res_blocks=2,
        channel_multipliers=(1, 1, 2, 2, 4),
        conv_downsample=False,
        activation_fn="swish",
        norm_type="GN",
        malib_ckpt=False,
        pixel_shuffle_patch_size=(1, 1),
        output_dim=3,
        beta=1e-4,
        reconstruction_loss="l2",
        seed=None,
        image_size=None,
        perceptual_network=None,
        perceptual_weight=0.1,
        discriminator=None,
        adversarial_loss="non_saturating",
        adversarial_weight=0.1,
        r1_gamma=10.0,
        adversarial_start_step=0,
        adaptive_adversarial_weight=False,
        adaptive_weight_max=1e4,
        **kwargs,
    ):
        # Numeric arguments: finite, in range, numpy scalars accepted.
        codeword_dim = validation.check_positive_int("codeword_dim", codeword_dim)
        code_len = validation.check_positive_int("code_len", code_len)
        filters = validation.check_positive_int("filters", filters)
        num_res_blocks = validation.check_int("num_res_blocks", num_res_blocks, 0)
        validation.check_int_list("channel_multipliers", channel_multipliers)
        validation.check_int_pair("pixel_shuffle_patch_size", pixel_shuffle_patch_size)
        output_dim = validation.check_positive_int("output_dim", output_dim)
        beta = validation.check_float("beta", beta, 0.0)
        seed = validation.check_int("seed", seed, allow_none=True)
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
            raise ValueError(f"Only norm_type='GN' is supported; received {norm_type!r}.")
        if reconstruction_loss not in ("l2", "xent"):
            raise ValueError(
                f"reconstruction_loss must be 'l2' or 'xent'; received {reconstruction_loss!r}."
            )
        super().__init__(**kwargs)
        self.codeword_dim = codeword_dim
        self.code_len = code_len
        self.filters = filters
        self.num_res_blocks = num_res_blocks
        self.channel_multipliers = list(channel_multipliers)
        self.conv_downsample = conv_downsample
        self.activation_fn = activation_fn
        self.norm_type = norm_type
        self.malib_ckpt = malib_ckpt
        self.pixel_shuffle_patch_size = tuple(int(p) for p in pixel_shuffle_patch_size)
        self.output_dim = output_dim
        self.beta = beta
        self.reconstruction_loss = reconstruction_loss
        self.seed = seed
        # (H, W, C) the variables were built for; recorded on first use so
        # that deserialization can rebuild before loading weights.
        self.image_size = None if image_size is None else [int(v) for v in image_size]

        self.encoder = CNNEncoder(
            filters,
            num_res_blocks,
            self.channel_multipliers,
            embedding_dim=2 * codeword_dim,
            conv_downsample=conv_downsample,
            activation_fn=activation_fn,
            dtype=self.dtype_policy,
            name="cnn_encoder",
        )
        self.decoder = CNNDecoder(
            filters,
            num_res_blocks,
            self.channel_multipliers,
            output_dim=output_dim,
            activation_fn=activation_fn,
            dtype=self.dtype_policy,
            name="cnn_decoder",
        )
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")
        self._init_recipe(**recipe)

    @property
    def token_dim(self):
        ph, pw = self.pixel_shuffle_patch_size
        return self.codeword_dim * ph * pw

    def default_image_size(self):
        """The square image side S whose latent grid holds `code_len` tokens.

        The pre-shuffle grid is square with side sqrt(L·ph·pw), and S is that
        side times `downsampling_factor` (256 for the published ImageNet VAEs).
        """
        ph, pw = self.pixel_shuffle_patch_size
        side = int(round(math.sqrt(self.code_len * ph * pw)))
        return side * self.downsampling_factor

    # --- the big_vision API ------------------------------------------------

    def encode_raw(self, images):
        """Encoder output (B, h, w, 2·D) before split/clip/shuffle."""
        x = ops.cast(images, self.compute_dtype)
        if self.malib_ckpt:
            x = (x + 1.0) / 2.0
        return self.encoder(x)

    def encode(self, images):
        """images (B, H, W, C) in [−1, 1] -> mu, logvar, each (B, L, P)."""
        x = self.encode_raw(images)
        d = self.codeword_dim
        mu, logvar = x[..., :d], x[..., d:]
        if self.malib_ckpt:
            logvar = ops.clip(logvar, -30.0, 20.0)
        ps = self.pixel_shuffle_patch_size
        return pixel_shuffle(mu, ps), pixel_shuffle(logvar, ps)

    def sample(self, mu, logvar, seed=None):
        """z = mu + exp(logvar / 2)·ε; ε from `seed` or the model's SeedGenerator."""
        seed = self.seed_generator if seed is None else seed
        eps = keras.random.normal(ops.shape(mu), dtype=mu.dtype, seed=seed)
        return mu + ops.exp(0.5 * logvar) * eps

    def latent_grid_shape(self, num_tokens):
        """(h, w) token grid for L tokens (the pre-shuffle grid is square)."""
        ph, pw = self.pixel_shuffle_patch_size
        side = int(round(math.sqrt(num_tokens * ph * pw)))
        if side * side != num_tokens * ph * pw or side % ph or side % pw:
            raise ValueError(
                f"Cannot decode {num_tokens} tokens with pixel_shuffle_patch_size "
                f"{(ph, pw)}: the latent grid must be square."
            )
        return side // ph, side // pw

    def _latent_grid(self, z):
        """z (B, L, P) -> the decoder's input (B, h, w, D)."""
        z = ops.cast(z, self.compute_dtype)
        grid = self.latent_grid_shape(z.shape[1])
        return pixel_unshuffle(z, self.pixel_shuffle_patch_size, grid)

    def decode_raw(self, z):
        """z (B, L, P) -> decoder output (B, H, W, output_dim), no rescale/clip."""
        return self.decoder(self._latent_grid(z))

    def _finish_decoding(self, x):
        """Decoder output -> images in [−1, 1] (rescaled for `malib_ckpt`, clipped)."""
        if self.malib_ckpt:
            x = 2.0 * x - 1.0
        return ops.clip(x, -1.0, 1.0)

    def decode(self, z):
        """z (B, L, P) -> images (B, H, W, output_dim) in [−1, 1]."""
        return self._finish_decoding(self.decode_raw(z))

    def kl(self, mu, logvar):
        """KL(N(mu, exp(logvar)) || N(0, I)) per example: (B,) (sum over L, P)."""
        mu = ops.cast(mu, "float32")
        logvar = ops.cast(logvar, "float32")
        per = 0.5 * (ops.square(mu) + ops.exp(logvar) - 1.0 - logvar)
        return ops.sum(ops.reshape(per, (ops.shape(per)[0], -1)), axis=-1)

    def call(self, images, training=None):
        """Reconstruction (B, H, W, C): decode(mu), or decode(sample) when training."""
        if self.image_size is None and None not in tuple(images.shape[1:]):
            self.image_size = [int(v) for v in images.shape[1:]]
        mu, logvar = self.encode(images)
        z = self.sample(mu, logvar) if training else mu
        self.add_loss(ops.mean(self.kl(mu, logvar)))
        return self._finish_decoding(self._decode_with_recipe(self._latent_grid(z)))

    # --- training ------------------------------------------------------------

    def _reconstruction(self, target, pred):
        target = ops.cast(target, "float32")
        pred = ops.cast(pred, "float32")
        if self.reconstruction_loss == "l2":
            return ops.mean(ops.square(target - pred))
        p = ops.clip((pred + 1.0) / 2.0, 1e-6, 1.0 - 1e-6)
        t = (target + 1.0) / 2.0
        return -ops.mean(t * ops.log(p) + (1.0 - t) * ops.log(1.0 - p))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        target = ops.cast(x if y is None else y, "float32")
        pred = ops.cast(y_pred, "float32")
        rec = self._reconstruction(target, pred)
        # `call` adds the batch-mean KL through `add_loss`.
        kl = ops.sum([ops.cast(l, "float32") for l in self.losses]) if self.losses else 0.0
        self.reconstruction_loss_tracker.update_state(rec)
        self.kl_loss_tracker.update_state(kl)
        return self.add_recipe_losses(rec + self.beta * kl, target, pred, rec, training=training)

    # --- config ------------------------------------------------------------

    def get_config(self):
        config = self._base_config()
        config.update(
            {
                "codeword_dim": self.codeword_dim,
                "code_len": self.code_len,
                "filters": self.filters,
                "num_res_blocks": self.num_res_blocks,
                "channel_multipliers": list(self.channel_multipliers),
                "conv_downsample": self.conv_downsample,
                "activation_fn": self.activation_fn,
                "norm_type": self.norm_type,
                "malib_ckpt": self.malib_ckpt,
                "pixel_shuffle_patch_size": list(self.pixel_shuffle_patch_size),
                "output_dim": self.output_dim,
                "beta": self.beta,
                "reconstruction_loss": self.reconstruction_loss,
                "seed": self.seed,
                "image_size": self.image_size,
                **self.recipe_config(),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        # Build the variables now, so nested loading (task presets, `.keras`
        # files) finds them.
        vae = cls(**cls.deserialize_recipe_config(config))
        if vae.image_size is not None:
            height, width, channels = vae.image_size
            return vae.build_for_image_size((height, width), channels)
        return vae.build_for_image_size(vae.default_image_size())
