"""A post-mortem pdb on a traceback, run in its own thread with its stdin/stdout bridged.

The event loop never runs pdb: a dedicated daemon thread does (not the loop's default
executor, so a long-running debugger expression cannot starve ``to_thread`` callers nor hold
up the executor's shutdown). Its input comes from a thread-safe queue the session fills; its
output goes back to the loop through ``call_soon_threadsafe``.
"""

from __future__ import annotations

import io
import logging
import pdb
import queue
import threading
from collections.abc import Callable
from types import TracebackType

from .protocol import OUTPUT_CHUNK

logger = logging.getLogger("genro_asgi_debug")

# Commands that make no sense post-mortem, touch process-wide state (bdb's breakpoint table is
# global) or read the server's own stdin (interact, clear's confirmation).
REFUSED = frozenset({
    "b", "break", "tbreak", "cl", "clear", "condition", "ignore", "commands", "disable",
    "enable", "s", "step", "n", "next", "unt", "until", "j", "jump", "r", "return", "run",
    "restart", "interact", "debug",
})
# pdb's default() (``!statement`` and bare expressions) swaps sys.stdin, sys.stdout and
# sys.displayhook process-wide and then restores what it found. Two such statements
# overlapping in two sessions' threads restore each other's streams out of order and leave the
# worker printing into a dead session for good, so they run one at a time. A statement that
# never ends must not wedge the other session, hence the bounded wait.
_STATEMENT_LOCK = threading.Lock()
STATEMENT_WAIT = 1.0  # seconds a statement waits for another session's to finish


class LineInput:
    """pdb's stdin: lines fed from the loop; ``close()`` makes every later read EOF."""

    def __init__(self) -> None:
        self._lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._closed = False

    def feed(self, text: str) -> None:
        if not self._closed:
            for line in text.splitlines():
                self._lines.put(line + "\n")

    def close(self) -> None:
        self._closed = True
        self._lines.put("")

    def readline(self, size: int = -1) -> str:
        line = self._lines.get()
        if line == "":
            self._lines.put("")  # EOF stays EOF for the next reader
        return line


class OutputBridge(io.TextIOBase):
    """pdb's stdout: buffered text handed to ``emit`` in chunks on flush.

    Locked because pdb's ``!statement`` swaps ``sys.stdout`` process-wide while it runs, so
    other threads may print into it meanwhile.
    """

    def __init__(self, emit: Callable[[str], None]) -> None:
        super().__init__()
        self._emit = emit
        self._buffer: list[str] = []
        self._size = 0
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._buffer.append(text)
            self._size += len(text)
            full = self._size >= OUTPUT_CHUNK
        if full:
            self.flush()
        return len(text)

    def flush(self) -> None:
        with self._lock:
            data = "".join(self._buffer)
            self._buffer.clear()
            self._size = 0
        for start in range(0, len(data), OUTPUT_CHUNK):
            self._emit(data[start:start + OUTPUT_CHUNK])


class RemotePdb(pdb.Pdb):
    """pdb without rc files, signal handlers, or commands that cannot work remotely."""

    def __init__(self, stdin: LineInput, stdout: OutputBridge) -> None:
        super().__init__(stdin=stdin, stdout=stdout, nosigint=True,  # type: ignore[arg-type]
                         readrc=False)
        self.use_rawinput = False
        self.prompt = "(Pdb) "

    def onecmd(self, line: str) -> bool:
        command = self.parseline(line)[0]
        if command in REFUSED:
            self.error(f"{command}: not available in a remote post-mortem session "
                       "(inspect with p, pp, l, ll, w, up, down, a, !statement; leave with c or q)")
            return False
        return bool(super().onecmd(line))

    def default(self, line: str) -> None:
        if not _STATEMENT_LOCK.acquire(timeout=STATEMENT_WAIT):
            self.error("another debugger session is running a statement; try again later, "
                       "or inspect with p / pp, which do not wait")
            return
        try:
            super().default(line)
        finally:
            _STATEMENT_LOCK.release()

    def help_pdb(self) -> None:  # pdb's own opens a pager on the server's terminal
        self.message(pdb.__doc__ or "")


def start_post_mortem(tb: TracebackType, stdin: LineInput, stdout: OutputBridge,
                      on_finished: Callable[[], None], name: str) -> threading.Thread:
    """Run ``RemotePdb.interaction(None, tb)`` in a daemon thread; ``on_finished`` after it."""

    def run() -> None:
        try:
            debugger = RemotePdb(stdin, stdout)
            debugger.reset()
            debugger.interaction(None, tb)
        except BaseException:  # the debugger must never take the worker down
            logger.exception("remote pdb session %s failed", name)
        finally:
            try:
                stdout.flush()
            finally:
                on_finished()

    thread = threading.Thread(target=run, name=f"genro-asgi-debug-{name}", daemon=True)
    thread.start()
    return thread
