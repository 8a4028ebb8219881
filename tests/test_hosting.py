"""A shared server: trainings wait in line behind a limit, and hosted mode caps what a request may cost."""
import threading
import time

import pytest

from mnist_core.config import RunConfig
from mnist_core.hosting import ASSUMED_IMAGES_PER_SECOND, HostingLimits, Stopped, TrainingSlots
from mnist_core.results import EpochMetrics, RunResult


def wait_until(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the slots to reach the expected state"
        time.sleep(0.005)


def test_slots_run_at_most_limit_at_once_and_serve_in_order():
    # Each user holds its slot until the test lets it go, so every step below is an observed state,
    # not a guess about how fast threads start on a busy machine.
    slots = TrainingSlots(limit=2, poll_seconds=0.01)
    entered, places = [], {}
    leave = [threading.Event() for _ in range(5)]

    def user(i):
        with slots.slot(on_wait=lambda place: places.setdefault(i, []).append(place)):
            entered.append(i)
            leave[i].wait(10)

    threads = [threading.Thread(target=user, args=(i,)) for i in range(5)]
    for i, t in enumerate(threads):  # users arrive one after another: 0 and 1 start, 2, 3 and 4 queue
        t.start()
        wait_until(lambda: slots.running + slots.waiting == i + 1 and (i < 2 or i in places))
    assert entered == [0, 1] and (slots.running, slots.waiting) == (2, 3)
    assert [places[i][0] for i in (2, 3, 4)] == [1, 2, 3]  # each waiter is told its place in line

    for done, expected in ((1, [0, 1, 2]), (0, [0, 1, 2, 3]), (3, [0, 1, 2, 3, 4])):
        leave[done].set()  # one leaves: the first in line, and only it, takes the slot
        wait_until(lambda: len(entered) == len(expected))
        time.sleep(0.05)  # give a wrongly admitted extra user the time to show up
        assert entered == expected and slots.running == 2
        if done == 0:  # the last one has moved up to the front of the line, and is told so
            wait_until(lambda: places[4][-1] == 1)
    for event in leave:
        event.set()
    for t in threads:
        t.join(10)
    assert slots.running == 0 and slots.waiting == 0


def test_a_waiter_that_stops_or_leaves_gives_up_its_place():
    slots = TrainingSlots(limit=1, poll_seconds=0.01)
    release = threading.Event()
    holder = threading.Thread(target=_hold, args=(slots, release))
    holder.start()
    wait_until(lambda: slots.running == 1)
    with pytest.raises(Stopped):
        with slots.slot(should_stop=lambda: True):
            pass

    def leaves(place):
        raise KeyboardInterrupt  # how a closed browser tab ends a Streamlit script

    with pytest.raises(KeyboardInterrupt):
        with slots.slot(on_wait=leaves):
            pass
    assert slots.waiting == 0
    release.set()
    holder.join(5)
    with slots.slot():  # the slot is free again
        assert slots.running == 1


def _hold(slots, release):
    with slots.slot():
        release.wait(5)


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
    assert message and "about 117 s" in message and "allows 60 s" in message and "fewer epochs" in message
    # the same request on a device measured twice as fast fits
    assert limits.check([small.replace(train_size=60_000, epochs=4)], [_measured(small, 0.5)]) is None
    # nothing measured for the CNN yet: priced at ASSUMED_IMAGES_PER_SECOND, a bound, not a refusal of all
    assert limits.check([RunConfig(model="cnn", epochs=1, train_size=ASSUMED_IMAGES_PER_SECOND * 30)], history) is None
    assert limits.check([RunConfig(model="cnn", epochs=3, train_size=ASSUMED_IMAGES_PER_SECOND * 30)], history)
