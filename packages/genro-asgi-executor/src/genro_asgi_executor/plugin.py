"""The ``executor`` plugin: named pools, the TaskManager, the task API and their lifecycle.

One instance per server holds everything (pools, tasks, store, event delivery); pools and the
TaskManager exist between lifespan startup and shutdown. Handlers reach the instance through
``executor_of(server)`` (or ``server.plugins.get("executor")``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from genro_asgi import Plugin, hookimpl

from ._worker import start_forkserver
from .api import TasksApp
from .config import ExecutorConfig, PoolConfig
from .errors import ExecutorClosed
from .events import EventBus
from .hookspecs import ExecutorHookSpecs
from .pools import Pool, ProcessPool, ThreadPool
from .routes import pooled_handlers
from .store import SqliteTaskStore, TaskStore
from .tasks import TaskManager

if TYPE_CHECKING:
    from genro_asgi import AsgiServer, Identity


def executor_of(server: AsgiServer) -> ExecutorPlugin:
    """The executor plugin of ``server``; a clear error when it is not enabled."""
    plugin = server.plugins.get("executor")
    if not isinstance(plugin, ExecutorPlugin):
        raise RuntimeError("the executor plugin is not enabled on this server: add "
                           "'executor: {}' under 'plugins:' in config.yaml")
    return plugin


PoolFactory = Callable[[str, PoolConfig], Pool]
BUILTIN_POOLS: dict[str, PoolFactory] = {"thread": ThreadPool, "process": ProcessPool}


def make_pool(name: str, config: PoolConfig,
              kinds: Mapping[str, PoolFactory] = BUILTIN_POOLS) -> Pool:
    """The pool ``config`` describes; ``kinds`` adds the kinds plugins provide."""
    factory = kinds.get(config.kind)
    if factory is None:
        known = ", ".join(sorted(kinds))
        raise ValueError(f"plugins.executor.pools.{name}.kind: no plugin provides pool kind "
                         f"{config.kind!r} (known: {known}); enable the plugin that does "
                         f"(kind 'remote': the nats plugin)")
    try:
        pool = factory(name, config)
    except ValueError as exc:
        raise ValueError(f"plugins.executor.pools.{name}: {exc}") from None
    if not isinstance(pool, Pool):
        raise TypeError(f"pool kind {config.kind!r} built {pool!r}, not a Pool")
    return pool


class ExecutorPlugin(Plugin):
    """Thread and process pools and a TaskManager for one server; see docs/executor.md."""

    config_model = ExecutorConfig
    requires_core = ">=0.1,<0.2"
    hookspecs = ExecutorHookSpecs
    config: ExecutorConfig

    def __init__(self, server: AsgiServer, config: ExecutorConfig) -> None:
        super().__init__(server, config)
        self.pools: dict[str, Pool] = {}
        self.tasks: TaskManager | None = None
        self.events = EventBus()
        self._sweeper: asyncio.Task[None] | None = None

    # -- what handlers call ------------------------------------------------------------------

    def pool(self, name: str) -> Pool:
        """The running pool ``name`` (ValueError if unknown, ExecutorClosed before startup)."""
        pool = self.pools.get(name)
        if pool is None:
            if name in self.config.pools:
                raise ExecutorClosed("the executor is not running (lifespan not started)")
            raise ValueError(f"no pool named {name!r} "
                             f"(pools: {', '.join(self.config.pools) or 'none'})")
        return pool

    async def run_in(self, pool: str, fn: Callable[..., Any], /, *args: Any,
                     **kwargs: Any) -> Any:
        """``await fn(*args, **kwargs)`` run in the named pool."""
        return await self.pool(pool).run(fn, *args, **kwargs)

    async def run_blocking(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run a blocking function in the default thread pool and return its result."""
        return await self.pool(self._default("thread")).run(fn, *args, **kwargs)

    async def run_process(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run a picklable, module-level function in the default process pool."""
        return await self.run_in(self._default("process"), fn, *args, **kwargs)

    async def submit(self, fn: Callable[..., Any], /, *args: Any, pool: str | None = None,
                     name: str | None = None, timeout: float | None = None,
                     owner: Identity | None = None, **kwargs: Any) -> str:
        """Start a task (see ``TaskManager.submit``) and return its id; ``owner``
        (``request.identity``) is who may see and cancel it over the task API."""
        if self.tasks is None:
            raise ExecutorClosed("the executor is not running (lifespan not started)")
        return await self.tasks.submit(fn, *args, pool=pool, name=name, timeout=timeout,
                                       owner=owner, **kwargs)

    def _default(self, kind: str) -> str:
        name = self.config.default_thread_pool if kind == "thread" \
            else self.config.default_process_pool
        if name is None:
            raise ValueError(f"no {kind} pool is configured (plugins.executor.pools)")
        return name

    # -- hooks -------------------------------------------------------------------------------

    @hookimpl
    def genro_asgi_mount(self) -> Mapping[str, Any] | None:
        return {self.config.path: TasksApp(self)} if self.config.path else None

    @hookimpl
    async def genro_asgi_startup(self, server: AsgiServer) -> None:
        self._check_pooled_routes(server)
        loop = asyncio.get_running_loop()
        kinds = dict(BUILTIN_POOLS)
        for provided in server.plugins.call_sync("genro_asgi_executor_pool_kinds",
                                                 server=server):
            kinds.update({k: f for k, f in provided.items() if k not in BUILTIN_POOLS})
        self.pools = {name: make_pool(name, cfg, kinds)
                      for name, cfg in self.config.pools.items()}
        for pool in self.pools.values():
            pool.start(loop)
        if any(cfg.start_method == "forkserver" for cfg in self.config.pools.values()):
            # the first forkserver worker would otherwise start the server on the loop
            await asyncio.to_thread(start_forkserver)
        store: TaskStore = TaskStore()
        if self.config.store == "sqlite":
            store = SqliteTaskStore(server.server_dir / self.config.sqlite_path)
        self.tasks = TaskManager(self.pools, store, self.events.emit,
                                 default_pool=self.config.default_thread_pool,
                                 retention=self.config.retention,
                                 max_records=self.config.max_records)
        self.tasks.load()
        self.events.start(server)
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="executor-retention")

    def _check_pooled_routes(self, server: AsgiServer) -> None:
        trees = [server.router.route.nodes(_eager=True, forbidden=True)]
        if server.root_app is not None:
            trees.append(server.root_app.route.nodes(_eager=True, forbidden=True))
        for tree in trees:
            for path, pool in pooled_handlers(tree):
                config = self.config.pools.get(pool)
                if config is None:
                    raise ValueError(f"route {path}: in_pool({pool!r}) names no pool "
                                     f"(pools: {', '.join(self.config.pools)})")
                if config.kind != "thread":
                    raise ValueError(f"route {path}: in_pool({pool!r}) needs a thread pool; "
                                     "a handler cannot move to another process with its "
                                     "application: call run_process(fn, ...) from it")

    async def _sweep_forever(self) -> None:
        interval = min(max(self.config.retention / 4, 0.5), 60.0)
        while True:
            await asyncio.sleep(interval)
            if self.tasks is not None:
                self.tasks.purge()

    @hookimpl
    async def genro_asgi_shutdown(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self.tasks is not None:
            await self.tasks.close(self.config.shutdown_timeout)
        for pool in self.pools.values():
            await pool.close()
        await self.events.close()
        if self.tasks is not None:
            await asyncio.to_thread(self.tasks.store.close)

    @hookimpl(optionalhook=True)
    def genro_asgi_metrics_collectors(self, registry: Any) -> None:
        from .collectors import ExecutorCollector

        registry.register(ExecutorCollector(self))
