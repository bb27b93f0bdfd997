"""Checks keras_givt against reference fixtures made by big_vision / maskgit.

Usage:
    python tools/check_big_vision_fixtures.py DIR [DIR ...] [--only PREFIX[,PREFIX]] [-v]

DIR has the fixture layout (`index.json`, one folder per config with
`config.json`, `params*`, `inputs.npz`, `outputs.npz`). For every config the
project's model is built from `model_kwargs`, its params are loaded through
`keras_givt.conversion` (by the runners of `tools/parity/`), the inputs are
run and **every** array of
`outputs.npz` is compared (|a − b| ≤ 1e-5 + 1e-4·|b|, or relatively for
quantities spanning many orders of magnitude). An array the project cannot
produce counts as failed. Runs on the current `KERAS_BACKEND`. Prints one line
per failure and ends with `N passed, M failed`; exits 0 iff M == 0 and N > 0.
"""

import argparse
import json
import os
import sys
import traceback

import numpy as np

# `python tools/check_big_vision_fixtures.py` puts tools/ first on sys.path; the
# runners are imported as `tools.parity`, so the repository root must be on it too.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

ATOL = 1e-5
RTOL = 1e-4
# Arrays compared relatively only (they span many orders of magnitude).
RELATIVE = ("cfg/fac",)


def amplification(name):
    """Factor by which the fixture amplified an array's float32 rounding.

    `*_x<k>` outputs (FIXTURES.md: computed with parameters multiplied by k)
    are k times an activation; the reference's own rounding is amplified by
    k too, so their absolute tolerance is k · ATOL (the relative one is
    unchanged).
    """
    tail = name.rsplit("_x", 1)
    if len(tail) == 2 and tail[1].isdigit():
        return float(tail[1])
    return 1.0


def compare(name, got, want):
    """Returns None if close, else a failure message."""
    want = np.asarray(want)
    if got is None:
        return f"{name}: not produced by keras_givt"
    got = np.asarray(got)
    if got.shape != want.shape:
        return f"{name}: shape {got.shape} != expected {want.shape}"
    if want.dtype == bool or np.issubdtype(want.dtype, np.integer):
        bad = np.sum(got.astype(want.dtype) != want)
        return None if bad == 0 else f"{name}: {bad} of {want.size} entries differ"
    got = got.astype(np.float64)
    want64 = want.astype(np.float64)
    same_inf = np.isinf(want64) & (got == want64)
    if np.any(np.isnan(got) != np.isnan(want64)):
        return f"{name}: NaN pattern differs"
    finite = np.isfinite(want64) & ~same_inf
    err = np.abs(got - want64)
    atol = 0.0 if name.endswith(RELATIVE) else ATOL * amplification(name)
    tol = atol + RTOL * np.abs(want64)
    bad = finite & ~(err <= tol)
    bad |= ~finite & ~same_inf & ~np.isnan(want64)
    if not np.any(bad):
        return None
    e = err[finite]
    rel = (err / np.maximum(np.abs(want64), 1e-30))[finite]
    return (
        f"{name}: {int(bad.sum())} of {want.size} entries off; "
        f"max abs err {e.max():.3e}, max rel err {rel.max():.3e}"
    )


def check_dir(fixtures_dir, prefixes, verbose, parity):
    """Checks one fixture folder; returns (passed, failed)."""
    index_path = os.path.join(fixtures_dir, "index.json")
    if not os.path.isfile(index_path):
        print(f"error: {index_path} not found", file=sys.stderr)
        return 0, 1
    with open(index_path) as f:
        index = json.load(f)
    configs = index.get("configs", {})
    passed = failed = 0
    for name in sorted(configs):
        if prefixes and not any(name.startswith(p) for p in prefixes):
            continue
        entry = configs[name]
        cdir = os.path.join(fixtures_dir, name)
        try:
            want = dict(np.load(os.path.join(cdir, "outputs.npz")))
        except OSError as e:
            print(f"FAIL {name}: cannot read its outputs.npz ({e})")
            failed += 1
            continue
        try:
            got = parity.run_config(cdir, entry, want)
        except Exception as e:  # Every array of this config fails.
            if verbose:
                traceback.print_exc()
            msg = f"{type(e).__name__}: {e}".splitlines()[0][:300]
            for key in sorted(want):
                print(f"FAIL {name}/{key}: config raised {msg}")
            failed += len(want)
            continue
        for key in sorted(want):
            problem = compare(key, got.get(key), want[key])
            if problem is None:
                passed += 1
                if verbose:
                    print(f"ok   {name}/{key}")
            else:
                failed += 1
                print(f"FAIL {name}/{problem}")
    return passed, failed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fixtures_dir", nargs="+", help="one or more fixture folders")
    parser.add_argument("--only", default=None, help="comma-separated config-name prefixes")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)

    from tools import parity

    prefixes = args.only.split(",") if args.only else None
    passed = failed = 0
    for fixtures_dir in args.fixtures_dir:
        p, f = check_dir(fixtures_dir, prefixes, args.verbose, parity)
        if len(args.fixtures_dir) > 1:
            print(f"{fixtures_dir}: {p} passed, {f} failed")
        passed, failed = passed + p, failed + f
    print(f"{passed} passed, {failed} failed")
    return 0 if (failed == 0 and passed > 0) else 1


if __name__ == "__main__":
    sys.exit(main())
