"""Estimates a student can trust: the measured speed of this device against real trainings.

The issue's bar: within 2x of the real time across batch sizes 1 to 1,000 and MLP widths 1 to 1,024 (and
the CNN's shapes), where scaling one run by multiply-adds was 300x off for a width-1 MLP and priced batch 10
at batch 100's speed. Timing on a shared machine is noisy: each real time is the faster of two warm epochs
(the calibration's the fastest of five), and a case outside 2x is measured and timed once more before it
counts as a miss.
"""
import json
import math

import pytest

from mnist_core.config import RunConfig
from mnist_core.data import synthetic_data
from mnist_core.speed import Speed, machine_key, measure, speed_for
from mnist_core.train import train

MLP_CASES = [(batch, hidden) for batch in (1, 10, 100, 1000) for hidden in (1, 32, 256, 1024)]
CNN_CASES = [(batch, shape) for batch in (10, 100, 1000)
             for shape in ({}, {"stride": 2}, {"kernel_size": 5, "conv_layers": "all"})]
SECONDS_PER_CASE = 0.25  # each real epoch is sized to take about this long


@pytest.fixture(scope="module")
def speeds():
    return {model: measure(model, "cpu") for model in ("mlp", "cnn")}


def _real_epoch_seconds(config: RunConfig, speed: Speed) -> tuple[float, float]:
    """(real, predicted) seconds of one epoch of `config`, on an epoch sized to last ~SECONDS_PER_CASE."""
    per_image = speed.seconds(config.replace(train_size=config.batch_size, epochs=1), 100) / config.batch_size
    steps = max(2, min(int(SECONDS_PER_CASE / per_image / config.batch_size), 60_000 // config.batch_size))
    run = config.replace(train_size=steps * config.batch_size, test_size=100, epochs=2, init="xavier_uniform")
    result, _ = train(run, synthetic_data(run.train_size, 100))
    assert result.status == "ok"
    return min(e.seconds for e in result.epochs), speed.seconds(run.replace(epochs=1), 100)


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_the_estimate_is_within_2x_of_real_training_across_batch_sizes_and_widths(speeds, model):
    cases = [RunConfig(batch_size=b, hidden=h) for b, h in MLP_CASES] if model == "mlp" else \
        [RunConfig(model="cnn", batch_size=b, **shape) for b, shape in CNN_CASES]
    ratios = {}
    for config in cases:
        real, predicted = _real_epoch_seconds(config, speeds[model])
        if not 0.5 <= real / predicted <= 2:  # a moment of other work on the machine, or a real miss: the
            # device is measured again, the case timed again, and the nearer of the two counts. Either side
            # can be the slowed one: on a shared VM the same calibration read 0.27 ms or 0.52 ms a step
            # minutes apart, so the second try measures both anew; a real miss misses twice.
            again = _real_epoch_seconds(config, measure(model, "cpu"))
            real, predicted = min((real, predicted), again, key=lambda rp: abs(math.log(rp[0] / rp[1])))
        ratios[config.describe()] = real / predicted
    misses = {name: round(r, 2) for name, r in ratios.items() if not 0.5 <= r <= 2}
    assert not misses, f"real / estimated time outside 0.5-2: {misses} (all: {ratios})"
    # And the fixed cost per step is what makes small batches dear: batch 1 costs more per image than 1,000.
    speed = speeds[model]
    assert speed._at(1)[0] / 1 > speed._at(1000)[0] / 1000


def test_a_fresh_server_measures_once_and_a_damaged_speeds_file_is_measured_again(tmp_path):
    # A file cut short (a process killed mid-write leaves none: it is written aside and renamed into place
    # whole, but a disk can still hold garbage) is measured again, and rewritten whole.
    path = tmp_path / "speeds.json"
    path.write_text('{"mlp | ' + machine_key("cpu")[:20])
    first = speed_for("mlp", "cpu", path)
    assert first.machine == machine_key("cpu") and all(math.isfinite(x) and x >= 0 for x in first.fixed)
    assert list(json.loads(path.read_text())) == [f"mlp | {machine_key('cpu')}"]
    assert not list(tmp_path.glob(".*.tmp"))
    assert speed_for("mlp", "cpu", path) is first  # once per process
    # Another process (a restarted server) reads the file instead of measuring: its numbers, exactly.
    other = tmp_path / "copy.json"
    other.write_text(path.read_text())
    assert speed_for("mlp", "cpu", other) == first
