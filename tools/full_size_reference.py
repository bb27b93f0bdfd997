"""The big_vision half of `tools/check_full_size_conversion.py` (runs in the big_vision venv).

Usage (the checker runs it; by hand only to debug):
    BIG_VISION_SRC=.../big_vision_bench/src /tmp/bv_bench_venv/bin/python \\
        tools/full_size_reference.py SPEC.json

It imports big_vision as a measuring instrument (nothing of it is copied
here) and keras_givt not at all: it needs numpy, jax, flax and big_vision
only. `SPEC.json` (written by the checker) names one architecture:

- `kind`: "givt" or "vae";
- `bv_model_kwargs` (`givt.Model` / `cnn.Model` kwargs), `vae_model_kwargs`
  (the VAE the GIVT preset decodes with), the file names, `seed`, the batch;
- `expected_params` / `expected_arrays` (from reference/PARAMS.md at full
  size), checked against the file written.

It writes, into the spec's folder:

1. the checkpoint in the published on-disk format, with random weights
   (`jax.random` init at the given size, fixed seed; every array that the
   init leaves constant (zero biases, unit scales) gets `+ 0.1 * N(0, 1)` so a
   swapped or mis-assigned array cannot go unnoticed):
   - GIVT: a params-only `.npz` of big_vision's '/'-joined names, scanned
     layout (layer axis 1), no `params/` prefix;
   - VAE: a legacy flax msgpack file (no extension) holding `ema_params/
     {encoder,decoder}/...`, `g_params/...` (other values) and `step`.
   The VAE file is shared by every architecture of one scale (written once).
2. the file read back with big_vision's own loader against a fresh init
   (`givt.load` / `cnn.load(..., malib_ckpt=True, use_ema_params=True)`,
   both `merge_params` structure checks), and `inputs.npz` / `reference.npz`:
   big_vision's outputs on a small fixed batch computed from those params.

The last stdout line is a JSON object (wall time, peak RSS, files).
"""

import json
import os
import resource
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

# Perturbation added to the arrays the init leaves constant.
CONSTANT_NOISE = 0.1


def _import_big_vision():
    src = os.environ.get("BIG_VISION_SRC")
    if not src or not os.path.isdir(os.path.join(src, "big_vision")):
        sys.exit("Set BIG_VISION_SRC to the directory containing `big_vision`.")
    sys.path.insert(0, os.path.abspath(src))
    import distrax  # noqa: F401  (before big_vision: avoids TFP's tf_keras check)
    import jax

    if not hasattr(jax.random, "shuffle"):  # removed from JAX; big_vision still names it

        def _shuffle(key, x, axis=0):
            return jax.random.permutation(key, x, axis=axis, independent=True)

        jax.random.shuffle = _shuffle


def _atomic_write(path, write):
    """`write(file object)` into `path` (written aside, then renamed)."""
    tmp = path + ".partial"
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


def _flat(tree):
    from big_vision import utils

    return {name: np.asarray(value) for name, value in utils.tree_flatten_with_names(tree)[0]}


def _perturb_constants(tree, seed):
    """`tree` with `+ CONSTANT_NOISE * N(0, 1)` on every constant array (zeros, ones)."""
    import jax

    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    out = []
    for key, leaf in zip(keys, leaves):
        leaf = np.asarray(leaf)
        if leaf.size > 1 and np.all(leaf == leaf.flat[0]):
            noise = np.asarray(jax.random.normal(key, leaf.shape, leaf.dtype))
            leaf = leaf + CONSTANT_NOISE * noise
        out.append(leaf.astype(np.float32))
    return jax.tree.unflatten(treedef, out)


def _count(flat):
    return sum(int(v.size) for v in flat.values())


def _check_expected(spec, flat, what):
    """The written file against reference/PARAMS.md (full size only)."""
    n_params, n_arrays = spec.get("expected_params"), spec.get("expected_arrays")
    if n_params is not None and _count(flat) != n_params:
        raise SystemExit(f"{what}: {_count(flat):,} parameters; PARAMS.md says {n_params:,}.")
    if n_arrays is not None and len(flat) != n_arrays:
        raise SystemExit(f"{what}: {len(flat)} arrays; PARAMS.md says {n_arrays}.")


# --- CNN VAE ---------------------------------------------------------------


def _vae_model(model_kwargs):
    from big_vision.models.proj.givt import cnn

    return cnn.Model(**model_kwargs)


def _vae_image_size(model_kwargs):
    side = int(round(model_kwargs["code_len"] ** 0.5))
    return side * 2 ** (len(model_kwargs["channel_multipliers"]) - 1)


def _init_vae(model, image_size, seed, shapes_only=False):
    import jax

    x = np.zeros((1, image_size, image_size, 3), np.float32)
    init = lambda rng: model.init(rng, x)["params"]
    if shapes_only:
        return jax.eval_shape(init, jax.random.PRNGKey(seed))
    return init(jax.random.PRNGKey(seed))


def _checked_load(load, shapes, what):
    """`load(shapes)` (big_vision's loader, whose `merge_params` checks the names)
    as device arrays, after checking every shape and dtype against the model's."""
    import jax

    from big_vision import utils

    params = load(shapes)
    got = dict(utils.tree_flatten_with_names(params)[0])
    for name, want in utils.tree_flatten_with_names(shapes)[0]:
        value = got[name]
        if tuple(value.shape) != tuple(want.shape) or value.dtype != want.dtype:
            raise SystemExit(
                f"{what}: {name} is {value.shape} {value.dtype}; the model has "
                f"{want.shape} {want.dtype}."
            )
    return jax.device_put(params)


def write_vae_file(spec, path):
    """The legacy flax msgpack VAE checkpoint (ema_params, g_params, step)."""
    import flax.serialization

    kwargs = spec["vae_model_kwargs"]
    model = _vae_model(kwargs)
    size = _vae_image_size(kwargs)
    seed = spec["seed"]
    ema = _perturb_constants(_init_vae(model, size, seed), seed + 1)
    g = _perturb_constants(_init_vae(model, size, seed + 2), seed + 3)

    def rename(params):  # big_vision maps file `ema_params/encoder/...` to `cnn_encoder/...`.
        return {k[len("cnn_") :]: v for k, v in params.items()}

    state = {
        "ema_params": rename(ema),
        "g_params": rename(g),
        "step": np.asarray(1000, np.int64),
    }
    _check_expected(
        {
            "expected_params": spec.get("expected_vae_params"),
            "expected_arrays": spec.get("expected_vae_arrays"),
        },
        _flat(ema),
        "VAE ema_params",
    )
    data = flax.serialization.msgpack_serialize(state)
    _atomic_write(path, lambda f: f.write(data))


def load_vae_file(model_kwargs, path, seed):
    """big_vision's own reader of the published VAE files, structure-checked."""
    from big_vision.models.proj.givt import cnn

    model = _vae_model(model_kwargs)
    shapes = _init_vae(model, _vae_image_size(model_kwargs), seed, shapes_only=True)
    params = _checked_load(
        lambda init: cnn.load(init, path, malib_ckpt=True, use_ema_params=True), shapes, path
    )
    return model, {"params": params}


def vae_decode(model, variables, z):
    """`(images, decoder output before rescale/clip)` for latents `z (B, L, D)`."""
    import jax

    def raw(m, z):
        side = int(round(z.shape[1] ** 0.5))
        return m.decoder(z.reshape(z.shape[0], side, side, z.shape[2]), train=False)

    decoded = jax.jit(lambda v, z: model.apply(v, z, method=model.decode))(variables, z)
    decoder_raw = jax.jit(lambda v, z: model.apply(v, z, method=raw))(variables, z)
    return np.asarray(decoded), np.asarray(decoder_raw)


def run_vae(spec):
    import jax

    kwargs = spec["bv_model_kwargs"]
    model, variables = load_vae_file(kwargs, spec["vae_path"], spec["seed"])
    rng = np.random.RandomState(spec["seed"])
    size = _vae_image_size(kwargs)
    images = rng.uniform(-1.0, 1.0, (spec["batch"], size, size, 3)).astype(np.float32)
    mu, logvar = jax.jit(lambda v, x: model.apply(v, x, method=model.encode))(variables, images)
    mu, logvar = np.asarray(mu), np.asarray(logvar)
    decoded, decoder_raw = vae_decode(model, variables, mu)
    inputs = {"images": images}
    outputs = {"mu": mu, "logvar": logvar, "decoded_mu": decoded, "decoder_raw_mu": decoder_raw}
    return inputs, outputs


# --- GIVT ------------------------------------------------------------------


def _givt_batch(spec, kwargs, batch):
    rng = np.random.RandomState(spec["seed"])
    tokens = rng.normal(size=(batch, kwargs["seq_len"], kwargs["out_dim"])).astype(np.float32)
    labels = rng.randint(0, kwargs["num_labels"], size=(batch,)).astype(np.int32)
    inputs = {"tokens": tokens, "labels": labels}
    if kwargs["style"] == "masked":
        mask = rng.uniform(size=(batch, kwargs["seq_len"])) < 0.5
        mask[:, 0] = True  # Both kinds of position in every row.
        mask[:, 1] = False
        inputs["input_mask"] = mask
    return inputs


def _init_givt(model, kwargs, seed, shapes_only=False):
    import jax

    inputs = _givt_batch({"seed": seed}, kwargs, 1)

    def init(rng):
        mask = inputs.get("input_mask")
        return model.init(rng, inputs["tokens"], inputs["labels"], input_mask=mask)["params"]

    if shapes_only:
        return jax.eval_shape(init, jax.random.PRNGKey(seed))
    return jax.jit(init)(jax.random.PRNGKey(seed))


def write_givt_file(spec, path):
    """The params-only npz of a big_vision GIVT (scanned layout as initialised)."""
    from big_vision.models.proj.givt import givt

    kwargs = spec["bv_model_kwargs"]
    model = givt.Model(**kwargs)
    params = _perturb_constants(_init_givt(model, kwargs, spec["seed"]), spec["seed"] + 1)
    flat = _flat(params)
    del params
    _check_expected(spec, flat, "GIVT params")
    _atomic_write(path, lambda f: np.savez(f, **flat))


def run_givt(spec):
    import flax.linen as nn
    import jax
    from big_vision.models.proj.givt import givt

    kwargs = spec["bv_model_kwargs"]
    model = givt.Model(**kwargs)
    shapes = _init_givt(model, kwargs, spec["seed"], shapes_only=True)
    path = spec["givt_path"]
    params = _checked_load(lambda init: givt.load(init, path), shapes, path)
    variables = {"params": params}
    inputs = _givt_batch(spec, kwargs, spec["batch"])
    tokens, labels, mask = inputs["tokens"], inputs["labels"], inputs.get("input_mask")
    out = {}

    @jax.jit
    def forward(variables, tokens, labels, mask):
        logits, pdf = model.apply(variables, tokens, labels, input_mask=mask)
        return logits, pdf.log_prob(tokens)

    out["logits"], out["log_prob"] = forward(variables, tokens, labels, mask)

    if kwargs["drop_labels_probability"] > 0:
        drop = np.ones((tokens.shape[0],), bool)

        @jax.jit
        def forward_uncond(variables, tokens, labels, mask):
            return model.apply(
                variables,
                tokens,
                labels,
                input_mask=mask,
                drop_labels=drop,
                method=givt.Model.decode,
            )

        out["logits_uncond"] = forward_uncond(variables, tokens, labels, mask)

    if kwargs["style"] == "ar":
        # The KV-cache path sampling takes: prefill the label, then feed tokens one by one.
        n = spec["cache_steps"]

        def init_cache(m):
            return m.decode(tokens, labels, None, decode=True)

        cache = nn.apply(init_cache, model, mutable=True)(variables)[1]["cache"]

        def prefill(m):
            return m.prefill(labels, tokens.shape[0], None)

        logits, aux = nn.apply(prefill, model, mutable=True)({"params": params, "cache": cache})
        steps = [np.asarray(logits)]

        @jax.jit
        def step(params, cache, token):  # params as an argument: never baked into the HLO.
            def decode_step(m, token):
                return m.decode(token, labels, None, decode=True)

            logits, aux = nn.apply(decode_step, model, mutable=True)(
                {"params": params, "cache": cache}, token
            )
            return logits, aux["cache"]

        cache = aux["cache"]
        for i in range(n):
            logits, cache = step(params, cache, tokens[:, i : i + 1])
            steps.append(np.asarray(logits))
        out["cached_logits"] = np.concatenate(steps, axis=1)

    vae_kwargs = spec["vae_model_kwargs"]
    vae, vae_vars = load_vae_file(vae_kwargs, spec["vae_path"], spec["seed"])
    out["vae/decoded"], out["vae/decoder_raw"] = vae_decode(vae, vae_vars, tokens)
    return inputs, {k: np.asarray(v) for k, v in out.items()}


def main(argv):
    if len(argv) != 1:
        sys.exit(__doc__)
    start = time.perf_counter()
    with open(argv[0]) as f:
        spec = json.load(f)
    folder = os.path.dirname(os.path.abspath(argv[0]))
    _import_big_vision()
    written = []
    if not os.path.exists(spec["vae_path"]):
        write_vae_file(spec, spec["vae_path"])
        written.append(spec["vae_path"])
    if spec["kind"] == "givt" and not os.path.exists(spec["givt_path"]):
        write_givt_file(spec, spec["givt_path"])
        written.append(spec["givt_path"])
    # The outputs use the files as big_vision's own loaders read them back.
    inputs, outputs = {"givt": run_givt, "vae": run_vae}[spec["kind"]](spec)
    _atomic_write(os.path.join(folder, "inputs.npz"), lambda f: np.savez(f, **inputs))
    _atomic_write(os.path.join(folder, "reference.npz"), lambda f: np.savez(f, **outputs))
    report = {
        "written": written,
        "outputs": {k: list(v.shape) for k, v in outputs.items()},
        "wall_s": round(time.perf_counter() - start, 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
