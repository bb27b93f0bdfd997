"""The GIVT commands of `keras-givt`: train-vae, encode, train, sample, inpaint, evaluate, demo.

  train-vae   train a β-VAE tokenizer on an image data set
  encode      cache the VAE posterior (mu, logvar) of a data set to an .npz
  train       train GIVT-Causal (`--model causal`) or GIVT-MaskGIT
              (`--model maskgit`) on cached latents or on images
  sample      class-conditional sample grid (PNG) from a model or preset
  inpaint     GIVT-MaskGIT inpainting of real images (PNG)
  evaluate    FD-CNN vs. the real-data floor, latent bits/dim
              (`GIVTCausal.score`), sampling time
  demo        the bundled Fashion-MNIST GIVT-Causal: CFG grid + FD-CNN + time

A command family module, as `vq_commands` and `uvim_commands`: `add_parsers(add)`
declares the subcommands (argparse only), `check_args(args)` runs the checks
argparse cannot express (`keras_givt.cli.checks`), `run(args, argv)` runs a
command. At module level it imports only the standard library and the
keras-free `arguments`/`checks`/`errors`, so `main` imports it before the
backend is chosen; each command function imports Keras, numpy and the CLI's
Keras-using helpers (`training`, `data`, `model_io`, `run_record`,
`evaluation`, `io_utils`) in its body.

Dimension letters: N examples, B batch, H/W/C image, L tokens, D token dim.
"""

import json
import os
import time

from keras_givt.cli import arguments
from keras_givt.cli import checks
from keras_givt.cli import distributed
from keras_givt.cli.errors import CLIError

COMMANDS = (
    "train-vae",
    "evaluate-vae",
    "encode",
    "train",
    "sample",
    "inpaint",
    "evaluate",
    "demo",
)


def add_parsers(add):
    """Adds the GIVT subparsers; `add(name, help)` returns a subparser that has `--backend`."""
    p = add("train-vae", "Train a β-VAE tokenizer (images in [-1, 1]).")
    arguments.add_data_args(p)
    arguments.add_train_args(p, default_lr=1e-3)
    p.add_argument(
        "--codeword-dim",
        type=arguments.positive_int,
        default=4,
        help="Channels of each latent token.",
    )
    arguments.add_cnn_autoencoder_args(
        p, "Base width of the CNN encoder/decoder.", default_channel_multipliers=[1, 2, 2]
    )
    p.add_argument(
        "--beta", type=arguments.nonneg_float, default=5e-4, help="Weight of the KL term."
    )
    p.add_argument(
        "--reconstruction-loss", choices=("l2", "xent"), default="l2", help="Reconstruction loss."
    )
    arguments.add_autoencoder_loss_args(p)

    p = add(
        "evaluate-vae",
        "β-VAE: FD-CNN, class consistency and MSE of its test-set reconstructions (the ceiling "
        "of every GIVT on it).",
    )
    p.add_argument(
        "--vae",
        required=True,
        help="A `train-vae` output folder (or its vae/ folder), or a bundled GIVT preset name "
        "(its VAE).",
    )
    arguments.add_data_dir_arg(p)
    p.add_argument(
        "--num-examples",
        type=arguments.int_at_least(2),
        default=10000,
        help="Test images reconstructed and scored (the first N).",
    )
    p.add_argument(
        "--batch-size", type=arguments.positive_int, default=500, help="Images per VAE call."
    )
    p.add_argument("--out", required=True, help="Output folder (JSON record, PNG).")
    arguments.add_fd_cnn_args(p, "FD-CNN reference (default: the VAE's training data set).")

    p = add("encode", "Cache the VAE posterior (mu, logvar) of a data set to an .npz file.")
    arguments.add_data_args(p)
    p.add_argument("--vae", required=True, help="A `train-vae` output folder (or its vae/ folder).")
    p.add_argument(
        "--split", choices=("train", "test"), default="train", help="Data split to encode."
    )
    p.add_argument(
        "--out", required=True, help="Output .npz file (a JSON file is written next to it)."
    )
    p.add_argument(
        "--batch-size", type=arguments.positive_int, default=256, help="Images per encoder call."
    )

    p = add("train", "Train GIVT-Causal or GIVT-MaskGIT on cached latents or images.")
    p.add_argument(
        "--model", choices=("causal", "maskgit"), required=True, help="Which GIVT to train."
    )
    p.add_argument(
        "--latents", default=None, help="An `encode` .npz (fastest); or use --data with --vae."
    )
    p.add_argument(
        "--vae", default=None, help="VAE folder (needed with --data; attached to the saved model)."
    )
    arguments.add_data_args(p, default_data="")
    arguments.add_train_args(p, default_lr=1e-3)
    arguments.add_transformer_args(p, "--emb-dim", "--mlp-dim", "Hidden width of the MLP blocks.")
    p.add_argument(
        "--num-mixtures",
        type=arguments.positive_int,
        default=4,
        help="Gaussian mixture components per token.",
    )
    p.add_argument(
        "--head-init",
        choices=("symmetry_breaking", "zeros"),
        default="symmetry_breaking",
        help="Start of the mixture-logits layer: 'symmetry_breaking' (small random kernel, "
        "component locations spread) or big_vision's 'zeros' (the components stay identical).",
    )
    p.add_argument(
        "--drop-labels-probability",
        type=arguments.probability,
        default=0.1,
        help="Label dropout in training (enables classifier-free guidance).",
    )
    p.add_argument(
        "--dropout", type=arguments.dropout_rate, default=0.0, help="Dropout rate of the decoder."
    )
    p.add_argument("--unconditional", action="store_true", help="Ignore labels.")
    p.add_argument(
        "--remat",
        action="store_true",
        help="Recompute each transformer block in the backward pass (less memory, one more "
        "forward pass; the same numbers).",
    )
    distributed.add_distributed_args(p)

    p = add("sample", "Write a class-conditional sample grid (PNG) and the samples (.npz).")
    _add_sampling_args(p)
    p.add_argument("--out", required=True, help="Output folder.")
    p.add_argument(
        "--labels",
        type=arguments.nonneg_int_list,
        default=None,
        help="Classes, comma-separated (default: all).",
    )
    p.add_argument(
        "--num-per-class",
        type=arguments.positive_int,
        default=8,
        help="Samples per class (one grid row).",
    )
    p.add_argument(
        "--num-samples",
        type=arguments.positive_int,
        default=None,
        help="Samples of an unconditional model (default: 8 x --num-per-class).",
    )

    p = add("inpaint", "GIVT-MaskGIT: regenerate a masked region of real images.")
    _add_sampling_args(p)
    arguments.add_data_args(p, default_data="fashion_mnist")
    p.add_argument("--out", required=True, help="Output folder.")
    p.add_argument(
        "--split", choices=("train", "test"), default="test", help="Data split of the images."
    )
    p.add_argument(
        "--num-images", type=arguments.positive_int, default=10, help="Images to inpaint."
    )
    p.add_argument(
        "--mask",
        choices=("center", "left", "right", "top", "bottom"),
        default="center",
        help="Region to regenerate.",
    )

    p = add("evaluate", "FD-CNN vs. the real-data floor, bits/dim and sampling time.")
    _add_sampling_args(p)
    p.add_argument("--out", required=True, help="Output folder.")
    p.add_argument(
        "--num-samples",
        type=arguments.int_at_least(2),
        default=10000,
        help="Samples scored by FD-CNN.",
    )
    arguments.add_fd_cnn_args(
        p, "FD-CNN reference (default: the data set in the model card, else fashion_mnist)."
    )
    p.add_argument(
        "--bpd-data",
        choices=("fashion_mnist", "mnist", "none"),
        default=None,
        help="Data set for bits/dim (default: the FD data set; 'none' to skip).",
    )
    p.add_argument(
        "--bpd-examples",
        type=arguments.positive_int,
        default=2000,
        help="Test examples for bits/dim.",
    )
    arguments.add_data_dir_arg(p)

    p = add("demo", "Bundled Fashion-MNIST GIVT-Causal: CFG grid (PNG), FD-CNN and timing.")
    p.add_argument("--out", default="givt_demo", help="Output folder.")
    p.add_argument(
        "--model",
        dest="preset",
        default="givt_causal_fashion_mnist",
        help="A GIVT preset or folder.",
    )
    p.add_argument(
        "--num-per-class",
        type=arguments.positive_int,
        default=10,
        help="Samples per class in the grid.",
    )
    p.add_argument(
        "--num-samples",
        type=arguments.int_at_least(2),
        default=1000,
        help="Samples scored by FD-CNN.",
    )
    p.add_argument(
        "--cfg-weight",
        type=arguments.nonneg_float,
        default=None,
        help="CFG weight (default: the model's).",
    )
    p.add_argument(
        "--temperature",
        type=arguments.positive_float,
        default=None,
        help="Sampling temperature (default: the model's).",
    )
    p.add_argument("--seed", type=arguments.nonneg_int, default=0, help="Sampling seed.")
    p.add_argument(
        "--batch-size", type=arguments.positive_int, default=500, help="Samples per generate call."
    )


def _add_sampling_args(p):
    """`--model`, `--seed`, the sampling settings and `--batch-size` of sample/inpaint/evaluate."""
    p.add_argument(
        "--model",
        dest="preset",
        required=True,
        help="A preset name (e.g. givt_causal_fashion_mnist), a preset folder written by "
        "`train`, or a `train` output folder.",
    )
    p.add_argument("--seed", type=arguments.nonneg_int, default=0, help="Sampling seed.")
    p.add_argument(
        "--temperature",
        type=arguments.positive_float,
        default=None,
        help="Mixture-component temperature (default: the model's sampling default).",
    )
    p.add_argument(
        "--temperature-probs",
        type=arguments.positive_float,
        default=None,
        help="Temperature of the mixture weights (default: the model's sampling default).",
    )
    p.add_argument(
        "--cfg-weight",
        type=arguments.nonneg_float,
        default=None,
        help="Density-based CFG weight (default: the model's sampling default).",
    )
    p.add_argument(
        "--num-steps",
        type=arguments.positive_int,
        default=None,
        help="MaskGIT decoding steps (default: the model's).",
    )
    p.add_argument(
        "--choice-temperature",
        type=arguments.nonneg_float,
        default=None,
        help="MaskGIT t_C (default: the model's).",
    )
    p.add_argument(
        "--batch-size", type=arguments.positive_int, default=100, help="Samples per generate call."
    )


def check_args(args):
    """The pre-import checks of the GIVT commands (raise `CLIError`); see `keras_givt.cli.checks`."""
    if args.command == "train":
        distributed.check_distributed_args(args)
    checks.check_givt_args(args)
    if args.command == "train-vae":
        checks.check_autoencoder_loss_args(args)


def run(args, argv):
    """Runs the GIVT command `args.command` (after `main` set the backend)."""
    commands = {
        "train-vae": cmd_train_vae,
        "evaluate-vae": cmd_evaluate_vae,
        "encode": cmd_encode,
        "train": cmd_train,
        "sample": cmd_sample,
        "inpaint": cmd_inpaint,
        "evaluate": cmd_evaluate,
        "demo": cmd_demo,
    }
    commands[args.command](args, argv)


# --- train-vae ----------------------------------------------------------------


MODEL_KEYS_VAE = (
    "codeword_dim",
    "filters",
    "num_res_blocks",
    "channel_multipliers",
    "image_size",
    "channels",
    *arguments.AUTOENCODER_LOSS_KEYS,
)


def cmd_train_vae(args, argv):
    import keras
    import numpy as np

    from keras_givt.cli import data
    from keras_givt.cli import model_io
    from keras_givt.cli import training
    from keras_givt.models.vae.beta_vae import BetaVAE

    training.prepare_out_dir(args, MODEL_KEYS_VAE)
    spec = data.data_spec(args)
    ds, n, names = data.image_stream(spec, args, lambda d: d.map(lambda b: b["images"]))
    steps_per_epoch, total = training.run_length(args, n)
    down = 2 ** (len(args.channel_multipliers) - 1)
    if args.image_size % down:
        raise CLIError(
            f"--image-size {args.image_size} must be divisible by the VAE downsampling factor {down} "
            f"(2 ** (len(--channel-multipliers) - 1))."
        )
    grid = args.image_size // down
    keras.utils.set_random_seed(args.seed)
    vae = BetaVAE(
        codeword_dim=args.codeword_dim,
        code_len=grid * grid,
        filters=args.filters,
        num_res_blocks=args.num_res_blocks,
        channel_multipliers=args.channel_multipliers,
        output_dim=args.channels,
        beta=args.beta,
        reconstruction_loss=args.reconstruction_loss,
        seed=args.seed,
        **arguments.autoencoder_loss_kwargs(args),
    )
    vae.build_for_image_size(args.image_size, args.channels)
    training.compile_for_training(vae, args, total)
    record, state = training.open_training_record(
        args, argv, MODEL_KEYS_VAE, {"data": spec, "num_examples": n, "params": vae.count_params()}
    )
    print(
        f"BetaVAE: {vae.count_params():,} params, {grid}x{grid} = {grid * grid} tokens of "
        f"{args.codeword_dim} dims; {n} images, {total} steps of batch {args.batch_size}."
    )
    _, step = training.fit_steps(vae, ds, args, steps_per_epoch, total, args.out, state, record)
    # Reconstruction error on held-out data (MNIST-like: the test split).
    test_batches, split = data.held_out_images(spec, args.data_dir)
    mse, count = 0.0, 0
    for batch in test_batches:
        x = batch["images"].numpy()
        mu, _ = vae.encode(x)
        rec = keras.ops.convert_to_numpy(vae.decode(mu))
        mse += float(np.sum((rec - x) ** 2))
        count += x.size
    vae_dir = os.path.join(args.out, "vae")
    # Without the discriminator / perceptual network (training only).
    model_io.save_vae(
        vae.without_training_networks(), vae_dir, extra={"data": spec, "class_names": names}
    )
    training.finish_training(
        record,
        state,
        step,
        reconstruction_mse=mse / max(count, 1),
        reconstruction_split=split,
        vae_dir=vae_dir,
    )
    print(f"Saved the VAE to {vae_dir} (reconstruction MSE {mse / max(count, 1):.4f} on {split}).")


# --- evaluate-vae -------------------------------------------------------------


def cmd_evaluate_vae(args, argv):
    import keras
    import numpy as np

    from keras_givt.cli import data
    from keras_givt.cli import evaluation
    from keras_givt.cli import io_utils
    from keras_givt.cli import model_io
    from keras_givt.cli import run_record

    from keras_givt.models import bundled

    if args.vae in bundled.BUNDLED:  # The VAE inside a bundled GIVT preset.
        task, card = model_io.load_task(args.vae)
        vae, vae_dir, spec = task.vae, args.vae, (card.get("data") or {}).get("data")
    else:
        vae, info, vae_dir = model_io.load_vae(args.vae)
        spec = info.get("data")
    if not spec or not data.is_builtin(spec["data"]):
        raise CLIError(
            f"argument --vae: evaluate-vae scores reconstructions of a built-in data set's test "
            f"split; the VAE in {vae_dir!r} was trained on {spec and spec.get('data')!r}."
        )
    fd_dataset = args.fd_dataset or spec["data"]
    record = run_record.open_record(args, argv, args.out)
    ds, n, _ = data.load_images(
        dict(spec, max_examples=args.num_examples), "test", args.batch_size, data_dir=args.data_dir
    )
    originals, reconstructions, labels = [], [], []
    bar = keras.utils.Progbar(n, unit_name="image")
    t0 = time.time()
    for batch in ds:
        x = batch["images"].numpy()
        mu, _ = vae.encode(x)  # The posterior mean, as `encode` caches for GIVT.
        reconstructions.append(np.clip(keras.ops.convert_to_numpy(vae.decode(mu)), -1.0, 1.0))
        originals.append(x)
        labels.append(batch["labels"].numpy())
        bar.add(len(x))
    x, rec = np.concatenate(originals), np.concatenate(reconstructions)
    labels = np.concatenate(labels).astype("int64")
    metrics = {
        "vae_dir": vae_dir,
        "num_examples": int(len(x)),
        "reconstruction_mse": float(np.mean((rec - x) ** 2)),
        "reconstruction_time_s": round(time.time() - t0, 3),
        "fd_dataset": fd_dataset,
    }
    if fd_dataset != "none":
        evaluation.score_fd_cnn(metrics, rec, fd_dataset, args.fd_input_mode, labels=labels)
    # A grid: rows of 10 originals over their reconstructions.
    rows = [r for i in range(0, 50, 10) for r in (x[i : i + 10], rec[i : i + 10])]
    png = os.path.join(args.out, "reconstructions.png")
    io_utils.write_png(png, io_utils.make_grid(io_utils.to_uint8(np.concatenate(rows)), 10))
    metrics["png"] = os.path.abspath(png)
    record.finish(**metrics)
    print(json.dumps({k: v for k, v in metrics.items() if "per_class" not in k}, indent=1))


# --- encode -------------------------------------------------------------------


def cmd_encode(args, argv):
    import keras
    import numpy as np

    from keras_givt.cli import data
    from keras_givt.cli import io_utils
    from keras_givt.cli import model_io
    from keras_givt.cli import run_record

    vae, _, vae_dir = model_io.load_vae(args.vae)
    spec = data.data_spec(args)
    ds, n, names = data.load_images(spec, args.split, args.batch_size, data_dir=args.data_dir)
    out_dir = os.path.dirname(os.path.abspath(args.out)) or "."
    record = run_record.open_record(
        args, argv, out_dir, name=os.path.splitext(os.path.basename(args.out))[0]
    )
    mus, logvars, labels = [], [], []
    bar = keras.utils.Progbar(n, unit_name="image")
    t0 = time.time()
    for batch in ds:
        mu, logvar = vae.encode(batch["images"].numpy())
        mus.append(keras.ops.convert_to_numpy(mu).astype("float32"))
        logvars.append(keras.ops.convert_to_numpy(logvar).astype("float32"))
        labels.append(batch["labels"].numpy())
        bar.add(len(labels[-1]))
    mu, logvar, labels = np.concatenate(mus), np.concatenate(logvars), np.concatenate(labels)
    meta = {"vae_dir": vae_dir, "data": spec, "split": args.split, "class_names": names}
    io_utils.write_npz(
        args.out,
        mu=mu,
        logvar=logvar,
        labels=labels.astype("int32"),
        meta=np.array(json.dumps(meta)),
    )
    record.finish(
        num_examples=int(len(mu)),
        tokens=int(mu.shape[1]),
        token_dim=int(mu.shape[2]),
        encode_time_s=round(time.time() - t0, 3),
        output=os.path.abspath(args.out),
        mu_std=float(mu.std()),
        mean_posterior_std=float(np.exp(0.5 * logvar).mean()),
    )
    print(f"Wrote {len(mu)} latents {mu.shape[1:]} to {args.out}.")


# --- train (GIVT) -------------------------------------------------------------


MODEL_KEYS_GIVT = (
    "model",
    "emb_dim",
    "num_layers",
    "num_heads",
    "mlp_dim",
    "num_mixtures",
    "unconditional",
)


def cmd_train(args, argv):
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_givt
    from keras_givt.cli import data
    from keras_givt.cli import model_io
    from keras_givt.cli import training

    distributed.initialize(args)  # Multi-process runs: first, before any computation.
    training.prepare_out_dir(args, MODEL_KEYS_GIVT)
    keras.utils.set_random_seed(args.seed)
    tf.random.set_seed(args.seed)
    data_info = {}
    if args.latents:
        mu, logvar, labels, meta = model_io.read_latents(args.latents)
        n = len(mu)
        seq_len, out_dim = int(mu.shape[1]), int(mu.shape[2])
        num_labels = (
            int(labels.max()) + 1
            if len(meta.get("class_names", [])) == 0
            else len(meta["class_names"])
        )
        ds = data.fresh_stream(
            data.latents_dataset(mu, logvar, labels, args.batch_size, args.seed),
            lambda: data.latents_dataset(mu, logvar, labels, args.batch_size, args.seed),
        )
        vae_dir = args.vae or meta.get("vae_dir")
        vae = None
        if vae_dir and os.path.isdir(vae_dir):
            vae, _, vae_dir = model_io.load_vae(vae_dir)
        data_info = {
            "latents": os.path.abspath(args.latents),
            "data": meta.get("data"),
            "class_names": meta.get("class_names"),
        }
    else:
        vae, _, vae_dir = model_io.load_vae(args.vae)
        spec = data.data_spec(args)
        drop = (
            (lambda d: d.map(lambda b: {k: v for k, v in b.items() if k != "labels"}))
            if args.unconditional
            else (lambda d: d)
        )
        ds, n, names = data.image_stream(spec, args, drop)
        mu, _ = vae.encode(
            np.zeros((1, args.image_size, args.image_size, args.channels), "float32")
        )
        seq_len, out_dim = int(mu.shape[1]), int(mu.shape[2])
        num_labels = len(names)
        data_info = {"data": spec, "class_names": names}
    if args.unconditional:
        num_labels = None
        if args.latents:
            make = ds
            ds = lambda: make().map(
                lambda b: {k: v for k, v in b.items() if k != "labels"}
            )  # noqa: E731
    steps_per_epoch, total = training.run_length(args, n)
    style = "ar" if args.model == "causal" else "masked"
    backbone = keras_givt.GIVTBackbone(
        seq_len=seq_len,
        out_dim=out_dim,
        num_labels=num_labels,
        emb_dim=args.emb_dim,
        num_decoder_layers=args.num_layers,
        num_heads=args.num_heads,
        mlp_dim=args.mlp_dim,
        num_mixtures=args.num_mixtures,
        per_channel_mixtures=False,
        fix_square_plus=True,
        style=style,
        mask_style="concat",
        drop_labels_probability=0.0 if num_labels is None else args.drop_labels_probability,
        dec_dropout_rate=args.dropout,
        head_init=args.head_init,
        remat=args.remat,
    )
    task_cls = keras_givt.GIVTCausal if args.model == "causal" else keras_givt.GIVTMaskGIT
    sampling_defaults = {"temperature": 1.0}
    if num_labels is not None and args.drop_labels_probability > 0:
        sampling_defaults["cfg_weight"] = 0.5
    if args.model == "maskgit":
        sampling_defaults.update({"num_steps": 16, "choice_temperature": 1.0})
    model = task_cls(
        backbone,
        vae=vae,
        preprocessor=data.image_preprocessor(data_info.get("data")),
        seed=args.seed,
        sampling_defaults=sampling_defaults,
    )
    training.compile_for_training(model, args, total)
    record, state = training.open_training_record(
        args,
        argv,
        MODEL_KEYS_GIVT,
        {
            "data": data_info,
            "num_examples": n,
            "params": backbone.count_params(),
            "seq_len": seq_len,
            "token_dim": out_dim,
            "vae_dir": vae_dir,
        },
    )
    print(
        f"GIVT-{'Causal' if style == 'ar' else 'MaskGIT'}: {backbone.count_params():,} params; "
        f"{seq_len} tokens of {out_dim} dims; {n} examples, {total} steps of batch {args.batch_size}."
    )
    training.fit_and_save_task(
        model,
        distributed.shard_stream(ds, args.batch_size),  # This process's rows of each batch.
        args,
        argv,
        steps_per_epoch,
        total,
        state,
        record,
        description=f"GIVT-{'Causal' if style == 'ar' else 'MaskGIT'} trained with the keras-givt CLI.",
        card={"params": int(backbone.count_params()), "data": data_info},
    )


def _sampling_kwargs(model, args):
    """The `generate` settings of the sampling flags (None: the model's default)."""
    import keras_givt

    kwargs = dict(
        temperature=getattr(args, "temperature", None),
        temperature_probs=getattr(args, "temperature_probs", None),
        cfg_weight=getattr(args, "cfg_weight", None),
    )
    if isinstance(model, keras_givt.GIVTMaskGIT):
        kwargs.update(
            num_steps=getattr(args, "num_steps", None),
            choice_temperature=getattr(args, "choice_temperature", None),
        )
    return kwargs


def _generate(model, labels, args, bar=None, batch_size=100, num_samples=None):
    """Images (N, H, W, C) in [-1, 1] in chunks of `batch_size` (same shape: no retracing)."""
    from keras_givt.cli import evaluation

    total = len(labels) if labels is not None else num_samples
    return evaluation.generate_in_chunks(
        model, total, batch_size, args.seed, labels=labels, bar=bar, **_sampling_kwargs(model, args)
    )


def _labels_for(model, labels, num_per_class, num_samples):
    import numpy as np

    num_labels = model.backbone.num_labels
    if num_labels is None:
        if labels:
            raise CLIError("--labels: this model is unconditional.")
        return None, num_samples or num_per_class * 8
    labels = labels if labels is not None else list(range(num_labels))
    bad = [c for c in labels if not 0 <= c < num_labels]
    if bad:
        raise CLIError(f"--labels {bad}: classes must be in [0, {num_labels}).")
    return np.repeat(np.asarray(labels, "int32"), num_per_class), None


# --- sample -------------------------------------------------------------------


def cmd_sample(args, argv):
    import keras
    import numpy as np

    from keras_givt.cli import io_utils
    from keras_givt.cli import model_io
    from keras_givt.cli import run_record

    model_io.check_task_spec(args.preset)
    record = run_record.open_record(args, argv, args.out)
    model, card = model_io.load_task(args.preset)
    labels, num = _labels_for(model, args.labels, args.num_per_class, args.num_samples)
    total = len(labels) if labels is not None else num
    t0 = time.time()
    bar = keras.utils.Progbar(total, unit_name="sample")
    images = _generate(model, labels, args, bar, args.batch_size, num)
    dt = time.time() - t0
    grid = io_utils.make_grid(
        io_utils.to_uint8(images), args.num_per_class if labels is not None else 8
    )
    png = os.path.join(args.out, "samples.png")
    io_utils.write_png(png, grid)
    io_utils.write_npz(
        os.path.join(args.out, "samples.npz"),
        images=io_utils.to_uint8(images),
        labels=labels if labels is not None else np.zeros(0, "int32"),
    )
    record.finish(
        num_samples=int(total),
        sampling_time_s=round(dt, 3),
        png=os.path.abspath(png),
        sampling_defaults=model.sampling_defaults,
    )
    print(f"Wrote {total} samples to {png} in {dt:.1f}s (incl. compilation).")


# --- inpaint ------------------------------------------------------------------


def _region_mask(kind, size):
    import numpy as np

    m = np.zeros((size, size), bool)
    q = size // 4
    h = size // 2
    if kind == "center":
        m[q : size - q, q : size - q] = True
    elif kind == "left":
        m[:, :h] = True
    elif kind == "right":
        m[:, h:] = True
    elif kind == "top":
        m[:h] = True
    else:
        m[h:] = True
    return m


def cmd_inpaint(args, argv):
    import keras
    import numpy as np

    import keras_givt
    from keras_givt.cli import data
    from keras_givt.cli import io_utils
    from keras_givt.cli import model_io
    from keras_givt.cli import run_record

    model_io.check_task_spec(args.preset)
    record = run_record.open_record(args, argv, args.out)
    model, card = model_io.load_task(args.preset)
    if not isinstance(model, keras_givt.GIVTMaskGIT):
        raise CLIError("inpaint needs a GIVT-MaskGIT model (e.g. givt_maskgit_fashion_mnist).")
    spec = data.data_spec(args)
    ds, _, _ = data.load_images(
        dict(spec, max_examples=None), args.split, args.num_images, data_dir=args.data_dir
    )
    batch = next(iter(ds))
    images, labels = batch["images"].numpy(), batch["labels"].numpy()
    mask = np.broadcast_to(_region_mask(args.mask, images.shape[1]), images.shape[:3])
    t0 = time.time()
    out = model.inpaint(
        images,
        mask,
        labels=None if model.backbone.num_labels is None else labels,
        num_steps=args.num_steps,
        choice_temperature=args.choice_temperature,
        temperature=args.temperature,
        cfg_weight=args.cfg_weight,
        seed=args.seed,
    )
    dt = time.time() - t0
    out = keras.ops.convert_to_numpy(out)
    masked = np.where(mask[..., None], 0.0, images)
    rows = np.concatenate([images, masked, out])  # 3 rows: original, masked, inpainted
    png = os.path.join(args.out, "inpaint.png")
    io_utils.write_png(png, io_utils.make_grid(io_utils.to_uint8(rows), len(images)))
    record.finish(
        num_images=int(len(images)),
        inpaint_time_s=round(dt, 3),
        png=os.path.abspath(png),
        rows=["original", "masked", "inpainted"],
    )
    print(f"Wrote {png} (rows: original, masked, inpainted) in {dt:.1f}s.")


# --- evaluate -----------------------------------------------------------------


def cmd_evaluate(args, argv):
    import keras
    import numpy as np

    import keras_givt
    from keras_givt.cli import evaluation
    from keras_givt.cli import io_utils
    from keras_givt.cli import model_io
    from keras_givt.cli import run_record

    model_io.check_task_spec(args.preset)
    record = run_record.open_record(args, argv, args.out)
    model, card = model_io.load_task(args.preset)
    fd_dataset = args.fd_dataset or model_io.card_dataset(card) or "fashion_mnist"
    metrics = {"fd_dataset": fd_dataset}
    labels, num = _labels_for(model, None, 1, args.num_samples)
    if labels is not None:  # Balanced classes.
        labels = evaluation.balanced_labels(args.num_samples, model.backbone.num_labels)
    total = args.num_samples
    print(f"Sampling {total} images...")
    images = evaluation.timed_generation(
        metrics,
        model,
        total,
        args.batch_size,
        args.seed,
        labels=labels,
        **_sampling_kwargs(model, args),
    )
    io_utils.write_png(
        os.path.join(args.out, "samples.png"),
        io_utils.make_grid(io_utils.to_uint8(images[:100]), 10),
    )
    if fd_dataset != "none":
        evaluation.score_fd_cnn(metrics, images, fd_dataset, args.fd_input_mode, labels=labels)
    bpd_data = args.bpd_data or (fd_dataset if fd_dataset != "none" else "none")
    if bpd_data != "none" and isinstance(model, keras_givt.GIVTCausal):
        from keras_givt import datasets
        from keras_givt.metrics.bits_per_dim import latent_bits_per_dim

        loader = datasets.load_fashion_mnist if bpd_data == "fashion_mnist" else datasets.load_mnist
        x, y = loader("test", data_dir=args.data_dir)
        x, y = x[: args.bpd_examples], y[: args.bpd_examples]
        k = model.backbone.num_labels
        if k is not None and y.max() >= k:
            raise CLIError(
                f"--bpd-data {bpd_data} has labels up to {y.max()} but the model has {k} classes; "
                "pass --bpd-data none."
            )
        H = model.vae.decode(
            np.zeros((1, model.backbone.seq_len, model.backbone.out_dim), "float32")
        ).shape
        ds = datasets.arrays_dataset(
            x, y, image_size=int(H[1]), batch_size=len(x), channels=int(H[3])
        )
        imgs = next(iter(ds))["images"].numpy()
        print(f"Latent bits/dim on {len(x)} test images...")
        bpd, nll = latent_bits_per_dim(
            model, imgs, y, progbar=keras.utils.Progbar(len(x), unit_name="image")
        )
        metrics.update(
            latent_bits_per_dim=bpd,
            latent_nll_nats_per_image=nll,
            bpd_examples=int(len(x)),
            bpd_note="NLL of the VAE posterior means under GIVT (a density on latents, "
            "not on pixels), per latent dimension.",
        )
    record.finish(**metrics)
    print(json.dumps({k: v for k, v in metrics.items() if k != "class_histogram"}, indent=1))


# --- demo ---------------------------------------------------------------------


def cmd_demo(args, argv):
    import keras

    from keras_givt.cli import evaluation
    from keras_givt.cli import io_utils
    from keras_givt.cli import model_io
    from keras_givt.cli import run_record
    from keras_givt.metrics import FDCNN

    print(f"keras-givt demo on the {keras.config.backend()} backend (Keras {keras.__version__}).")
    model_io.check_task_spec(args.preset)
    record = run_record.open_record(args, argv, args.out)
    t_start = time.time()
    model, card = model_io.load_task(args.preset)
    t_load = time.time() - t_start
    if not model.backbone.num_labels:
        raise CLIError(
            f"argument --model: the demo needs a class-conditional model; received {args.preset!r}"
        )
    fd = FDCNN(
        model_io.card_dataset(card) or "fashion_mnist"
    )  # Checks its files before the slow part.
    k = model.backbone.num_labels
    n_total = max(args.num_samples, args.num_per_class * k)
    labels = evaluation.balanced_labels(n_total, k)
    print(
        f"Loaded {args.preset} in {t_load:.1f}s. Generating {n_total} class-conditional samples "
        f"(CFG {args.cfg_weight if args.cfg_weight is not None else model.sampling_defaults.get('cfg_weight')})..."
    )
    t0 = time.time()
    bar = keras.utils.Progbar(n_total, unit_name="sample")
    images = _generate(model, labels, args, bar, args.batch_size, n_total)
    t_gen = time.time() - t0
    # Grid: one row per class.
    order = evaluation.class_rows(labels, k, args.num_per_class)
    png = os.path.join(args.out, "demo_grid.png")
    io_utils.write_png(
        png, io_utils.make_grid(io_utils.to_uint8(images[order]), args.num_per_class)
    )
    print("Scoring FD-CNN...")
    score = float(fd.distance(images))
    floor_n, floor_source = evaluation.real_floor_at(fd, n_total, seed=args.seed)
    total = time.time() - t_start
    metrics = dict(
        fd_cnn=score,
        fd_cnn_num_samples=int(n_total),
        fd_cnn_floor_same_n=floor_n,
        fd_cnn_floor_same_n_source=floor_source,
        fd_cnn_floor_10k=fd.floor,
        generation_time_s=round(t_gen, 3),
        load_time_s=round(t_load, 3),
        total_time_s=round(total, 3),
        png=os.path.abspath(png),
    )
    record.finish(**metrics)
    print(f"Wrote {png}")
    floor_text = (
        f"{floor_n:.2f} for {n_total} real train images" if floor_n is not None else "n/a at this N"
    )
    print(
        f"FD-CNN ({fd.dataset}, {n_total} samples vs. the test set): {score:.2f}  "
        f"(real-data floor: {floor_text}, {fd.floor:.2f} at 10k)"
    )
    print(
        f"Time: load {t_load:.1f}s, generate {t_gen:.1f}s, total {total:.1f}s "
        f"on {keras.config.backend()}. Run record: {record.path} (status: done)."
    )
