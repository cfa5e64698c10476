"""The executor's exceptions. Those an HTTP caller may meet are ServiceUnavailable (503)."""

from __future__ import annotations

from genro_asgi import ServiceUnavailable

from .context import TaskCancelled


class PoolFull(ServiceUnavailable):
    """A pool's ``max_pending`` queue is full and its ``when_full`` policy is ``fail``.

    Raised out of a handler it becomes a 503 with ``Retry-After``.
    """

    def __init__(self, pool: str, pending: int, retry_after: int) -> None:
        self.pool = pool
        super().__init__(detail=f"pool {pool!r} is full ({pending} jobs pending)",
                         retry_after=retry_after)


class ExecutorClosed(ServiceUnavailable):
    """The executor is shutting down (or not started): it accepts no new jobs."""

    def __init__(self, detail: str = "the executor is not accepting jobs") -> None:
        super().__init__(detail=detail, retry_after=5)


class WorkerCrashed(RuntimeError):
    """The worker process running a job died; the pool replaced it and keeps serving."""


class NotPicklable(TypeError):
    """A process job's function or arguments cannot be sent to another process."""


class TaskTimedOut(TimeoutError):
    """A task ran longer than its ``timeout``."""


class UnknownTask(LookupError):
    """No task with this id (never submitted, or purged after its retention)."""


class TaskNotFinished(RuntimeError):
    """``result(wait=False)`` on a task that is still pending or running."""


class ResultUnavailable(RuntimeError):
    """The task finished, but its result was not stored (not JSON/TYTX-serialisable) and
    this process did not run it."""


class RemoteJobError(Exception):
    """A process job raised an exception that could not be sent back as itself."""


class RemoteTraceback(Exception):
    """The traceback of a process job, chained as ``__cause__`` of the exception it raised."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


__all__ = ["ExecutorClosed", "NotPicklable", "PoolFull", "RemoteJobError", "RemoteTraceback",
           "ResultUnavailable", "TaskCancelled", "TaskNotFinished", "TaskTimedOut",
           "UnknownTask", "WorkerCrashed"]
