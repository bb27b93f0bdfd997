"""GIVT on a GPU: reference and published sizes, float32 and bf16, with the train step's MFU.

    python benchmarks/accelerator.py [--backends torch,jax] [--runs NAME,...] [--iters 3]
        [--deadline-s 480] [--json-out PATH]

1. Measures the card's dense bf16 matmul rate: (8192, 8192) x (8192, 8192) products on
   random data, the median of 10 after 3 warm-ups, timed with device synchronisation
   (torch if installed, else jax). That rate is the MFU denominator, so the MFU says how
   much of what this card does in practice a train step gets, not of a datasheet figure.
2. Runs `benchmarks/bench.py` once per (run, backend), each in a fresh subprocess, in the
   order of `RUNS` (most wanted first) and the order of `--backends`:

   - `published_causal`: GIVT-Causal 256's architecture (`givt_causal_imagenet256`:
     24 layers, width 1024, 16 heads, MLP 4096, 16 mixtures, 256 tokens of 16 channels),
     `mixed_bfloat16`, batch 32: a train step (the preset's dropout), and sampling with
     the preset's temperature and DB-CFG weight.
   - `published_maskgit`: GIVT-MaskGIT 256's (`givt_maskgit_imagenet256`), the same
     policy and batch: a train step of the masked model and 16-step sampling.
   - `reference_f32` / `reference_bf16`: the reference sizes of `bench.py` (width 256,
     4 layers, batch 8) in float32 / `mixed_bfloat16`, all four items.
   - `published_causal_f32`: the GIVT-Causal 256 train step in float32, batch 32.

   A run that cannot start with 30 s left before `--deadline-s` is skipped, and each one is
   stopped at the deadline, so a lease of fixed length returns what fit in it.
3. Prints one table (seconds per train step, model TFLOP/s, MFU, seconds per sampled image,
   peak accelerator memory) and keeps the whole record, rewritten after each run, in
   `--json-out`.

The model FLOPs of a train step are `bench.train_step_flops` (3x the forward matmuls,
attention included, rematerialisation not counted). float32 runs report TFLOP/s but no
MFU: jax computes float32 matmuls in TF32 on this hardware by default, torch does not.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import child_process  # noqa: E402
import compare  # noqa: E402
import published_sizes  # noqa: E402

PUBLISHED_BATCH = 32
BF16 = ["--dtype-policy", "mixed_bfloat16"]


def _published(preset, items):
    model, generate, style = published_sizes.preset_flags(preset)
    # The preset's sampling flags without its `--only <item>`: this run asks for `items`.
    at = generate.index("--only")
    sampling = generate[:at] + generate[at + 2 :]
    return model + sampling + ["--only", items, "--style", style]


RUNS = {
    "published_causal": lambda: _published("givt_causal_imagenet256", "train,ar_cfg")
    + BF16
    + ["--batch", str(PUBLISHED_BATCH)],
    "published_maskgit": lambda: _published("givt_maskgit_imagenet256", "train,maskgit")
    + BF16
    + ["--batch", str(PUBLISHED_BATCH)],
    "reference_f32": lambda: ["--dtype-policy", "float32"],
    "reference_bf16": lambda: list(BF16),
    "published_causal_f32": lambda: _published("givt_causal_imagenet256", "train")
    + ["--dtype-policy", "float32", "--batch", str(PUBLISHED_BATCH)],
}
MIN_START_S = 30.0


def measure_matmul_tflops(backend, n=8192, warmup=3, reps=10):
    """Median dense bf16 (n, n) x (n, n) rate of the first accelerator in TFLOP/s."""
    import statistics

    times = []
    if backend == "torch":
        import torch

        a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        for i in range(warmup + reps):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            a @ b
            torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        name = torch.cuda.get_device_name(0)
    else:
        import jax
        import jax.numpy as jnp

        ka, kb = jax.random.split(jax.random.key(0))
        a = jax.random.normal(ka, (n, n), jnp.bfloat16)
        b = jax.random.normal(kb, (n, n), jnp.bfloat16)
        matmul = jax.jit(jnp.matmul)
        for i in range(warmup + reps):
            t0 = time.perf_counter()
            matmul(a, b).block_until_ready()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        name = jax.devices()[0].device_kind
    return {
        "device": name,
        "backend": backend,
        "tflops": 2 * n**3 / statistics.median(times) / 1e12,
    }


def _gpu_info():
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
             "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        return out.stdout.strip() or out.stderr.strip()
    except (OSError, subprocess.SubprocessError) as e:
        return f"nvidia-smi unavailable: {e}"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backends", default="torch,jax")
    p.add_argument("--runs", default=",".join(RUNS))
    p.add_argument("--iters", type=int, default=3, help="Timed calls after the first one.")
    p.add_argument("--deadline-s", type=float, default=480.0, help="For the whole script.")
    p.add_argument("--json-out", default=None)
    p.add_argument("--matmul-n", type=int, default=8192, help="Size of the rate's matmuls.")
    p.add_argument("--worker-matmul", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.backends = [b for b in args.backends.split(",") if b]
    args.runs = [r for r in args.runs.split(",") if r]
    for flag, got, known in (
        ("--backends", args.backends, ("jax", "tensorflow", "torch")),
        ("--runs", args.runs, tuple(RUNS)),
    ):
        bad = sorted(set(got) - set(known))
        if bad or not got:
            p.error(f"{flag}: expected some of {list(known)}, received {got}")
    if args.iters < 1:
        p.error(f"--iters must be >= 1, received {args.iters}")
    if not args.deadline_s > 0:
        p.error(f"--deadline-s must be > 0, received {args.deadline_s}")
    if args.json_out is None:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        args.json_out = os.path.join(HERE, "results", f"accelerator_{stamp}.json")
    return args


def _run_json(argv, env, timeout_s):
    out = child_process.run_measured(argv, env=env, cwd=compare.REPO, timeout_s=timeout_s)
    lines = [l for l in out["stdout"].splitlines() if l.strip().startswith("{")]
    record = {"wall_s": out["wall_s"], "peak_rss_gib": out["peak_rss_bytes"] / child_process.GIB}
    if out["returncode"] != 0 or not lines:
        tail = (out["stderr"] or out["stdout"]).strip().splitlines()[-6:]
        record.update(ok=False, error=out["stopped"] or f"exit {out['returncode']}", tail=tail)
        if lines:  # The items that finished before it stopped (bench.py's partial lines).
            record["result"] = json.loads(lines[-1])
        return record
    record.update(ok=True, result=json.loads(lines[-1]))
    return record


def _num(v, fmt):
    return "-" if v is None else format(v, fmt)


def format_table(record):
    rows = [
        "| run | backend | train s/step | model TFLOP/s | MFU | sampling | s/image "
        "| GPU peak GiB (train / sampling) | first call s (train / sampling) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, per_backend in record["runs"].items():
        for backend, r in per_backend.items():
            res = r.get("result")
            if res is None:
                rows.append(f"| {name} | {backend} | {r.get('error')} | | | | | | |")
                continue
            if not r["ok"]:
                rows.append(
                    f"| {name} | {backend} | stopped ({r.get('error')}) after: | | | | | | |"
                )
            train = res.get("train", {})
            samples = [k for k in ("ar", "ar_cfg", "maskgit") if k in res] or [None]
            for i, item in enumerate(samples):
                t = train if i == 0 else {}
                s = res.get(item, {}) if item else {}
                cells = [name, backend]
                if "error" in t:
                    cells += [t["error"][:120], "", ""]
                else:
                    mfu = t.get("mfu")
                    cells += [
                        _num(t.get("median_s"), ".4f"),
                        _num(t.get("tflops_per_s"), ".2f"),
                        "-" if mfu is None else f"{mfu:.1%}",
                    ]
                cells.append(item or "")
                cells.append(
                    s["error"][:120] if "error" in s else _num(s.get("per_image_s"), ".4f")
                )
                peaks = [t.get("accelerator_peak_gib"), s.get("accelerator_peak_gib")]
                cells.append(" / ".join(_num(v, ".1f") for v in peaks))
                cells.append(
                    " / ".join(_num(v, ".1f") for v in (t.get("compile_s"), s.get("compile_s")))
                )
                rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv=None):
    args = parse_args(argv)
    if args.worker_matmul:
        print(json.dumps(measure_matmul_tflops(args.worker_matmul, n=args.matmul_n)))
        return 0
    # The preset configs are read in this process: import Keras on a backend that is installed.
    os.environ.setdefault("KERAS_BACKEND", args.backends[0])
    t_start = time.time()
    left = lambda: args.deadline_s - (time.time() - t_start)  # noqa: E731
    record = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "gpu": _gpu_info(),
        "cpu": compare.cpu_info(),
        "cpu_count": os.cpu_count(),
        "config": {"backends": args.backends, "runs": args.runs, "iters": args.iters,
                   "published_batch": PUBLISHED_BATCH},  # fmt: skip
        "matmul_bf16": None,
        "runs": {},
    }
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    for backend in ("torch", "jax"):
        m = _run_json(
            [sys.executable, os.path.abspath(__file__), "--worker-matmul", backend]
            + ["--matmul-n", str(args.matmul_n)],
            env,
            120,
        )
        if m["ok"]:
            record["matmul_bf16"] = m["result"]
            break
        record.setdefault("matmul_errors", {})[backend] = m.get("tail")
    peak = record["matmul_bf16"]["tflops"] if record["matmul_bf16"] else None
    print(f"[accelerator] {record['gpu']}; bf16 matmul: {record['matmul_bf16']}", flush=True)
    compare._write_json(args.json_out, record)
    for name in args.runs:
        for backend in args.backends:
            if left() < MIN_START_S:
                record["runs"].setdefault(name, {})[backend] = {"ok": False, "error": "skipped"}
                continue
            flags = RUNS[name]() + ["--iters", str(args.iters), "--keep-going"]
            if peak and "mixed_bfloat16" in flags:
                flags += ["--peak-tflops", f"{peak:.3f}"]
            argv = [sys.executable, os.path.join(HERE, "bench.py")] + flags
            print(f"[accelerator] {name} on {backend} ({left():.0f} s left) ...", flush=True)
            r = _run_json(argv, dict(env, KERAS_BACKEND=backend), left())
            r["argv"] = argv[1:]
            record["runs"].setdefault(name, {})[backend] = r
            print(f"    done in {r['wall_s']:.0f} s: {'ok' if r['ok'] else r}", flush=True)
            compare._write_json(args.json_out, record)
    table = format_table(record)
    record["table"] = table
    compare._write_json(args.json_out, record)
    print(table)
    print(f"\nwrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
