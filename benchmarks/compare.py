"""keras_givt against big_vision, side by side: alternating rounds of fresh subprocesses.

    python benchmarks/compare.py --rounds 3 [--backends jax,tensorflow,torch] [--contended]
        [--only train,ar,ar_cfg,maskgit] [--iters 3] [--json-out PATH]

Each round runs big_vision's `bench_bv.py` (the reference, in its own venv) and
`benchmarks/bench.py` once per requested backend, each in a fresh subprocess,
one after the other. The order rotates from round to round (round 1: bv, jax,
tensorflow, torch; round 2: jax, tensorflow, torch, bv; ...) so that no side
always runs first. Both scripts get the same size flags (the defaults are the
reference sizes). The table gives, per round, each side's median seconds per
item, the ratio keras_givt / big_vision per backend, each backend's ratio to
jax, and the spread (min-max) of every ratio over the rounds.

`--contended` starts one CPU-bound process (`python -c "while True: pass"`)
before the first timed run and stops it after the last one (also on Ctrl-C or
an error), so every run shares the CPU with it; the torch / jax ratios of `ar`
and `ar_cfg` are the contended-sampling check of issue #18.

`--variant LABEL BACKEND [NAME=VALUE ...]` adds a keras_givt side with extra
environment variables (e.g. `--variant torch1 torch KERAS_GIVT_TORCH_THREADS=1`);
`--no-reference` leaves big_vision out (backend-only comparisons).

The JSON (`--json-out`, default `benchmarks/results/compare_<UTC date-time>.json`)
holds every run's output, the order of each round, the summary ratios, the CPU
model (/proc/cpuinfo), the load average before and after, and the date.
"""

import argparse
import datetime
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
ITEMS = ("train", "ar", "ar_cfg", "maskgit")
BACKENDS = ("jax", "tensorflow", "torch")
REFERENCE = "bv"
DEFAULT_BV_ROOT = os.path.join(os.path.dirname(REPO), "shared", "reference", "big_vision_bench")
DEFAULT_BV_VENV = "/tmp/bv_bench_venv"
# Size / timing flags passed unchanged to both bench.py and bench_bv.py.
SIZE_FLAGS = {
    "emb_dim": 256,
    "layers": 4,
    "heads": 4,
    "mlp": 1024,
    "seq_len": 256,
    "out_dim": 16,
    "num_mixtures": 16,
    "batch": 8,
    "maskgit_steps": 16,
    "cfg_w": 0.4,
    "iters": 3,
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--backends", default="jax,tensorflow,torch", help="keras_givt backends")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", default=",".join(ITEMS))
    for name, default in SIZE_FLAGS.items():
        p.add_argument("--" + name.replace("_", "-"), type=type(default), default=default)
    p.add_argument("--contended", action="store_true", help="one busy process during the runs")
    p.add_argument("--no-reference", dest="reference", action="store_false", help="skip big_vision")
    p.add_argument(
        "--variant",
        nargs="+",
        action="append",
        default=[],
        metavar="ARG",
        help="LABEL BACKEND [NAME=VALUE ...]: a keras_givt side with extra env variables",
    )
    p.add_argument(
        "--bv-venv", default=DEFAULT_BV_VENV, help="venv built by big_vision_bench/setup.sh"
    )
    p.add_argument(
        "--bv-src",
        default=os.path.join(DEFAULT_BV_ROOT, "src"),
        help="folder holding big_vision/ (BIG_VISION_SRC)",
    )
    p.add_argument(
        "--bv-script",
        default=None,
        help="bench_bv.py (default: next to --bv-src)",
    )
    p.add_argument("--python", default=sys.executable, help="Python of keras_givt")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    p.add_argument("--json-out", default=None)
    args = p.parse_args(argv)

    if args.rounds < 1:
        p.error(f"--rounds must be >= 1, got {args.rounds}")
    if args.iters < 1:
        p.error(f"--iters must be >= 1, got {args.iters}")
    items = [s for s in args.only.split(",") if s]
    bad = sorted(set(items) - set(ITEMS))
    if bad or not items:
        p.error(f"--only: unknown items {bad} (known: {', '.join(ITEMS)})")
    args.items = items
    backends = [s for s in args.backends.split(",") if s]
    bad = sorted(set(backends) - set(BACKENDS))
    if bad:
        p.error(f"--backends: unknown backends {bad} (known: {', '.join(BACKENDS)})")
    sides = [(b, b, {}) for b in backends]
    for v in args.variant:
        if len(v) < 2 or v[1] not in BACKENDS:
            p.error(f"--variant needs LABEL BACKEND [NAME=VALUE ...], got {v}")
        env = {}
        for pair in v[2:]:
            if "=" not in pair or not pair.split("=", 1)[0]:
                p.error(f"--variant: expected NAME=VALUE, got {pair!r}")
            name, value = pair.split("=", 1)
            env[name] = value
        sides.append((v[0], v[1], env))
    labels = [s[0] for s in sides]
    if len(set(labels)) != len(labels) or REFERENCE in labels:
        p.error(f"side labels must be distinct and not {REFERENCE!r}, got {labels}")
    args.sides = sides
    if not sides and not args.reference:
        p.error("nothing to run: no backend and --no-reference")
    if args.bv_script is None:
        args.bv_script = os.path.join(os.path.dirname(os.path.abspath(args.bv_src)), "bench_bv.py")
    if args.reference:
        _check_reference(p, args)
    if args.json_out is None:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        args.json_out = os.path.join(HERE, "results", f"compare_{stamp}.json")
    return args


def _check_reference(p, args):
    python = os.path.join(args.bv_venv, "bin", "python")
    setup = os.path.join(DEFAULT_BV_ROOT, "setup.sh")
    if not os.path.isfile(python):
        p.error(
            f"--bv-venv: no {python}; build the big_vision venv with `bash {setup} "
            f"{args.bv_venv}` (or pass --no-reference)"
        )
    if not os.path.isdir(os.path.join(args.bv_src, "big_vision")):
        p.error(f"--bv-src: no big_vision/ package under {args.bv_src!r}")
    if not os.path.isfile(args.bv_script):
        p.error(f"--bv-script: no file {args.bv_script!r}")
    args.bv_python = python


def cpu_info():
    """CPU model name, family/model numbers and vector flags from /proc/cpuinfo."""
    info = {"model_name": platform.processor() or platform.machine()}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return info
    for line in text.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "model name":
            info["model_name"] = value
        elif key in ("cpu family", "model", "stepping") and key not in info:
            info[key.replace(" ", "_")] = value
        elif key == "flags" and "flags" not in info:
            flags = set(value.split())
            info["flags"] = sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_tile"})
        if line == "" and "flags" in info:
            break  # The first processor is enough.
    return info


def loadavg():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _size_argv(args):
    out = []
    for name in SIZE_FLAGS:
        out += ["--" + name.replace("_", "-"), str(getattr(args, name))]
    return out + ["--only", ",".join(args.items)]


def _command(args, side):
    """(argv, env) of one run; `side` is REFERENCE or (label, backend, extra_env)."""
    env = dict(os.environ)
    if side == REFERENCE:
        env["BIG_VISION_SRC"] = os.path.abspath(args.bv_src)
        return [args.bv_python, args.bv_script] + _size_argv(args), env
    _, backend, extra = side
    env["KERAS_BACKEND"] = backend
    env.update(extra)
    return [args.python, os.path.join(HERE, "bench.py")] + _size_argv(args), env


def run_one(args, side):
    """Runs one side in a fresh subprocess; returns `{item: median_s}` and the raw JSON."""
    argv, env = _command(args, side)
    t0 = time.perf_counter()
    proc = subprocess.run(
        argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=args.timeout
    )
    wall = time.perf_counter() - t0
    lines = [l for l in proc.stdout.splitlines() if l.strip()]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout)[-3000:]
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}:\n{tail}")
    raw = json.loads(lines[-1])
    medians = {}
    for item in args.items:
        key = item
        if side == REFERENCE and item == "train":
            key = "train_ar"  # bench_bv.py names its train step after the model style.
        if key not in raw:
            raise RuntimeError(f"{' '.join(argv)}: no {key!r} in its output")
        medians[item] = float(raw[key]["median_s"])
    return {"median_s": medians, "wall_s": round(wall, 1), "output": raw}


def round_order(sides, r):
    """The sides rotated by `r` places (every side leads once in len(sides) rounds)."""
    k = r % len(sides)
    return sides[k:] + sides[:k]


class BusyProcess:
    """One CPU-bound Python process in its own process group, for the life of a `with`."""

    def __init__(self, python):
        self.python = python
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen(
            [self.python, "-c", "while True: pass"], start_new_session=True
        )
        return self

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return False


def _ratio(a, b):
    return a / b if b else float("nan")


def summarize(args, rounds):
    """Ratios per round: keras_givt / big_vision and side / jax, with their spread."""
    labels = [s[0] for s in args.sides]
    summary = {"vs_big_vision": {}, "vs_jax": {}}
    for label in labels:
        for item in args.items:
            if args.reference:
                vals = [
                    _ratio(
                        r["runs"][label]["median_s"][item], r["runs"][REFERENCE]["median_s"][item]
                    )
                    for r in rounds
                ]
                summary["vs_big_vision"].setdefault(label, {})[item] = _spread(vals)
            if "jax" in labels and label != "jax":
                vals = [
                    _ratio(r["runs"][label]["median_s"][item], r["runs"]["jax"]["median_s"][item])
                    for r in rounds
                ]
                summary["vs_jax"].setdefault(label, {})[item] = _spread(vals)
    return summary


def _spread(vals):
    return {
        "per_round": [round(v, 3) for v in vals],
        "min": round(min(vals), 3),
        "max": round(max(vals), 3),
        "median": round(statistics.median(vals), 3),
    }


def format_table(args, rounds, summary):
    items = args.items
    labels = ([REFERENCE] if args.reference else []) + [s[0] for s in args.sides]
    head = "| side | round | " + " | ".join(items) + " |"
    sep = "|---|---|" + "---|" * len(items)
    out = ["Median seconds per call:", head, sep]
    for label in labels:
        for i, r in enumerate(rounds):
            cells = [f"{r['runs'][label]['median_s'][it]:.3f}" for it in items]
            out.append(f"| {label} | {i + 1} | " + " | ".join(cells) + " |")
    for key, title in (("vs_big_vision", "keras_givt / big_vision"), ("vs_jax", "side / jax")):
        if not summary[key]:
            continue
        out += ["", f"Ratio {title} (per round; min-max):", "| side | " + " | ".join(items) + " |"]
        out.append("|---|" + "---|" * len(items))
        for label, per_item in summary[key].items():
            cells = []
            for it in items:
                s = per_item[it]
                rs = " / ".join(f"{v:.2f}" for v in s["per_round"])
                cells.append(f"{rs} ({s['min']:.2f}-{s['max']:.2f})")
            out.append(f"| {label} | " + " | ".join(cells) + " |")
    if args.contended:
        torch_sides = [s[0] for s in args.sides if s[1] == "torch"]
        picked = [it for it in ("ar", "ar_cfg") if it in items]
        if torch_sides and picked and summary["vs_jax"]:
            out += ["", "Contended torch / jax (one busy process on the machine):"]
            for label in torch_sides:
                for it in picked:
                    s = summary["vs_jax"][label][it]
                    rs = " / ".join(f"{v:.2f}" for v in s["per_round"])
                    out.append(f"- {label} {it}: {rs} (max {s['max']:.2f})")
    return "\n".join(out)


def _cpu_line(cpu):
    extra = [f"{k.replace('_', ' ')} {cpu[k]}" for k in ("cpu_family", "model") if k in cpu]
    return ", ".join([cpu["model_name"]] + extra + cpu.get("flags", []))


def _write_json(path, obj):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None):
    args = parse_args(argv)
    sides = ([REFERENCE] if args.reference else []) + list(args.sides)
    record = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_info(),
        "cpu_count": os.cpu_count(),
        "loadavg_before": loadavg(),
        "contended": args.contended,
        "config": {
            **{n: getattr(args, n) for n in SIZE_FLAGS},
            "items": args.items,
            "rounds": args.rounds,
            "sides": [
                REFERENCE if s == REFERENCE else {"label": s[0], "backend": s[1], "env": s[2]}
                for s in sides
            ],
        },
        "rounds": [],
    }
    # SIGTERM unwinds like Ctrl-C: the running benchmark and the busy process are stopped.
    signal.signal(signal.SIGTERM, _terminate)
    busy = BusyProcess(args.python) if args.contended else None
    if busy is not None:
        busy.__enter__()
    try:
        for r in range(args.rounds):
            order = round_order(sides, r)
            names = [REFERENCE if s == REFERENCE else s[0] for s in order]
            print(f"round {r + 1}/{args.rounds}: {', '.join(names)}", file=sys.stderr, flush=True)
            runs = {}
            for side, name in zip(order, names):
                runs[name] = run_one(args, side)
                meds = ", ".join(f"{k} {v:.3f}" for k, v in runs[name]["median_s"].items())
                threads = runs[name]["output"].get("env", {}).get("torch_threads")
                if threads:
                    meds += f" (generation threads {threads['generation_threads']})"
                print(f"  {name}: {meds}", file=sys.stderr, flush=True)
            record["rounds"].append({"order": names, "runs": runs})
    finally:
        if busy is not None:
            busy.__exit__(None, None, None)
    record["loadavg_after"] = loadavg()
    record["summary"] = summarize(args, record["rounds"])
    print(format_table(args, record["rounds"], record["summary"]))
    print(
        f"\nCPU: {_cpu_line(record['cpu'])} ({record['cpu_count']} cores); load average before "
        f"{record['loadavg_before']}, after {record['loadavg_after']}"
        + ("; contended (one busy process)" if args.contended else "")
    )
    _write_json(args.json_out, record)
    print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
