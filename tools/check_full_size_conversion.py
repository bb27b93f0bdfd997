"""Converts big_vision checkpoints of the published architectures and checks them against big_vision.

Usage:
    python tools/check_full_size_conversion.py [--arch all|NAME[,NAME]]
        [--backends jax,tensorflow,torch] [--scale full|small] [--work-dir DIR]
        [--max-rss-gb 16] [--regenerate] [--keep-converted] [-v]

For each architecture of `reference/PARAMS.md` (the published on-disk
formats: GIVT-Causal 256, GIVT-MaskGIT 256 and 512, the ImageNet CNN VAE):

1. in a subprocess with big_vision's venv (`--bv-python`, `--bv-src`),
   `tools/full_size_reference.py` builds the big_vision model from the
   published config with random weights (`jax.random` init, fixed seed),
   writes them in the published on-disk format (GIVT: params-only npz,
   scanned layout; VAE: legacy flax msgpack with `ema_params`/`g_params`),
   reads them back with big_vision's own loaders and saves big_vision's
   outputs on a fixed batch of 2 (GIVT: logits, log-probs of the latents,
   label-dropped logits, the KV-cache path's logits for 'ar', the preset's
   VAE decoding the latents; VAE: mu, logvar, decoding of mu);
2. for each backend, in a fresh subprocess with `KERAS_BACKEND` set (the
   keras_givt venv, `--python`), loads the files through the preset path
   `from_preset` runs on downloaded files (`preset_utils.resolve_preset(name,
   files={key: local path})`: `conversion.registry.build_preset`, whose
   `download.fetch` returns an existing local path as is, converts the files
   and saves a keras-hub preset folder into `$KERAS_HOME`, here a folder of the
   work dir; then `<Task>.from_preset(name)` loads that folder), runs the same
   batch and saves every output;
3. compares every array: `|got - want| <= ATOL * max(1, rms(want)) + RTOL * |want|`
   elementwise, ATOL = 2e-4, RTOL = 1e-4: float32 rounding, whose absolute
   part scales with the array's typical size. The CNN VAE sets the scale:
   torch's default (oneDNN) 3x3 convolution is ~4.8x further from float64 than
   XLA's (7.5e-6 against 1.6e-6 on one 128-channel layer), so at full size
   keras_givt's torch VAE decoder output is 3.7e-5 off float64 where
   big_vision's own float32 one is 1.1e-5 off (jax 8.6e-6, tensorflow
   7.6e-6); the decoded image (2 * output - 1) then differs from big_vision's
   by up to 9.3e-5, which the fixture checker's 1e-5 absolute would fail.
   It prints the worst absolute and relative error of each array and ends
   with `N passed, M failed` (exit 0 iff M == 0 and N > 0).

At `--scale full` the big_vision config is the published one (PARAMS.md) and
the keras_givt side loads the published preset entry unchanged but for its
files; `--scale small` shrinks both the same way (2 layers, width 64, 4
mixtures, 1/16 of the tokens; VAE with 32 filters and 1 ResBlock per level)
so that a test can run the whole pipeline in minutes.

Everything is written under `--work-dir` (default /tmp/givt_full_size; GBs at
full size): `<scale>/<arch>/{spec.json, <checkpoint>, inputs.npz,
reference.npz, got_<backend>.npz}`, the VAE file shared per scale and
`results.json`. Checkpoints and references are reused while their spec is
unchanged (`--regenerate` rewrites them); the converted keras-hub presets are
deleted after each backend unless `--keep-converted`.
"""

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

ATOL = 2e-4
RTOL = 1e-4
BACKENDS = ("jax", "tensorflow", "torch")
DEFAULT_WORK_DIR = "/tmp/givt_full_size"
DEFAULT_BV_PYTHON = "/tmp/bv_bench_venv/bin/python"
DEFAULT_BV_SRC = os.path.join(
    os.path.dirname(REPO_ROOT), "shared", "reference", "big_vision_bench", "src"
)
REFERENCE_SCRIPT = os.path.join(REPO_ROOT, "tools", "full_size_reference.py")
VAE_FILE = "vae_imagenet_2012_beta_5e-5_params"

# big_vision `givt.Model(**config.model)` of `givt_imagenet2012.py` (reference/PARAMS.md).
_GIVT_256 = dict(
    dec_dropout_rate=0.2,
    drop_labels_probability=0.1,
    emb_dim=1024,
    fix_square_plus=True,
    mask_style="concat",
    min_masking_rate_training=0.3,
    mlp_dim=4096,
    num_decoder_layers=24,
    num_heads=16,
    num_labels=1000,
    num_layers=0,
    num_mixtures=16,
    out_dim=16,
    per_channel_mixtures=False,
    posemb_type="learn",
    remat_policy="nothing_saveable",
    scale_tol=1e-6,
    scan=True,
    seq_len=256,
    style="ar",
)
# big_vision `cnn.Model(**config.vae.model)` (reference/PARAMS.md).
_VAE_256 = dict(
    activation_fn="swish",
    channel_multipliers=[1, 1, 2, 2, 4],
    code_len=256,
    codeword_dim=16,
    conv_downsample=False,
    filters=128,
    malib_ckpt=True,
    norm_type="GN",
    num_res_blocks=2,
)

# Architecture (= keras_givt preset name) -> the big_vision side at full size.
ARCHS = {
    "givt_causal_imagenet256": dict(
        kind="givt",
        file="givt_imagenet_2012_causal_params.npz",
        bv_model_kwargs=_GIVT_256,
        vae_model_kwargs=_VAE_256,
        expected_params=304_009_744,
        expected_arrays=18,
    ),
    "givt_maskgit_imagenet256": dict(
        kind="givt",
        file="givt_imagenet_2012_maskgit_params.npz",
        bv_model_kwargs=dict(_GIVT_256, style="masked", dec_dropout_rate=0.4),
        vae_model_kwargs=_VAE_256,
        expected_params=304_013_840,
        expected_arrays=18,
    ),
    "givt_maskgit_imagenet512": dict(
        kind="givt",
        file="givt_imagenet_2012_maskgit_512_params.npz",
        bv_model_kwargs=dict(_GIVT_256, style="masked", dec_dropout_rate=0.4, seq_len=1024),
        vae_model_kwargs=dict(_VAE_256, code_len=1024),
        expected_params=304_800_272,
        expected_arrays=18,
    ),
    "beta_vae_imagenet_256_beta_5e-5": dict(
        kind="vae",
        file=VAE_FILE,
        bv_model_kwargs=_VAE_256,
        vae_model_kwargs=_VAE_256,
        expected_params=53_032_611,
        expected_arrays=167,
    ),
}
EXPECTED_VAE = dict(expected_vae_params=53_032_611, expected_vae_arrays=167)

# `--scale small`: the same overrides on big_vision's config and on the preset's.
SMALL_GIVT = dict(emb_dim=64, mlp_dim=128, num_decoder_layers=2, num_heads=4, num_mixtures=4)
SMALL_VAE = dict(filters=32, num_res_blocks=1)
SMALL_TOKENS_DIVISOR = 16  # seq_len / code_len (a 4x smaller token grid side).


def scaled_kwargs(kwargs, kind, scale):
    """`kwargs` (GIVT or VAE, big_vision names) at `scale`."""
    kwargs = copy.deepcopy(kwargs)
    if scale == "full":
        return kwargs
    if kind == "givt":
        kwargs.update(SMALL_GIVT, seq_len=kwargs["seq_len"] // SMALL_TOKENS_DIVISOR)
    else:
        kwargs.update(SMALL_VAE, code_len=kwargs["code_len"] // SMALL_TOKENS_DIVISOR)
    return kwargs


def make_spec(arch, scale, work_dir, seed=0, batch=2, cache_steps=4):
    """The JSON spec both halves read: big_vision config, files, batch, expectations."""
    a = ARCHS[arch]
    folder = os.path.join(work_dir, scale, arch)
    vae_path = os.path.join(work_dir, scale, VAE_FILE)
    spec = {
        "arch": arch,
        "preset": arch,
        "kind": a["kind"],
        "scale": scale,
        "seed": seed,
        "batch": batch,
        "cache_steps": cache_steps,
        "bv_model_kwargs": scaled_kwargs(a["bv_model_kwargs"], a["kind"], scale),
        "vae_model_kwargs": scaled_kwargs(a["vae_model_kwargs"], "vae", scale),
        "vae_path": vae_path,
        "givt_path": os.path.join(folder, a["file"]) if a["kind"] == "givt" else None,
        # What the keras_givt side changes in the preset entry (nothing at full size).
        "preset_overrides": {} if scale == "full" else _preset_overrides(a["kind"], scale),
    }
    if scale == "full":
        spec.update(expected_params=a["expected_params"], expected_arrays=a["expected_arrays"])
        spec.update(EXPECTED_VAE)
    return spec


def _preset_overrides(kind, scale):
    if kind == "givt":
        return {"model_kwargs": dict(SMALL_GIVT), "vae_config": dict(SMALL_VAE), "scale": scale}
    return {"config": dict(SMALL_VAE), "scale": scale}


# --- comparison ----------------------------------------------------------


def compare(got, want):
    """`(ok, worst abs error, worst rel error, number of entries off)` of one array.

    float arrays: `|got - want| <= ATOL * max(1, rms(want)) + RTOL * |want|`
    elementwise; the relative error is `|got - want| / |want|` over the
    entries with `|want| >= rms(want) / 100` (near-zero entries say nothing).
    A shape mismatch or a missing array fails with NaN errors.
    """
    want = np.asarray(want)
    if got is None or np.shape(got) != want.shape:
        return False, float("nan"), float("nan"), int(want.size)
    got = np.asarray(got, np.float64)
    want = want.astype(np.float64)
    if not np.all(np.isfinite(want)):
        raise ValueError("The big_vision reference holds NaN or inf: regenerate it.")
    err = np.abs(got - want)
    rms = float(np.sqrt(np.mean(want**2))) if want.size else 0.0
    tol = ATOL * max(1.0, rms) + RTOL * np.abs(want)
    bad = ~(err <= tol)  # NaN in `got` counts as off.
    big = np.abs(want) >= rms / 100
    rel = float(np.max(err[big] / np.abs(want[big]))) if np.any(big) else 0.0
    worst = float(np.max(err)) if err.size else 0.0
    return not bool(np.any(bad)), worst, rel, int(np.sum(bad))


# --- subprocesses --------------------------------------------------------


def _last_json_line(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            return json.loads(line)
    return None


def _rss_gb(pid):
    """Resident memory of process `pid` in GiB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def _run(cmd, env, args, what):
    """Runs `cmd`; returns its final JSON line (dict) or raises RuntimeError with the tail.

    The child is killed when its resident memory passes `args.max_rss_gb` (the
    machine is shared: better a failed check than an out-of-memory machine).
    """
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    while True:
        try:
            stdout, stderr = proc.communicate(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            rss = _rss_gb(proc.pid)
            if rss > args.max_rss_gb and killed is None:
                killed = rss
                proc.kill()
    wall = time.perf_counter() - start
    if args.verbose:
        sys.stdout.write(stdout)
        sys.stderr.write(stderr)
    report = _last_json_line(stdout) if proc.returncode == 0 else None
    if report is None:
        tail = "\n".join((stdout + stderr).strip().splitlines()[-25:])
        if killed is not None:
            tail = f"killed at {killed:.1f} GB resident (--max-rss-gb {args.max_rss_gb})\n" + tail
        raise RuntimeError(f"{what} failed (exit {proc.returncode}, {wall:.0f} s):\n{tail}")
    report["process_wall_s"] = round(wall, 1)
    return report


def _write_spec_if_changed(spec, folder, regenerate):
    """Writes spec.json; deletes the outputs of an older spec (or all with `regenerate`)."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "spec.json")
    old = None
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
    if regenerate or old != spec:
        for name in os.listdir(folder):
            target = os.path.join(folder, name)
            if os.path.isfile(target):
                os.remove(target)
    tmp = path + ".partial"
    with open(tmp, "w") as f:
        json.dump(spec, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return path


def _vae_is_stale(spec, regenerate):
    """The shared VAE file is rewritten when its config or seed changed."""
    key = {"seed": spec["seed"], "kwargs": dict(spec["vae_model_kwargs"], code_len=None)}
    sidecar = spec["vae_path"] + ".spec.json"
    os.makedirs(os.path.dirname(sidecar), exist_ok=True)
    old = None
    if os.path.exists(sidecar):
        with open(sidecar) as f:
            old = json.load(f)
    stale = regenerate or old != key
    if stale and os.path.exists(spec["vae_path"]):
        os.remove(spec["vae_path"])
    with open(sidecar, "w") as f:
        json.dump(key, f, sort_keys=True)
    return stale


def run_reference(spec, args):
    """big_vision's files and outputs for one architecture (reused while unchanged)."""
    folder = os.path.join(args.work_dir, spec["scale"], spec["arch"])
    vae_stale = _vae_is_stale(spec, args.regenerate and not args.vae_regenerated)
    args.vae_regenerated = True  # The shared VAE file is rewritten once per run at most.
    spec_path = _write_spec_if_changed(spec, folder, args.regenerate or vae_stale)
    if os.path.exists(os.path.join(folder, "reference.npz")):
        return {"reused": True}
    env = dict(os.environ, BIG_VISION_SRC=args.bv_src, JAX_PLATFORMS="cpu")
    cmd = [args.bv_python, REFERENCE_SCRIPT, spec_path]
    return _run(cmd, env, args, f"big_vision reference for {spec['arch']}")


def run_backend(spec, backend, args):
    """keras_givt's outputs for one architecture on one backend (fresh process)."""
    folder = os.path.join(args.work_dir, spec["scale"], spec["arch"])
    keras_home = os.path.join(args.work_dir, spec["scale"], "keras_home", backend)
    env = dict(os.environ, KERAS_BACKEND=backend, KERAS_HOME=keras_home)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cmd = [args.python, os.path.abspath(__file__), "--worker", folder, "--backends", backend]
    if args.keep_converted:
        cmd.append("--keep-converted")
    return _run(cmd, env, args, f"keras_givt {backend} for {spec['arch']}")


# --- the keras_givt side (runs with --worker in a fresh process) ---------


def _preset_entry(spec):
    """`(name, entry data)`: the published entry, or its `--scale small` variant."""
    from keras_givt.utils import preset_utils

    name = spec["preset"]
    entry = copy.deepcopy(preset_utils.PRESETS[name])
    overrides = spec["preset_overrides"]
    if not overrides:
        return name, entry
    vae = dict(spec["vae_model_kwargs"])
    if spec["kind"] == "givt":
        entry["model_kwargs"].update(
            overrides["model_kwargs"], seq_len=spec["bv_model_kwargs"]["seq_len"]
        )
        entry["vae_config"].update(overrides["vae_config"], code_len=vae["code_len"])
    else:
        entry["config"].update(overrides["config"], code_len=vae["code_len"])
    name = f"{name}__{overrides['scale']}_check"
    entry["metadata"] = dict(entry["metadata"], params=None)
    for key in ("class", "build"):
        entry.pop(key, None)
    preset_utils.register_presets({name: entry})
    return name, entry


def _load_through_preset(spec):
    """The task / VAE as `from_preset` builds it from the (local) published files."""
    import keras_givt
    from keras_givt.utils import preset_utils

    name, entry = _preset_entry(spec)
    files = {"vae": spec["vae_path"]}
    if spec["kind"] == "givt":
        files["givt"] = spec["givt_path"]
    converted = os.path.join(preset_utils.cache_root(), name)
    shutil.rmtree(converted, ignore_errors=True)  # Convert afresh.
    times = {}
    start = time.perf_counter()
    preset_utils.resolve_preset(name, files=files)
    times["convert_s"] = time.perf_counter() - start
    start = time.perf_counter()
    model = getattr(keras_givt, entry["task"]).from_preset(name)
    times["from_preset_s"] = time.perf_counter() - start
    return model, converted, times


def _givt_outputs(task, inputs, spec):
    from keras import ops

    bb = task.backbone
    tokens = ops.convert_to_tensor(inputs["tokens"])
    labels = ops.convert_to_tensor(inputs["labels"], "int32")
    feed = {"tokens": tokens, "labels": labels}
    if "input_mask" in inputs:
        feed["input_mask"] = ops.convert_to_tensor(inputs["input_mask"], "bool")
    out = {}
    out["logits"] = bb(feed, training=False)
    out["log_prob"] = bb.log_prob(out["logits"], tokens)
    if "nolabel" in bb.special_ids:
        dropped = bb.drop_labels(labels, np.ones(inputs["labels"].shape, bool))
        out["logits_uncond"] = bb(dict(feed, labels=dropped), training=False)
    if bb.style == "ar":
        batch = inputs["tokens"].shape[0]
        cache = bb.build_cache(batch)
        logits, cache = bb.prefill(labels, cache)
        steps = [logits]
        for i in range(spec["cache_steps"]):
            logits, cache = bb.call_with_cache(tokens[:, i : i + 1], cache, i + 1)
            steps.append(logits)
        out["cached_logits"] = ops.concatenate(steps, axis=1)
    out["vae/decoded"] = task.decode_tokens(tokens)
    out["vae/decoder_raw"] = task.vae.decode_raw(tokens)
    return out


def _vae_outputs(vae, inputs, want):
    mu, logvar = vae.encode(inputs["images"])
    # The decoder is checked on big_vision's mu (isolated from the encoder's rounding).
    return {
        "mu": mu,
        "logvar": logvar,
        "decoded_mu": vae.decode(want["mu"]),
        "decoder_raw_mu": vae.decode_raw(want["mu"]),
    }


def _inference_mode():
    """torch: `no_grad` (as `predict` and `generate` run). Outside it every eager
    op is recorded for autograd: at full size each cached step then keeps 24
    copies of the whole KV cache alive (+2.2 GB per token, measured)."""
    import contextlib

    import keras

    if keras.config.backend() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


def worker(folder, keep_converted):
    """Loads one architecture through the preset path on $KERAS_BACKEND; saves its outputs."""
    import resource

    import keras

    from keras_givt.utils.tensor_utils import to_numpy

    start = time.perf_counter()
    with open(os.path.join(folder, "spec.json")) as f:
        spec = json.load(f)
    inputs = dict(np.load(os.path.join(folder, "inputs.npz")))
    want = dict(np.load(os.path.join(folder, "reference.npz")))
    model, converted, times = _load_through_preset(spec)
    t = time.perf_counter()
    with _inference_mode():
        if spec["kind"] == "givt":
            out = _givt_outputs(model, inputs, spec)
        else:
            out = _vae_outputs(model, inputs, want)
        out = {k: to_numpy(v) for k, v in out.items()}
    times["forward_s"] = time.perf_counter() - t
    backend = keras.config.backend()
    path = os.path.join(folder, f"got_{backend}.npz")
    with open(path + ".partial", "wb") as f:
        np.savez(f, **out)
    os.replace(path + ".partial", path)
    if not keep_converted:
        shutil.rmtree(converted, ignore_errors=True)
    report = {k: round(v, 1) for k, v in times.items()}
    report.update(
        backend=backend,
        wall_s=round(time.perf_counter() - start, 1),
        peak_rss_gb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    )
    print(json.dumps(report))
    return 0


# --- main ----------------------------------------------------------------


def check_outputs(folder, backend, verbose):
    """`(passed, failed, rows)` comparing got_<backend>.npz with reference.npz."""
    want = dict(np.load(os.path.join(folder, "reference.npz")))
    got = dict(np.load(os.path.join(folder, f"got_{backend}.npz")))
    passed = failed = 0
    rows = []
    for key in sorted(want):
        ok, abs_err, rel_err, n_bad = compare(got.get(key), want[key])
        rows.append(
            {
                "array": key,
                "shape": list(want[key].shape),
                "ok": ok,
                "max_abs": abs_err,
                "max_rel": rel_err,
            }
        )
        line = (
            f"{key} {tuple(want[key].shape)}: max abs err {abs_err:.2e}, max rel err {rel_err:.2e}"
        )
        if ok:
            passed += 1
            if verbose:
                print(f"  ok   {line}")
        else:
            failed += 1
            why = "missing or wrong shape" if key not in got else f"{n_bad} entries off"
            print(f"  FAIL {line} ({why})")
    return passed, failed, rows


def _merge_results(path, results):
    """Adds this run's `results` to `path` (one row per architecture and backend)."""
    rows = {}
    if os.path.exists(path):
        with open(path) as f:
            rows = {(r["arch"], r["backend"]): r for r in json.load(f)["results"]}
    rows.update({(r["arch"], r["backend"]): r for r in results})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".partial", "w") as f:
        json.dump({"atol": ATOL, "rtol": RTOL, "results": list(rows.values())}, f, indent=1)
    os.replace(path + ".partial", path)


def _parse_list(value, known, what):
    items = [v.strip() for v in value.split(",") if v.strip()]
    if items == ["all"]:
        return list(known)
    unknown = [v for v in items if v not in known]
    if not items or unknown:
        raise argparse.ArgumentTypeError(
            f"--{what} must be 'all' or a comma-separated list of {sorted(known)}; received {value!r}."
        )
    return items


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="all", help=f"'all' or of {sorted(ARCHS)}")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--scale", choices=("full", "small"), default="full")
    parser.add_argument("--work-dir", default=DEFAULT_WORK_DIR)
    parser.add_argument("--bv-python", default=DEFAULT_BV_PYTHON)
    parser.add_argument("--bv-src", default=DEFAULT_BV_SRC)
    default_python = os.path.join(REPO_ROOT, ".venv", "bin", "python")
    parser.add_argument(
        "--python", default=default_python if os.path.exists(default_python) else sys.executable
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--regenerate", action="store_true", help="rewrite the big_vision files")
    parser.add_argument("--keep-converted", action="store_true")
    parser.add_argument(
        "--max-rss-gb",
        type=float,
        default=16.0,
        help="kill a subprocess whose resident memory passes this (default 16)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        args.arch = _parse_list(args.arch, ARCHS, "arch")
        args.backends = _parse_list(args.backends, BACKENDS, "backends")
    except argparse.ArgumentTypeError as e:
        parser.error(str(e))
    if not args.max_rss_gb > 0:
        parser.error(f"--max-rss-gb must be > 0; received {args.max_rss_gb}.")
    args.work_dir = os.path.abspath(args.work_dir)
    args.vae_regenerated = False
    if os.path.commonpath([args.work_dir, REPO_ROOT]) == REPO_ROOT:
        parser.error(
            f"--work-dir must be outside the repository (GBs); received {args.work_dir!r}."
        )
    return args


def main(argv=None):
    sys.stdout.reconfigure(line_buffering=True)  # Progress shows while subprocesses run.
    args = parse_args(argv)
    if args.worker:
        return worker(args.worker, args.keep_converted)
    for path, what in ((args.bv_python, "--bv-python"), (args.bv_src, "--bv-src")):
        if not os.path.exists(path):
            print(
                f"error: {what} {path!r} does not exist (big_vision_bench/setup.sh builds "
                "the venv).",
                file=sys.stderr,
            )
            return 2
    passed = failed = 0
    results = []
    for arch in args.arch:
        spec = make_spec(arch, args.scale, args.work_dir, seed=args.seed)
        folder = os.path.join(args.work_dir, args.scale, arch)
        print(f"{arch} ({args.scale}):")
        try:
            ref = run_reference(spec, args)
        except RuntimeError as e:
            print(f"  FAIL big_vision reference: {e}")
            failed += 1
            continue
        if not ref.get("reused"):
            print(f"  big_vision: {ref['process_wall_s']} s, peak RSS {ref['peak_rss_gb']} GB")
        for backend in args.backends:
            try:
                rep = run_backend(spec, backend, args)
            except RuntimeError as e:
                print(f"  FAIL {backend}: {e}")
                failed += 1
                results.append({"arch": arch, "backend": backend, "error": str(e)[-2000:]})
                continue
            print(
                f"  {backend}: convert {rep['convert_s']} s, from_preset {rep['from_preset_s']} s, "
                f"forward {rep['forward_s']} s, process {rep['process_wall_s']} s, "
                f"peak RSS {rep['peak_rss_gb']} GB"
            )
            p, f, rows = check_outputs(folder, backend, args.verbose)
            passed, failed = passed + p, failed + f
            worst = max(rows, key=lambda r: r["max_rel"] if np.isfinite(r["max_rel"]) else 1e9)
            print(
                f"    {p} passed, {f} failed (worst rel err {worst['max_rel']:.2e} on "
                f"{worst['array']})"
            )
            results.append(
                {
                    "arch": arch,
                    "backend": backend,
                    "scale": args.scale,
                    "arrays": rows,
                    "run": rep,
                    "big_vision": ref,
                }
            )
    _merge_results(os.path.join(args.work_dir, args.scale, "results.json"), results)
    print(f"{passed} passed, {failed} failed")
    return 0 if (failed == 0 and passed > 0) else 1


if __name__ == "__main__":
    sys.exit(main())
