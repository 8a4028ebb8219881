"""The engine's numbers do not drift: a few fixed small runs against the figures recorded in tests/golden/.

A change that moves them must bump ENGINE_VERSION (every cached run is then retrained) and re-record:
    MNIST_DATA_DIR=../shared/data/mnist python tests/record_golden.py

The tolerance comes from measurement, not from one machine's luck. Recorded on an AMD EPYC (AVX-512 with
bf16, torch 2.14.1, 1 thread) with native kernels, then measured with other kernels on the same machine
(`python tests/record_golden.py --compare`), the largest deviations over the three runs and two epochs:
    2 threads instead of 1                                        losses 1.1e-7 relative, accuracies equal
    ATEN_CPU_CAPABILITY=avx2                                       losses 9.6e-8 relative, accuracies equal
    ATEN_CPU_CAPABILITY=avx2, MKL and oneDNN held to AVX2          losses 3.4e-6 relative, accuracies equal
    ATEN_CPU_CAPABILITY=default                                    losses 7.7e-5 relative, accuracies equal
    ATEN_CPU_CAPABILITY=default, MKL and oneDNN held to SSE4       losses 2.4e-3 relative, accuracies equal
(MKL_ENABLE_INSTRUCTIONS and ONEDNN_MAX_CPU_ISA hold the matmul and convolution libraries to the older
instructions, which ATEN_CPU_CAPABILITY does not.) The worst is the CNN's test loss, which dropout and two
epochs of Adam amplify. So losses may differ by 1% (4x the most different kernels we could produce) and
accuracies by 0.5 points (2.5 of the CNN's 500 test images: none flipped in any of the above).

What an engine change does, measured the same way: another seed (another shuffle and init) moves every run
by 6-31% in loss and 2-16 points in accuracy; lr 0.0011 instead of 0.001 moves every run by at least 1.2%
in loss or 3 points in accuracy, and even lr 0.00101 moves the CNN's test accuracy 4.6 points.
test_the_tolerance_catches_an_engine_change checks the first of these on every run.
"""
import json

import pytest

from mnist_core.config import ENGINE_VERSION, RunConfig
from record_golden import CONFIGS, GOLDEN, METRICS, measure

pytestmark = pytest.mark.numerics

LOSS_RTOL = 1e-2
ACC_ATOL = 0.005


def out_of_tolerance(recorded: dict, measured: dict) -> list[str]:
    """Every metric of every epoch that differs from the recording by more than the tolerance."""
    far = []
    for name, run in recorded["runs"].items():
        got = measured["runs"][name]["epochs"]
        assert len(got) == len(run["epochs"]), name
        for epoch, (want, have) in enumerate(zip(run["epochs"], got), start=1):
            for k in METRICS:
                limit = LOSS_RTOL * abs(want[k]) if k.endswith("loss") else ACC_ATOL
                if abs(have[k] - want[k]) > limit:
                    far.append(f"{name} epoch {epoch} {k}: recorded {want[k]:.6g}, now {have[k]:.6g}")
    return far


@pytest.fixture(scope="module")
def recorded(mnist):
    assert GOLDEN.exists(), (f"no golden runs for engine version {ENGINE_VERSION}: record them with "
                             "python tests/record_golden.py")
    recorded = json.loads(GOLDEN.read_text())
    assert recorded["engine_version"] == ENGINE_VERSION
    assert recorded["data_id"] == mnist.data_id, "the golden runs were recorded on other MNIST files"
    assert {n: RunConfig.from_dict(r["config"]) for n, r in recorded["runs"].items()} == CONFIGS, \
        "the golden configs changed: re-record"
    return recorded


def test_the_engine_trains_the_golden_runs_to_their_recorded_numbers(recorded, mnist):
    far = out_of_tolerance(recorded, measure())
    assert not far, ("The engine's results moved. If that is intended, bump ENGINE_VERSION in mnist_core/config.py "
                     "and run python tests/record_golden.py.\n" + "\n".join(far))


def test_the_tolerance_catches_an_engine_change(recorded, monkeypatch):
    # another shuffle and init, as a changed engine would give: every run must leave the tolerance
    import record_golden
    monkeypatch.setattr(record_golden, "CONFIGS", {n: c.replace(seed=c.seed + 1) for n, c in CONFIGS.items()})
    far = out_of_tolerance(recorded, record_golden.measure())
    assert {line.split()[0] for line in far} == set(CONFIGS)
