"""A light Streamlit client: one student's browser tab as the server sees it, without a browser.

It speaks Streamlit's own websocket protocol (the protobufs Streamlit ships, streamlit.proto): it connects
to ws://HOST:PORT/_stcore/stream with the "streamlit" subprotocol, asks for script runs with
BackMsg(rerun_script=ClientState(query_string, page_name / page_script_hash, widget_states, fragment_id)),
and reads the ForwardMsgs back: new_session (a run starts), navigation (the pages and their hashes),
page_info_changed (the query string the app wrote), delta (the elements, at their delta paths),
auto_rerun (a fragment that asks to be rerun every N seconds: the watcher), script_finished.
A widget is found by its key (Streamlit ends a keyed widget's id with "-<key>") and "clicked" by sending
its id with trigger_value=True; a text input's value goes as string_value, a component's as json_value.

Used by bench/class_load.py, one asyncio loop for a whole class: each session costs the load
generator a few ms of CPU per message, so the server's figures are the server's, not the browsers'.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

FULL_RUN_ENDS = (ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR)


@dataclass
class Shown:
    """One element on the page: its kind ("button", "progress", "alert", ...), its proto, its fragment."""
    kind: str
    proto: Any
    fragment: str = ""

    @property
    def text(self) -> str:
        """What a student reads on it (label, body or progress text)."""
        p = self.proto
        return " ".join(str(getattr(p, f)) for f in ("label", "body", "text", "message") if hasattr(p, f)
                        and getattr(p, f))

    @property
    def id(self) -> str:
        return getattr(self.proto, "id", "")


@dataclass
class Watch:
    """Someone waiting for an element that `test` accepts (test(shown) -> bool)."""
    test: Callable[[Shown], bool]
    future: asyncio.Future
    since: float = field(default_factory=time.perf_counter)


class LightSession:
    """One browser session on the app. `await open(path, query)`, then `click`, `type_text`, `goto`, `wait_for`."""

    def __init__(self, base_url: str, locale: str = "en-US"):
        self.ws_url = base_url.replace("http://", "ws://").rstrip("/") + "/_stcore/stream"
        self.locale = locale
        self.ws = None
        self.pages: dict[str, str] = {}          # url path ("" for home) -> page_script_hash
        self.page_hash = ""
        self.query_string = ""
        self.elements: dict[tuple[int, ...], Shown] = {}
        self._touched: set[tuple[int, ...]] = set()
        self._widget_states: dict[str, WidgetState] = {}   # values this student set (sent with every rerun)
        self._full_run_done = asyncio.Event()
        self._full_running = False
        self._fragments_running: dict[str, float] = {}   # fragment id -> when its rerun was asked
        self._auto_reruns: dict[str, asyncio.Task] = {}
        self._watches: list[Watch] = []
        self._reader: asyncio.Task | None = None
        self.exceptions: list[str] = []       # st.exception boxes shown (the student sees an error)
        self.messages = 0
        self.closed = False

    # -- connection ---------------------------------------------------------------------------------
    async def open(self, path: str = "", query: str = "", timeout: float = 120) -> float:
        """Connects as a browser opening http://.../path?query, waits for the first run to finish; returns
        the page load time in seconds (connect to script_finished)."""
        started = time.perf_counter()
        request = HTTPRequest(self.ws_url, connect_timeout=timeout, request_timeout=timeout)
        self.ws = await websocket_connect(request, subprotocols=["streamlit"], max_message_size=256 * 1024 * 1024)
        self._reader = asyncio.create_task(self._read())
        await self._rerun(page_name=path, query=query)
        await self.wait_run(timeout)
        return time.perf_counter() - started

    async def close(self) -> None:
        for task in self._auto_reruns.values():
            task.cancel()
        self._auto_reruns.clear()
        if self.ws is not None:
            self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
        self.closed = True

    # -- what a student does --------------------------------------------------------------------------
    async def goto(self, path: str, query: str = "", timeout: float = 120) -> float:
        """A click on the sidebar's link to another page (path "" is home); returns the page load time."""
        started = time.perf_counter()
        if path not in self.pages:
            raise KeyError(f"no page {path!r}: {sorted(self.pages)}")
        await self._rerun(page_hash=self.pages[path], query=query)
        await self.wait_run(timeout)
        return time.perf_counter() - started

    async def click(self, key: str) -> None:
        """Presses the button with widget key `key` (sends its trigger; the click's reply is not awaited)."""
        state = WidgetState(id=self.widget(key).id, trigger_value=True)
        await self._rerun(extra=[state])

    async def type_text(self, key: str, value: str) -> None:
        """Types `value` into the text input with key `key` and presses Enter."""
        self._widget_states[key] = WidgetState(id=self.widget(key).id, string_value=value)
        await self._rerun()

    async def set_component(self, key: str, value: dict) -> None:
        """Sets a (v2, bidirectional) component's state, as its frontend does: a JSON mapping of its state keys."""
        self._widget_states[key] = WidgetState(id=self.widget(key).id, json_value=json.dumps(value))
        await self._rerun()

    # -- reading the page ---------------------------------------------------------------------------
    def widget(self, key: str) -> Shown:
        for shown in self.elements.values():
            if shown.id.endswith("-" + key):
                return shown
        raise KeyError(f"no widget with key {key!r} on the page")

    def find(self, test: Callable[[Shown], bool]) -> list[Shown]:
        return [s for s in self.elements.values() if test(s)]

    def wait_for(self, test: Callable[[Shown], bool]) -> asyncio.Future:
        """A future that resolves to the time (perf_counter) when an element `test` accepts arrives."""
        future = asyncio.get_running_loop().create_future()
        self._watches.append(Watch(test, future))
        return future

    async def wait_run(self, timeout: float = 120) -> None:
        """Until the current full script run has finished."""
        await asyncio.wait_for(self._full_run_done.wait(), timeout)

    @property
    def running(self) -> bool:
        return self._full_running

    # -- the protocol -------------------------------------------------------------------------------
    async def _rerun(self, page_name: str = "", page_hash: str | None = None, query: str | None = None,
                     extra: list[WidgetState] = (), fragment: str = "") -> None:
        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = self.query_string if query is None else query
        if page_name or page_hash is None and not self.page_hash:
            state.page_name = page_name          # the first visit: the URL's path names the page
        else:
            state.page_script_hash = self.page_hash if page_hash is None else page_hash
        ids = {s.id for s in extra}
        state.widget_states.widgets.extend([s for s in self._widget_states.values() if s.id not in ids] + list(extra))
        state.context_info.locale = self.locale
        state.context_info.timezone = "UTC"
        if fragment:
            state.fragment_id = fragment
            state.is_auto_rerun = True
            self._fragments_running[fragment] = time.perf_counter()
        else:
            self._full_run_done.clear()
            self._full_running = True
        if page_hash is not None and page_hash != self.page_hash:
            self._widget_states.clear()   # the other page's widgets are gone (the frontend forgets them too)
        await self.ws.write_message(msg.SerializeToString(), binary=True)

    async def _read(self) -> None:
        try:
            while True:
                data = await self.ws.read_message()
                if data is None:
                    break
                msg = ForwardMsg()
                msg.ParseFromString(data)
                self.messages += 1
                self._handle(msg)
        finally:
            self.closed = True
            self._full_run_done.set()  # nobody waits forever on a closed connection
            for watch in self._watches:
                if not watch.future.done():
                    watch.future.set_exception(ConnectionError("the server closed the connection"))

    def _handle(self, msg: ForwardMsg) -> None:
        kind = msg.WhichOneof("type")
        if kind == "new_session":
            if msg.new_session.page_script_hash:
                self.page_hash = msg.new_session.page_script_hash
            fragments = set(msg.metadata.run.fragment_ids)
            if fragments:   # a fragment's run: its elements replace the fragment's
                self._touched -= {p for p, s in self.elements.items() if s.fragment in fragments}
            else:   # a full run: its elements replace the page's
                self._touched = set()
                # A fragment rerun that a full run overtook never finishes (the server drops a request for a
                # fragment it no longer has, or folds it into the full run): forget it, or the fragment,
                # drawn again under the same id, would never be rerun again.
                self._fragments_running.clear()
                for task in self._auto_reruns.values():
                    task.cancel()
                self._auto_reruns.clear()
        elif kind == "navigation":
            self.pages = {p.url_pathname: p.page_script_hash for p in msg.navigation.app_pages}
            self.page_hash = msg.navigation.page_script_hash or self.page_hash
        elif kind == "page_info_changed":
            self.query_string = msg.page_info_changed.query_string
        elif kind == "delta":
            self._delta(msg)
        elif kind == "auto_rerun":
            fragment, interval = msg.auto_rerun.fragment_id, msg.auto_rerun.interval
            if fragment not in self._auto_reruns:
                self._auto_reruns[fragment] = asyncio.create_task(self._auto_rerun(fragment, interval))
        elif kind == "stop_auto_rerun":
            for fragment in msg.stop_auto_rerun.fragment_ids:
                task = self._auto_reruns.pop(fragment, None)
                if task:
                    task.cancel()
        elif kind == "script_finished":
            fragments = list(msg.metadata.run.fragment_ids)
            if fragments:
                for fragment in fragments:
                    self._fragments_running.pop(fragment, None)
                self._drop_untouched(lambda s: s.fragment in fragments)
            elif msg.script_finished in FULL_RUN_ENDS:
                self._drop_untouched(lambda s: True)
                self._touched = set()
                self._full_running = False
                self._full_run_done.set()
                # widgets no longer on the page are forgotten, as the frontend does
                ids = {s.id for s in self.elements.values()}
                self._widget_states = {k: v for k, v in self._widget_states.items() if v.id in ids}

    def _delta(self, msg: ForwardMsg) -> None:
        path = tuple(msg.metadata.delta_path)
        delta = msg.delta
        which = delta.WhichOneof("type")
        if which == "new_element":
            element_kind = delta.new_element.WhichOneof("type")
            shown = Shown(element_kind, getattr(delta.new_element, element_kind), delta.fragment_id)
        elif which == "add_block":
            shown = Shown("block", delta.add_block, delta.fragment_id)
        else:
            return   # transient (spinners): not kept
        self.elements[path] = shown
        self._touched.add(path)
        if shown.kind == "exception":
            self.exceptions.append(shown.proto.message or shown.proto.type)
        now = time.perf_counter()
        for watch in list(self._watches):
            if not watch.future.done() and watch.test(shown):
                watch.future.set_result(now)
            if watch.future.done():
                self._watches.remove(watch)

    def _drop_untouched(self, among: Callable[[Shown], bool]) -> None:
        for path in [p for p, s in self.elements.items() if p not in self._touched and among(s)]:
            del self.elements[path]

    async def _auto_rerun(self, fragment: str, interval: float) -> None:
        """The frontend reruns a fragment with run_every every `interval` s; so do we, skipping a tick while
        the page or that fragment is still running (rather than piling requests up behind them)."""
        while not self.closed:
            await asyncio.sleep(interval)
            asked = self._fragments_running.get(fragment)
            # a request unanswered for long was dropped by the server: ask again, as the browser's timer does
            if not self._full_running and (asked is None or time.perf_counter() - asked > 10 * interval):
                await self._rerun(fragment=fragment)
