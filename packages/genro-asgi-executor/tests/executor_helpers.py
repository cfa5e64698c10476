"""Shared test helpers: servers with small pools, and waiting for a condition without sleeps
that decide the outcome."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from genro_asgi import AsgiServer, Plugin, hookimpl
from genro_asgi_executor import ExecutorPlugin, executor_of

HANG_GUARD = 30.0  # seconds: only to turn a hang into a failure, never an assertion

POOLS = {"io": {"kind": "thread", "workers": 2},
         "cpu": {"kind": "process", "workers": 2}}


def executor_config(**options: Any) -> dict[str, Any]:
    return {"pools": POOLS, **options}


class EventLog(Plugin):
    """Records every task event, as the WSX and metrics plugins would receive them."""

    def __init__(self, server: AsgiServer, config: Any) -> None:
        super().__init__(server, config)
        self.events: list[dict[str, Any]] = []

    @hookimpl(optionalhook=True)
    async def genro_asgi_executor_task_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def states(self, task_id: str) -> list[str]:
        return [e["state"] for e in self.events if e["task_id"] == task_id and
                e["kind"] == "state"]


@contextlib.asynccontextmanager
async def running(tmp_path: Path, events: bool = False,
                  **options: Any) -> AsyncIterator[ExecutorPlugin]:
    plugins: dict[str, Any] = {"executor": executor_config(**options)}
    if events:
        plugins["eventlog"] = {"module": "executor_helpers:EventLog"}
    server = AsgiServer(tmp_path, config={"plugins": plugins}, environ={})
    await server.startup()
    try:
        yield executor_of(server)
    finally:
        await server.shutdown()


async def until(condition: Callable[[], Any], what: str = "condition") -> Any:
    deadline = time.monotonic() + HANG_GUARD
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
