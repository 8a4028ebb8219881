"""Running the lab for a whole class on one small CPU server.

`HostingLimits` holds the caps of hosted mode, read from the environment so that the operator, not
a visitor, sets them: a request's estimated training time in seconds, trainings at once, trainings
waiting per student, the cache's size; and the class code every request must carry. The job service
(mnist_core.jobs) enforces them and decides who trains next (fair share between students).
"""
from __future__ import annotations

import binascii
import hashlib
import os
from dataclasses import dataclass, field
from typing import Iterable

from .config import MNIST_TEST_SIZE, RunConfig
from .i18n import N_, Duration, Message
from .results import RunResult

@dataclass(frozen=True)
class HostingLimits:
    """Hosted mode (MNIST_LAB_HOSTED=1) caps what one request may cost; locally nothing is capped."""
    hosted: bool = False
    max_request_seconds: int | None = None    # estimated training seconds of the runs one request trains
    run_grace_seconds: int | None = None      # a job still training this long after the cap is stopped (default: the cap)
    max_concurrent: int = 1                   # trainings at once (the job service's slots)
    max_queued_per_owner: int | None = None   # trainings one owner may have waiting or running
    cache_max_bytes: int | None = None        # the run cache is trimmed, least recently used first, to this size
    abandoned_after_seconds: int | None = None  # a queued job nobody has watched this long is dropped
    class_code: str | None = field(default=None, repr=False)  # JobService.submit wants it from every student

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
                   max_request_seconds=number("MNIST_LAB_MAX_REQUEST_SECONDS", 300 if hosted else None),
                   run_grace_seconds=number("MNIST_LAB_RUN_GRACE_SECONDS", None),
                   max_concurrent=number("MNIST_LAB_MAX_CONCURRENT", 1) or 1,
                   # one full comparison (8 values) at a time per student
                   max_queued_per_owner=number("MNIST_LAB_MAX_QUEUED_PER_OWNER", 8 if hosted else None),
                   cache_max_bytes=max_mb * 1024 * 1024 if max_mb else None,
                   # unset: every job finishes, watched or not (its runs serve the next visitor)
                   abandoned_after_seconds=number("MNIST_LAB_ABANDONED_AFTER_SECONDS", None),
                   class_code=env.get("MNIST_LAB_CLASS_CODE", "").strip() or None)

    @property
    def run_limit_seconds(self) -> float | None:
        """How long one job may train before the service stops it: the request cap plus a grace (by default
        as long again: estimates are held to within 2x of real times, so a request the estimate let through
        is not stopped for the estimate's error alone, and none holds the slot for more than twice the cap)."""
        if self.max_request_seconds is None:
            return None
        grace = self.max_request_seconds if self.run_grace_seconds is None else self.run_grace_seconds
        return self.max_request_seconds + grace

    def check(self, to_train: list[RunConfig], history: Iterable[RunResult] = (), device: str = "cpu",
              test_images: int = MNIST_TEST_SIZE) -> Message | None:
        """None if training `to_train` fits the cap; else a message for the student saying what to change.

        The time is this device's measured speed for each model and batch size (speed.estimate_seconds,
        corrected by the finished runs in `history`).
        """
        if self.max_request_seconds is None or not to_train:
            return None
        from .speed import estimate_seconds
        history = list(history)
        seconds = sum(estimate_seconds(config, history, device, test_images) for config in to_train)
        if seconds <= self.max_request_seconds:
            return None
        return Message(N_("This comparison would train for about {about} ({runs} run(s) not in the cache yet); this "
                          "shared server allows {most} per request. Use fewer epochs, a smaller training set, a larger "
                          "batch size, or fewer values."),
                       about=Duration(seconds), runs=len(to_train), most=Duration(self.max_request_seconds))


def browser_identity(xsrf_cookie: str | None) -> str | None:
    """One name per browser, the same in every tab and after a reload: from the `_streamlit_xsrf` cookie
    that Streamlit's server (Tornado) gives each browser on its first page load and that the browser sends
    with every tab's connection until it closes. Tornado masks the token anew for every page ("2|mask|
    masked|time": the token is masked XOR mask), so its unmasked token names the browser; only its hash is
    used, so the secret itself goes nowhere. None when there is no such cookie (XSRF protection turned
    off, or a client that is no browser): the page then falls back to one name per session."""
    parts = (xsrf_cookie or "").split("|")
    if len(parts) != 4 or parts[0] != "2":
        return None
    try:
        mask, masked = binascii.unhexlify(parts[1]), binascii.unhexlify(parts[2])
    except (binascii.Error, ValueError):
        return None
    if not mask or len(masked) < 16:
        return None
    token = bytes(b ^ mask[i % len(mask)] for i, b in enumerate(masked))
    return "browser:" + hashlib.sha256(token).hexdigest()[:24]
