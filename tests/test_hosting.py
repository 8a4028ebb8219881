"""A shared server: trainings wait in line behind a limit, and hosted mode caps what a request may cost."""
import threading
import time

import pytest

from mnist_core.config import RunConfig
from mnist_core.hosting import HostingLimits, Stopped, TrainingSlots


def test_slots_run_at_most_limit_at_once_and_serve_in_order():
    slots = TrainingSlots(limit=2, poll_seconds=0.01)
    active, peak, order, places = [0], [0], [], {}
    lock = threading.Lock()

    def user(i):
        with slots.slot(on_wait=lambda place: places.setdefault(i, []).append(place)):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
                order.append(i)
            time.sleep(0.1)
            with lock:
                active[0] -= 1

    threads = []
    for i in range(5):
        threads.append(threading.Thread(target=user, args=(i,)))
        threads[-1].start()
        time.sleep(0.02)  # arrive in order 0, 1, 2, ...
    for t in threads:
        t.join(10)
    assert peak[0] == 2 and sorted(order) == list(range(5))
    assert order[:2] == [0, 1] and order[2:] == [2, 3, 4]  # first come, first served
    assert places[4][0] == 3  # the last to arrive saw two ahead of it in line
    assert slots.running == 0 and slots.waiting == 0


def test_a_waiter_that_stops_or_leaves_gives_up_its_place():
    slots = TrainingSlots(limit=1, poll_seconds=0.01)
    release = threading.Event()
    holder = threading.Thread(target=_hold, args=(slots, release))
    holder.start()
    time.sleep(0.05)
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
