"""Peak memory and step time of one GIVT-Causal train step, with/without remat, float32/bf16.

    KERAS_BACKEND=jax python benchmarks/memory.py --batch 8
    KERAS_BACKEND=jax python benchmarks/memory.py --find-max-batch --budget-gib 24
    python benchmarks/memory.py --layers 4 --emb-dim 256 --heads 4 --mlp 1024 --batch 4

One train step is `train_on_batch` of a `GIVTCausal` compiled with Adam
(global-norm clipping 1): the mixture NLL of a (batch, seq_len, out_dim)
latent batch, its gradients and the update. The defaults are the published
GIVT-Causal 256 (24 layers, width 1024, 16 heads, MLP 4096, 256 tokens of
16 channels, 16 MV-diagonal mixtures, 1000 labels, decoder dropout 0.2,
label dropout 0.1).

Each configuration (remat off/on x float32/mixed_bfloat16, `--remat` and
`--dtype` pick) runs in a fresh subprocess of this script: it builds the
model, runs one compiling step and `--iters` timed ones, and exits. Its
peak resident memory is the child's `ru_maxrss` (`os.wait4`), so nothing
of one configuration (compiled programs, allocator pools) inflates the
next. The child also reports its RSS after building the model, before
training. On a GPU the numbers are host memory only.

Remat on CPU (4 layers, width 256, batch 64): torch 4.58 -> 3.01 GiB,
tensorflow 4.17 -> 2.12 GiB, ~1.5x the step time; jax 4.26 -> 2.58 GiB,
1.3x the step time (`results/memory_20261127_jax_remat_small_s14.json`)
with keras_givt's own recomputation (`keras_givt/layers/remat.py`); with
Keras' `jax.checkpoint` it was 4.30 -> 4.31 GiB, XLA's CPU compiler running
the recomputation in the forward pass.

`--find-max-batch` searches, per configuration, the largest batch whose
train step peaks at or below `--budget-gib` (`search_max_batch`): batches
double from `--batch` until two fit, then the line through their peaks
predicts the batch at the budget, which is probed with the one after it
(bisection where the line is wrong twice). A child whose RSS passes the
budget is stopped at once (so the search cannot exhaust the machine) and
counts as not fitting, as does one that fails.

`--plan-with-xla` (jax only) searches with XLA's buffer plan instead of
running each probe: a probe child builds the model and compiles the train
step at its batch without running it, and its peak is estimated as the
compiled program's bytes (`memory_analysis()`: arguments + outputs - the
donated ones + temporaries) plus an offset measured once, by a child that
compiles the step at `--calibration-batch` (default 8) and runs it (peak
RSS - program bytes at that batch: the Python runtime, libraries and
compiler outside XLA's buffers); the search starts at `--batch`.
At the published GIVT-Causal 256 size with remat a probe then costs one
compile (~150 s here) instead of a step that grows with the batch (about
38 minutes at batch 271). The answer is XLA's plan plus a measured offset,
not a measured peak at that batch; the record keeps every probe's program
bytes, the offset and the calibration run.

Prints one JSON object on stdout (progress goes to stderr).
"""

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import child_process  # noqa: E402  (benchmarks/child_process.py)

GIB = child_process.GIB
CONFIGS = {"remat": {"off": [False], "on": [True], "both": [False, True]}}
DTYPES = {
    "float32": ["float32"],
    "mixed_bfloat16": ["mixed_bfloat16"],
    "both": ["float32", "mixed_bfloat16"],
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=24)
    p.add_argument("--emb-dim", type=int, default=1024)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--mlp", type=int, default=4096)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--out-dim", type=int, default=16)
    p.add_argument("--num-mixtures", type=int, default=16)
    p.add_argument("--num-labels", type=int, default=1000)
    p.add_argument("--dropout", type=float, default=0.2, help="Decoder dropout (published: 0.2).")
    p.add_argument(
        "--batch", type=int, default=8, help="Batch (the first one tried when searching)."
    )
    p.add_argument(
        "--iters",
        type=int,
        default=3,
        help="Timed steps after the compiling one (0: the compiling step alone, a cheaper "
        "probe; a later step can peak a little higher: +1.3%% at 4 layers, width 256, batch 32, "
        "remat, jax; each run records `peak_after_first_step_gib`).",
    )
    p.add_argument("--remat", choices=("off", "on", "both"), default="both")
    p.add_argument("--dtype", choices=tuple(DTYPES), default="both")
    p.add_argument("--backend", choices=("jax", "tensorflow", "torch"), default=None)
    p.add_argument("--find-max-batch", action="store_true")
    p.add_argument(
        "--plan-with-xla",
        action="store_true",
        help="jax: search with the compiled train step's buffer plan plus a measured offset "
        "(each probe compiles; only the calibration at --calibration-batch runs a step).",
    )
    p.add_argument(
        "--calibration-batch",
        type=int,
        default=8,
        help="With --plan-with-xla: the batch whose real step measures the offset.",
    )
    p.add_argument("--budget-gib", type=float, default=24.0)
    p.add_argument("--max-batch", type=int, default=4096, help="Upper end of the search.")
    p.add_argument("--timeout-s", type=float, default=3600.0, help="Per child process.")
    p.add_argument("--json-out", default=None)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("layers", "emb_dim", "heads", "mlp", "seq_len", "out_dim", "num_mixtures"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1; received {getattr(args, name)}")
    if (
        args.batch < 1
        or args.iters < 0
        or args.max_batch < args.batch
        or args.calibration_batch < 1
    ):
        p.error(
            "--batch and --calibration-batch must be >= 1, --iters >= 0 and --max-batch >= "
            f"--batch; received {args.batch}, {args.calibration_batch}, {args.iters}, "
            f"{args.max_batch}"
        )
    if args.emb_dim % args.heads:
        p.error(f"--emb-dim ({args.emb_dim}) must be divisible by --heads ({args.heads})")
    if not args.budget_gib > 0:
        p.error(f"--budget-gib must be > 0; received {args.budget_gib}")
    backend = args.backend or os.environ.get("KERAS_BACKEND", "tensorflow")
    if args.plan_with_xla and (backend != "jax" or not args.find_max_batch):
        p.error(
            "--plan-with-xla needs --find-max-batch and the jax backend; received backend "
            f"{backend!r}, --find-max-batch {args.find_max_batch}"
        )
    return args


# --- the child: one configuration ------------------------------------------------


def worker(spec):
    """Builds the model of `spec`, runs `iters + 1` train steps, prints a JSON line."""
    import keras
    import numpy as np

    import keras_givt

    keras.config.set_dtype_policy(spec["dtype"])
    keras.utils.set_random_seed(0)
    backbone = keras_givt.GIVTBackbone(
        seq_len=spec["seq_len"],
        out_dim=spec["out_dim"],
        num_labels=spec["num_labels"],
        emb_dim=spec["emb_dim"],
        num_decoder_layers=spec["layers"],
        num_heads=spec["heads"],
        mlp_dim=spec["mlp"],
        num_mixtures=spec["num_mixtures"],
        per_channel_mixtures=False,
        fix_square_plus=True,
        drop_labels_probability=0.1,
        dec_dropout_rate=spec["dropout"],
        remat=spec["remat"],
    )
    model = keras_givt.GIVTCausal(backbone, seed=0)
    model.compile(optimizer=keras_givt.models.optimizers.PerVariableAdam(1e-4, global_clipnorm=1.0))
    rng = np.random.default_rng(0)
    b = spec["batch"]
    batch = {
        "latents": rng.normal(size=(b, spec["seq_len"], spec["out_dim"])).astype("float32"),
        "labels": rng.integers(0, spec["num_labels"], size=(b,)).astype("int32"),
    }
    rss_built = child_process.current_rss()
    if spec.get("plan"):
        print("RESULT " + json.dumps(_xla_plan(model, batch, spec["plan"] == "run")), flush=True)
        return
    t0 = time.perf_counter()
    loss = float(np.asarray(model.train_on_batch(batch)))
    first_s = time.perf_counter() - t0
    peak_first = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux.
    times = []
    for _ in range(spec["iters"]):
        t0 = time.perf_counter()
        loss = float(np.asarray(model.train_on_batch(batch)))
        times.append(time.perf_counter() - t0)
    out = {
        "params": int(backbone.count_params()),
        "rss_after_build_gib": rss_built / GIB,
        "peak_after_first_step_gib": peak_first / GIB,
        "first_step_s": first_s,
        "median_step_s": statistics.median(times) if times else None,
        "min_step_s": min(times) if times else None,
        "loss": loss,
        "loss_finite": bool(np.isfinite(loss)),
    }
    print("RESULT " + json.dumps(out), flush=True)


def _xla_plan(model, batch, run):
    """jax: compiles `model`'s train step for `batch` without Keras' `fit` machinery
    and returns the program's bytes from `memory_analysis()`; `run`: also runs the
    compiled step once on the model's state (the calibration: its peak RSS).

    Uses Keras' own jax trainer pieces (`_symbolic_build`, `_get_jax_state`,
    `train_step(state, data)`), as `train_on_batch` does.
    """
    import jax
    import numpy as np

    model._symbolic_build(data_batch=batch)
    model.optimizer.build(model.trainable_variables)
    state = model._get_jax_state(
        trainable_variables=True,
        non_trainable_variables=True,
        optimizer_variables=True,
        metrics_variables=True,
    )
    data = (batch,)  # Keras hands `train_step` its data as a tuple.
    t0 = time.perf_counter()
    compiled = jax.jit(model.train_step, donate_argnums=0).lower(state, data).compile()
    compile_s = time.perf_counter() - t0
    m = compiled.memory_analysis()
    program = (
        m.argument_size_in_bytes
        + m.output_size_in_bytes
        - m.alias_size_in_bytes
        + m.temp_size_in_bytes
    )
    out = {
        "params": int(model.backbone.count_params()),
        "compile_s": compile_s,
        "program_gib": program / GIB,
        "temp_gib": m.temp_size_in_bytes / GIB,
        "argument_gib": m.argument_size_in_bytes / GIB,
    }
    if run:
        t0 = time.perf_counter()
        logs, _ = compiled(state, data)
        loss = float(np.asarray(logs["loss"]))
        out["step_s"] = time.perf_counter() - t0
        out["loss"] = loss
        out["loss_finite"] = bool(np.isfinite(loss))
    return out


# --- the parent: one child per configuration ----------------------------------------


def run_config(args, remat, dtype, batch, kill_above=None, plan=None):
    """Runs one configuration in a fresh process; returns its record. `plan`:
    None (train steps), "compile" or "run" (`_xla_plan`)."""
    spec = dict(
        layers=args.layers,
        emb_dim=args.emb_dim,
        heads=args.heads,
        mlp=args.mlp,
        seq_len=args.seq_len,
        out_dim=args.out_dim,
        num_mixtures=args.num_mixtures,
        num_labels=args.num_labels,
        dropout=args.dropout,
        iters=args.iters,
        remat=remat,
        dtype=dtype,
        batch=batch,
        plan=plan,
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if args.backend:
        env["KERAS_BACKEND"] = args.backend
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    record = {"remat": remat, "dtype": dtype, "batch": batch}
    if plan:
        record["plan"] = plan
    print(
        f"[memory] remat={remat} dtype={dtype} batch={batch} {plan or ''}...",
        file=sys.stderr,
        flush=True,
    )
    run = child_process.run_measured(cmd, env=env, timeout_s=args.timeout_s, kill_above=kill_above)
    stdout, stderr, stopped = run["stdout"], run["stderr"], run["stopped"]
    record["peak_rss_gib"] = run["peak_rss_bytes"] / GIB
    record["wall_s"] = run["wall_s"]
    lines = [l for l in stdout.splitlines() if l.startswith("RESULT ")]
    if stopped:
        record.update(ok=False, error=stopped)
    elif run["returncode"] != 0 or not lines:
        tail = (stderr or "").strip().splitlines()[-3:]
        record.update(ok=False, error=f"exit status {run['returncode']}: " + " | ".join(tail))
    else:
        record.update(ok=True, **json.loads(lines[-1][len("RESULT ") :]))
    print(f"[memory]   -> {json.dumps(record)}", file=sys.stderr, flush=True)
    return record


def search_max_batch(probe, start, max_batch, budget):
    """The largest batch in `[1, max_batch]` whose peak is within `budget`.

    `probe(batch)` runs one batch and returns its peak (bytes), or None when
    the run failed or was stopped (it does not fit). Peaks grow with the
    batch, so the search keeps a bracket: `good`, the largest batch known to
    fit (0 for none), and `bad`, the smallest known not to; it ends when
    `bad == good + 1`.

    A probe at the published sizes takes minutes (GIVT-Causal 256 with remat
    at batch 16: 136 s a step on 2 cores), so the search predicts where it can:
    once two batches fit, the line through the peaks of the two largest
    gives the batch at which the budget is reached, and that batch is probed
    next (clipped into the bracket). When the line is right this takes two
    probes: the predicted batch fits, and the next prediction, clipped to
    the batch after it, does not. Before two batches fit, it doubles from
    `start` (halves below it while nothing fits); after two wrong predictions
    in a row it bisects, so a curved peak cannot make it creep; it also
    bisects when one batch fits and a larger one failed before a line exists.
    Returns `(good, probes)`, `probes` the `(batch, peak)` pairs in the order
    run.
    """
    probes = []
    good, bad = 0, max_batch + 1
    misses = 0  # Predicted batches in a row that did not fit.
    batch, predicted = min(start, max_batch), False
    while True:
        peak = probe(batch)
        probes.append((batch, peak))
        if peak is not None and peak <= budget:
            good, misses = max(good, batch), 0
        else:
            bad, misses = min(bad, batch), misses + int(predicted)
        if bad - good <= 1:
            return good, probes
        fitting = sorted((b, p) for b, p in probes if p is not None and p <= budget)
        (b1, p1), (b2, p2) = ([(0, 0), (0, 0)] + fitting)[-2:]
        predicted = len(fitting) >= 2 and p2 > p1 and misses < 2
        if predicted:
            batch = b2 + int((budget - p2) // ((p2 - p1) / (b2 - b1)))
        elif misses >= 2 or (good and bad <= max_batch):
            # Two wrong predictions, or one fit below a failure and no line yet: bisect
            # (doubling from the fit would be clipped to bad - 1 and creep down).
            batch, misses = (good + bad) // 2, 0
        else:  # Double up from a fit; halve down while nothing fits.
            batch = 2 * good if good else bad // 2
        batch = min(max(batch, good + 1), bad - 1)


def find_max_batch(args, remat, dtype):
    """The largest batch whose train step peaks within `--budget-gib` (`search_max_batch`)."""
    budget = args.budget_gib * GIB
    records = []
    result = {"remat": remat, "dtype": dtype, "budget_gib": args.budget_gib}

    if args.plan_with_xla:
        calibration = run_config(
            args, remat, dtype, args.calibration_batch, kill_above=budget, plan="run"
        )
        result["calibration"] = calibration
        if not calibration["ok"]:
            return dict(result, max_batch=None, error="the calibration run failed")
        offset = calibration["peak_rss_gib"] - calibration["program_gib"]
        result["offset_gib"] = offset

        def probe(batch):
            r = run_config(args, remat, dtype, batch, kill_above=budget, plan="compile")
            records.append(r)
            if not r["ok"]:
                return None
            r["estimated_peak_gib"] = r["program_gib"] + offset
            return r["estimated_peak_gib"] * GIB

    else:

        def probe(batch):
            r = run_config(args, remat, dtype, batch, kill_above=budget)
            records.append(r)
            return r["peak_rss_gib"] * GIB if r["ok"] else None

    good, _ = search_max_batch(probe, args.batch, args.max_batch, budget)
    return dict(
        result,
        max_batch=good,
        capped_at_max_batch=good == args.max_batch,
        probes=records,
    )


def _env(args):
    return {
        "backend": args.backend or os.environ.get("KERAS_BACKEND"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_avg": os.getloadavg(),
        "mem_total_gib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB,
    }


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    configs = [(r, d) for r in CONFIGS["remat"][args.remat] for d in DTYPES[args.dtype]]
    result = {"config": {k: v for k, v in vars(args).items() if k != "worker"}}
    if args.find_max_batch:
        result["max_batch"] = [find_max_batch(args, r, d) for r, d in configs]
    else:
        result["runs"] = [run_config(args, r, d, args.batch) for r, d in configs]
    result["env"] = _env(args)
    line = json.dumps(result, sort_keys=True)
    if args.json_out:
        tmp = args.json_out + f".tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(line + "\n")
        os.replace(tmp, args.json_out)
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
