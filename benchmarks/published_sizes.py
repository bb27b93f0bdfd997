"""The published GIVT architectures on this CPU: keras_givt (3 backends) beside big_vision.

    python benchmarks/published_sizes.py [--archs givt_causal_imagenet256,...]
        [--backends jax,tensorflow,torch] [--items generate,train,train_remat]
        [--json-out PATH]

For every published GIVT preset (`keras_givt.models.givt.givt_presets`: the
24-layer, width-1024 decoders of GIVT-Causal 256, GIVT-MaskGIT 256 and
GIVT-MaskGIT 512) it builds the architecture from the preset's config with
random weights and times three pieces of work, each in a fresh subprocess
whose peak resident memory (`ru_maxrss`, `benchmarks/child_process.py`) is
recorded:

- `generate`: one image's tokens (batch 1) with the preset's sampling
  defaults: GIVT-Causal with temperature 0.95 and DB-CFG 0.4 (KV cache);
  GIVT-MaskGIT 16 steps, choice temperature 35 with DB-CFG 0.1 (256) or 140
  without (512). big_vision: `decode.generate` / `parallel_decode.decode_masked`.
- `train`: one optimizer step (mixture NLL, gradients, the tasks' default Adam,
  `PerVariableAdam`, with global-norm clipping) at batch 2, the preset's dropout rates, no rematerialisation.
  big_vision: its loop-over-layers decoder (`scan=False`).
- `train_remat`: the same with the decoder blocks rematerialised:
  `GIVTBackbone(remat=True)`; big_vision's published setting `scan=True` with
  `remat_policy="nothing_saveable"`.

keras_givt runs `benchmarks/bench.py`, big_vision its own `bench_bv.py` (in
its venv, `../shared/reference/big_vision_bench/setup.sh`), with the same
size and sampling flags. Time is the one timed call after a first, compiling
call (`--iters`; the first call's time is kept as `first_s`); memory is the
peak of the whole process (build, compile, both calls). The sides of one
architecture and item run back to back, so the ratios are side by side.

Prints a markdown table per architecture (the README's "Published sizes"
tables) and writes the JSON record (default
`benchmarks/results/published_sizes_<UTC date-time>.json`).
"""

import argparse
import datetime
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import child_process  # noqa: E402
import compare  # noqa: E402

ITEMS = ("generate", "train", "train_remat")
SIDES = ("bv", "jax", "tensorflow", "torch")


def preset_flags(name):
    """(model flags, generate flags, train style) of the preset `name`, for both scripts."""
    from keras_givt.models.givt.givt_presets import givt_presets

    preset = givt_presets[name]
    kw = preset["model_kwargs"]
    sampling = preset.get("sampling_defaults", {})
    model = [
        "--emb-dim", kw["emb_dim"],
        "--layers", kw["num_decoder_layers"],
        "--heads", kw["num_heads"],
        "--mlp", kw["mlp_dim"],
        "--seq-len", kw["seq_len"],
        "--out-dim", kw["out_dim"],
        "--num-mixtures", kw["num_mixtures"],
        "--num-labels", kw["num_labels"],
        "--drop-labels-probability", kw.get("drop_labels_probability", 0.0),
        "--dropout", kw.get("dec_dropout_rate", 0.0),
    ]  # fmt: skip
    if kw.get("per_channel_mixtures", False) or kw.get("multivariate", False):
        raise ValueError(f"{name}: bench.py builds per_channel_mixtures=False, univariate heads")
    style = kw.get("style", "ar")
    if style == "ar":
        generate = ["--only", "ar_cfg", "--temp", sampling.get("temperature", 1.0)]
        generate += ["--cfg-w", sampling.get("cfg_weight", 0.0)]
    else:
        generate = ["--only", "maskgit", "--maskgit-steps", sampling.get("num_steps", 16)]
        generate += ["--choice-temperature", sampling.get("choice_temperature", 35.0)]
        generate += ["--maskgit-cfg-w", sampling.get("cfg_weight") or 0.0]
    return [str(v) for v in model], [str(v) for v in generate], style


def command(args, side, arch, item):
    """(argv, env, key of the result in the script's JSON) of one run."""
    model, generate, style = preset_flags(arch)
    if item == "generate":
        work = generate + ["--batch", "1"]
        key = "maskgit" if style == "masked" else "ar_cfg"
    else:
        work = ["--only", "train", "--style", style, "--batch", "2"]
        key = "train"
    work += ["--iters", str(args.iters)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if side == "bv":
        env["BIG_VISION_SRC"] = os.path.abspath(args.bv_src)
        work += ["--warmup", "0", "--scan", "true" if item == "train_remat" else "false"]
        key = f"train_{style}" if key == "train" else key
        return [args.bv_python, args.bv_script] + model + work, env, key
    env["KERAS_BACKEND"] = side
    work += ["--remat", "true" if item == "train_remat" else "false"]
    return [sys.executable, os.path.join(HERE, "bench.py")] + model + work, env, key


def run(args, side, arch, item):
    argv, env, key = command(args, side, arch, item)
    out = child_process.run_measured(argv, env=env, cwd=compare.REPO, timeout_s=args.timeout)
    record = {
        "peak_rss_gib": round(out["peak_rss_bytes"] / child_process.GIB, 3),
        "wall_s": out["wall_s"],
    }
    lines = [l for l in out["stdout"].splitlines() if l.strip().startswith("{")]
    if out["returncode"] != 0 or not lines:
        tail = (out["stderr"] or out["stdout"]).strip().splitlines()[-3:]
        record.update(ok=False, error=out["stopped"] or f"exit {out['returncode']}: {tail}")
        return record
    raw = json.loads(lines[-1])
    res = raw[key]
    record.update(
        ok=True,
        median_s=float(res["median_s"]),
        first_s=float(res.get("compile_s", res.get("first_call_s (compile+run)", "nan"))),
        num_params=raw.get("num_params", res.get("num_params")),
    )
    return record


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", default="givt_causal_imagenet256,givt_maskgit_imagenet256,"
                   "givt_maskgit_imagenet512")  # fmt: skip
    p.add_argument("--sides", default=",".join(SIDES), help="bv and/or keras_givt backends")
    p.add_argument("--items", default=",".join(ITEMS))
    p.add_argument("--iters", type=int, default=1, help="Timed calls after the first one.")
    p.add_argument("--timeout", type=float, default=3600.0, help="Seconds per run.")
    p.add_argument("--bv-venv", default=compare.DEFAULT_BV_VENV)
    p.add_argument("--bv-src", default=os.path.join(compare.DEFAULT_BV_ROOT, "src"))
    p.add_argument("--bv-script", default=os.path.join(compare.DEFAULT_BV_ROOT, "bench_bv.py"))
    p.add_argument("--json-out", default=None)
    args = p.parse_args(argv)
    from keras_givt.models.givt.givt_presets import givt_presets

    args.archs = [a for a in args.archs.split(",") if a]
    for name in args.archs:
        if name not in givt_presets:
            p.error(f"--archs: unknown GIVT preset {name!r}; known: {sorted(givt_presets)}")
    args.sides = [s for s in args.sides.split(",") if s]
    args.items = [s for s in args.items.split(",") if s]
    for flag, got, known in (("--sides", args.sides, SIDES), ("--items", args.items, ITEMS)):
        bad = sorted(set(got) - set(known))
        if bad or not got:
            p.error(f"{flag}: expected some of {list(known)}, received {got}")
    if args.iters < 1:
        p.error(f"--iters must be >= 1, received {args.iters}")
    if "bv" in args.sides:
        compare._check_reference(p, args)
    if args.json_out is None:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        args.json_out = os.path.join(HERE, "results", f"published_sizes_{stamp}.json")
    return args


def format_tables(record):
    out = []
    for arch, per_item in record["results"].items():
        params = next(
            (
                r["num_params"]
                for it in per_item.values()
                for r in it.values()
                if r.get("num_params")
            ),
            None,
        )
        out += ["", f"{arch} ({params:,} parameters)" if params else arch, ""]
        out.append("| work | " + " | ".join(record["config"]["sides"]) + " |")
        out.append("|---|" + "---|" * len(record["config"]["sides"]))
        for item, per_side in per_item.items():
            cells = []
            ref = per_side.get("bv")
            for side in record["config"]["sides"]:
                r = per_side[side]
                if not r.get("ok"):
                    cells.append(f"failed ({r.get('error')})")
                    continue
                cell = f"{r['median_s']:.1f} s, {r['peak_rss_gib']:.1f} GiB"
                if side != "bv" and ref and ref.get("ok"):
                    cell += (
                        f" ({r['median_s'] / ref['median_s']:.2f}x, "
                        f"{r['peak_rss_gib'] / ref['peak_rss_gib']:.2f}x)"
                    )
                cells.append(cell)
            out.append(f"| {item} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv=None):
    args = parse_args(argv)
    record = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": compare.cpu_info(),
        "cpu_count": os.cpu_count(),
        "loadavg_before": compare.loadavg(),
        "config": {"archs": args.archs, "sides": args.sides, "items": args.items,
                   "iters": args.iters},  # fmt: skip
        "results": {},
    }
    total = len(args.archs) * len(args.items) * len(args.sides)
    done = 0
    for arch in args.archs:
        for item in args.items:
            for side in args.sides:
                done += 1
                print(f"[{done}/{total}] {arch} {item} {side} ...", file=sys.stderr, flush=True)
                r = run(args, side, arch, item)
                record["results"].setdefault(arch, {}).setdefault(item, {})[side] = r
                print(f"    {json.dumps(r)}", file=sys.stderr, flush=True)
                compare._write_json(args.json_out, record)  # Kept as it grows.
    record["loadavg_after"] = compare.loadavg()
    compare._write_json(args.json_out, record)
    print(format_tables(record))
    print(f"\nwrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
