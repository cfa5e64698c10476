"""What a running job sees: ``current_task()``, progress reporting and the cancel flag.

This module is imported inside worker processes, so it depends on the standard library only.
A job asks for its context when it wants one; a plain function that never calls
``current_task()`` runs unchanged in a thread, in a process, or inline.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from contextvars import ContextVar

MAX_MESSAGE = 500  # characters of a progress message kept; longer ones are cut

Reporter = Callable[[float | None, str | None], None]


class TaskCancelled(Exception):
    """Raised by ``check_cancelled()`` in a job whose task was cancelled or timed out."""


class TaskContext:
    """The running task, as seen from inside its job (thread or worker process)."""

    __slots__ = ("_cancel", "_report", "task_id")

    def __init__(self, task_id: str, report: Reporter,
                 cancel: threading.Event | None = None) -> None:
        self.task_id = task_id
        self._report = report
        self._cancel = cancel

    def progress(self, fraction: float | None = None, message: str | None = None) -> None:
        """Report progress: ``fraction`` in 0..1 (or None) and an optional short message."""
        self._report(check_fraction(fraction), check_message(message))

    @property
    def cancelled(self) -> bool:
        """True once the task was cancelled or timed out (thread jobs; a process job is
        stopped instead, so there it stays False)."""
        return self._cancel is not None and self._cancel.is_set()

    def check_cancelled(self) -> None:
        """Raise TaskCancelled when the task was cancelled: call it between steps of work."""
        if self.cancelled:
            raise TaskCancelled(f"task {self.task_id} was cancelled")


_current: ContextVar[TaskContext | None] = ContextVar("genro_asgi_executor_task", default=None)


def current_task() -> TaskContext | None:
    """The task running this code, or None outside a task (``run_blocking``, inline calls)."""
    return _current.get()


def report_progress(fraction: float | None = None, message: str | None = None) -> None:
    """Report progress of the current task; does nothing outside a task."""
    task = _current.get()
    if task is not None:
        task.progress(fraction, message)


def run_with_context(context: TaskContext | None, fn: Callable[..., object],
                     args: tuple[object, ...], kwargs: dict[str, object]) -> object:
    """Call ``fn`` with ``context`` as the current task (in the calling thread)."""
    token = _current.set(context)
    try:
        return fn(*args, **kwargs)
    finally:
        _current.reset(token)


def check_fraction(fraction: object) -> float | None:
    if fraction is None:
        return None
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise TypeError(f"progress fraction must be a number in 0..1, got {fraction!r}")
    value = float(fraction)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"progress fraction must be in 0..1, got {fraction!r}")
    return value


def check_message(message: object) -> str | None:
    if message is None:
        return None
    if not isinstance(message, str):
        raise TypeError(f"progress message must be a str, got {type(message).__name__}")
    return message[:MAX_MESSAGE]
