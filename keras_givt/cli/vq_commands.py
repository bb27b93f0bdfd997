"""`keras-givt` subcommands for the discrete baseline: VQGAN tokens + MaskGIT.

  train-vq           train a `VQGANTokenizer` (reconstruction + quantizer losses)
  train-maskgit-vq   encode a data set to code indices and train a
                     `MaskGITImageGenerator` on them (tokenizer attached;
                     saved as a keras-hub preset folder with model_card.json)
  evaluate-vq        FD-CNN of N class-balanced samples vs. the test set, the
                     real-data floor at N and at 10k, class histogram, time

Dimension letters: N examples, B batch, H/W/C image, h/w token grid, L = h·w
tokens, K codebook size.

The data loaders of the GIVT commands give images in [-1, 1]; the tokenizer
works on [0, 1] (MaskGIT's convention), so images are mapped with
(x + 1) / 2 on the way in and samples with 2x − 1 before FD-CNN (which takes
[-1, 1]). Each command writes `<out>/<command>.json` (command line, config,
environment, metrics, status) atomically; training checkpoints and `--resume`
work as for `train-vae`/`train` (`keras_givt.cli.training`).

A command family module, as `givt_commands`: `add_parsers(add)` (argparse
only), `check_args(args)` (pre-import checks), `run(args, argv)`. Keras-free at
import; each command function imports Keras and the CLI's Keras-using helpers
in its body.
"""

import argparse
import os
import time

from keras_givt.cli import arguments
from keras_givt.cli import checks
from keras_givt.cli.errors import CLIError

COMMANDS = ("train-vq", "train-maskgit-vq", "evaluate-vq")
MODEL_KEYS_VQ = (
    "filters",
    "num_res_blocks",
    "channel_multipliers",
    "embedding_dim",
    "codebook_size",
    "image_size",
    "channels",
    *arguments.AUTOENCODER_LOSS_KEYS,
)
MODEL_KEYS_MASKGIT = (
    "hidden_size",
    "num_layers",
    "num_heads",
    "intermediate_size",
    "unconditional",
)


def add_parsers(add):
    """Adds the VQ subparsers; `add(name, help)` returns a subparser that has `--backend`."""
    p = add("train-vq", "Train a VQGAN tokenizer (MaskGIT's VQ-VAE; images in [0, 1]).")
    arguments.add_data_args(p)
    arguments.add_train_args(p, default_lr=1e-3)
    arguments.add_cnn_autoencoder_args(
        p,
        "Base width of the CNN (a multiple of 32: GroupNorm(32)).",
        default_channel_multipliers=[1, 2, 2, 2],
    )
    p.add_argument(
        "--embedding-dim", type=arguments.positive_int, default=16, help="Codebook vector size."
    )
    p.add_argument(
        "--codebook-size", type=arguments.positive_int, default=512, help="Number of codes."
    )
    p.add_argument(
        "--commitment-cost",
        type=arguments.nonneg_float,
        default=0.25,
        help="Commitment loss weight.",
    )
    p.add_argument(
        "--entropy-loss-ratio",
        type=arguments.nonneg_float,
        default=0.1,
        help="Entropy loss weight.",
    )
    p.add_argument(
        "--entropy-temperature",
        type=arguments.positive_float,
        default=0.01,
        help="Temperature of the entropy loss' code distribution.",
    )
    p.add_argument(
        "--reconstruction-loss", choices=("l2", "l1"), default="l2", help="Reconstruction loss."
    )
    arguments.add_autoencoder_loss_args(p)

    p = add("train-maskgit-vq", "Train a discrete MaskGIT on the codes of a `train-vq` tokenizer.")
    p.add_argument(
        "--vq", required=True, help="A `train-vq` output folder (or its tokenizer/ folder)."
    )
    arguments.add_data_args(p)
    arguments.add_train_args(p, default_lr=1e-3)
    arguments.add_transformer_args(p, "--hidden-size", "--intermediate-size", "MLP hidden width.")
    p.add_argument(
        "--dropout",
        type=arguments.dropout_rate,
        default=0.0,
        help="Dropout and attention dropout rate.",
    )
    p.add_argument(
        "--label-dropout",
        type=arguments.probability,
        default=0.1,
        help="Label dropout in training (enables classifier-free guidance).",
    )
    p.add_argument(
        "--label-smoothing",
        type=arguments.probability,
        default=0.1,
        help="Label smoothing of the token loss.",
    )
    p.add_argument(
        "--weight-decay",
        type=arguments.nonneg_float,
        default=0.0,
        help="> 0: AdamW with this decay (MaskGIT 0.045); 0: Adam, as `train`.",
    )
    p.add_argument("--unconditional", action="store_true", help="Ignore labels.")
    p.add_argument(
        "--encode-batch-size",
        type=arguments.positive_int,
        default=250,
        help="Images per tokenizer call when encoding the data set.",
    )
    # Sampling defaults stored in the preset.
    p.add_argument(
        "--sample-num-steps",
        type=arguments.positive_int,
        default=8,
        help="Decoding steps stored as the preset's sampling default.",
    )
    p.add_argument(
        "--sample-choice-temperature",
        type=arguments.nonneg_float,
        default=4.5,
        help="Choice temperature stored as the preset's sampling default.",
    )
    p.add_argument(
        "--sample-temperature",
        type=arguments.positive_float,
        default=1.0,
        help="Token temperature stored as the preset's sampling default.",
    )
    p.add_argument(
        "--sample-cfg-weight",
        type=arguments.nonneg_float,
        default=None,
        help="CFG weight stored as the preset's sampling default (default: 0.5 with label "
        "dropout, else 0).",
    )

    p = add(
        "evaluate-vq", "VQ MaskGIT: FD-CNN vs. the real-data floor, class histogram, sampling time."
    )
    p.add_argument(
        "--model",
        dest="preset",
        required=True,
        help="A preset name (e.g. vq_maskgit_fashion_mnist), a preset folder or a "
        "`train-maskgit-vq` output folder.",
    )
    p.add_argument("--out", required=True, help="Output folder.")
    p.add_argument("--seed", type=arguments.nonneg_int, default=0, help="Sampling seed.")
    p.add_argument(
        "--num-samples",
        type=arguments.int_at_least(2),
        default=10000,
        help="Samples scored by FD-CNN.",
    )
    p.add_argument(
        "--batch-size", type=arguments.positive_int, default=500, help="Samples per generate call."
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
        help="Choice temperature (default: the model's).",
    )
    p.add_argument(
        "--temperature",
        type=arguments.positive_float,
        default=None,
        help="Token temperature (default: the model's).",
    )
    p.add_argument(
        "--cfg-weight",
        type=arguments.nonneg_float,
        default=None,
        help="CFG weight on the logits (default: the model's).",
    )
    arguments.add_fd_cnn_args(
        p, "FD-CNN reference (default: the model card's data set, else fashion_mnist)."
    )
    p.add_argument(
        "--floor-at-n",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Also measure the real-data floor at N samples (needs the train split).",
    )
    arguments.add_data_dir_arg(p)


def check_args(args):
    """Pre-import checks (paths, folder kinds, shapes), raising CLIError; see `keras_givt.cli.checks`."""
    if getattr(args, "data_dir", None):
        checks.check_dir(args.data_dir, "--data-dir")
    checks.check_out_folder(args.out)
    if args.command == "evaluate-vq":
        checks.resolve_model(
            args.preset,
            families=("MaskGITImageGenerator",),
            command_hint="`keras-givt evaluate` for GIVT models",
        )
        return
    checks.check_data(args.data)
    if args.command == "train-vq":
        down = 2 ** (len(args.channel_multipliers) - 1)
        if args.image_size % down:
            raise CLIError(
                f"argument --image-size: must be divisible by {down} (2 ** (len(--channel-multipliers) "
                f"- 1)); received {args.image_size}"
            )
        if args.filters % 32:
            raise CLIError(
                f"argument --filters: must be a multiple of 32 (GroupNorm(32)); received {args.filters}"
            )
        checks.check_autoencoder_loss_args(args)
    else:
        if args.hidden_size % args.num_heads:
            raise CLIError(
                f"argument --hidden-size: must be divisible by --num-heads ({args.num_heads}); "
                f"received {args.hidden_size}"
            )
        path = checks.model_folder(args.vq, "--vq", "tokenizer", "model.keras", "train-vq")
        info = checks.read_json_or_none(os.path.join(path, "vq.json")) or {}
        spec, config = info.get("data") or {}, info.get("config") or {}
        built = config.get("image_size") or [
            spec.get("image_size"),
            spec.get("image_size"),
            config.get("output_dim") or spec.get("channels"),
        ]
        for flag, value, want in (
            ("--image-size", args.image_size, built[0]),
            ("--channels", args.channels, built[2]),
        ):
            if want is not None and int(want) != value:
                raise CLIError(
                    f"argument {flag}: the tokenizer in --vq {args.vq!r} was built for {want}; "
                    f"received {value}"
                )
    checks.check_resume(args)


def run(args, argv):
    """Runs the VQ command `args.command` (after `main` set the backend)."""
    fn = {
        "train-vq": cmd_train_vq,
        "train-maskgit-vq": cmd_train_maskgit_vq,
        "evaluate-vq": cmd_evaluate_vq,
    }
    if args.command not in fn:
        raise CLIError(f"unknown command {args.command!r}")
    if args.command != "evaluate-vq" and args.resume and args.overwrite:
        raise CLIError(f"{args.command}: --resume and --overwrite exclude each other.")
    return fn[args.command](args, argv)


# --- train-vq -------------------------------------------------------------------


def _to_unit(x):
    """[-1, 1] -> [0, 1]."""
    return (x + 1.0) / 2.0


def cmd_train_vq(args, argv):
    import keras
    import numpy as np

    from keras_givt.cli import data
    from keras_givt.cli import model_io
    from keras_givt.cli import training
    from keras_givt.layers.vector_quantizer import codebook_statistics
    from keras_givt.models.vqvae.vqgan_tokenizer import VQGANTokenizer

    training.prepare_out_dir(args, MODEL_KEYS_VQ)
    down = 2 ** (len(args.channel_multipliers) - 1)
    if args.image_size % down:
        raise CLIError(
            f"--image-size {args.image_size} must be divisible by the tokenizer downsampling "
            f"factor {down} (2 ** (len(--channel-multipliers) - 1))."
        )
    if args.filters % 32:
        raise CLIError(f"--filters must be a multiple of 32 (GroupNorm(32)); got {args.filters}.")
    spec = data.data_spec(args)
    ds, n, names = data.image_stream(spec, args, lambda d: d.map(lambda b: _to_unit(b["images"])))
    steps_per_epoch, total = training.run_length(args, n)
    grid = args.image_size // down
    keras.utils.set_random_seed(args.seed)
    tok = VQGANTokenizer(
        filters=args.filters,
        num_res_blocks=args.num_res_blocks,
        channel_multipliers=args.channel_multipliers,
        embedding_dim=args.embedding_dim,
        codebook_size=args.codebook_size,
        commitment_cost=args.commitment_cost,
        entropy_loss_ratio=args.entropy_loss_ratio,
        entropy_temperature=args.entropy_temperature,
        output_dim=args.channels,
        reconstruction_loss=args.reconstruction_loss,
        **arguments.autoencoder_loss_kwargs(args),
    )
    tok.build_for_image_size(args.image_size, args.channels)
    training.compile_for_training(tok, args, total)
    params = int(tok.count_params())
    record, state = training.open_training_record(
        args, argv, MODEL_KEYS_VQ, {"data": spec, "num_examples": n, "params": params}
    )
    print(
        f"VQGANTokenizer: {params:,} params, {grid}x{grid} = {grid * grid} tokens, codebook "
        f"{args.codebook_size} x {args.embedding_dim}; {n} images, {total} steps of batch "
        f"{args.batch_size}."
    )
    _, step = training.fit_steps(tok, ds, args, steps_per_epoch, total, args.out, state, record)
    # Held-out reconstruction (MNIST-like: the test split) and codebook use.
    test_batches, split = data.held_out_images(spec, args.data_dir)
    sq, count, ids = 0.0, 0, []
    for batch in test_batches:
        x = _to_unit(batch["images"].numpy())
        idx = tok.encode_to_indices(x)
        rec = np.clip(keras.ops.convert_to_numpy(tok.decode_from_indices(idx)), 0.0, 1.0)
        sq += float(np.sum((rec - x) ** 2))
        count += x.size
        ids.append(keras.ops.convert_to_numpy(idx))
    ids = np.concatenate(ids)
    perplexity, usage = codebook_statistics(ids, args.codebook_size)
    mse = sq / max(count, 1)
    tok_dir = os.path.join(args.out, "tokenizer")
    # Without the discriminator / perceptual network (training only).
    model_io.save_tokenizer(
        tok.without_training_networks(), tok_dir, extra={"data": spec, "class_names": names}
    )
    training.finish_training(
        record,
        state,
        step,
        reconstruction_mse_unit=mse,
        reconstruction_mse=4.0 * mse,
        reconstruction_split=split,
        reconstruction_note="reconstruction_mse is on the [-1, 1] scale of train-vae (4x the [0, 1] MSE).",
        codebook_perplexity=float(keras.ops.convert_to_numpy(perplexity)),
        codebook_usage=float(keras.ops.convert_to_numpy(usage)),
        codes_used=int(len(np.unique(ids))),
        tokenizer_dir=tok_dir,
    )
    print(
        f"Saved the tokenizer to {tok_dir} (reconstruction MSE {4 * mse:.4f} on {split} in [-1, 1] "
        f"units; {len(np.unique(ids))}/{args.codebook_size} codes used)."
    )


# --- MaskGIT ------------------------------------------------------------------


def encode_dataset(tok, ds, n, bar_label="image"):
    """`(tokens (N, L) int32, labels (N,) int32)` of a tf.data of {"images" in [-1, 1], "labels"}."""
    import keras
    import numpy as np

    tokens, labels = [], []
    bar = keras.utils.Progbar(n, unit_name=bar_label)
    for batch in ds:
        ids = tok.encode_to_indices(_to_unit(batch["images"].numpy()))
        ids = keras.ops.convert_to_numpy(ids).reshape(len(batch["labels"]), -1)
        tokens.append(ids.astype("int32"))
        labels.append(batch["labels"].numpy().astype("int32"))
        bar.add(len(labels[-1]))
    return np.concatenate(tokens), np.concatenate(labels)


def cmd_train_maskgit_vq(args, argv):
    import json

    import keras
    import numpy as np
    import tensorflow as tf

    import keras_givt
    from keras_givt.cli import data
    from keras_givt.cli import io_utils
    from keras_givt.cli import model_io
    from keras_givt.cli import training

    if args.hidden_size % args.num_heads:
        raise CLIError(
            f"--hidden-size ({args.hidden_size}) must be divisible by --num-heads "
            f"({args.num_heads})."
        )
    for name in ("label_dropout", "label_smoothing"):
        if getattr(args, name) > 1:
            raise CLIError(
                f"--{name.replace('_', '-')} must be in [0, 1]; got {getattr(args, name)}."
            )
    training.prepare_out_dir(args, MODEL_KEYS_MASKGIT)
    keras.utils.set_random_seed(args.seed)
    tf.random.set_seed(args.seed)
    tok, tok_info, tok_dir = model_io.load_tokenizer(args.vq)
    spec = data.data_spec(args)
    if tok.image_size and list(tok.image_size) != [args.image_size, args.image_size, args.channels]:
        raise CLIError(
            f"the tokenizer was built for images {tok.image_size}; the data flags give "
            f"{[args.image_size, args.image_size, args.channels]}."
        )
    # Encode once to code indices (cached in <out>/tokens_train.npz).
    cache = os.path.join(args.out, "tokens_train.npz")
    if os.path.isfile(cache):
        with np.load(cache) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("data") == spec and meta.get("tokenizer_dir") == tok_dir:
                tokens, labels, names = z["tokens"], z["labels"], meta["class_names"]
            else:
                tokens = None
    else:
        tokens = None
    encode_s = 0.0
    if tokens is None:
        ds, n, names = data.load_images(
            spec, "train", args.encode_batch_size, data_dir=args.data_dir
        )
        print(f"Encoding {n} images to code indices...")
        t0 = time.time()
        tokens, labels = encode_dataset(tok, ds, n)
        encode_s = round(time.time() - t0, 3)
        meta = {"data": spec, "tokenizer_dir": tok_dir, "class_names": names}
        io_utils.write_npz(cache, tokens=tokens, labels=labels, meta=np.array(json.dumps(meta)))
    n, seq_len = tokens.shape
    num_classes = 0 if args.unconditional else len(names)
    arrays = {"tokens": tokens} if args.unconditional else {"tokens": tokens, "labels": labels}

    tensors = {k: tf.constant(v) for k, v in arrays.items()}

    def make_stream():  # A fresh, position-determined pipeline per `fit` call (`fit_steps`).
        idx = data.seeded_epoch_order(n, args.seed).batch(args.batch_size, drop_remainder=True)
        ds = idx.map(lambda i: {k: tf.gather(v, i) for k, v in tensors.items()})
        return ds.prefetch(tf.data.AUTOTUNE)

    ds = make_stream
    steps_per_epoch, total = training.run_length(args, n)
    backbone = keras_givt.MaskGITBackbone(
        codebook_size=tok.codebook_size,
        num_classes=num_classes,
        seq_len=int(seq_len),
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        intermediate_size=args.intermediate_size,
        dropout=args.dropout,
        attention_dropout=args.dropout,
    )
    label_dropout = 0.0 if args.unconditional else args.label_dropout
    cfg = args.sample_cfg_weight
    if cfg is None:
        cfg = 0.5 if label_dropout > 0 else 0.0
    if cfg and label_dropout <= 0:
        raise CLIError(
            "--sample-cfg-weight > 0 needs --label-dropout > 0 (classifier-free guidance)."
        )
    sampling_defaults = {
        "num_steps": args.sample_num_steps,
        "choice_temperature": args.sample_choice_temperature,
        "temperature": args.sample_temperature,
        "cfg_weight": cfg,
    }
    model = keras_givt.MaskGITImageGenerator(
        backbone,
        tokenizer=tok,
        label_smoothing=args.label_smoothing,
        label_dropout=label_dropout,
        preprocessor=data.image_preprocessor(spec, output_range=(0.0, 1.0)),
        seed=args.seed,
        sampling_defaults=sampling_defaults,
    )
    training.compile_for_training(model, args, total, weight_decay=args.weight_decay)
    params = int(backbone.count_params())
    data_info = {"data": spec, "class_names": names, "tokens": os.path.abspath(cache)}
    record, state = training.open_training_record(
        args,
        argv,
        MODEL_KEYS_MASKGIT,
        {
            "data": data_info,
            "num_examples": int(n),
            "params": params,
            "tokenizer_params": int(tok.count_params()),
            "seq_len": int(seq_len),
            "codebook_size": int(tok.codebook_size),
            "tokenizer_dir": tok_dir,
            "encode_time_s": encode_s,
        },
    )
    print(
        f"MaskGIT (VQ): {params:,} params; {seq_len} tokens from {tok.codebook_size} codes; "
        f"{n} examples, {total} steps of batch {args.batch_size}."
    )
    tok_card = {k: tok_info.get(k) for k in ("data", "class_names")}
    train_vq = os.path.join(os.path.dirname(tok_dir), "train-vq.json")
    if os.path.isfile(train_vq):
        run = io_utils.read_json(train_vq)
        m = run.get("metrics", {})
        tok_card.update(
            {
                "training_command": " ".join(run.get("argv", [])),
                "params": run.get("params"),
                "steps": m.get("step"),
                "train_time_s": m.get("train_time_s"),
                "reconstruction_mse_test": m.get("reconstruction_mse"),
                "codes_used": m.get("codes_used"),
                "codebook_perplexity": m.get("codebook_perplexity"),
            }
        )
    training.fit_and_save_task(
        model,
        ds,
        args,
        argv,
        steps_per_epoch,
        total,
        state,
        record,
        description="Discrete MaskGIT on VQGAN tokens, trained with the keras-givt CLI.",
        card={
            "params": params,
            "tokenizer_params": int(tok.count_params()),
            "data": data_info,
            "tokenizer": tok_card,
            "sampling_defaults": sampling_defaults,
        },
    )


# --- evaluate ---------------------------------------------------------------------


def _generate_kwargs(args):
    """The `generate` settings of the sampling flags (None: the model's default).

    Images come in [-1, 1], the range of the GIVT commands and of FD-CNN.
    """
    return dict(
        num_steps=args.num_steps,
        choice_temperature=args.choice_temperature,
        temperature=args.temperature,
        cfg_weight=args.cfg_weight,
        image_range=(-1.0, 1.0),
    )


def cmd_evaluate_vq(args, argv):
    import json

    from keras_givt.cli import evaluation
    from keras_givt.cli import io_utils
    from keras_givt.cli import model_io
    from keras_givt.cli import run_record

    model, card = model_io.load_vq_maskgit(args.preset)
    record = run_record.open_record(args, argv, args.out)
    fd_dataset = args.fd_dataset or model_io.card_dataset(card) or "fashion_mnist"
    k = model.backbone.num_classes
    total = args.num_samples
    labels = evaluation.balanced_labels(total, max(k, 1))
    settings = {
        name: (
            getattr(args, name)
            if getattr(args, name) is not None
            else model.sampling_defaults.get(name)
        )
        for name in ("num_steps", "choice_temperature", "temperature", "cfg_weight")
    }
    metrics = {
        "fd_dataset": fd_dataset,
        "sampling": settings,
        "params": int(model.backbone.count_params()),
        "tokenizer_params": int(model.tokenizer.count_params()),
    }
    print(f"Sampling {total} images ({settings})...")
    images = evaluation.timed_generation(
        metrics,
        model,
        total,
        args.batch_size,
        args.seed,
        labels=labels if k else None,
        **_generate_kwargs(args),
    )
    # Grid: one row per class, 10 samples each.
    per = 10
    order = evaluation.class_rows(labels, max(k, 1), per)
    png = os.path.join(args.out, "samples.png")
    io_utils.write_png(png, io_utils.make_grid(io_utils.to_uint8(images[order]), per))
    metrics["png"] = os.path.abspath(png)
    if fd_dataset != "none":
        evaluation.score_fd_cnn(
            metrics,
            images,
            fd_dataset,
            args.fd_input_mode,
            floor_at_n=args.floor_at_n,
            seed=args.seed,
            data_dir=args.data_dir,
            labels=labels if k else None,
        )
    record.finish(**metrics)
    print(json.dumps({k: v for k, v in metrics.items() if k != "class_histogram"}, indent=1))
