import os

import keras
import pytest

FIXTURES_DIR = os.path.join(os.path.dirname(__file__), "fixtures")
BIG_VISION_FIXTURES = os.path.join(FIXTURES_DIR, "big_vision")

keras.config.disable_traceback_filtering()

# torch generation picks its thread count from the machine's load at each call (the "auto"
# policy of keras_givt/utils/torch_threads.py), and a float sum split over 1 or 2 threads can
# differ in the last bit: CI once saw 1.2e-7 between two same-seed generations. The suite
# compares generations bit for bit, so it pins torch's own setting; the policy itself is
# tested in tests/models/test_torch_threads.py.
os.environ.setdefault("KERAS_GIVT_TORCH_THREADS", "torch")


@pytest.fixture(autouse=True)
def _reset_keras_state():
    keras.utils.clear_session()
    yield
    keras.config.set_dtype_policy("float32")


def backend():
    return keras.config.backend()
