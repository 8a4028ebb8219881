"""A job's channels carry its progress from the worker to the server and the cancel request back (the
package's docstring describes the whole service).

In-process, a
queue.Queue and a threading.Event. Across processes (Dask), a `distributed.Queue` per job for
progress (ordered and delivered once: a chart's loss points must not arrive out of order or twice,
which Pub/Sub does not promise) and a `distributed.Event` for cancel and one that marks an attempt
as begun (an Event is a flag any process can set and read, without a value to serialize). Reading an
Event is a round trip to the scheduler, so the worker asks at most every CANCEL_POLL_SECONDS and the
training steps stay cheap.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Any

CANCEL_POLL_SECONDS = 0.2        # how often a Dask worker asks the scheduler whether to stop


class LocalChannel:
    """For a job running in a thread of the server process."""

    def __init__(self) -> None:
        self._events: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._began = False

    # worker side
    def begin(self) -> bool:
        """Marks the job's attempt as begun; False if an attempt already began (its worker died)."""
        began, self._began = self._began, True
        return not began

    def put(self, event: dict[str, Any]) -> None:
        self._events.put(event)

    def should_stop(self) -> bool:
        return self._stop.is_set()

    # server side
    def drain(self) -> list[dict[str, Any]]:
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def cancel(self) -> None:
        self._stop.set()

    def close(self) -> None:
        pass


class DaskChannel:
    """For a job on a Dask worker: named scheduler-side objects, which both ends open by name."""

    def __init__(self, name: str, client: Any = None):
        self.name, self._next_poll, self._stopped = name, 0.0, False
        self._client = client

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name}  # the worker opens the same objects with its own client

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["name"])

    def _queue(self):
        from distributed import Queue
        return Queue(f"{self.name}-progress", client=self._client)

    def _event(self, what: str):
        from distributed import Event
        return Event(f"{self.name}-{what}", client=self._client)

    def begin(self) -> bool:
        began = self._event("began")
        if began.is_set():
            return False
        began.set()
        return True

    def put(self, event: dict[str, Any]) -> None:
        self._queue().put(event)

    def should_stop(self) -> bool:
        now = time.monotonic()
        if not self._stopped and now >= self._next_poll:
            self._next_poll = now + CANCEL_POLL_SECONDS
            self._stopped = self._event("cancel").is_set()
        return self._stopped

    def drain(self) -> list[dict[str, Any]]:
        q = self._queue()
        return list(q.get(batch=True)) if q.qsize() else []

    def cancel(self) -> None:
        self._event("cancel").set()

    def close(self) -> None:
        for what in ("began", "cancel"):
            try:
                self._event(what).clear()
            except Exception:  # the scheduler may be gone already; nothing to tidy then
                pass
