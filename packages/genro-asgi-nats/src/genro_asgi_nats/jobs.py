"""Remote jobs: the options of a ``kind: remote`` pool, its registry of job names, and the
messages that travel between a server and its workers.

A job is referenced by its registered name, never by pickled code: the server and the
workers read the same ``config.yaml`` (same application directory), and each resolves the
names to functions itself. Arguments, results, progress and errors travel as TYTX text with a
version marker; nothing on the wire is ever unpickled or imported by name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ByteSize, ConfigDict, Field, field_validator

from genro_asgi.plugins.manager import import_object
from genro_asgi_wsx.codec import check_depth, parse_tytx, tytx_text

MARK = "GXJ1"
MAX_DEPTH = 128
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class RemotePoolOptions(BaseModel):
    """``plugins.executor.pools.<name>.options`` of a ``kind: remote`` pool."""

    model_config = ConfigDict(extra="forbid")

    jobs: dict[str, str] = Field(min_length=1)
    """``{name: "module:function"}``: the jobs this pool runs, resolved on both sides."""
    max_deliver: int = Field(3, ge=1, le=100)
    """Deliveries of one job at most: a worker that dies mid-job lets another take it, up to
    this many times in all; then the task fails."""
    ack_wait: float = Field(30.0, ge=0.5, le=3600)
    """Seconds without a heartbeat from the worker running a job before the job is given to
    another worker (a running worker beats every ack_wait / 3)."""
    max_job_size: ByteSize = Field(ByteSize(1024 * 1024), ge=1024)
    """Bytes of a job's encoded arguments, or of its result; larger is refused (the
    arguments to the caller, a result is a failed task)."""
    max_age: float = Field(86400.0, gt=0)
    """Seconds a job may wait in the queue for a worker before it is discarded."""
    check_interval: float = Field(5.0, ge=0.1, le=300)
    """Seconds between two looks at the queue: its depth (metrics), and jobs that left it
    without their outcome reaching the server (failed at the second look)."""
    outcome_timeout: float = Field(5.0, gt=0, le=300)
    """Seconds a worker waits for the server to confirm a job's outcome; it tries again (12
    times in all, the job kept meanwhile) before it gives the server up for gone."""

    @field_validator("jobs")
    @classmethod
    def _jobs(cls, value: dict[str, str]) -> dict[str, str]:
        for name, target in value.items():
            if not _NAME.match(name):
                raise ValueError(f"job name {name!r} must be 1-128 of A-Z a-z 0-9 _ . -")
            if ":" not in target:
                raise ValueError(f"job {name!r}: {target!r} must be 'module:function'")
        return value


class JobRegistry:
    """Registered names and their functions (imported when the pool or the worker starts)."""

    def __init__(self, jobs: dict[str, str]) -> None:
        self.functions: dict[str, Callable[..., Any]] = {}
        for name, target in jobs.items():
            try:
                function = import_object(target)
            except (ImportError, AttributeError) as exc:
                raise ValueError(f"options.jobs.{name}: cannot import {target!r}: {exc}"
                                 ) from None
            if not callable(function):
                raise ValueError(f"options.jobs.{name}: {target!r} is not callable")
            self.functions[name] = function
        self._names = {id(fn): name for name, fn in self.functions.items()}

    def name_of(self, job: Any) -> str | None:
        """The registered name of ``job`` (a registered function, or its name)."""
        if isinstance(job, str):
            return job if job in self.functions else None
        return self._names.get(id(job))


class BadMessage(ValueError):
    """Not a well-formed job message (logged and dropped, never run)."""


def encode(message: dict[str, Any]) -> bytes:
    """``GXJ1 <TYTX>``; ValueError/TypeError when a value cannot be written as TYTX."""
    return f"{MARK} {tytx_text(message)}".encode()


def decode(payload: bytes) -> dict[str, Any]:
    """The message, or BadMessage: no marker, not UTF-8, not TYTX, not an object."""
    if not payload.startswith(MARK.encode() + b" "):
        raise BadMessage("no GXJ1 marker")
    try:
        text = payload[len(MARK) + 1:].decode("utf-8")
        value = parse_tytx(text)
        check_depth(text, value, MAX_DEPTH, typed=True)
    except Exception as exc:
        raise BadMessage(str(exc)[:200] or type(exc).__name__) from None
    if not isinstance(value, dict):
        raise BadMessage("not an object")
    return value
