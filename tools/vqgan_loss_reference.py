"""Reference values of `VQGANTokenizer`'s training loss, for the shared-recipe refactor.

Usage:
    KERAS_BACKEND=jax python tools/vqgan_loss_reference.py --write
    (then tensorflow, torch: each backend adds its own entry)

Builds a tiny tokenizer per case (`CASES`), overwrites every trainable
variable with values drawn from a generator keyed by the variable's path (so
construction order does not matter), and records, on one fixed batch:

- the loss of `compute_loss` and every loss tracker after one forward pass
  with `training=True`;
- the summed absolute change of the encoder, decoder, codebook and
  discriminator variables after one SGD `train_on_batch` step (the gradient
  of each network's own objective).

`--write` merges the current backend's values into
`tests/fixtures/vqgan_loss_reference.json`; `tests/models/test_autoencoder_losses.py`
recomputes them with the current code and compares.
"""

import argparse
import json
import os
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

REFERENCE_PATH = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "tests",
    "fixtures",
    "vqgan_loss_reference.json",
)
TINY = dict(
    filters=32, num_res_blocks=1, channel_multipliers=[1, 1], embedding_dim=4, codebook_size=16
)
# Constructor arguments per case (besides TINY); "discriminator"/"perceptual_network"
# are flags here, replaced by the small networks of `build_tokenizer`.
CASES = {
    "plain": {},
    "non_saturating_r1_perceptual": dict(
        discriminator=True,
        perceptual_network=True,
        adversarial_loss="non_saturating",
        r1_gamma=1.0,
        perceptual_weight=0.3,
        adversarial_weight=0.2,
    ),
    "hinge_l1": dict(
        discriminator=True,
        adversarial_loss="hinge",
        r1_gamma=0.0,
        adversarial_weight=0.5,
        reconstruction_loss="l1",
    ),
}
TRACKERS = (
    "reconstruction_loss",
    "quantizer_loss",
    "perceptual_loss",
    "generator_loss",
    "discriminator_loss",
)


def images(num=4, size=8, seed=0):
    """A fixed batch (num, size, size, 3) in [0, 1]."""
    return np.random.default_rng(seed).uniform(0.0, 1.0, (num, size, size, 3)).astype("float32")


def set_weights_by_path(model):
    """Overwrites every trainable variable with values keyed by its path."""
    for v in model.trainable_variables:
        rng = np.random.default_rng(zlib.crc32(v.path.encode()))
        shape = tuple(v.shape)
        if len(shape) >= 2:
            value = rng.normal(size=shape) / np.sqrt(max(1, int(np.prod(shape[:-1]))))
        elif "scale" in v.path or "gamma" in v.path:
            value = 1.0 + 0.1 * rng.normal(size=shape)
        else:
            value = 0.05 * rng.normal(size=shape)
        v.assign(value.astype("float32"))


def build_tokenizer(case):
    """The case's tokenizer, built for 8x8x3 images, with path-keyed weights."""
    from keras_givt.models.vqvae import StyleGANDiscriminator
    from keras_givt.models.vqvae import VQGANTokenizer

    kwargs = dict(CASES[case])
    if kwargs.pop("discriminator", False):
        kwargs["discriminator"] = StyleGANDiscriminator(
            filters=8, channel_multipliers=[1], dense_units=8, name="discriminator"
        )
    if kwargs.pop("perceptual_network", False):
        features = keras.Sequential(
            [keras.layers.Conv2D(4, 3, padding="same", activation="tanh", name="features_conv")],
            name="features",
        )
        features.build((None, 8, 8, 3))
        kwargs["perceptual_network"] = features
    tok = VQGANTokenizer(**TINY, **kwargs)
    tok.build_for_image_size(8)
    # Non-trainable too: the perceptual network is frozen, but its weights matter.
    set_weights_by_path(tok)
    if tok.perceptual_network is not None:
        for v in tok.perceptual_network.weights:
            rng = np.random.default_rng(zlib.crc32(v.path.encode()))
            v.assign((0.3 * rng.normal(size=tuple(v.shape))).astype("float32"))
    return tok


def _group_of(path):
    for group in ("encoder", "decoder", "quantizer", "discriminator"):
        if path.startswith(group + "/") or f"/{group}/" in path:
            return group
    return "other"


def loss_values(tok, batch):
    """`{"loss", <tracker>..., "delta/<group>"...}` of one forward pass and one SGD step."""
    y_pred = tok(batch, training=True)
    loss = tok.compute_loss(x=batch, y_pred=y_pred, training=True)
    out = {"loss": float(ops.convert_to_numpy(loss))}
    for m in tok.metrics:
        if m.name in TRACKERS:
            out[m.name] = float(ops.convert_to_numpy(m.result()))
    for m in tok.metrics:
        m.reset_state()
    before = {v.path: np.array(ops.convert_to_numpy(v)) for v in tok.trainable_variables}
    tok.compile(optimizer=keras.optimizers.SGD(0.05))
    tok.train_on_batch(batch)
    deltas = {}
    for v in tok.trainable_variables:
        group = _group_of(v.path)
        change = float(np.abs(np.array(ops.convert_to_numpy(v)) - before[v.path]).sum())
        deltas[group] = deltas.get(group, 0.0) + change
    out.update({f"delta/{k}": val for k, val in sorted(deltas.items())})
    return out


def compute_all():
    """`{case: values}` on the current backend."""
    result = {}
    for case in CASES:
        keras.utils.clear_session()
        result[case] = loss_values(build_tokenizer(case), images())
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="Merge into the reference JSON.")
    args = parser.parse_args(argv)
    values = compute_all()
    print(json.dumps(values, indent=1))
    if args.write:
        data = {}
        if os.path.isfile(REFERENCE_PATH):
            with open(REFERENCE_PATH) as f:
                data = json.load(f)
        data[keras.config.backend()] = values
        tmp = REFERENCE_PATH + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, REFERENCE_PATH)


if __name__ == "__main__":
    main()
