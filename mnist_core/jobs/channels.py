"""A job's channels carry its progress from the worker to the server and the cancel request back (the
package's docstring describes the whole service).

In-process, a
queue.Queue and a threading.Event. Across processes (Dask), a `distributed.Queue` per job for
progress (ordered and delivered once: a chart's loss points must not arrive out of order or twice,
which Pub/Sub does not promise) and a `distributed.Event` for cancel and one that marks an attempt
as begun (an Event is a flag any process can set and read, without a value to serialize). Reading an
Event is a round trip to the scheduler, so the worker's training never makes one: a courier thread
does, every CANCEL_POLL_SECONDS.
"""
from __future__ import annotations

import queue
import threading
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

    def finish(self) -> None:
        pass

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
    """For a job on a Dask worker: named scheduler-side objects, which both ends open by name.

    On the worker, the training never waits for the scheduler: `put` leaves events in an outbox and
    `should_stop` reads a flag, and a courier thread carries the one and fetches the other every
    CANCEL_POLL_SECONDS. A scheduler that answers slowly (one in a busy server process, as with
    MNIST_LAB_DASK_SCHEDULER=local, whose scheduler shares the process with every visitor's page) then
    delays the live chart, not the training: asking it at every report held a watched training to 4% of
    its speed alone (bench/class_load.py's watching phase)."""

    def __init__(self, name: str, client: Any = None):
        self.name, self._client = name, client
        self._outbox: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._courier: threading.Thread | None = None
        self._server_queue: Any = None

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

    # worker side
    def begin(self) -> bool:
        began = self._event("began")
        if began.is_set():
            return False
        began.set()
        # opened here, in the task's thread, where the worker's client is known; the courier uses them
        queue, cancel = self._queue(), self._event("cancel")
        self._courier = threading.Thread(target=self._carry, args=(queue, cancel), name=f"{self.name}-courier",
                                         daemon=True)
        self._courier.start()
        return True

    def put(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._outbox.append(event)

    def should_stop(self) -> bool:
        return self._stop.is_set()

    def finish(self) -> None:
        """The training ended: the courier sends what is left and stops (a few seconds at most)."""
        self._done.set()
        if self._courier is not None:
            self._courier.join(timeout=10)

    def _carry(self, queue: Any, cancel: Any) -> None:
        done = False
        while not done:
            done = self._done.wait(CANCEL_POLL_SECONDS)
            with self._lock:
                events, self._outbox = self._outbox, []
            try:
                if events:
                    queue.put(events)  # a batch per round trip: one each would hold the result back at the end
                if not done and cancel.is_set():
                    self._stop.set()
            except Exception:  # the scheduler is away: the job's outcome still travels with its result
                pass

    # server side
    def drain(self) -> list[dict[str, Any]]:
        if self._server_queue is None:
            self._server_queue = self._queue()
        q = self._server_queue
        return [event for batch in q.get(batch=True) for event in batch] if q.qsize() else []

    def cancel(self) -> None:
        self._event("cancel").set()

    def close(self) -> None:
        for what in ("began", "cancel"):
            try:
                self._event(what).clear()
            except Exception:  # the scheduler may be gone already; nothing to tidy then
                pass
