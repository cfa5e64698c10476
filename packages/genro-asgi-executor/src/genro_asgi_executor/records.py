"""TaskRecord: what is known about one task, and its JSON-safe views (API answers, events)."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

PENDING, RUNNING, DONE, FAILED, CANCELLED, TIMED_OUT = (
    "pending", "running", "done", "failed", "cancelled", "timed_out")
STATES = (PENDING, RUNNING, DONE, FAILED, CANCELLED, TIMED_OUT)
FINISHED = frozenset({DONE, FAILED, CANCELLED, TIMED_OUT})

_NO_RESULT = object()


@dataclass(slots=True, eq=False)
class TaskRecord:
    """One task. ``result`` is the value the job returned (decoded on first use when the
    record was loaded from a store); ``error`` is ``"Type: message"`` for a failed task and
    the reason for a cancelled or timed-out one."""

    task_id: str
    name: str
    pool: str
    state: str = PENDING
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    progress: float | None = None
    message: str | None = None
    timeout: float | None = None
    owner: str | None = None
    """Who submitted it (``backend:id`` of the identity; None: no identity): the task API
    shows and cancels it for that identity (and admins) only."""
    error: str | None = None
    traceback: str | None = None
    result_error: str | None = None
    """Why the result was not stored (not JSON/TYTX-serialisable), or cannot be decoded."""
    exception: BaseException | None = field(default=None, repr=False)
    """The exception a failed job raised, in the process that ran it (not stored)."""
    stored_result: str | None = field(default=None, repr=False)
    """The TYTX text of the result, as read from a store, until decoded."""
    _result: Any = field(default=_NO_RESULT, repr=False)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def has_result(self) -> bool:
        return self.state == DONE and (self._result is not _NO_RESULT
                                       or self.stored_result is not None)

    @property
    def result(self) -> Any:
        """The result of a done task (None when there is none)."""
        if self._result is _NO_RESULT and self.stored_result is not None:
            from genro_tytx import from_tytx

            try:
                self._result = from_tytx(self.stored_result)
            except Exception as exc:
                self.result_error = f"the stored result cannot be decoded: {exc!r}"[:500]
                self._result = None
            self.stored_result = None
        return None if self._result is _NO_RESULT else self._result

    @result.setter
    def result(self, value: Any) -> None:
        self._result = value
        self.stored_result = None

    def snapshot(self) -> TaskRecord:
        """A copy that later changes of this record do not touch (the result is shared)."""
        return copy.copy(self)

    def view(self, *, tracebacks: bool = False, summary: bool = False) -> dict[str, Any]:
        """The record as the HTTP API shows it: JSON-safe except ``result``, which the
        response encodes (plain JSON, or TYTX when the client asks for it). ``summary``
        leaves out the result and the traceback (a list's default)."""
        data: dict[str, Any] = {
            "task_id": self.task_id, "name": self.name, "pool": self.pool, "state": self.state,
            "progress": self.progress, "message": self.message, "created_at": self.created_at,
            "started_at": self.started_at, "finished_at": self.finished_at,
            "timeout": self.timeout, "error": self.error, "owner": self.owner,
        }
        if summary:
            return data
        if self.state == DONE:
            data["result"] = self.result
            if self.result_error is not None:
                data["result_error"] = self.result_error
        if tracebacks and self.traceback is not None:
            data["traceback"] = self.traceback
        return data

    def event(self, kind: str) -> dict[str, Any]:
        """The payload of ``genro_asgi_executor_task_event``: JSON-safe, small."""
        return {"task_id": self.task_id, "name": self.name, "pool": self.pool,
                "state": self.state, "progress": self.progress, "message": self.message,
                "at": time.time(), "kind": kind}
