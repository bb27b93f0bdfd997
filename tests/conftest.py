import gc
import os

# The suite's models are tiny: on the XLA backends compiling them costs far more than running
# them. LLVM's optimisation level 0 compiles the same programs faster (measured on the 2-core
# CI machine, jax: tests/models/uvim/test_givt_uvim.py + test_generation_task.py 64 s -> 38 s;
# tensorflow 54 -> 50 s). Same semantics, other instruction scheduling: every comparison in the
# suite has a tolerance or compares two runs of one build. The fixture checker (`make check`)
# and the benchmarks run with XLA's defaults. Set XLA_FLAGS yourself to override.
os.environ.setdefault(
    "XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
)

import keras  # noqa: E402
import pytest  # noqa: E402

FIXTURES_DIR = os.path.join(os.path.dirname(__file__), "fixtures")
BIG_VISION_FIXTURES = os.path.join(FIXTURES_DIR, "big_vision")

keras.config.disable_traceback_filtering()

# torch generation picks its thread count from the machine's load at each call (the "auto"
# policy of keras_givt/utils/torch_threads.py), and a float sum split over 1 or 2 threads can
# differ in the last bit: CI once saw 1.2e-7 between two same-seed generations. The suite
# compares generations bit for bit, so it pins torch's own setting; the policy itself is
# tested in tests/models/test_torch_threads.py.
os.environ.setdefault("KERAS_GIVT_TORCH_THREADS", "torch")


# Each test starts from a fresh Keras state (layer names, global settings) but without Keras's
# `gc.collect()`: a full collection walks every live object, and the objects a session keeps
# alive (compiled programs and their traces) grow to millions. Measured in the fresh-clone
# `make test` of session 12: setups of 1.5 s or more added up to 753 s of jax's 2,124 s (2.5 s
# per test late in the session), 489 s of tensorflow's 2,149 s. Python's own generational
# collections still free cycles; the objects of the imports (tensorflow, jax, keras, the test
# modules: ~0.4M, 0.25 s per full collection) are frozen out of them once collection is done.
def pytest_collection_finish(session):
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _reset_keras_state():
    keras.utils.clear_session(free_memory=False)
    yield
    keras.config.set_dtype_policy("float32")


def backend():
    return keras.config.backend()


# Files whose tests do not depend on the backend: argument checks that run before any tensor
# work, imports and registration in fresh interpreters, the CLI's file handling and its
# subprocess chains, dataset readers (numpy / tf.data on every backend), the tools. `make test`
# runs each on one backend of a rotation that covers all three (balanced by the time they took
# on the CI machine); their runs on the other backends are marked `large`, like the guides'
# (tests/test_guides.py), so `pytest -m large` runs them everywhere. The numerics (layers,
# mixture, models, samplers, metrics, conversion parity) run on every backend.
ONE_BACKEND = {
    "cli/test_autoencoder_loss_flags.py": "tensorflow",
    # Measured in the fresh-clone `make test` (session 11): 90 s on jax, 35 s on torch.
    "cli/test_bundled.py": "torch",
    "cli/test_cli.py": "torch",
    "cli/test_cli_validation.py": "tensorflow",
    "cli/test_evaluate_vae.py": "torch",
    "cli/test_kill_resume.py": "torch",
    "cli/test_uvim_cli.py": "tensorflow",
    "cli/test_vq_cli.py": "torch",  # 42 s on jax, 22 s on torch.
    "conversion/test_conversion_validation.py": "tensorflow",
    "conversion/test_msgpack_reader.py": "torch",
    "datasets/": "torch",
    "distributed/test_virtual_devices.py": "jax",
    "models/test_constructor_validation.py": "torch",
    # 179 s on tensorflow in session 12's fresh-clone run.
    "models/test_fit_validation.py": "torch",
    "models/test_generate_validation.py": "torch",
    "models/test_inpaint_validation.py": "jax",
    "models/test_loading_validation.py": "torch",  # 40 s on tensorflow.
    # Sampling-config resolution; the samplers' compiled paths are tested in
    # tests/samplers and tests/models (57 + 28 s of tf.function traces on tensorflow).
    "samplers/test_config.py": "torch",
    "test_import_structure.py": "torch",
    "test_keras_hub_presets.py": "tensorflow",
    "test_presets.py": "jax",
    "test_public_api.py": "torch",
    "test_readme.py": "torch",
    "tools/": "jax",
}
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def one_backend_of(path):
    """The backend that runs the test file `path` in `make test`, or None (every backend)."""
    rel = os.path.relpath(os.path.abspath(str(path)), TESTS_DIR).replace(os.sep, "/")
    for key, assigned in ONE_BACKEND.items():
        if rel == key or (key.endswith("/") and rel.startswith(key)):
            return assigned
    return None


def pytest_collection_modifyitems(config, items):
    current = keras.config.backend()
    for item in items:
        assigned = one_backend_of(item.path)
        if assigned is not None and assigned != current:
            item.add_marker(pytest.mark.large)
