"""The shared perceptual + adversarial recipe (`AutoencoderLosses`) of BetaVAE and VQGANTokenizer.

- VQGANTokenizer: loss, trackers and one SGD step equal the values the code
  before the refactor gave (tests/fixtures/vqgan_loss_reference.json, one
  entry per backend, written by tools/vqgan_loss_reference.py).
- BetaVAE with the shipped perceptual network, a discriminator, a start
  step and the adaptive weight: trains with finite losses; the discriminator
  is untouched before the start step and trained after it; the loss before
  it equals the loss of the same VAE without a discriminator.
- The adaptive weight: the ratio of two gradient norms (checked on known
  ratios), clipped; the last conv re-applied to the kept features gives the
  decoder's output.
- Config round trips (and configs saved before the recipe's new keys).
"""

import json

import keras
import numpy as np
import pytest
from keras import ops

import keras_givt
from keras_givt.models import autoencoder_losses
from keras_givt.models import perceptual_network
from keras_givt.models.vqvae import StyleGANDiscriminator
from tools import vqgan_loss_reference

VAE = dict(
    codeword_dim=4,
    code_len=16,
    filters=32,
    num_res_blocks=1,
    channel_multipliers=[1, 2],
    beta=1e-3,
    seed=0,
)


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _images(num=4, size=8, seed=0):
    """(num, size, size, 3) in [-1, 1] (the VAE's range)."""
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (num, size, size, 3)).astype("float32")


def _disc():
    return StyleGANDiscriminator(filters=8, channel_multipliers=[1], dense_units=8)


def _vae(**kwargs):
    vae = keras_givt.BetaVAE(**VAE, **kwargs)
    vae.build_for_image_size(8)
    return vae


# --- VQGANTokenizer: same values as before the refactor ------------------------------


@pytest.mark.parametrize("case", sorted(vqgan_loss_reference.CASES))
def test_vqgan_loss_equals_the_code_before_the_refactor(case):
    with open(vqgan_loss_reference.REFERENCE_PATH) as f:
        reference = json.load(f)
    backend = keras.config.backend()
    if backend not in reference:
        pytest.skip(f"no reference values for {backend}")
    want = reference[backend][case]
    got = vqgan_loss_reference.loss_values(
        vqgan_loss_reference.build_tokenizer(case), vqgan_loss_reference.images()
    )
    assert set(got) == set(want)
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-6, err_msg=key)


def test_vqgan_start_step_zero_and_adaptive_off_are_the_old_config():
    tok = keras_givt.VQGANTokenizer(**vqgan_loss_reference.TINY, discriminator=_disc())
    config = tok.get_config()
    assert config["adversarial_start_step"] == 0
    assert config["adaptive_adversarial_weight"] is False
    assert tok.adversarial_step is None  # No counter variable: old saved files still load.


# --- BetaVAE with the full recipe ------------------------------------------------------


def test_beta_vae_full_recipe_trains_and_gates_the_discriminator():
    keras.utils.set_random_seed(0)
    images = _images(8)
    vae = _vae(
        perceptual_network="fashion_mnist_features",
        perceptual_weight=0.5,
        discriminator=_disc(),
        adversarial_loss="hinge",
        r1_gamma=1.0,
        adversarial_start_step=2,
        adaptive_adversarial_weight=True,
    )
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    d0 = [_np(v).copy() for v in vae.discriminator.trainable_variables]
    p0 = [_np(v).copy() for v in vae.perceptual_network.weights]
    dec0 = [_np(v).copy() for v in vae.decoder.trainable_variables]
    # Two steps before the start step: the discriminator gets no gradient.
    hist = vae.fit(images, epochs=1, batch_size=4, verbose=0).history
    assert int(_np(vae.adversarial_step)) == 2
    for a, b in zip(d0, vae.discriminator.trainable_variables):
        np.testing.assert_array_equal(a, _np(b))
    assert max(np.abs(a - _np(b)).max() for a, b in zip(dec0, vae.decoder.trainable_variables)) > 0
    # Then it trains.
    hist = vae.fit(images, epochs=2, batch_size=4, verbose=0).history
    assert int(_np(vae.adversarial_step)) == 6
    assert max(np.abs(a - _np(b)).max() for a, b in zip(d0, vae.discriminator.trainable_variables))
    for key in (
        "loss",
        "reconstruction_loss",
        "kl_loss",
        "perceptual_loss",
        "generator_loss",
        "discriminator_loss",
        "adaptive_weight",
    ):
        assert np.all(np.isfinite(hist[key])), (key, hist[key])
    assert min(hist["adaptive_weight"]) > 0
    assert min(hist["perceptual_loss"]) > 0
    # The perceptual network stays frozen.
    for a, b in zip(p0, vae.perceptual_network.weights):
        np.testing.assert_array_equal(a, _np(b))


def test_beta_vae_loss_before_the_start_step_equals_the_loss_without_discriminator():
    images = _images(4)
    adv = _vae(
        perceptual_network="fashion_mnist_features",
        discriminator=_disc(),
        adversarial_weight=0.7,
        adversarial_start_step=1,
    )
    plain = _vae(perceptual_network="fashion_mnist_features")
    plain.encoder.set_weights(adv.encoder.get_weights())
    plain.decoder.set_weights(adv.decoder.get_weights())

    def loss(model, training):
        y_pred = model(images, training=False)  # the posterior mean: deterministic
        return float(_np(model.compute_loss(x=images, y_pred=y_pred, training=training)))

    want = loss(plain, True)
    before = loss(adv, True)  # step 0 < 1: gated off; counts the step
    after = loss(adv, True)  # step 1: on
    np.testing.assert_allclose(before, want, rtol=1e-6)
    assert abs(after - want) > 1e-4
    # Evaluation (training=False) does not count steps.
    assert int(_np(adv.adversarial_step)) == 2
    loss(adv, False)
    assert int(_np(adv.adversarial_step)) == 2


def test_beta_vae_recipe_off_is_reconstruction_plus_beta_kl():
    images = _images(4)
    vae = _vae()
    y_pred = vae(images, training=False)
    got = float(_np(vae.compute_loss(x=images, y_pred=y_pred)))
    rec = float(np.mean((_np(y_pred) - images) ** 2))
    mu, logvar = (_np(t) for t in vae.encode(images))
    kl = np.mean(np.sum(0.5 * (mu**2 + np.exp(logvar) - 1.0 - logvar), axis=(1, 2)))
    np.testing.assert_allclose(got, rec + VAE["beta"] * kl, rtol=1e-5)
    assert {m.name for m in vae.metrics} - {"loss"} == {"reconstruction_loss", "kl_loss"}


def test_perceptual_and_discriminator_see_unit_range_images():
    # BetaVAE trains on [-1, 1]; the recipe hands [0, 1] images to both networks.
    seen = []

    class Probe(keras.layers.Layer):
        def call(self, x):
            seen.append((float(_np(ops.min(x))), float(_np(ops.max(x)))))
            return ops.mean(x, axis=(1, 2, 3))  # (B,): also a "discriminator"

    vae = _vae(
        perceptual_network=Probe(), perceptual_weight=1.0, discriminator=Probe(), r1_gamma=0.0
    )
    seen.clear()  # (the discriminator's build call)
    images = _images(4)
    images[0, 0, 0, 0], images[0, 0, 0, 1] = -1.0, 1.0
    vae.perceptual_loss(images, images)
    assert seen == [(0.0, 1.0)] * 2
    seen.clear()
    vae.adversarial_losses(images, images)
    assert seen == [(0.0, 1.0)] * 3  # D(x̂) frozen, D(x), D(sg(x̂))


# --- the adaptive weight -----------------------------------------------------------------


def test_kept_features_reproduce_the_decoder_output():
    vae = _vae(discriminator=_disc(), adaptive_adversarial_weight=True)
    images = _images(2)
    z, _ = vae.encode(images)
    raw, features = vae.decoder(vae._latent_grid(z), return_features=True)
    np.testing.assert_allclose(_np(vae.decoder.out_conv(features)), _np(raw), atol=1e-6)
    np.testing.assert_allclose(_np(raw), _np(vae.decode_raw(z)), atol=1e-6)
    # `call` keeps them for compute_loss, which takes and clears them.
    vae(images)
    assert vae._decoder_features is not None
    vae.compute_loss(x=images, y_pred=vae(images), training=False)
    assert vae._decoder_features is None


def test_adaptive_weight_is_the_gradient_norm_ratio_and_clipped():
    vae = _vae(discriminator=_disc(), adaptive_adversarial_weight=True, adaptive_weight_max=5.0)
    images = _images(4)
    vae(images)
    features = vae._decoder_features

    def g_of(fake):
        unit = vae._to_unit(fake)
        return vae._generator_loss(vae._d_logits(unit, frozen=True))

    # nll = c · G: the ratio is c·‖∇G‖ / (‖∇G‖ + 1e-4) ≈ c (clipped at 5).
    for c, want in ((1.0, 1.0), (3.0, 3.0), (40.0, 5.0)):
        got = float(
            _np(vae.adaptive_adversarial_weight_value(images, lambda f: c * g_of(f), features))
        )
        np.testing.assert_allclose(got, want, rtol=1e-2)
    # A real one: finite and positive.
    rec = vae.adaptive_adversarial_weight_value(
        images, lambda f: vae._reconstruction(images, f), features
    )
    assert np.isfinite(_np(rec)) and float(_np(rec)) > 0
    with pytest.raises(ValueError, match="decoder features"):
        vae._decoder_features = None
        vae.adaptive_adversarial_weight_value(images, g_of)


def test_value_gradient_and_input_gradient():
    x = ops.convert_to_tensor(np.array([1.0, -2.0, 3.0], "float32"))
    np.testing.assert_allclose(
        _np(autoencoder_losses.value_gradient(lambda v: ops.square(v), x)), [2.0, -4.0, 6.0]
    )
    np.testing.assert_allclose(
        _np(autoencoder_losses.input_gradient(lambda v: v**3, x)), [3.0, 12.0, 27.0]
    )


# --- config --------------------------------------------------------------------------


def test_beta_vae_config_round_trip_and_saving(tmp_path):
    vae = _vae(
        perceptual_network="fashion_mnist_features",
        perceptual_weight=0.25,
        discriminator=_disc(),
        adversarial_loss="hinge",
        adversarial_weight=0.3,
        r1_gamma=2.0,
        adversarial_start_step=5,
        adaptive_adversarial_weight=True,
        adaptive_weight_max=100.0,
    )
    vae.adversarial_step.assign(3)
    config = vae.get_config()
    assert config["perceptual_network"] == "fashion_mnist_features"
    again = keras_givt.BetaVAE.from_config(config)
    assert again.get_config() == config
    path = str(tmp_path / "vae.keras")
    vae.save(path)
    loaded = keras.saving.load_model(path)
    as_json = lambda c: json.loads(json.dumps(c))  # noqa: E731 (tuples come back as lists)
    assert as_json(loaded.get_config()) == as_json(config)
    assert int(_np(loaded.adversarial_step)) == 3
    images = _images(2)
    np.testing.assert_allclose(_np(loaded(images)), _np(vae(images)), atol=1e-6)
    for a, b in zip(vae.discriminator.weights, loaded.discriminator.weights):
        np.testing.assert_array_equal(_np(a), _np(b))


@pytest.mark.parametrize("cls", ["BetaVAE", "VQGANTokenizer"])
def test_inference_copy_has_the_weights_and_no_training_networks(cls):
    recipe = dict(
        perceptual_network="fashion_mnist_features",
        discriminator=_disc(),
        adversarial_start_step=3,
        adaptive_adversarial_weight=True,
    )
    if cls == "BetaVAE":
        model, plain = _vae(**recipe), _vae()
        images = _images(2)
    else:
        tiny = vqgan_loss_reference.TINY
        model = keras_givt.VQGANTokenizer(**tiny, **recipe).build_for_image_size(8)
        plain = keras_givt.VQGANTokenizer(**tiny).build_for_image_size(8)
        images = vqgan_loss_reference.images(2)
    vqgan_loss_reference.set_weights_by_path(model)  # not the initial weights
    copy = model.without_training_networks()
    assert copy.discriminator is None and copy.perceptual_network is None
    assert copy.adversarial_step is None and not copy.adaptive_adversarial_weight
    assert len(copy.weights) == len(plain.weights)
    want, got = model(images), copy(images)
    if cls == "VQGANTokenizer":
        want, got = want["reconstruction"], got["reconstruction"]
    np.testing.assert_allclose(_np(got), _np(want), atol=1e-6)


def test_configs_without_the_new_keys_load_with_them_off():
    config = _vae().get_config()
    for key in (
        "perceptual_network",
        "perceptual_weight",
        "discriminator",
        "adversarial_loss",
        "adversarial_weight",
        "r1_gamma",
        "adversarial_start_step",
        "adaptive_adversarial_weight",
        "adaptive_weight_max",
    ):
        config.pop(key)
    vae = keras_givt.BetaVAE.from_config(config)
    assert vae.perceptual_network is None and vae.discriminator is None
    assert vae.adversarial_step is None and not vae.adaptive_adversarial_weight
    tok_config = keras_givt.VQGANTokenizer(**vqgan_loss_reference.TINY).get_config()
    for key in ("adversarial_start_step", "adaptive_adversarial_weight", "adaptive_weight_max"):
        tok_config.pop(key)
    tok = keras_givt.VQGANTokenizer.from_config(tok_config)
    assert tok.adversarial_start_step == 0 and not tok.adaptive_adversarial_weight


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        (dict(perceptual_network="vgg16"), ValueError, "perceptual_network"),
        (dict(perceptual_network=3), TypeError, "perceptual_network"),
        (dict(discriminator="patchgan"), TypeError, "discriminator"),
        (dict(adversarial_loss="wasserstein"), ValueError, "adversarial_loss"),
        (dict(adversarial_weight=-1.0), ValueError, "adversarial_weight"),
        (dict(perceptual_weight=float("nan")), ValueError, "perceptual_weight"),
        (dict(r1_gamma=-0.5), ValueError, "r1_gamma"),
        (dict(adversarial_start_step=-1), ValueError, "adversarial_start_step"),
        (dict(adversarial_start_step=1.5), TypeError, "adversarial_start_step"),
        (dict(adaptive_adversarial_weight="yes"), TypeError, "adaptive_adversarial_weight"),
        (dict(adaptive_weight_max=0.0), ValueError, "adaptive_weight_max"),
    ],
)
@pytest.mark.parametrize("cls", ["BetaVAE", "VQGANTokenizer"])
def test_bad_recipe_arguments_are_refused(cls, kwargs, error, name):
    base = VAE if cls == "BetaVAE" else vqgan_loss_reference.TINY
    with pytest.raises(error, match=name):
        getattr(keras_givt, cls)(**base, **kwargs)


# --- the shipped perceptual network ---------------------------------------------------


def test_shipped_perceptual_network_loads_frozen_with_its_record():
    net = perceptual_network.load_perceptual_network("fashion_mnist_features")
    assert not net.trainable
    with open(perceptual_network.info_path("fashion_mnist_features")) as f:
        info = json.load(f)
    assert 0.0 < info["test_accuracy"] <= 1.0 and "train_perceptual_net.py" in info["command"]
    np.testing.assert_allclose(_np(net.feature_rms), info["feature_rms"], rtol=1e-6)
    images = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    features = net(images)
    widths = info["config"]["widths"]
    assert [tuple(f.shape) for f in features] == [
        (2, 32 // 2**i, 32 // 2**i, w) for i, w in enumerate(widths)
    ]
    # Channels are averaged: gray and its RGB tiling give the same features.
    gray = images[..., :1]
    for a, b in zip(net(gray), net(np.repeat(gray, 3, axis=-1))):
        np.testing.assert_allclose(_np(a), _np(b), atol=1e-5)


def _test_accuracy(net, num):
    from keras_givt import datasets

    try:
        images, labels = datasets.load_fashion_mnist("test")
    except FileNotFoundError as e:  # pragma: no cover - data not installed
        pytest.skip(f"Fashion-MNIST not installed: {e}")
    x = np.pad(images[:num].astype("float32") / 255.0, ((0, 0), (2, 2), (2, 2)))
    x = np.repeat(x[..., None], 3, axis=-1)
    logits = np.concatenate([_np(net.classify(x[i : i + 500])) for i in range(0, num, 500)])
    return float((logits.argmax(-1) == labels[:num]).mean())


def test_shipped_perceptual_network_classifies_real_test_images():
    net = perceptual_network.load_perceptual_network("fashion_mnist_features")
    with open(perceptual_network.info_path("fashion_mnist_features")) as f:
        recorded = json.load(f)["test_accuracy"]
    assert abs(_test_accuracy(net, 1000) - recorded) < 0.04


@pytest.mark.large
def test_shipped_perceptual_network_accuracy_is_the_recorded_one():
    net = perceptual_network.load_perceptual_network("fashion_mnist_features")
    with open(perceptual_network.info_path("fashion_mnist_features")) as f:
        recorded = json.load(f)["test_accuracy"]
    assert abs(_test_accuracy(net, 10000) - recorded) < 2e-4
