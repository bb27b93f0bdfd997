"""Speed benchmark of GIVT training and generation on the current KERAS_BACKEND.

    KERAS_BACKEND=jax python benchmarks/bench.py --json-out bench_jax.json [--only train,ar,ar_cfg,maskgit]

Items (each timed `--iters` times after a first, compiling call):
- `train`: one optimizer step (NLL + gradients + the tasks' default Adam,
  `PerVariableAdam`, with global-norm clipping)
  on a (batch, seq_len, out_dim) latent batch.
- `ar`: one GIVT-Causal generation of the whole batch (KV cache).
- `ar_cfg`: the same with density-based CFG (`--cfg-w`).
- `maskgit`: one GIVT-MaskGIT generation with `--maskgit-steps` steps.

The defaults are the reference sizes; the model flags (`--num-labels`,
`--dropout`, `--style` of the trained model, sampling settings) mirror
big_vision's `bench_bv.py`, and `--remat true` rematerialises the decoder
blocks of the trained model. Prints one JSON object on the last
stdout line: a key per item with `median_s`, `min_s`, `compile_s` (the first
call), plus `num_params`, `config` and `env` (on torch, `env.torch_threads`: torch's thread
count, the generation thread setting and what it resolves to at the start). `train` also
gives `model_flops` (`train_step_flops`), `tflops_per_s` and, with `--peak-tflops`, `mfu`;
the sampling items give `per_image_s`; on a GPU each item gives `accelerator_peak_gib`.
After each item a line `{"partial": true, ...}` gives the results so far.
`--dtype-policy mixed_bfloat16` runs every model under that Keras policy.

On a GPU: `benchmarks/accelerator.py` runs the reference and published sizes, float32 and
bf16, and measures the card's bf16 matmul rate for the MFU.

Side by side with big_vision (and the three backends, alternating rounds,
`--contended`): `benchmarks/compare.py`, see `benchmarks/results/README.md`.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--emb-dim", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--mlp", type=int, default=1024)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--out-dim", type=int, default=16)
    p.add_argument("--num-mixtures", type=int, default=16)
    p.add_argument("--num-labels", type=int, default=1000)
    p.add_argument("--drop-labels-probability", type=float, default=0.1)
    p.add_argument("--dropout", type=float, default=0.0, help="Decoder dropout rate.")
    p.add_argument(
        "--style", default="ar", choices=("ar", "masked"), help="The model `train` steps."
    )
    p.add_argument(
        "--remat",
        default="false",
        choices=("false", "true"),
        help="Rematerialise the decoder blocks in `train` (GIVTBackbone(remat=True)).",
    )
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--temp", type=float, default=0.95, help="AR sampling temperature.")
    p.add_argument("--maskgit-steps", type=int, default=16)
    p.add_argument("--maskgit-cfg-w", type=float, default=0.0)
    p.add_argument("--choice-temperature", type=float, default=35.0)
    p.add_argument("--cfg-w", type=float, default=0.4)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--only", default="train,ar,ar_cfg,maskgit")
    p.add_argument(
        "--dtype-policy",
        default="float32",
        choices=("float32", "mixed_bfloat16", "mixed_float16"),
        help="Keras dtype policy of every model (the mixture maths stays float32).",
    )
    p.add_argument(
        "--keep-going",
        action="store_true",
        help="Record an item that raises as {'error': ...} and go on with the next one.",
    )
    p.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="The device's peak rate for the policy's matmuls; adds `mfu` to `train`.",
    )
    p.add_argument("--json-out", default=None)
    args = p.parse_args(argv)
    for name in ("emb_dim", "layers", "heads", "mlp", "seq_len", "out_dim", "num_mixtures",
                 "num_labels", "batch", "maskgit_steps", "iters"):  # fmt: skip
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, received {getattr(args, name)}")
    if args.emb_dim % args.heads:
        p.error(f"--emb-dim ({args.emb_dim}) must be divisible by --heads ({args.heads})")
    if args.peak_tflops is not None and not args.peak_tflops > 0:
        p.error(f"--peak-tflops must be > 0, received {args.peak_tflops}")
    return args


def _sync(x):
    import keras

    keras.ops.convert_to_numpy(keras.tree.flatten(x)[0])


def timed(fn, iters):
    t0 = time.perf_counter()
    _sync(fn())
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        _sync(fn())
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "compile_s": compile_s}


def train_step_flops(backbone, batch):
    """Model FLOPs of one train step: 3x the forward matmuls, attention included.

    The forward pass multiplies each of the T positions by every kernel (weights of rank >= 2
    other than the position and label embeddings, which are looked up): 2 * P_mm FLOPs per
    position. Attention adds 4 * T * D per position and layer (scores and weighted sum over
    all T positions, as computed). The backward pass is counted as twice the forward;
    rematerialisation's recomputation is not counted (the usual MFU convention).
    """
    matmul_params = 0
    positions = None
    for w in backbone.weights:
        if w.path.endswith("position_embedding"):
            positions = int(w.shape[0])  # T: the label token included.
        elif len(w.shape) >= 2 and "label_embedding" not in w.path:
            matmul_params += int(np.prod(w.shape))
    if positions is None:
        raise ValueError("train_step_flops: the backbone has no position embedding")
    num_layers, width = backbone.num_decoder_layers, backbone.emb_dim
    forward = 2 * matmul_params * positions + 4 * num_layers * positions**2 * width
    return 3 * forward * batch


def _accelerator_peak_gib(reset=False):
    """Peak accelerator memory of this process so far in GiB (None on CPU); `reset` restarts it.

    torch resets its counter, so each item gets its own peak; jax cannot, so there an item's
    peak is the largest of it and the items before it (`train` runs first).
    """
    import keras

    if keras.config.backend() == "torch":
        import torch

        if not torch.cuda.is_available():
            return None
        peak = torch.cuda.max_memory_allocated() / 1024**3
        if reset:
            torch.cuda.reset_peak_memory_stats()
        return peak
    if keras.config.backend() == "jax":
        import jax

        device = jax.devices()[0]
        stats = device.memory_stats() if device.platform != "cpu" else None
        return stats["peak_bytes_in_use"] / 1024**3 if stats else None
    return None


def _devices():
    """The devices the backend computes on, with the accelerator's model where there is one."""
    import keras

    backend = keras.config.backend()
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return [f"cuda:0 ({torch.cuda.get_device_name(0)})"]
        return ["cpu:0"]
    if backend == "jax":
        import jax

        return [f"{d.platform}:{d.id} ({d.device_kind})" for d in jax.devices()]
    try:
        return [str(d) for d in keras.distribution.list_devices()]
    except (AttributeError, NotImplementedError):
        return []


def _cpu():
    """CPU model and whether it has AVX-512 (timings differ a lot across hosts)."""
    info = {"model": platform.processor() or platform.machine(), "avx512f": None}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return info
    for line in text.splitlines():
        if line.startswith("model name"):
            info["model"] = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            info["avx512f"] = "avx512f" in line.split()
    return info


def _torch_threads():
    """torch's intra-op threads and what generation uses (`keras_givt.utils.torch_threads`)."""
    import torch

    from keras_givt.utils import torch_threads

    setting = torch_threads.parse_setting(None)
    current = torch.get_num_threads()
    return {
        "torch_num_threads": current,
        "setting": setting,
        "busy_elsewhere": torch_threads.busy_elsewhere(),
        "generation_threads": torch_threads.choose_threads(setting, current),
    }


def main(argv=None):
    args = parse_args(argv)
    import keras

    import keras_givt

    keras.config.set_dtype_policy(args.dtype_policy)

    items = [s for s in args.only.split(",") if s]
    unknown = set(items) - {"train", "ar", "ar_cfg", "maskgit"}
    if unknown:
        raise SystemExit(f"--only: unknown items {sorted(unknown)}")
    common = dict(
        seq_len=args.seq_len,
        out_dim=args.out_dim,
        num_labels=args.num_labels,
        emb_dim=args.emb_dim,
        num_decoder_layers=args.layers,
        num_heads=args.heads,
        mlp_dim=args.mlp,
        num_mixtures=args.num_mixtures,
        per_channel_mixtures=False,
        fix_square_plus=True,
        drop_labels_probability=args.drop_labels_probability,
        dec_dropout_rate=args.dropout,
    )
    rng = np.random.default_rng(0)
    latents = rng.normal(size=(args.batch, args.seq_len, args.out_dim)).astype("float32")
    labels = rng.integers(0, args.num_labels, size=(args.batch,)).astype("int32")
    results = {}
    threads = _torch_threads() if keras.config.backend() == "torch" else None

    def measure(item, fn):
        """Times `fn` as `item`; prints the results so far (a partial record if stopped)."""
        try:
            results[item] = timed(fn, args.iters)
        except Exception as e:  # noqa: BLE001 -- only with --keep-going
            if not args.keep_going:
                raise
            results[item] = {"error": f"{type(e).__name__}: {e}"[:800]}
            return False
        peak = _accelerator_peak_gib(reset=True)
        if peak is not None:
            results[item]["accelerator_peak_gib"] = peak
        if item != "train":
            results[item]["per_image_s"] = results[item]["median_s"] / args.batch
        print(json.dumps({"partial": True, **results}, sort_keys=True), flush=True)
        return True

    def build(style, remat=False):
        if style == "ar":
            backbone = keras_givt.GIVTBackbone(style="ar", remat=remat, **common)
            return keras_givt.GIVTCausal(backbone, seed=0)
        backbone = keras_givt.GIVTBackbone(
            style="masked", mask_style="concat", remat=remat, **common
        )
        return keras_givt.GIVTMaskGIT(backbone, seed=0)

    if "train" in items:
        model = build(args.style, remat=args.remat == "true")
        model.compile(
            optimizer=keras_givt.models.optimizers.PerVariableAdam(1e-4, global_clipnorm=1.0)
        )
        results["num_params"] = int(model.backbone.count_params())
        batch = {"latents": latents, "labels": labels}
        flops = train_step_flops(model.backbone, args.batch)
        if measure("train", lambda: model.train_on_batch(batch)):
            train = results["train"]
            train["model_flops"] = flops
            train["tflops_per_s"] = flops / train["median_s"] / 1e12
            if args.peak_tflops:
                train["mfu"] = train["tflops_per_s"] / args.peak_tflops
        del model
    if {"ar", "ar_cfg"} & set(items):
        model = build("ar")
        results["num_params"] = int(model.backbone.count_params())
        if "ar" in items:
            measure(
                "ar",
                lambda: model.generate(labels=labels, temperature=args.temp, return_latents=True),
            )
        if "ar_cfg" in items:
            measure(
                "ar_cfg",
                lambda: model.generate(
                    labels=labels, temperature=args.temp, cfg_weight=args.cfg_w, return_latents=True
                ),
            )
    if "maskgit" in items:
        model = build("masked")
        results["num_params"] = int(model.backbone.count_params())
        measure(
            "maskgit",
            lambda: model.generate(
                labels=labels,
                num_steps=args.maskgit_steps,
                choice_temperature=args.choice_temperature,
                cfg_weight=args.maskgit_cfg_w or None,
                return_latents=True,
            ),
        )

    results["config"] = vars(args)
    results["env"] = {
        "backend": keras.config.backend(),
        "keras": keras.__version__,
        "keras_givt": keras_givt.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu": _cpu(),
        "devices": _devices(),
    }
    if threads is not None:
        results["env"]["torch_threads"] = threads
    line = json.dumps(results, sort_keys=True)
    if args.json_out:
        d = os.path.dirname(os.path.abspath(args.json_out))
        fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(line + "\n")
        os.replace(tmp, args.json_out)
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
