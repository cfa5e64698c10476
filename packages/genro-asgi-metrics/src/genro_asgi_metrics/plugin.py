"""The ``metrics`` plugin: wires the per-server registry, observers, exposition and workers.

Everything lives on the plugin instance (one per server): the ``CollectorRegistry`` and the
store (``LocalMetrics``, or ``SharedMetrics`` in multiprocess mode), chosen when the plugin is
built. The one per-request hook, ``genro_asgi_envelope_closed``, is the store's observer
closure, which the core compiles into its observer list and calls directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, values

from genro_asgi import Plugin, hookimpl

from .config import MetricsConfig
from .exposition import Exposition, ExpositionRoute
from .hookspecs import MetricsHookSpecs
from .listener import MetricsListener
from .metrics import LocalMetrics, ServerMetrics, SharedMetrics, path_filter
from .multiprocess import (
    multiprocess_dir_from_env,
    prepare_directory,
    process_exited,
    scrape_source,
)
from .websocket import websocket_middleware

if TYPE_CHECKING:
    from genro_asgi import AsgiServer
    from genro_asgi.types import ASGIApp

logger = logging.getLogger("genro_asgi_metrics")
GAUGE_INTERVAL = 1.0  # seconds, multiprocess mode only


class MetricsPlugin(Plugin):
    """Prometheus metrics for one server; see docs/metrics.md."""

    config_model = MetricsConfig
    requires_core = ">=0.1,<0.2"
    hookspecs = MetricsHookSpecs
    config: MetricsConfig

    # -- construction -------------------------------------------------------------------------

    def __init__(self, server: AsgiServer, config: MetricsConfig) -> None:
        super().__init__(server, config)
        self.registry = CollectorRegistry(auto_describe=True)
        self.listener: MetricsListener | None = None
        self.exposition: Exposition | None = None
        # in-progress requests and open WebSockets are counted from the envelope registry,
        # never per request: at scrape time, and in multiprocess mode also every
        # GAUGE_INTERVAL seconds into this worker's live gauges
        self._gauges: tuple[Any, Any] | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._exposition_route: str | None = None
        skip = list(config.skip_paths)
        if config.port is None:
            skip.append(config.path)
        self.skipped: Callable[[str], bool] = path_filter(skip)
        self.multiprocess_dir = self._multiprocess_directory(server)
        self.metrics: ServerMetrics = self._store()
        # The per-request observer: a closure over the store, registered under the hook's
        # name as an attribute, so the core calls it directly (no method call in between).
        # The exposition's own route is recognised by the store's index, once per label set;
        # the user's skip_paths are checked per request only when there are some.
        self.observe_request = hookimpl(specname="genro_asgi_envelope_closed")(
            self.metrics.observer(path_filter(config.skip_paths) if config.skip_paths else None))

    def _multiprocess_directory(self, server: AsgiServer) -> str | None:
        directory = multiprocess_dir_from_env()
        if directory is None and server.settings.server.workers > 1:
            # the parent, before uvicorn spawns the workers: they inherit the variable
            directory = prepare_directory(self.config.multiprocess_dir)
        if directory is not None and not getattr(values.ValueClass, "_multiprocess", False):
            # prometheus_client picks its value class when first imported; this process
            # imported it before the directory was exported
            values.ValueClass = values.MultiProcessValue()
        return directory

    def _store(self) -> ServerMetrics:
        buckets = {"duration_buckets": self.config.duration_buckets,
                   "size_buckets": self.config.byte_buckets}
        if self.multiprocess_dir is None:
            local = LocalMetrics(in_progress=self._in_progress,
                                 websockets_open=self._websockets_open,
                                 skipped_route=self._is_exposition_route,
                                 route_of=self.server.route_template, **buckets)
            self.registry.register(local)
            return local
        # created after the environment is set: the values live in the directory's files and
        # each scrape aggregates them, so they join no registry
        shared = SharedMetrics(None, skipped_route=self._is_exposition_route,
                               route_of=self.server.route_template, **buckets)
        self._gauges = shared.in_progress, shared.ws_active
        return shared

    def _is_exposition_route(self, route: str) -> bool:
        """Whether ``route`` (a route template) is the scrape's own (asked once per label set)."""
        if self.config.port is not None:
            return False
        if self._exposition_route is None:
            found = self.server.find_route(self.config.path)
            self._exposition_route = found[0].path if found is not None else ""
        return route == self._exposition_route

    @hookimpl
    def genro_asgi_configure(self, server: AsgiServer) -> None:
        server.plugins.call_sync("genro_asgi_metrics_collectors", server=server,
                                 registry=self.registry)
        token = self.config.token.get_secret_value() if self.config.token else None
        self.exposition = Exposition(self._scrape_source, token, self.config.auth_rule)

    def _in_progress(self) -> int:
        skipped = self.skipped
        return sum(1 for envelope in self.server.envelopes
                   if envelope.scope_type == "http" and not skipped(envelope.path))

    def _websockets_open(self) -> int:
        return self.server.envelopes.count("websocket")

    def _sample_gauges(self) -> None:
        if self._gauges is not None:
            self._gauges[0].set(self._in_progress())
            self._gauges[1].set(self._websockets_open())

    def _scrape_source(self) -> Any:
        if self.multiprocess_dir is not None:
            self._sample_gauges()
            return scrape_source(self.multiprocess_dir, self.registry)
        return self.registry

    @hookimpl
    def genro_asgi_mount(self, server: AsgiServer) -> Mapping[str, Any] | None:
        if self.config.port is not None or self.exposition is None:
            return None
        return {self.config.path: ExpositionRoute(self.exposition)}

    @hookimpl
    def genro_asgi_middleware(self) -> Callable[[ASGIApp], ASGIApp] | None:
        if not self.config.websocket:
            return None
        return websocket_middleware(self.metrics, self.skipped)

    # -- lifespan -----------------------------------------------------------------------------

    @hookimpl
    async def genro_asgi_startup(self, server: AsgiServer) -> None:
        if self.config.port is not None and self.exposition is not None:
            self.listener = MetricsListener(
                self.exposition, self.config.host, self.config.port, self.config.path,
                reuse_port=self.multiprocess_dir is not None)
            await self.listener.start()
        if self._gauges is not None:
            self._sampler = asyncio.create_task(self._sample_forever())

    async def _sample_forever(self) -> None:
        while True:
            self._sample_gauges()
            await asyncio.sleep(GAUGE_INTERVAL)

    @hookimpl
    async def genro_asgi_shutdown(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
            self._sampler = None
        if self.listener is not None:
            await self.listener.stop()
            self.listener = None
        if self.multiprocess_dir is not None:
            process_exited(self.multiprocess_dir)

    # -- events from the watchdog and the executor --------------------------------------------

    @hookimpl
    def genro_asgi_envelope_stuck(self, level: str) -> None:
        self.metrics.stuck(level).inc()

    @hookimpl(optionalhook=True)
    def genro_asgi_executor_task_event(self, event: Mapping[str, Any]) -> None:
        """Declared by genro-asgi-executor: counts ``executor_task_events_total{kind,state}``."""
        self.metrics.task_event(event)
