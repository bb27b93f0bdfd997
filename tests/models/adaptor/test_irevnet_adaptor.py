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
        # big_vision's 512 config: (1, 2) patch, token grid 4 x 2 (not square).
        (
            dict(
                num_blocks=2,
                num_channels=4,
                num_channels_bottleneck=16,
                pixel_shuffle_patch_size=(1, 2),
            ),
            (1, 8, 4),
        ),
        (
            dict(
                num_blocks=2,
                num_channels=4,
                num_channels_bottleneck=8,
                pixel_shuffle_patch_size=(2, 1),
            ),
            (2, 18, 4),
        ),
        (
            dict(
                num_blocks=1,
                num_channels=6,
                num_channels_bottleneck=12,
                pixel_shuffle_patch_size=(2, 3),
            ),
            (1, 6, 6),
        ),
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


@pytest.mark.parametrize(
    "num_tokens,patch,grid",
    [
        (16, (1, 1), (4, 4)),
        (8, (1, 2), (4, 2)),
        (32, (1, 2), (8, 4)),
        (18, (2, 1), (3, 6)),
        (6, (2, 3), (3, 2)),
        (256, (2, 2), (16, 16)),
        (512, (1, 2), (32, 16)),
    ],
)
def test_token_grid_matches_big_vision(num_tokens, patch, grid):
    # big_vision cnn.get_h_w_pixelshuffle: s = isqrt(L*ph*pw), h = s // ph, w = s // pw.
    from keras_givt.models.adaptor.irevnet_adaptor import token_grid

    assert token_grid(num_tokens, patch) == grid
    h, w = grid
    assert h * w == num_tokens and h * patch[0] == w * patch[1]


@pytest.mark.parametrize("num_tokens,patch", [(8, (1, 1)), (12, (1, 2)), (10, (2, 2))])
def test_token_grid_refuses_what_big_vision_refuses(num_tokens, patch):
    adaptor = IRevNetAdaptor(
        num_blocks=1, num_channels=4, num_channels_bottleneck=8, pixel_shuffle_patch_size=patch
    )
    x = np.zeros((1, num_tokens, 4), "float32")
    with pytest.raises(ValueError, match=rf"{num_tokens} tokens.*pixel_shuffle_patch_size"):
        adaptor.forward(x)


def test_token_grid_layout_is_row_major():
    # `b (h w) c -> b h w c`: a 1x1-kernel-free check through the grid helpers.
    adaptor = IRevNetAdaptor(
        num_blocks=1, num_channels=2, num_channels_bottleneck=2, pixel_shuffle_patch_size=(1, 2)
    )
    x = np.arange(16, dtype="float32").reshape(1, 8, 2)
    grid = to_numpy(adaptor._to_grid(x))
    assert grid.shape == (1, 4, 2, 2)
    np.testing.assert_array_equal(grid.reshape(1, 8, 2), x)
    np.testing.assert_array_equal(grid[0, 1, 0], x[0, 2])
    np.testing.assert_array_equal(to_numpy(adaptor._to_tokens(grid)), x)


def test_wrong_token_width_is_refused():
    adaptor = IRevNetAdaptor(
        num_blocks=1, num_channels=4, num_channels_bottleneck=8, pixel_shuffle_patch_size=(1, 2)
    )
    with pytest.raises(ValueError, match=r"num_channels=4.*8 channels"):
        adaptor.forward(np.zeros((1, 8, 8), "float32"))
