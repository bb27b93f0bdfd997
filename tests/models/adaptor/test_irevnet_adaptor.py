"""IRevNetAdaptor: invertibility, shapes, config and saving."""

import os

import keras
import numpy as np
import pytest

from keras_givt.conversion import big_vision_vae
from keras_givt.models.adaptor import IRevNetAdaptor
from keras_givt.utils.tensor_utils import to_numpy


@pytest.mark.parametrize(
    "kwargs,shape",
    [
        (dict(num_blocks=3, num_channels=4, num_channels_bottleneck=8), (2, 9, 4)),
        (dict(num_blocks=2, num_channels=4, num_channels_bottleneck=16,
              pixel_shuffle_patch_size=(1, 2)), (1, 8, 8)),
    ],
)
def test_inverse_of_forward(kwargs, shape):
    adaptor = IRevNetAdaptor(**kwargs)
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    y = adaptor.forward(x)
    assert tuple(y.shape) == shape
    assert not np.allclose(to_numpy(y), x)
    np.testing.assert_allclose(to_numpy(adaptor.inverse(y)), x, atol=1e-5)
    np.testing.assert_allclose(to_numpy(adaptor.forward(adaptor.inverse(x))), x, atol=1e-5)
    np.testing.assert_allclose(to_numpy(adaptor(x)), to_numpy(y))


def test_param_names_and_errors():
    adaptor = big_vision_vae.build_adaptor(
        dict(num_blocks=2, num_channels=8, num_channels_bottleneck=16), code_len=16
    )
    names = set(big_vision_vae.adaptor_weight_map(adaptor))
    assert "modules_0/gn_0/scale" not in names and "modules_1/gn_0/scale" in names
    weight_map = big_vision_vae.adaptor_weight_map(adaptor)
    params = {k: np.zeros(v[1], "float32") for k, v in weight_map.items()}
    nested = {"params_adaptor/" + k: v for k, v in params.items()}
    big_vision_vae.load_adaptor_params(adaptor, nested)
    params["modules_1/Conv_2/kernel"] = np.zeros((3, 3, 8, 5), "float32")
    match = r"modules_1/Conv_2/kernel.*\(3, 3, 8, 5\).*\(3, 3, 8, 4\)"
    with pytest.raises(ValueError, match=match):
        big_vision_vae.load_adaptor_params(adaptor, params)


def test_config_and_keras_save(tmp_path):
    adaptor = IRevNetAdaptor(num_blocks=2, num_channels=4, num_channels_bottleneck=8)
    x = np.random.default_rng(1).normal(size=(2, 16, 4)).astype("float32")
    y = to_numpy(adaptor(x))
    config = adaptor.get_config()
    assert IRevNetAdaptor.from_config(config).get_config() == config
    path = os.path.join(tmp_path, "adaptor.keras")
    adaptor.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(to_numpy(loaded(x)), y, atol=1e-6)
    np.testing.assert_allclose(to_numpy(loaded.inverse(loaded(x))), x, atol=1e-5)
