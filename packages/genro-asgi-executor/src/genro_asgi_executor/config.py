"""The options of the ``executor`` plugin (``plugins: {executor: {...}}`` in config.yaml)."""

from __future__ import annotations

import multiprocessing
import os
import re
from typing import Any, Literal

from genro_toolbox import RuleError, tags_match
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

POOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
BUILTIN_KINDS = ("thread", "process")
# a kind another plugin provides (genro_asgi_executor_pool_kinds), checked at startup
POOL_KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def default_start_method() -> Literal["forkserver", "spawn"]:
    """forkserver where the platform has it (a replacement worker is a cheap fork of a clean,
    single-threaded server process), else spawn. Never fork: forking a process that runs an
    event loop and threads copies locks held by other threads."""
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


class PoolConfig(BaseModel):
    """One named pool."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    """``thread``, ``process``, or a kind a plugin provides (``remote``: genro-asgi-nats)."""
    workers: int | None = Field(None, ge=1, le=1024)
    """Threads or processes; default: min(32, cpus + 4) threads, or one process per cpu."""
    max_pending: int | None = Field(1000, ge=1)
    """Jobs accepted but not started (memory held for callers that have not been served); past
    it ``when_full`` applies. None (``~`` in YAML) is unbounded: only for a pool whose callers
    bound themselves."""
    when_full: Literal["wait", "fail"] = "fail"
    """With ``max_pending`` reached: ``wait`` for room, or ``fail`` at once (503 over HTTP)."""
    retry_after: int = Field(5, ge=1, le=3600)
    """The ``Retry-After`` seconds of the 503 a full pool answers."""
    start_method: Literal["forkserver", "spawn"] | None = None
    """Process pools only: how workers start (default: forkserver where available)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Options of a kind a plugin provides, validated by that plugin at startup; thread and
    process pools take none."""

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value not in BUILTIN_KINDS and not POOL_KIND.match(value):
            raise ValueError(f"must be 'thread', 'process' or a pool kind a plugin provides "
                             f"(lower-case letters, digits, '_'), got {value!r}")
        return value

    @model_validator(mode="after")
    def _defaults(self) -> PoolConfig:
        if self.kind != "process" and self.start_method is not None:
            raise ValueError("start_method applies to process pools only")
        if self.kind in BUILTIN_KINDS and self.options:
            raise ValueError(f"options apply to pool kinds provided by plugins, not to "
                             f"{self.kind} pools")
        cpus = os.cpu_count() or 1
        if self.workers is None:
            self.workers = min(32, cpus + 4) if self.kind == "thread" else cpus
        if self.kind == "process" and self.start_method is None:
            self.start_method = default_start_method()
        return self


def _default_pools() -> dict[str, PoolConfig]:
    return {"io": PoolConfig(kind="thread"), "cpu": PoolConfig(kind="process")}


class ExecutorConfig(BaseModel):
    """Validated options; an unknown key is refused naming ``plugins.executor.<key>``."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = "/_tasks"
    """Where the task HTTP API is mounted; None (``~`` in YAML) mounts none."""
    pools: dict[str, PoolConfig] = Field(default_factory=_default_pools)
    default_thread_pool: str | None = None
    """The pool of ``run_blocking`` (default: the first thread pool)."""
    default_process_pool: str | None = None
    """The pool of ``run_process`` (default: the first process pool)."""
    shutdown_timeout: float = Field(30.0, ge=0)
    """Seconds running jobs get at shutdown before they are cancelled."""
    retention: float = Field(3600.0, gt=0)
    """Seconds a finished task's record is kept."""
    max_records: int = Field(10_000, ge=1)
    """Finished records kept at most; the oldest go first."""
    store: Literal["memory", "sqlite"] = "memory"
    sqlite_path: str = "tasks.sqlite3"
    """The SQLite file (relative to the server directory) of ``store: sqlite``."""
    auth_rule: str | None = None
    """A tag rule (``"admin|ops"``) the caller's identity must match to use the HTTP API."""
    access: Literal["owner", "open"] = "owner"
    """``owner``: a task is listed, shown and cancelled for the identity that submitted it
    (``submit(..., owner=request.identity)``) and for ``admin_rule``; a task without an owner
    is shown to whoever has its id, and listed and cancelled by admins only. ``open``: every
    caller the ``auth_rule`` admits sees and cancels every task."""
    admin_rule: str | None = None
    """A tag rule (``"admin"``) whose identities see and cancel every task."""
    expose_tracebacks: bool = False
    """Include a failed task's traceback in the HTTP API's answers."""

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("/") or value.strip("/") == "":
            raise ValueError("must be an absolute path other than '/', like '/_tasks'")
        return "/" + value.strip("/")

    @field_validator("pools")
    @classmethod
    def _pools(cls, value: dict[str, PoolConfig]) -> dict[str, PoolConfig]:
        for name in value:
            if not POOL_NAME.match(name):
                raise ValueError(f"pool name {name!r} must be 1-64 of A-Z a-z 0-9 _ . -")
        return value

    @field_validator("auth_rule", "admin_rule")
    @classmethod
    def _auth_rule(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                tags_match(value, set())
            except RuleError as exc:
                raise ValueError(f"invalid tag rule {value!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _default_pool_names(self) -> ExecutorConfig:
        for option, kind in (("default_thread_pool", "thread"),
                             ("default_process_pool", "process")):
            chosen = getattr(self, option)
            if chosen is None:
                setattr(self, option, next(
                    (n for n, p in self.pools.items() if p.kind == kind), None))
            elif chosen not in self.pools:
                raise ValueError(f"{option}: no pool named {chosen!r}")
            elif self.pools[chosen].kind != kind:
                raise ValueError(f"{option}: pool {chosen!r} is a {self.pools[chosen].kind} "
                                 f"pool, not a {kind} pool")
        return self
