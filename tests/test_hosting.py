"""Hosted mode: the operator's caps come from the environment, and a request's cost is priced in seconds."""
import pytest

from mnist_core.config import RunConfig
from mnist_core.hosting import ASSUMED_IMAGES_PER_SECOND, HostingLimits
from mnist_core.results import EpochMetrics, RunResult


def test_hosted_limits_from_the_environment():
    assert HostingLimits.from_env({}) == HostingLimits()
    assert HostingLimits.from_env({}).check([RunConfig(epochs=200)]) is None  # locally nothing is capped
    hosted = HostingLimits.from_env({"MNIST_LAB_HOSTED": "1"})
    assert hosted.hosted and hosted.max_request_seconds == 300 and hosted.cache_max_bytes == 2048 * 2**20
    assert hosted.max_queued_per_owner == 8
    custom = HostingLimits.from_env({"MNIST_LAB_HOSTED": "true", "MNIST_LAB_MAX_REQUEST_SECONDS": "60",
                                     "MNIST_LAB_MAX_CONCURRENT": "2", "MNIST_LAB_CACHE_MB": "10",
                                     "MNIST_LAB_MAX_QUEUED_PER_OWNER": "3"})
    assert (custom.max_request_seconds, custom.max_concurrent, custom.cache_max_bytes,
            custom.max_queued_per_owner) == (60, 2, 10 * 2**20, 3)
    with pytest.raises(ValueError, match="MNIST_LAB_CACHE_MB must be a whole number"):
        HostingLimits.from_env({"MNIST_LAB_CACHE_MB": "lots"})


def _measured(config: RunConfig, epoch_seconds: float) -> RunResult:
    """A finished run as the cache would hold it: what the cap's estimate is measured from."""
    metrics = [EpochMetrics(e, 0.5, 0.9, 0.5, 0.9, epoch_seconds, config.train_size / epoch_seconds)
               for e in range(1, config.epochs + 1)]
    return RunResult(config=config, status="ok", epochs=metrics, total_seconds=epoch_seconds * config.epochs,
                     steps_per_epoch=config.train_size // config.batch_size, device="cpu")


def test_the_cap_is_seconds_from_this_devices_measured_speed():
    limits = HostingLimits(hosted=True, max_request_seconds=60)
    small = RunConfig(epochs=2, train_size=10_000, test_size=1000)
    # measured: 1 s per epoch of 10,000 images -> a 2-epoch run of 60,000 (plus a third of each test pass) costs ~12 s, 20 epochs ~117 s
    history = [_measured(small, 1.0)]
    assert limits.check([small.replace(train_size=60_000)], history) is None
    message = limits.check([small.replace(train_size=60_000, epochs=20)], history)
    assert message and "about 1 min 57 sec" in message and "allows 1 min" in message and "fewer epochs" in message
    # the same request on a device measured twice as fast fits
    assert limits.check([small.replace(train_size=60_000, epochs=4)], [_measured(small, 0.5)]) is None
    # nothing measured for the CNN yet: priced at ASSUMED_IMAGES_PER_SECOND, a bound, not a refusal of all
    assert limits.check([RunConfig(model="cnn", epochs=1, train_size=ASSUMED_IMAGES_PER_SECOND * 30)], history) is None
    assert limits.check([RunConfig(model="cnn", epochs=3, train_size=ASSUMED_IMAGES_PER_SECOND * 30)], history)
