"""Applications and plugins the API and end-to-end tests mount."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import executor_jobs as jobs

from genro_asgi import AsgiApplication, Plugin, hookimpl, route
from genro_asgi_executor import executor_of, in_pool


class JobsApp(AsgiApplication):
    @route(methods=["POST"])
    async def crunch(self, flag: str) -> dict[str, Any]:
        executor = executor_of(self.server)
        task_id = await executor.submit(jobs.crunch_until_file, flag, pool="cpu", name="crunch")
        return {"task_id": task_id}

    @route(methods=["POST"])
    async def add(self, a: int, b: int = 0, pool: str = "io") -> dict[str, Any]:
        task_id = await executor_of(self.server).submit(jobs.add, a, b, pool=pool, name="add")
        return {"task_id": task_id}

    @route(methods=["POST"])
    async def fail(self) -> dict[str, Any]:
        return {"task_id": await executor_of(self.server).submit(jobs.boom, "api")}

    @route(methods=["POST"])
    async def typed(self) -> dict[str, Any]:
        return {"task_id": await executor_of(self.server).submit(jobs.typed_result)}

    @route(methods=["POST"])
    async def lock(self) -> dict[str, Any]:
        return {"task_id": await executor_of(self.server).submit(jobs.return_lock)}

    @route(methods=["POST"])
    async def deep(self) -> dict[str, Any]:
        return {"task_id": await executor_of(self.server).submit(jobs.deep, 100_000)}

    @route(methods=["POST"])
    async def hold(self, flag: str) -> dict[str, Any]:
        """A task in the one-slot 'tiny' pool that holds its worker until ``flag`` exists."""
        task_id = await executor_of(self.server).submit(jobs.wait_for_file, flag, 0,
                                                        pool="tiny")
        return {"task_id": task_id}

    @route(methods=["POST"])
    async def forever(self, pid_file: str) -> dict[str, Any]:
        """A quiet process task (no progress) that never ends: it writes its pid and sleeps."""
        task_id = await executor_of(self.server).submit(jobs.sleep_forever, pid_file,
                                                        pool="cpu")
        return {"task_id": task_id}

    @route(methods=["GET"])
    async def hello(self) -> str:
        return "hello"

    @route(methods=["GET"])
    @in_pool("io")
    def blocking(self, x: int) -> dict[str, Any]:
        return {"x": x, "thread": threading.current_thread().name, "app": type(self).__name__}


class BadPoolApp(AsgiApplication):
    @route()
    @in_pool("gpu")
    def work(self) -> str:
        return "never"


class ProcessPoolApp(AsgiApplication):
    @route()
    @in_pool("cpu")
    def work(self) -> str:
        return "never"


@dataclass(frozen=True)
class FakeIdentity:
    id: str
    tags: frozenset[str]


class HeaderIdentity(Plugin):
    """Test stand-in for the auth plugin: ``X-Test-Tags: a,b`` becomes the identity."""

    @hookimpl
    def genro_asgi_middleware(self) -> Any:
        def factory(app: Any) -> Any:
            async def identify(scope: dict[str, Any], receive: Any, send: Any) -> None:
                for key, value in scope.get("headers", []):
                    if key == b"x-test-tags":
                        tags = frozenset(filter(None, value.decode().split(",")))
                        scope["genro.identity"] = FakeIdentity("tester", tags)
                await app(scope, receive, send)

            return identify

        return factory
