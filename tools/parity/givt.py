"""Parity runners for big_vision's GIVT (`givt.Model`) and `mask_schedule` fixtures.

Interface of `tools.parity`: `run_<kind>(cdir, entry, want)` -> `{output
name: numpy array}` for every output keras_givt computes. `run_givt` serves
the decoder-only GIVTs and UViM's encoder-decoder GIVT (kind `givt_uvim`).
The DB-CFG mixture component draw uses JAX's PRNG: `cfg/mixture_index` is
read from the fixture (`want`) and passed through.
"""

import json
import os

import numpy as np
from keras import ops

from keras_givt.conversion import big_vision
from keras_givt.mixture import guidance
from keras_givt.models.givt.givt_loss import givt_nll
from keras_givt.samplers import schedules
from keras_givt.utils.tensor_utils import to_numpy
from tools.parity.fixture_files import read_npz_if_present


def _params_out(prefix, params, dist):
    out = {}
    kind = params["head_type"]
    if kind == "multivariate":
        out[prefix + "loc"] = params["loc"]
        out[prefix + "scale_tri"] = params["scale_tri"]
        return out
    out[prefix + "mixture_logits"] = dist.mixture_logits
    out[prefix + "mixture_probs"] = dist.mixture_probs
    out[prefix + "loc"] = params["loc"]
    out[prefix + ("scale" if kind == "per_channel" else "scale_diag")] = params[
        "scale" if kind == "per_channel" else "scale_diag"
    ]
    # big_vision's per-channel layout is (..., D, K) like ours.
    return out


def run_givt(cdir, entry, want=None):
    """All GIVT fixture outputs for one config."""
    with open(os.path.join(cdir, "config.json")) as f:
        config = json.load(f)
    model_kwargs = config.get("model_kwargs", entry.get("model_kwargs"))
    extras = config.get("extras", entry.get("extras", {}))
    backbone = big_vision.givt_backbone_from_big_vision_config(model_kwargs)
    big_vision.load_givt_params(
        backbone, os.path.join(cdir, entry.get("param_files", ["params.npz"])[0])
    )
    inputs = read_npz_if_present(cdir, "inputs.npz")
    want = want or {}

    seq = inputs["sequence"].astype("float32")
    labels = inputs.get("labels")
    masked = backbone.style == "masked"
    input_mask = inputs.get("input_mask")
    image = inputs.get("image")  # Encoder-decoder GIVT (UViM).
    encoded = None
    if backbone.num_layers > 0:
        encoded = backbone.encode(ops.convert_to_tensor(image.astype("float32")))

    def feed(labels_, mask_):
        d = {"tokens": ops.convert_to_tensor(seq)}
        if encoded is not None:
            d["image"] = ops.convert_to_tensor(image.astype("float32"))
        if backbone.num_labels is not None:
            d["labels"] = ops.convert_to_tensor(labels_, "int32")
        if masked:
            d["input_mask"] = ops.convert_to_tensor(mask_, "bool")
        return d

    out = {}
    if encoded is not None:
        out["encoded"] = encoded
    logits = backbone(feed(labels, input_mask), training=False)
    out["logits"] = logits
    head = backbone.head
    params = head.mixture_params(logits)
    dist = head.distribution(logits, use_tfp=False)
    out["log_prob"] = dist.log_prob(seq)
    out.update(_params_out("pdf/", params, dist))
    ts, tp = extras.get("temperature_scales"), extras.get("temperature_probs")
    params_t = head.mixture_params(logits, ts, tp)
    dist_t = head.distribution(logits, ts, tp, use_tfp=False)
    out["log_prob_temp"] = dist_t.log_prob(seq)
    out.update(_params_out("pdf_temp/", params_t, dist_t))
    out["train_loss"] = givt_nll(backbone, logits, seq, input_mask if masked else None)

    if not masked:
        _, reps = backbone.call_with_reps(feed(labels, input_mask))
        out.update({"reps/" + k: v for k, v in reps.items()})
    else:
        b, length = seq.shape[:2]
        out["logits_all_masked"] = backbone(feed(labels, np.ones((b, length), bool)))
        out["logits_none_masked"] = backbone(feed(labels, np.zeros((b, length), bool)))

    has_nolabel = "nolabel" in backbone.special_ids
    logits_uncond = None
    if has_nolabel and labels is not None:
        if "drop_labels" in inputs:
            dropped = backbone.drop_labels(labels, inputs["drop_labels"])
            out["logits_drop_labels"] = backbone(feed(dropped, input_mask))
        all_dropped = backbone.drop_labels(labels, np.ones_like(labels, dtype=bool))
        logits_uncond = backbone(feed(all_dropped, input_mask))
        out["logits_uncond"] = logits_uncond

    if not masked:
        n = int(extras.get("n_cache_steps", seq.shape[1] - 1))
        out["cached_logits"] = _cached_logits(backbone, seq, labels, n, encoded)
        if has_nolabel and labels is not None:
            uncond = backbone.drop_labels(labels, np.ones_like(labels, dtype=bool))
            out["cached_logits_uncond"] = _cached_logits(backbone, seq, uncond, n, encoded)

    cfg_w = extras.get("cfg_w")
    if cfg_w is not None and logits_uncond is not None:
        # The component draw uses JAX's PRNG: read it from the fixture.
        index = want.get("cfg/mixture_index")
        params_u = head.mixture_params(logits_uncond)
        if index is None and params["head_type"] == "mv_diag":
            index = to_numpy(guidance.sample_mixture_index(params, seed=0))
        cfg = guidance.CFGDensity(params, params_u, cfg_w, mixture_index=index)
        if index is not None:
            out["cfg/mixture_index"] = np.asarray(index)
        out["cfg/loc_c"], out["cfg/scale_c"] = cfg.loc_c, cfg.scale_c
        out["cfg/loc_u"], out["cfg/scale_u"] = cfg.loc_u, cfg.scale_u
        out["cfg/simple_scale"] = cfg.simple_scale
        out["cfg/fac"] = cfg.fac
        out["cfg/log_prob"] = cfg.log_prob(seq)
    return {k: to_numpy(v) for k, v in out.items()}


def _cached_logits(backbone, seq, labels, n_steps, encoded=None):
    b = seq.shape[0]
    cache = backbone.build_cache(b)
    logits, cache = backbone.prefill(labels, cache, batch_size=b, encoded=encoded)
    outs = [logits]
    for i in range(n_steps):
        step_logits, cache = backbone.call_with_cache(
            seq[:, i : i + 1], cache, i + 1, encoded=encoded
        )
        outs.append(step_logits)
    return ops.concatenate(outs, axis=1)


def run_mask_schedule(cdir, entry, want=None):
    """big_vision's `mask_schedule` function fixture (kind `functions`)."""
    inputs = read_npz_if_present(cdir, "inputs.npz")
    want = want or {}
    out = {}
    for key in want:
        if key.startswith("schedule/"):
            out[key] = schedules.mask_ratio(inputs["ratios"], key[len("schedule/") :])
        elif key.startswith("mask_len/"):
            spec = key[len("mask_len/") :]  # seq<L>_steps<N>
            seq_part, steps_part = spec.split("_")
            out[key] = schedules.mask_len_schedule(int(seq_part[3:]), int(steps_part[5:]), "cosine")
        elif key == "bottom_k/mask":
            out[key] = schedules.bottom_k_mask(inputs["bottom_k/confidence"], inputs["bottom_k/k"])
    return {k: to_numpy(v) for k, v in out.items()}
