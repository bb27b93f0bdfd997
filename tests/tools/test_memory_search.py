"""benchmarks/memory.py's `search_max_batch`: the largest batch within a budget, in few probes.

A probe at the published sizes costs minutes, so the search must be right
(the bracket it returns is exact for any peak that grows with the batch)
and cheap where the peak is a line (two probes after two fitting batches).
"""

import keras
import numpy as np
import pytest

from benchmarks import memory


def _linear(base, per_example, budget):
    calls = []

    def probe(batch):
        calls.append(batch)
        peak = base + per_example * batch
        return None if peak > budget else peak  # A run past the budget is stopped.

    return probe, calls


@pytest.mark.parametrize(
    "base, per_example, budget, start, max_batch, expected",
    [
        (6.3, 0.2, 23.0, 8, 4096, 83),  # GIVT-Causal-like: 6.3 GiB + 0.2 GiB per example.
        (0.0, 1.0, 10.5, 1, 4096, 10),
        (0.0, 1.0, 100.0, 8, 50, 50),  # Capped by max_batch.
        (30.0, 0.2, 23.0, 8, 4096, 0),  # Nothing fits.
        (5.0, 1.0, 10.0, 64, 4096, 5),  # Starts above the answer.
        (0.0, 1.0, 1000.0, 1, 1, 1),
    ],
)
def test_finds_the_largest_fitting_batch(base, per_example, budget, start, max_batch, expected):
    probe, calls = _linear(base, per_example, budget)
    good, probes = memory.search_max_batch(probe, start, max_batch, budget)
    assert good == expected
    assert [b for b, _ in probes] == calls
    assert len(calls) == len(set(calls))  # No batch probed twice.
    if 0 < expected < max_batch:
        assert expected in calls and expected + 1 in calls  # Both ends of the bracket were run.


def test_a_line_takes_two_probes_after_two_fits():
    probe, calls = _linear(6.3, 0.2, 23.0)
    memory.search_max_batch(probe, 8, 4096, 23.0)
    assert calls == [8, 16, 83, 84]


def test_one_fit_below_a_failure_bisects_instead_of_creeping():
    # 16 fits, its double 32 does not: without a line the search bisects the bracket.
    probe, calls = _linear(6.3, 0.9, 23.0)
    good, _ = memory.search_max_batch(probe, 16, 4096, 23.0)
    assert good == 18 and 19 in calls
    assert len(calls) <= 7, calls


def test_a_failed_run_does_not_fit():
    # Runs above batch 20 crash (None) although their peaks would be far below the budget.
    def probe(batch):
        return None if batch > 20 else 1.0 + 0.01 * batch

    good, probes = memory.search_max_batch(probe, 8, 4096, 1e9)
    assert good == 20 and (21, None) in probes


@pytest.mark.parametrize("curvature", [0.0, 0.002, 0.01])
def test_curved_peaks_are_searched_exactly(curvature):
    def peak(batch):
        return 6.0 + 0.1 * batch + curvature * batch * batch

    calls = []

    def probe(batch):
        calls.append(batch)
        return None if peak(batch) > 23.0 else peak(batch)

    good, _ = memory.search_max_batch(probe, 8, 4096, 23.0)
    assert peak(good) <= 23.0 < peak(good + 1)
    assert len(calls) <= 12


def test_plan_with_xla_needs_jax_and_the_search():
    with pytest.raises(SystemExit):
        memory.parse_args(["--plan-with-xla", "--backend", "torch", "--find-max-batch"])
    with pytest.raises(SystemExit):
        memory.parse_args(["--plan-with-xla", "--backend", "jax"])
    args = memory.parse_args(["--plan-with-xla", "--backend", "jax", "--find-max-batch"])
    assert args.plan_with_xla and args.calibration_batch == 8


@pytest.mark.skipif(keras.config.backend() != "jax", reason="XLA's buffer plan: jax")
def test_xla_plan_grows_with_the_batch_and_runs_the_step():
    from keras_givt import GIVTBackbone
    from keras_givt import GIVTCausal
    from keras_givt.models.optimizers import PerVariableAdam
    from tests import helpers

    def plan(batch, run):
        model = GIVTCausal(GIVTBackbone(**helpers.tiny_kwargs()), seed=0)
        model.compile(optimizer=PerVariableAdam(1e-3, global_clipnorm=1.0))
        seq_len, out_dim = model.backbone.seq_len, model.backbone.out_dim
        rng = np.random.default_rng(0)
        data = {
            "latents": rng.normal(size=(batch, seq_len, out_dim)).astype("float32"),
            "labels": rng.integers(0, 2, size=(batch,)).astype("int32"),
        }
        return memory._xla_plan(model, data, run)

    small, large = plan(2, run=True), plan(64, run=False)
    assert small["loss_finite"] and "loss" not in large
    # Only the temporaries grow: the state (weights, Adam moments) is the same size.
    assert large["temp_gib"] > small["temp_gib"] > 0
    assert abs(large["argument_gib"] - small["argument_gib"]) < 0.1 * small["argument_gib"]
    assert large["program_gib"] > small["program_gib"]
