"""The loop a worker process runs: receive a job, run it, send progress and the outcome.

Imported in the child only through ``multiprocessing``; it depends on the standard library and
``context`` so that starting (and replacing) a worker stays cheap. Messages are pickled here,
explicitly, so that an unpicklable result or exception becomes a clear error in the parent
instead of a dead pipe.
"""

from __future__ import annotations

import pickle
import signal
import traceback
from multiprocessing.connection import Connection
from typing import Any

from .context import TaskContext, run_with_context

PROTOCOL = pickle.HIGHEST_PROTOCOL
STOP = b""  # an empty message: the parent asks the worker to exit


def worker_main(conn: Connection) -> None:
    """Serve jobs until the parent closes the pipe (or kills this process)."""
    # Ctrl-C reaches the whole process group: the server decides when jobs stop, not the tty
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            payload = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if payload == STOP:
            return
        conn.send_bytes(_run(conn, payload))


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
