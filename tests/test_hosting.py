"""A shared server: trainings wait in line behind a limit, and hosted mode caps what a request may cost."""
import threading
import time

import pytest

from mnist_core.config import RunConfig
from mnist_core.hosting import HostingLimits, Stopped, TrainingSlots


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
    assert hosted.hosted and hosted.max_image_passes == 3_000_000 and hosted.cache_max_bytes == 2048 * 2**20
    custom = HostingLimits.from_env({"MNIST_LAB_HOSTED": "true", "MNIST_LAB_MAX_IMAGE_PASSES": "100000",
                                     "MNIST_LAB_MAX_CONCURRENT": "2", "MNIST_LAB_CACHE_MB": "10"})
    assert (custom.max_image_passes, custom.max_concurrent, custom.cache_max_bytes) == (100_000, 2, 10 * 2**20)
    assert custom.check([RunConfig(epochs=5, train_size=10_000), RunConfig(epochs=5, train_size=10_000)]) is None
    message = custom.check([RunConfig(epochs=2, train_size=60_000)])
    assert "120,000 images" in message and "allows 100,000" in message and "fewer epochs" in message
    with pytest.raises(ValueError, match="MNIST_LAB_CACHE_MB must be a whole number"):
        HostingLimits.from_env({"MNIST_LAB_CACHE_MB": "lots"})
