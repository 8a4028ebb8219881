"""Running the lab for a whole class on one small CPU server.

`TrainingSlots` lets at most N trainings run at once in the server process and makes the others
wait in line, each able to see its place. `HostingLimits` holds the caps of hosted mode, read
from the environment so that the operator, not a visitor, sets them.
"""
from __future__ import annotations

import itertools
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

from .config import RunConfig

WaitFn = Callable[[int], None]  # called while waiting with the place in line (1 = next to start)


class Stopped(Exception):
    """The waiter was told to stop (the user cancelled or left) before its turn came."""


class TrainingSlots:
    """At most `limit` holders at once; the rest wait first come, first served."""

    def __init__(self, limit: int = 1, poll_seconds: float = 0.5):
        if limit < 1:
            raise ValueError("at least one training must be allowed at a time")
        self.limit, self.poll_seconds = limit, poll_seconds
        self._cond = threading.Condition()
        self._line: list[int] = []  # tickets waiting, in order
        self._running = 0
        self._tickets = itertools.count()

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return len(self._line)

    @contextmanager
    def slot(self, should_stop: Callable[[], bool] | None = None, on_wait: WaitFn | None = None) -> Iterator[None]:
        """Holds a slot for the body. `on_wait(place)` is called while waiting, outside the internal lock,
        so it may raise (Streamlit stops a closed session's script that way): the place is then given up."""
        ticket = next(self._tickets)
        with self._cond:
            self._line.append(ticket)
        try:
            while True:
                with self._cond:
                    place = self._line.index(ticket) + 1
                    if place <= self.limit - self._running:
                        self._line.remove(ticket)
                        self._running += 1
                        break
                if should_stop is not None and should_stop():
                    raise Stopped("stopped while waiting for a training slot")
                if on_wait is not None:
                    on_wait(place)
                with self._cond:
                    self._cond.wait(self.poll_seconds)
        except BaseException:
            with self._cond:
                if ticket in self._line:
                    self._line.remove(ticket)
                self._cond.notify_all()
            raise
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()


@dataclass(frozen=True)
class HostingLimits:
    """Hosted mode (MNIST_LAB_HOSTED=1) caps what one request may cost; locally nothing is capped."""
    hosted: bool = False
    max_image_passes: int | None = None  # epochs x training-set size, summed over the runs a request trains
    max_concurrent: int = 1              # trainings at once in the server process
    cache_max_bytes: int | None = None   # the run cache is trimmed, least recently used first, to this size

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "HostingLimits":
        env = os.environ if env is None else env
        hosted = env.get("MNIST_LAB_HOSTED", "").strip().lower() in ("1", "true", "yes", "on")

        def number(name: str, default: int | None) -> int | None:
            value = env.get(name, "").strip()
            if not value:
                return default
            try:
                parsed = int(float(value))
            except ValueError:
                raise ValueError(f"{name} must be a whole number, got {value!r}") from None
            if parsed < 1:
                raise ValueError(f"{name} must be at least 1, got {value!r}")
            return parsed

        max_mb = number("MNIST_LAB_CACHE_MB", 2048 if hosted else None)
        return cls(hosted=hosted,
                   max_image_passes=number("MNIST_LAB_MAX_IMAGE_PASSES", 3_000_000 if hosted else None),
                   max_concurrent=number("MNIST_LAB_MAX_CONCURRENT", 1) or 1,
                   cache_max_bytes=max_mb * 1024 * 1024 if max_mb else None)

    def check(self, to_train: list[RunConfig]) -> str | None:
        """None if the request fits; else a message for the student saying what to change."""
        if self.max_image_passes is None:
            return None
        cost = sum(c.epochs * c.train_size for c in to_train)
        if cost <= self.max_image_passes:
            return None
        return (f"This comparison would train on {cost:,} images in all (epochs x training-set size over the "
                f"{len(to_train)} run(s) not in the cache yet); this shared server allows {self.max_image_passes:,} "
                "per request. Use fewer epochs, a smaller training set, or fewer values.")
