"""genro-asgi-executor: thread and process pools and a TaskManager for long jobs.

What a job imports (``current_task``, ``report_progress``, ``TaskCancelled``) loads only the
standard library, so worker processes start fast; the plugin side loads on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .context import TaskCancelled, TaskContext, current_task, report_progress

__version__ = "0.2.0"

_LAZY = {
    "ExecutorConfig": "config", "PoolConfig": "config",
    "ExecutorPlugin": "plugin", "executor_of": "plugin",
    "ExecutorHookSpecs": "hookspecs",
    "TaskManager": "tasks", "TaskRecord": "records", "STATES": "records",
    "TaskStore": "store", "SqliteTaskStore": "store",
    "Pool": "pools", "ThreadPool": "pools", "ProcessPool": "pools",
    "in_pool": "routes",
    "ExecutorClosed": "errors", "NotPicklable": "errors", "PoolFull": "errors",
    "RemoteJobError": "errors", "RemoteTraceback": "errors", "ResultUnavailable": "errors",
    "TaskNotFinished": "errors", "TaskTimedOut": "errors", "UnknownTask": "errors",
    "WorkerCrashed": "errors",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'genro_asgi_executor' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = ["TaskCancelled", "TaskContext", "__version__", "current_task", "report_progress",
           *_LAZY]
