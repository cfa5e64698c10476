"""A post-mortem pdb on a traceback, run in its own thread with its stdin/stdout bridged.

The event loop never runs pdb: a dedicated daemon thread does (not the loop's default
executor, so a long-running debugger expression cannot starve ``to_thread`` callers nor hold
up the executor's shutdown). Its input comes from a thread-safe queue the session fills; its
output goes back to the loop through ``call_soon_threadsafe``.

A command that runs too long (``!while True: pass``, ``p slow()``) can be interrupted: the
client's ``interrupt`` makes it raise ``KeyboardInterrupt``, as Ctrl-C would in a local pdb,
and the session goes on at the prompt; a session that ends (detach, disconnect, idle timeout,
release) interrupts a running command too, so its thread finishes.

The exception comes from a trace function the pdb thread runs while it executes a command,
and only in the code the command runs, never in pdb's or this module's (so never while pdb
puts the process streams back). A loop that produces no trace events (``while True: pass``
is a single jump) or a blocking C call does not reach it; when the interrupt is still
undelivered after ``ESCALATE_AFTER`` and the thread is in the command's code, it is raised
there asynchronously (``PyThreadState_SetAsyncExc``). A command blocked inside one C call
(a long ``time.sleep``, a lock) is interrupted when that call returns.
"""

from __future__ import annotations

import bdb
import cmd
import ctypes
import io
import logging
import pdb
import queue
import sys
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

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
# code an interrupt never lands in: the debugger's own (its cleanup must always complete)
_OWN_CODE = frozenset(module.__file__ for module in (pdb, bdb, cmd, sys.modules[__name__]))
ESCALATE_AFTER = 0.5  # seconds an undelivered interrupt waits before it is raised asynchronously


def _raise_in_thread(ident: int, exc_type: type[BaseException] | None) -> bool:
    """Schedule ``exc_type`` in the thread ``ident``, raised at its next eval-loop check
    (``None``: withdraw one scheduled and not yet raised)."""
    set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
    exc = None if exc_type is None else ctypes.py_object(exc_type)  # None is NULL for ctypes
    return bool(set_async_exc(ctypes.c_ulong(ident), exc) == 1)


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
        self._running: int | None = None  # the pdb thread's id while it runs a command
        self._command = 0  # counts the commands run, to tell them apart
        self._interrupting = False

    def onecmd(self, line: str) -> bool:
        command = self.parseline(line)[0]
        if command in REFUSED:
            self.error(f"{command}: not available in a remote post-mortem session "
                       "(inspect with p, pp, l, ll, w, up, down, a, !statement; leave with c or q)")
            return False
        self._interrupting = False
        self._command += 1
        previous = sys.gettrace()
        self._running = threading.get_ident()
        sys.settrace(self._watch_calls)  # this thread only; line events come with interrupt()
        try:
            return bool(super().onecmd(line))
        except KeyboardInterrupt:  # pdb's handlers print most; this is a command without one
            self.error("KeyboardInterrupt")
            return False
        finally:
            self._running = None
            sys.settrace(previous)

    def default(self, line: str) -> None:
        if not _STATEMENT_LOCK.acquire(timeout=STATEMENT_WAIT):
            self.error("another debugger session is running a statement; try again later, "
                       "or inspect with p / pp, which do not wait")
            return
        try:
            super().default(line)  # prints "*** KeyboardInterrupt" when interrupted
        finally:
            _STATEMENT_LOCK.release()

    def interrupt(self) -> bool:
        """Make the command running now raise ``KeyboardInterrupt``; False when none is.

        Called from another thread. The next call in the command's code raises it; so does
        the next line of a frame on its stack, for a loop that calls nothing.
        """
        ident = self._running
        if ident is None:
            return False
        self._interrupting = True
        frame = sys._current_frames().get(ident)
        while frame is not None:
            if frame.f_code.co_filename not in _OWN_CODE:
                frame.f_trace = self._watch_lines
            frame = frame.f_back
        timer = threading.Timer(ESCALATE_AFTER, self._escalate, (ident, self._command))
        timer.daemon = True
        timer.start()
        return True

    def _escalate(self, ident: int, command: int) -> None:
        if not self._interrupting or self._running != ident or self._command != command:
            return  # delivered, or that command is over
        if not self._in_command_code(ident):
            return  # in pdb's own code (or C code it called): an exception there could break it
        self._interrupting = False
        _raise_in_thread(ident, KeyboardInterrupt)
        # the command may have ended between the look and the scheduling: take it back then
        if self._command != command or not self._in_command_code(ident):
            _raise_in_thread(ident, None)

    def _in_command_code(self, ident: int) -> bool:
        frame = sys._current_frames().get(ident)
        return frame is not None and frame.f_code.co_filename not in _OWN_CODE

    def _watch_calls(self, frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename in _OWN_CODE:
            return None
        self._raise_if_interrupting()
        return None  # no line events: a command runs at close to full speed

    def _watch_lines(self, frame: FrameType, event: str, arg: Any) -> Any:
        self._raise_if_interrupting()
        return self._watch_lines

    def _raise_if_interrupting(self) -> None:
        if self._interrupting:
            self._interrupting = False
            raise KeyboardInterrupt

    def help_pdb(self) -> None:  # pdb's own opens a pager on the server's terminal
        self.message(pdb.__doc__ or "")


class PostMortem:
    """A running post-mortem session: its thread and its debugger."""

    def __init__(self, thread: threading.Thread, debugger: RemotePdb) -> None:
        self.thread = thread
        self.debugger = debugger

    def interrupt(self) -> bool:
        """Interrupt the command running now (see the module docstring); False if none is."""
        return self.debugger.interrupt()


def start_post_mortem(tb: TracebackType, stdin: LineInput, stdout: OutputBridge,
                      on_finished: Callable[[], None], name: str) -> PostMortem:
    """Run ``RemotePdb.interaction(None, tb)`` in a daemon thread; ``on_finished`` after it."""
    debugger = RemotePdb(stdin, stdout)

    def run() -> None:
        try:
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
    return PostMortem(thread, debugger)
