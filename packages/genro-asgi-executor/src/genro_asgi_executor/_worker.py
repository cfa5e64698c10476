"""The loop a worker process runs: receive a job (saying so for the first one), run it, send
progress and the outcome.

Imported in the child only through ``multiprocessing``; it depends on the standard library and
``context`` so that starting (and replacing) a worker stays cheap. Messages are pickled here,
explicitly, so that an unpicklable result or exception becomes a clear error in the parent
instead of a dead pipe. A worker ignores the signals sent to the server's process group and
lives exactly as long as the server wants it to (see ``worker_main``).
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import threading
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from .context import TaskContext, run_with_context

PROTOCOL = pickle.HIGHEST_PROTOCOL
STOP = b""  # an empty message: the parent asks the worker to exit
RECEIVED = pickle.dumps(("received",), PROTOCOL)  # sent once, the moment a first job is read
# what a terminal (Ctrl-C, Ctrl-\, hangup) or a service manager (systemd's stop) sends to the
# whole process group: the server decides when its jobs stop, and drains them
GROUP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
PARENT_POLL = 1.0  # seconds, where the platform has no pidfd to wait on


def worker_main(conn: Connection, parent: int | None = None) -> None:
    """Serve jobs until the parent closes the pipe, sends STOP, kills this process or dies."""
    for sig in GROUP_SIGNALS:
        # a handler that does nothing, not SIG_IGN: an ignored signal stays ignored across
        # exec, and a job's own subprocesses must get the default dispositions back
        signal.signal(sig, _leave_to_the_server)
    # a worker forked by the forkserver starts with them blocked (start_forkserver), so one
    # that arrived while it started waits until now, and meets the handler
    signal.pthread_sigmask(signal.SIG_UNBLOCK, GROUP_SIGNALS)
    if parent is not None:
        threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True,
                         name="parent-watch").start()
    first = True
    try:
        while True:
            try:
                payload = conn.recv_bytes()
            except (EOFError, OSError):
                return
            if payload == STOP:
                return
            if first:  # the parent counts the job as running from here (later ones: at once)
                conn.send_bytes(RECEIVED)
                first = False
            conn.send_bytes(_run(conn, payload))
    except OSError:  # the parent is gone: nobody is left to answer
        return


def start_forkserver() -> None:
    """Start ``multiprocessing``'s forkserver (and its resource tracker) with the group
    signals blocked, as the standard library starts its resource tracker: the forkserver
    inherits the mask and keeps it, so a SIGTERM to the process group does not kill it (it
    still ends with the server), and every worker it forks starts with them blocked too."""
    from multiprocessing import forkserver, resource_tracker

    resource_tracker.ensure_running()  # first: it unblocks SIGINT and SIGTERM when it is done
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, GROUP_SIGNALS)
    try:
        forkserver.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _leave_to_the_server(signum: int, frame: Any) -> None:
    """A group signal: the server received it too, and decides what happens to the job."""


def _exit_with_parent(pid: int) -> None:
    """Ignoring the group's signals must not let a worker outlive its server: when the server
    process is gone (killed, or stopped by a signal it does not handle) this worker ends too,
    even in the middle of a job whose result nobody can receive any more."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):  # no pidfd here: poll
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except OSError:
                pass
            time.sleep(PARENT_POLL)
    select.select([fd], [], [])
    os._exit(1)


def _run(conn: Connection, payload: bytes) -> bytes:
    try:
        task_id, fn, args, kwargs = pickle.loads(payload)
    except BaseException as exc:  # a module the parent had and this process cannot import
        return _error(exc, "cannot load the job in the worker process")

    def report(fraction: float | None, message: str | None) -> None:
        conn.send_bytes(pickle.dumps(("progress", fraction, message), PROTOCOL))

    try:
        result = run_with_context(TaskContext(task_id, report), fn, args, kwargs)
    except BaseException as exc:
        return _error(exc)
    try:
        return pickle.dumps(("ok", result), PROTOCOL)
    except Exception as exc:
        return _error(exc, f"the result ({type(result).__name__}) cannot be sent back "
                           "from the worker process: it is not picklable")


def _error(exc: BaseException, context: str | None = None) -> bytes:
    text = "".join(traceback.format_exception(exc))
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    message = f"{context}: {exc!r}" if context else str(exc)
    try:
        exc_bytes: bytes | None = None if context else pickle.dumps(exc, PROTOCOL)
        if exc_bytes is not None:
            pickle.loads(exc_bytes)  # some exceptions pickle but cannot be rebuilt
    except Exception:
        exc_bytes = None
    outcome: tuple[Any, ...] = ("error", exc_bytes, kind, message, text)
    return pickle.dumps(outcome, PROTOCOL)
