"""Ctrl-C for `python -m mnist_core`: installed first thing (stdlib only, so it is in place before anything
slow loads), and the same one line and exit status 130 whenever it comes.

Before jobs exist, and after they have ended, Ctrl-C ends the process at once (os._exit): nothing is
half-done that a SIGKILL would not leave just as well (the run cache is written by rename, and survives a
SIGKILL mid-write). A KeyboardInterrupt is no good there: raised inside an import or a library it can be
swallowed (the command then trained on, its Ctrl-C lost), or leave a C extension half-loaded ("cannot load
module more than once per process").
While the command's jobs exist (`submitting()`), Ctrl-C only sets `pressed`: the command reads it where
stopping is safe, cancels its jobs and waits for them to stop, so that nothing trains on after it exits.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

EXIT_STATUS = 130  # 128 + SIGINT, as shells report a command ended by Ctrl-C


class CtrlC:
    def __init__(self) -> None:
        self.pressed = threading.Event()
        self.at_once = True

    def __call__(self, signum: int, frame: object) -> None:
        first = not self.pressed.is_set()
        self.pressed.set()
        if self.at_once:
            if first:
                print("cancelled", file=sys.stderr, flush=True)
            os._exit(EXIT_STATUS)

    def install(self) -> None:
        """Becomes the SIGINT handler (from the main thread only, as Python allows)."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self)

    @contextmanager
    def submitting(self) -> Iterator[threading.Event]:
        """While inside, Ctrl-C only sets the returned event (already set if it was pressed before). A caller
        that had not installed the handler (a test calling cli.main) gets its own back afterwards."""
        main = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGINT) if main else self
        if previous is not self:
            self.pressed.clear()
            signal.signal(signal.SIGINT, self)
        self.at_once = False
        try:
            yield self.pressed
        finally:
            self.at_once = True
            if previous is not self:
                signal.signal(signal.SIGINT, previous)


CTRL_C = CtrlC()
