"""`ViTVAE`: big_vision's ViT β-VAE over label maps (UViM stage 1).

big_vision `models/proj/givt/vit.py` `Model`. Dimension letters: B batch,
H/W label-map size, ph/pw patch size, h/w patch grid, P = h·w patches,
E width, L code_len tokens, D codeword dim, C total classes.

- Input `x (B, H, W, channels)`: integer class indices per channel. For
  each `inout_specs` entry `name: (channel, num_classes)`, in order, channel
  `channel` is one-hot encoded with `num_classes` classes; the one-hots are
  concatenated (C = Σ num_classes).
- Encoder: patch conv `embedding` (kernel = stride = patch, with bias),
  learned `pos_embedding_encoder`, ViT `encoder` (pre-LN, biases, tanh-gelu,
  final LayerNorm) -> (B, P, E).
- Bottleneck: `bottleneck_resize=True` resizes the (h, w) grid to
  `√L × √L` with JAX's antialiased linear resize; False multiplies by the
  learned `bottleneck_downsample (P, L)`. Then `encoder_head` Dense
  E -> 2·D split `[mu | logvar]`.
- Decoder: `decoder_stem` Dense D -> E, the inverse resize (or
  `bottleneck_upsample (L, P)`), `pos_embedding_decoder`, ViT `decoder`,
  `decoder_head` Dense E -> ph·pw·C, pixels `b (h w) (ph pw c) ->
  b (h ph) (w pw) c`, split per `inout_specs` into per-pixel logits.

Training (`fit(x)`): z = mu + exp(logvar/2)·ε, loss = reconstruction +
β·KL with
- reconstruction `"xent"`: per output, the softmax cross-entropy against
  the input classes averaged over (B, H, W), summed over outputs; `"l2"`:
  the squared error between the one-hot targets and the softmax
  probabilities, summed over classes, averaged over (B, H, W), summed over
  outputs;
- KL(q(z|x) || N(0, I)) = ½ Σ (mu² + exp(logvar) − 1 − logvar) summed over
  tokens and channels, averaged over the batch (the convention of
  `keras_givt`'s `BetaVAE`).
"""

import math

import keras
from keras import ops

from keras_givt.layers.transformer_block import FlatDense
from keras_givt.layers.vit_encoder import PatchViTEncoder
from keras_givt.layers.vit_encoder import ViTEncoder
from keras_givt.models.optimizers import PerVariableAdam
from keras_givt.models.uvim.resize import resize_grid
from keras_givt.utils import validation


def _normalize_specs(inout_specs):
    if not isinstance(inout_specs, dict) or not inout_specs:
        raise ValueError(
            "`inout_specs` must be a non-empty dict {name: (channel, num_classes)}; "
            f"received {inout_specs!r}."
        )
    out = {}
    for name, spec in inout_specs.items():
        if (
            not isinstance(spec, (list, tuple))
            or len(spec) != 2
            or int(spec[0]) < 0
            or int(spec[1]) < 1
        ):
            raise ValueError(
                f"`inout_specs[{name!r}]` must be (channel >= 0, num_classes >= 1); "
                f"received {spec!r}."
            )
        out[str(name)] = [int(spec[0]), int(spec[1])]
    return out


@keras.saving.register_keras_serializable(package="keras_givt")
class ViTVAE(keras.Model):
    """big_vision's ViT β-VAE over categorical label maps (UViM stage 1).

    Args:
        inout_specs: dict `{name: (input channel, num_classes)}`, in order.
        input_size: (H, W) label-map size.
        patch_size: (ph, pw).
        code_len: int. L latent tokens (a square when `bottleneck_resize`).
        codeword_dim: int. D.
        width: int. E.
        enc_depth, dec_depth: int. Encoder / decoder ViT blocks.
        mlp_dim: int. MLP width of the blocks.
        num_heads: int.
        bottleneck_resize: bool. Resize the patch grid (True) or learned
            (P, L) / (L, P) matrices (False).
        head_zeroinit: bool. Zero-init `decoder_head`.
        dropout: float. Dropout in the ViTs.
        beta: float. KL weight of the training loss.
        reconstruction_loss: "xent" or "l2".
        seed: int or None. Seed of the latent sampling.

    Example:
    ```python
    vae = ViTVAE({"semantics": (0, 11), "instances": (1, 4)}, input_size=(32, 32),
                 patch_size=(8, 8), code_len=4, codeword_dim=8, width=64,
                 enc_depth=2, dec_depth=2, mlp_dim=128, num_heads=4)
    mu, logvar = vae.encode(label_maps)          # (B, 4, 8) each
    logits = vae.decode(mu)                      # {"semantics": (B, 32, 32, 11), ...}
    maps = vae.decode_to_maps(mu)                # (B, 32, 32, 2) int
    ```
    """

    def __init__(
        self,
        inout_specs,
        input_size=(512, 512),
        patch_size=(16, 16),
        code_len=256,
        codeword_dim=32,
        width=768,
        enc_depth=6,
        dec_depth=12,
        mlp_dim=3072,
        num_heads=12,
        bottleneck_resize=True,
        head_zeroinit=True,
        dropout=0.0,
        beta=1e-4,
        reconstruction_loss="xent",
        seed=None,
        **kwargs,
    ):
        # Numeric arguments: finite, in range, numpy scalars accepted.
        validation.check_int_pair("input_size", input_size)
        validation.check_int_pair("patch_size", patch_size)
        code_len = validation.check_positive_int("code_len", code_len)
        codeword_dim = validation.check_positive_int("codeword_dim", codeword_dim)
        width = validation.check_positive_int("width", width)
        enc_depth = validation.check_int("enc_depth", enc_depth, 0)
        dec_depth = validation.check_int("dec_depth", dec_depth, 0)
        mlp_dim = validation.check_positive_int("mlp_dim", mlp_dim)
        num_heads = validation.check_positive_int("num_heads", num_heads)
        dropout = validation.check_rate("dropout", dropout)
        beta = validation.check_float("beta", beta, 0.0)
        seed = validation.check_int("seed", seed, allow_none=True)
        super().__init__(**kwargs)
        self.inout_specs = _normalize_specs(inout_specs)
        self.input_size = [int(v) for v in input_size]
        self.patch_size = [int(v) for v in patch_size]
        h, w = (self.input_size[0] // self.patch_size[0], self.input_size[1] // self.patch_size[1])
        if (
            h * self.patch_size[0] != self.input_size[0]
            or w * self.patch_size[1] != self.input_size[1]
        ):
            raise ValueError(
                f"`input_size` {input_size} must be divisible by `patch_size` {patch_size}."
            )
        side = int(round(math.sqrt(code_len)))
        if bottleneck_resize and side * side != code_len:
            raise ValueError(
                f"`bottleneck_resize=True` needs a square `code_len`; received code_len={code_len}."
            )
        if reconstruction_loss not in ("xent", "l2"):
            raise ValueError(
                f"`reconstruction_loss` must be 'xent' or 'l2'; received {reconstruction_loss!r}."
            )
        self.grid = (h, w)
        self.num_patches = h * w
        self.code_len = int(code_len)
        self.codeword_dim = int(codeword_dim)
        self.width = int(width)
        self.enc_depth = int(enc_depth)
        self.dec_depth = int(dec_depth)
        self.mlp_dim = int(mlp_dim)
        self.num_heads = int(num_heads)
        self.bottleneck_resize = bool(bottleneck_resize)
        self.head_zeroinit = bool(head_zeroinit)
        self.dropout = float(dropout)
        self.beta = float(beta)
        self.reconstruction_loss = reconstruction_loss
        self.seed = seed
        self.num_classes = sum(spec[1] for spec in self.inout_specs.values())
        dtype = self.dtype_policy

        # === Layers ===
        self.encoder = PatchViTEncoder(
            self.patch_size,
            self.num_patches,
            self.enc_depth,
            self.width,
            self.num_heads,
            self.mlp_dim,
            self.dropout,
            dtype=dtype,
            name="encoder",
        )
        self.encoder_head = FlatDense(2 * self.codeword_dim, dtype=dtype, name="encoder_head")
        self.decoder_stem = FlatDense(self.width, dtype=dtype, name="decoder_stem")
        self.decoder = ViTEncoder(
            self.dec_depth,
            self.width,
            self.num_heads,
            self.mlp_dim,
            self.dropout,
            dtype=dtype,
            name="decoder",
        )
        self.decoder_head = FlatDense(
            self.patch_size[0] * self.patch_size[1] * self.num_classes,
            kernel_initializer="zeros" if self.head_zeroinit else "glorot_uniform",
            dtype=dtype,
            name="decoder_head",
        )
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")
        self._build_all()

    def _build_all(self):
        P, E, L = self.num_patches, self.width, self.code_len
        self.encoder.build((None, self.input_size[0], self.input_size[1], self.num_classes))
        self.encoder_head.build((None, L, E))
        self.decoder_stem.build((None, L, self.codeword_dim))
        self.decoder.build((None, P, E))
        self.decoder_head.build((None, P, E))
        init = keras.initializers.RandomNormal(stddev=E**-0.5)
        self.pos_embedding_decoder = self.add_weight(
            name="pos_embedding_decoder", shape=(P, E), initializer=init
        )
        if not self.bottleneck_resize:
            # flax's default Dense init (lecun_normal) on the patch axis.
            self.bottleneck_downsample = self.add_weight(
                name="bottleneck_downsample",
                shape=(P, L),
                initializer=keras.initializers.LecunNormal(),
            )
            self.bottleneck_upsample = self.add_weight(
                name="bottleneck_upsample",
                shape=(L, P),
                initializer=keras.initializers.LecunNormal(),
            )
        self.built = True

    # --- Inputs ---------------------------------------------------------

    def one_hot(self, x):
        """x (B, H, W, channels) class indices -> (B, H, W, C) concatenated one-hots."""
        x = ops.convert_to_tensor(x)
        parts = [
            ops.one_hot(ops.cast(x[..., channel], "int32"), n, dtype=self.compute_dtype)
            for channel, n in self.inout_specs.values()
        ]
        return ops.concatenate(parts, axis=-1)

    # --- The big_vision API ---------------------------------------------

    def encode(self, x, training=None):
        """x (B, H, W, channels) class indices -> mu, logvar, each (B, L, D)."""
        h = self.encoder(self.one_hot(x), training=training)  # (B, P, E)
        if self.bottleneck_resize:
            side = int(round(math.sqrt(self.code_len)))
            grid = ops.reshape(h, (-1, self.grid[0], self.grid[1], self.width))
            h = ops.reshape(resize_grid(grid, (side, side)), (-1, self.code_len, self.width))
        else:
            down = ops.cast(self.bottleneck_downsample, h.dtype)
            h = ops.einsum("bpe,pl->ble", h, down)  # (B, L, E)
        h = self.encoder_head(h)  # (B, L, 2D)
        d = self.codeword_dim
        return h[..., :d], h[..., d:]

    def sample(self, mu, logvar, seed=None):
        """z = mu + exp(logvar / 2)·ε."""
        seed = self.seed_generator if seed is None else seed
        eps = keras.random.normal(ops.shape(mu), dtype=mu.dtype, seed=seed)
        return mu + ops.exp(0.5 * logvar) * eps

    def decode_raw(self, z, training=None):
        """z (B, L, D) -> concatenated per-pixel logits (B, H, W, C)."""
        h = self.decoder_stem(ops.cast(z, self.compute_dtype))  # (B, L, E)
        if self.bottleneck_resize:
            side = int(round(math.sqrt(self.code_len)))
            grid = ops.reshape(h, (-1, side, side, self.width))
            h = ops.reshape(resize_grid(grid, self.grid), (-1, self.num_patches, self.width))
        else:
            up = ops.cast(self.bottleneck_upsample, h.dtype)
            h = ops.einsum("ble,lp->bpe", h, up)  # (B, P, E)
        h = h + ops.cast(self.pos_embedding_decoder, h.dtype)
        h = self.decoder(h, training=training)
        h = self.decoder_head(h)  # (B, P, ph·pw·C)
        (gh, gw), (ph, pw) = self.grid, self.patch_size
        h = ops.reshape(h, (-1, gh, gw, ph, pw, self.num_classes))
        h = ops.transpose(h, (0, 1, 3, 2, 4, 5))
        return ops.reshape(h, (-1, gh * ph, gw * pw, self.num_classes))

    def decode(self, z, training=None):
        """z (B, L, D) -> `{name: logits (B, H, W, num_classes)}` in `inout_specs` order."""
        logits = self.decode_raw(z, training=training)
        out, start = {}, 0
        for name, (_, n) in self.inout_specs.items():
            out[name] = logits[..., start : start + n]
            start += n
        return out

    def decode_to_maps(self, z):
        """z (B, L, D) -> argmax class maps (B, H, W, channels) int32.

        Channel order follows the `inout_specs` channels (channel c holds
        the output whose spec names input channel c).
        """
        logits = self.decode(z)
        by_channel = sorted(self.inout_specs.items(), key=lambda kv: kv[1][0])
        maps = [ops.cast(ops.argmax(logits[name], axis=-1), "int32") for name, _ in by_channel]
        return ops.stack(maps, axis=-1)

    # --- Training ---------------------------------------------------------

    def call(self, x, training=False):
        mu, logvar = self.encode(x, training=training)
        z = self.sample(mu, logvar) if training else mu
        mu32, logvar32 = ops.cast(mu, "float32"), ops.cast(logvar, "float32")
        kl = 0.5 * ops.sum(ops.square(mu32) + ops.exp(logvar32) - 1.0 - logvar32, axis=(1, 2))
        return {"logits": self.decode(z, training=training), "kl": ops.mean(kl)}

    def reconstruction(self, x, logits):
        """The reconstruction term for class maps `x` and `decode` logits."""
        x = ops.convert_to_tensor(x)
        total = 0.0
        for name, (channel, n) in self.inout_specs.items():
            target = ops.cast(x[..., channel], "int32")
            lg = ops.cast(logits[name], "float32")
            if self.reconstruction_loss == "xent":
                loss = keras.losses.sparse_categorical_crossentropy(target, lg, from_logits=True)
            else:
                probs = ops.softmax(lg, axis=-1)
                loss = ops.sum(ops.square(ops.one_hot(target, n) - probs), axis=-1)
            total = total + ops.mean(loss)
        return total

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        recon = self.reconstruction(x, y_pred["logits"])
        kl = y_pred["kl"]
        self.reconstruction_loss_tracker.update_state(recon)
        self.kl_loss_tracker.update_state(kl)
        return recon + self.beta * kl

    def compile(self, optimizer="auto", **kwargs):
        """Adam(1e-3, global clipnorm 1) by default; the loss is built in."""
        if optimizer == "auto":
            optimizer = PerVariableAdam(1e-3, global_clipnorm=1.0)
        kwargs.pop("loss", None)
        super().compile(optimizer=optimizer, **kwargs)

    @property
    def metrics(self):
        return super().metrics + [self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "inout_specs": self.inout_specs,
                "input_size": self.input_size,
                "patch_size": self.patch_size,
                "code_len": self.code_len,
                "codeword_dim": self.codeword_dim,
                "width": self.width,
                "enc_depth": self.enc_depth,
                "dec_depth": self.dec_depth,
                "mlp_dim": self.mlp_dim,
                "num_heads": self.num_heads,
                "bottleneck_resize": self.bottleneck_resize,
                "head_zeroinit": self.head_zeroinit,
                "dropout": self.dropout,
                "beta": self.beta,
                "reconstruction_loss": self.reconstruction_loss,
                "seed": self.seed,
            }
        )
        return config
