"""Hosted mode: the operator's caps come from the environment, and a request's cost is priced in seconds."""
import pytest

from mnist_core.config import RunConfig
from mnist_core.hosting import HostingLimits
from mnist_core.results import EpochMetrics, RunResult
from mnist_core.speed import Speed, estimate_seconds, machine_key, save


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


def _speeds(tmp_path, monkeypatch) -> Speed:
    """A known speed for this machine's CPU, in a speeds file of the test's own: 1 ms per step and 1 ns per
    image per multiply-add at every batch size, test passes free."""
    speed = Speed("mlp", "cpu", (1, 100), (1e-3, 1e-3), (1e-9, 1e-9), 0.0, 0.0, machine_key("cpu"), 0.0)
    save(speed, tmp_path / "speeds.json")
    monkeypatch.setenv("MNIST_LAB_SPEEDS_FILE", str(tmp_path / "speeds.json"))
    return speed


def _finished(config: RunConfig, seconds: float) -> RunResult:
    metrics = [EpochMetrics(e, 0.5, 0.9, 0.5, 0.9, seconds / config.epochs, 1.0) for e in range(1, config.epochs + 1)]
    return RunResult(config=config, status="ok", epochs=metrics, total_seconds=seconds, steps_per_epoch=1, device="cpu")


def test_the_cap_is_seconds_from_this_devices_measured_speed(tmp_path, monkeypatch):
    speed = _speeds(tmp_path, monkeypatch)
    limits = HostingLimits(hosted=True, max_request_seconds=60)
    # An epoch of 60,000 at batch 100: 600 steps x 1 ms + 60,000 x 268,800 multiply-adds x 1 ns = 16.7 s.
    epoch = RunConfig(epochs=1, train_size=60_000, test_size=1000)
    assert speed.seconds(epoch) == pytest.approx(0.6 + 60_000 * 268_800e-9)
    assert limits.check([epoch.replace(epochs=3)]) is None
    message = limits.check([epoch.replace(epochs=4)])
    assert message and "about 1 min 7 sec" in message and "allows 1 min" in message and "fewer epochs" in message
    # Each step's fixed cost counts: a width-1 MLP at batch 1 is 60,000 steps, a minute an epoch, not 0.05 s.
    assert speed.seconds(epoch.replace(hidden=1, batch_size=1)) == pytest.approx(60 + 60_000 * 795e-9)
    assert limits.check([epoch.replace(hidden=1, batch_size=1, epochs=2)])
    # Finished runs here that took twice their predicted time double the estimate; never beyond 3x.
    slow = [_finished(epoch.replace(seed=s), 2 * speed.seconds(epoch)) for s in range(3)]
    assert estimate_seconds(epoch, slow, "cpu") == pytest.approx(2 * speed.seconds(epoch))
    assert limits.check([epoch.replace(epochs=2)], slow)
    crawled = [_finished(epoch, 100 * speed.seconds(epoch))]
    assert estimate_seconds(epoch, crawled, "cpu") == pytest.approx(3 * speed.seconds(epoch))
    assert estimate_seconds(epoch, slow, "cuda") != estimate_seconds(epoch, slow, "cpu")  # another device's runs say nothing


def test_a_job_may_train_the_cap_plus_a_stated_grace():
    assert HostingLimits().run_limit_seconds is None
    assert HostingLimits(max_request_seconds=300).run_limit_seconds == 600  # the grace is the cap again by default
    limits = HostingLimits.from_env({"MNIST_LAB_HOSTED": "1", "MNIST_LAB_RUN_GRACE_SECONDS": "60"})
    assert limits.run_limit_seconds == 360


def test_one_browser_is_one_identity_whatever_mask_its_cookie_carries():
    from mnist_core.hosting import browser_identity
    # Two page loads of one Chromium on a real Streamlit server: Tornado masked the same token anew.
    first = browser_identity("2|f91e7e14|f9427bfd5def40fb461a9ab72c5b2280|1796235993")
    second = browser_identity("2|70f4cc39|70a8c9d0d405f2d6cff0289aa5b190ad|1796235993")
    other = browser_identity("2|70f4cc39|70a8c9d0d405f2d6cff0289aa5b190ae|1796235993")  # another browser's token
    assert first == second and first.startswith("browser:")
    assert other != first
    assert "5c05e9" not in first  # the token itself (it starts 005c05e9) is never the name: only its hash
    for broken in (None, "", "abc", "1|aa|bb|1", "2|zz|00112233445566778899aabbccddeeff|1", "2||00|1", "2|aa|00|1"):
        assert browser_identity(broken) is None
