"""Pool kinds provided by other plugins (``genro_asgi_executor_pool_kinds``): how a package
such as genro-asgi-nats adds ``kind: remote`` without the executor knowing it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from genro_asgi import AsgiServer, Plugin, hookimpl
from genro_asgi.testing import TestClient
from genro_asgi_executor import ThreadPool, executor_of


class CountingPool(ThreadPool):
    """A thread pool under another kind name, counting the jobs it launched."""

    kind = "counting"

    def __init__(self, name: str, config: Any) -> None:
        unknown = set(config.options) - {"label"}
        if unknown:
            raise ValueError(f"options.{sorted(unknown)[0]}: not an option of counting pools")
        super().__init__(name, config)
        self.label = config.options.get("label", "")
        self.launched = 0

    def launch(self, job: Any) -> None:
        self.launched += 1
        super().launch(job)


class ProvidesCounting(Plugin):
    @hookimpl(optionalhook=True)
    def genro_asgi_executor_pool_kinds(self, server: AsgiServer) -> dict[str, Any]:
        return {"counting": CountingPool, "thread": "never used: built-in kinds win"}


def build(tmp_path: Path, pools: dict[str, Any], provider: bool = True) -> AsgiServer:
    plugins: dict[str, Any] = {"executor": {"pools": pools}}
    if provider:
        plugins["counting"] = {"module": f"{__name__}:ProvidesCounting"}
    return AsgiServer(tmp_path, environ={}, config={"plugins": plugins})


def double(x: int) -> int:
    return 2 * x


def test_a_plugin_kind_runs_tasks(tmp_path: Path) -> None:
    server = build(tmp_path, {"c": {"kind": "counting", "workers": 2,
                                    "options": {"label": "eu"}}, "io": {"kind": "thread"}})
    with TestClient(server) as client:
        executor = executor_of(server)
        pool = executor.pool("c")
        assert isinstance(pool, CountingPool) and pool.label == "eu"
        assert isinstance(executor.pool("io"), ThreadPool)
        assert not isinstance(executor.pool("io"), CountingPool)

        async def go() -> Any:
            task_id = await executor.submit(double, 21, pool="c")
            return await executor.tasks.result(task_id)  # type: ignore[union-attr]

        assert client._run(go()) == 42
        assert pool.launched == 1
        assert pool.stats()["kind"] == "counting"


def test_a_kind_nobody_provides_stops_the_startup(tmp_path: Path) -> None:
    server = build(tmp_path, {"gpu": {"kind": "remote"}}, provider=False)
    with pytest.raises(RuntimeError) as info, TestClient(server):
        pass
    assert "plugins.executor.pools.gpu.kind" in str(info.value)
    assert "'remote'" in str(info.value)


def test_bad_options_of_a_plugin_kind_name_the_pool(tmp_path: Path) -> None:
    server = build(tmp_path, {"c": {"kind": "counting", "options": {"colour": "red"}}})
    with pytest.raises(RuntimeError) as info, TestClient(server):
        pass
    assert "plugins.executor.pools.c: options.colour" in str(info.value)
