import os

import keras
import pytest

FIXTURES_DIR = os.path.join(os.path.dirname(__file__), "fixtures")
BIG_VISION_FIXTURES = os.path.join(FIXTURES_DIR, "big_vision")

keras.config.disable_traceback_filtering()


@pytest.fixture(autouse=True)
def _reset_keras_state():
    keras.utils.clear_session()
    yield
    keras.config.set_dtype_policy("float32")


def backend():
    return keras.config.backend()
