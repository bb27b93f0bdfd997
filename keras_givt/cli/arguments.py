"""argparse value types and the flag groups shared by the `keras-givt` command families.

Each value type raises `argparse.ArgumentTypeError` with the expected kind and
the received text, so a bad value is a one-line usage error. `add_data_args`
and `add_train_args` add the data and training flags of every image-training
command (GIVT and VQ families); `add_data_dir_arg`, `add_cnn_autoencoder_args`,
`add_transformer_args` and `add_fd_cnn_args` the flag groups that several
commands share (each in its own place in their `--help`);
`add_autoencoder_loss_args` the perceptual + adversarial recipe of `train-vae`
and `train-vq`. Only the standard library: this module is imported to build
the parser, before Keras (`autoencoder_loss_kwargs`, run after the backend is
chosen, imports the discriminator in its body).
"""

import argparse


def received(text):
    """The "received '...'" tail of a usage error."""
    return f"received {text!r}"


def int_at_least(minimum):
    """An argparse `type`: an integer >= `minimum`."""
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}; {received(text)}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}; {received(text)}")
        return value

    parse.__name__ = f"int>={minimum}"
    return parse


positive_int = int_at_least(1)
nonneg_int = int_at_least(0)


def finite_float(text):
    """A finite float."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; {received(text)}")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number; {received(text)}")
    return value


def nonneg_float(text):
    """A finite float >= 0."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0; {received(text)}")
    return value


def positive_float(text):
    """A finite float > 0."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0; {received(text)}")
    return value


def probability(text):
    """A float in [0, 1]."""
    value = finite_float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1]; {received(text)}")
    return value


def dropout_rate(text):
    """A float in [0, 1)."""
    value = finite_float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a rate in [0, 1); {received(text)}")
    return value


def int_list(text, minimum=None):
    """Comma-separated integers (each >= `minimum` when given) as a list."""
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers; {received(text)}")
    if not values or (minimum is not None and min(values) < minimum):
        what = "integers" if minimum is None else f"integers >= {minimum}"
        raise argparse.ArgumentTypeError(f"expected comma-separated {what}; {received(text)}")
    return values


def positive_int_list(text):
    """Comma-separated integers >= 1."""
    return int_list(text, minimum=1)


def nonneg_int_list(text):
    """Comma-separated integers >= 0."""
    return int_list(text, minimum=0)


def add_data_args(p, default_data=None):
    """`--data`, `--data-dir`, `--image-size`, `--channels`, `--resize-mode`, `--max-examples`.

    Args:
        p: the subparser.
        default_data: the default of `--data` (None: required).
    """
    p.add_argument(
        "--data",
        default=default_data,
        required=default_data is None,
        help="'fashion_mnist', 'mnist' or a folder of images (one subfolder per class).",
    )
    add_data_dir_arg(p)
    p.add_argument(
        "--image-size", type=positive_int, default=32, help="Image height and width in pixels."
    )
    p.add_argument(
        "--channels",
        type=int,
        choices=(1, 3),
        default=3,
        help="1 (gray) or 3 (RGB; gray is tiled).",
    )
    p.add_argument(
        "--resize-mode",
        choices=("pad", "resize"),
        default=None,
        help="'pad' (default for MNIST-like data: 28 -> 32 with background -1) or 'resize' "
        "(default for image folders).",
    )
    p.add_argument(
        "--max-examples",
        type=positive_int,
        default=None,
        help="Use only the first N examples (default: all).",
    )


def add_train_args(p, default_lr):
    """`--out`, batch/epochs/steps, learning-rate schedule, checkpoints, `--resume`, `--seed`.

    Args:
        p: the subparser.
        default_lr: the default of `--learning-rate`.
    """
    p.add_argument("--out", required=True, help="Output folder (checkpoints, JSON, the model).")
    p.add_argument(
        "--batch-size", type=positive_int, default=64, help="Examples per optimizer step."
    )
    p.add_argument(
        "--epochs", type=positive_int, default=1, help="Epochs (when --steps is not given)."
    )
    p.add_argument(
        "--steps-per-epoch",
        type=positive_int,
        default=None,
        help="Optimizer steps per epoch (default: one pass over the data).",
    )
    p.add_argument(
        "--steps",
        type=positive_int,
        default=None,
        help="Total optimizer steps (default: epochs x steps-per-epoch). With --resume, "
        "training continues up to this total.",
    )
    p.add_argument(
        "--learning-rate", type=positive_float, default=default_lr, help="Adam learning rate."
    )
    p.add_argument(
        "--lr-schedule",
        choices=("constant", "cosine"),
        default="constant",
        help="Learning-rate schedule (cosine: decay to 0 over the run, after --warmup-steps).",
    )
    p.add_argument(
        "--warmup-steps",
        type=nonneg_int,
        default=0,
        help="Linear warm-up steps of the cosine schedule.",
    )
    p.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=None,
        help="Checkpoint every N steps (default: every epoch). Also at the end and on Ctrl-C.",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="Continue from <out>/checkpoint (weights, optimizer, step, data position, history).",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="Delete <out>/checkpoint and start afresh."
    )
    p.add_argument(
        "--seed", type=nonneg_int, default=0, help="Random seed (weights, data order, noise)."
    )
    p.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="Progress output: 0 silent, 1 progress bar, 2 one line per epoch.",
    )


def add_data_dir_arg(p):
    """`--data-dir`: the folder of the MNIST/Fashion-MNIST IDX files.

    Args:
        p: the subparser.
    """
    p.add_argument(
        "--data-dir",
        default=None,
        help="Folder of the MNIST/Fashion-MNIST IDX files (default: the installed data sets).",
    )


def add_cnn_autoencoder_args(p, filters_help, default_channel_multipliers):
    """`--filters`, `--num-res-blocks`, `--channel-multipliers`: the CNN of a VAE or tokenizer.

    Args:
        p: the subparser.
        filters_help: the help of `--filters` (what constrains it).
        default_channel_multipliers: the default of `--channel-multipliers`.
    """
    p.add_argument("--filters", type=positive_int, default=32, help=filters_help)
    p.add_argument(
        "--num-res-blocks",
        type=positive_int,
        default=1,
        help="Residual blocks per resolution.",
    )
    p.add_argument(
        "--channel-multipliers",
        type=positive_int_list,
        default=default_channel_multipliers,
        help="Width multiplier per resolution (comma-separated); each one after the first "
        "halves the size.",
    )


def add_transformer_args(p, width_flag, mlp_flag, mlp_help):
    """The width, `--num-layers`, `--num-heads` and MLP width of a transformer.

    Args:
        p: the subparser.
        width_flag: the name of the width flag (`--emb-dim`, `--hidden-size`).
        mlp_flag: the name of the MLP width flag (`--mlp-dim`, `--intermediate-size`).
        mlp_help: the help of the MLP width flag.
    """
    p.add_argument(width_flag, type=positive_int, default=128, help="Transformer width.")
    p.add_argument("--num-layers", type=positive_int, default=4, help="Transformer blocks.")
    p.add_argument(
        "--num-heads",
        type=positive_int,
        default=4,
        help=f"Attention heads (must divide {width_flag}).",
    )
    p.add_argument(mlp_flag, type=positive_int, default=512, help=mlp_help)


def add_fd_cnn_args(p, fd_dataset_help):
    """`--fd-dataset` and `--fd-input-mode`: the FD-CNN reference of an evaluation.

    Args:
        p: the subparser.
        fd_dataset_help: the help of `--fd-dataset` (where its default comes from).
    """
    p.add_argument(
        "--fd-dataset",
        choices=("fashion_mnist", "mnist", "none"),
        default=None,
        help=fd_dataset_help,
    )
    p.add_argument(
        "--fd-input-mode",
        choices=("crop", "resize"),
        default="crop",
        help="How samples are brought to 28x28 for the FD-CNN classifier.",
    )


# The shipped perceptual networks (keras_givt.models.perceptual_network.PERCEPTUAL_NETWORKS;
# repeated here because this module imports no Keras).
PERCEPTUAL_NETWORKS = ("fashion_mnist_features",)
# The arguments of `add_autoencoder_loss_args`: model configuration (a resumed run must match).
AUTOENCODER_LOSS_KEYS = (
    "perceptual_weight",
    "perceptual_network",
    "adversarial_weight",
    "adversarial_loss",
    "adversarial_start_step",
    "adaptive_adversarial_weight",
    "r1_gamma",
    "discriminator_filters",
    "discriminator_channel_multipliers",
)
# The defaults of the discriminator flags that need --adversarial-weight > 0 (None on the
# parser, so that giving one without the discriminator is an error).
ADVERSARIAL_DEFAULTS = dict(
    adversarial_loss="non_saturating",
    adversarial_start_step=0,
    adaptive_adversarial_weight=False,
    r1_gamma=10.0,
    discriminator_filters=32,
    discriminator_channel_multipliers=[1, 2, 4, 4],
)


def add_autoencoder_loss_args(p):
    """The perceptual + adversarial recipe of `train-vae` and `train-vq` (one flag group).

    See `keras_givt.models.autoencoder_losses`; both terms are off by default.
    `checks.check_autoencoder_loss_args` refuses discriminator flags without
    `--adversarial-weight` and a network without `--perceptual-weight`.

    Args:
        p: the subparser.
    """
    g = p.add_argument_group(
        "perceptual and adversarial losses",
        "VQGAN's recipe (keras_givt.models.autoencoder_losses); off by default.",
    )
    g.add_argument(
        "--perceptual-weight",
        type=nonneg_float,
        default=0.0,
        help="Weight of the perceptual loss (0: off).",
    )
    g.add_argument(
        "--perceptual-network",
        choices=PERCEPTUAL_NETWORKS,
        default=None,
        help="Frozen feature network of the perceptual loss (default with --perceptual-weight "
        f"> 0: {PERCEPTUAL_NETWORKS[0]}; not the FD-CNN classifier).",
    )
    g.add_argument(
        "--adversarial-weight",
        type=nonneg_float,
        default=0.0,
        help="Weight of the generator's adversarial loss; > 0 trains a StyleGAN-style "
        "discriminator alongside (0: no discriminator).",
    )
    g.add_argument(
        "--adversarial-loss",
        choices=("non_saturating", "hinge"),
        default=None,
        help=f"GAN loss (default {ADVERSARIAL_DEFAULTS['adversarial_loss']}).",
    )
    g.add_argument(
        "--adversarial-start-step",
        type=nonneg_int,
        default=None,
        help="Optimizer steps before the generator and discriminator terms start (default 0).",
    )
    g.add_argument(
        "--adaptive-adversarial-weight",
        action="store_true",
        default=None,
        help="Scale the generator's term by VQGAN's adaptive weight "
        "(|grad L_rec| / |grad L_adv| at the decoder's last conv).",
    )
    g.add_argument(
        "--r1-gamma",
        type=nonneg_float,
        default=None,
        help=f"R1 penalty weight of the discriminator (default {ADVERSARIAL_DEFAULTS['r1_gamma']}"
        "; 0: off).",
    )
    g.add_argument(
        "--discriminator-filters",
        type=positive_int,
        default=None,
        help=f"Base width of the discriminator (default {ADVERSARIAL_DEFAULTS['discriminator_filters']}).",
    )
    g.add_argument(
        "--discriminator-channel-multipliers",
        type=positive_int_list,
        default=None,
        help="Width multiplier per discriminator level, each halving the size (default "
        + ",".join(str(m) for m in ADVERSARIAL_DEFAULTS["discriminator_channel_multipliers"])
        + ").",
    )


def autoencoder_loss_kwargs(args):
    """The `BetaVAE` / `VQGANTokenizer` recipe arguments of `add_autoencoder_loss_args` flags.

    Builds the discriminator, so call it after the backend is chosen.

    Args:
        args: the parsed arguments.
    """
    from keras_givt.models.vqvae.stylegan_discriminator import StyleGANDiscriminator

    adv = {k: getattr(args, k) for k in ADVERSARIAL_DEFAULTS}
    adv = {k: ADVERSARIAL_DEFAULTS[k] if v is None else v for k, v in adv.items()}
    kwargs = dict(perceptual_network=None, perceptual_weight=args.perceptual_weight)
    if args.perceptual_weight > 0:
        kwargs["perceptual_network"] = args.perceptual_network or PERCEPTUAL_NETWORKS[0]
    kwargs["adversarial_weight"] = args.adversarial_weight
    kwargs["discriminator"] = None
    if args.adversarial_weight > 0:
        kwargs["discriminator"] = StyleGANDiscriminator(
            filters=adv["discriminator_filters"],
            channel_multipliers=adv["discriminator_channel_multipliers"],
            name="discriminator",
        )
    for key in ("adversarial_loss", "adversarial_start_step", "adaptive_adversarial_weight"):
        kwargs[key] = adv[key]
    kwargs["r1_gamma"] = adv["r1_gamma"]
    return kwargs
