"""Reports an inline sync handler that is holding the event loop *while it still holds it*.

An inline ``def`` handler runs on the loop thread, so nothing on the loop (the watchdog task
included) can notice that it blocks until it returns; one that never returns would never be
reported. ``LoopStallMonitor`` is a daemon thread, started by the first inline call of a server,
that looks at the call in progress every ``threshold`` seconds. Past ``threshold`` it logs the
route and the loop thread's current stack (where it is stuck), then again each time the stall
doubles, until the call returns.

The inline call only writes two attributes on the way in and one on the way out: the monitor
reads them without a lock, re-checking the start mark so a report never names the wrong call.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
import weakref

logger = logging.getLogger("genro_asgi.watchdog")


class _Mark:
    """The inline call in progress, shared by the loop (writer) and the monitor (reader)."""

    __slots__ = ("loop_thread", "path", "started", "stop")

    def __init__(self) -> None:
        self.path = ""
        self.started = 0.0  # perf_counter at the call's start; 0.0 when no call is running
        self.loop_thread = 0
        self.stop = threading.Event()


class LoopStallMonitor:
    """One per server; its thread starts with the first inline call and ends with ``close()``
    or when the monitor is dropped."""

    def __init__(self, threshold: float, name: str = "genro-loop-stall") -> None:
        self.threshold = threshold
        self.name = name
        self.reports = 0  # stalls reported while still in progress (each call counted once)
        self._mark = _Mark()
        self._thread: threading.Thread | None = None
        weakref.finalize(self, self._mark.stop.set)

    def enter(self, path: str, started: float) -> None:
        """An inline call starts (on the loop thread)."""
        mark = self._mark
        if self._thread is None:
            self._start()
        mark.path = path
        mark.loop_thread = threading.get_ident()
        mark.started = started

    def leave(self) -> None:
        """The inline call returned or raised."""
        self._mark.started = 0.0

    def close(self) -> None:
        self._mark.stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)

    def _start(self) -> None:
        self._mark.stop.clear()
        self._thread = threading.Thread(
            target=_watch, args=(self._mark, self.threshold, weakref.ref(self)),
            name=self.name, daemon=True)
        self._thread.start()


def _watch(mark: _Mark, threshold: float, owner: weakref.ref[LoopStallMonitor]) -> None:
    period = max(threshold / 2, 0.01)
    reported_start = 0.0  # the start mark of the call last reported
    next_report = 0.0  # elapsed seconds at which that call is reported again
    while not mark.stop.wait(period):
        started = mark.started
        if not started:
            continue
        elapsed = time.perf_counter() - started
        if elapsed < threshold:
            continue
        if started != reported_start:
            reported_start, next_report = started, threshold
            monitor = owner()
            if monitor is not None:
                monitor.reports += 1
            del monitor
        if elapsed < next_report:
            continue
        path, loop_thread = mark.path, mark.loop_thread
        stack = _stack_of(loop_thread)
        if mark.started != started:  # it returned while we looked: its own report follows
            continue
        next_report = elapsed * 2
        logger.warning("inline sync handler %s has held the event loop for %.3fs and has not "
                       "returned (watchdog.inline_block %.3fs): every other request waits; "
                       "it is at:\n%s", path, elapsed, threshold, stack)


def _stack_of(thread_id: int) -> str:
    frame = sys._current_frames().get(thread_id)
    if frame is None:
        return "  (stack unavailable)"
    return "".join(traceback.format_stack(frame, limit=12)).rstrip()
