"""The ``metrics`` plugin: wires the per-server registry, observers, exposition and workers.

Everything lives on the plugin instance (one per server): the ``CollectorRegistry``, the metric
objects and their cached label children. The per-request observers are plain methods that the
core compiles into its observer lists; they do a few dict lookups and ``inc``/``observe`` calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from time import monotonic
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, values

from genro_asgi import Plugin, hookimpl

from .config import MetricsConfig
from .exposition import Exposition, ExpositionApp
from .hookspecs import MetricsHookSpecs
from .listener import MetricsListener
from .metrics import UNMATCHED, LocalMetrics, ServerMetrics, SharedMetrics, path_filter
from .multiprocess import (
    multiprocess_dir_from_env,
    prepare_directory,
    process_exited,
    scrape_source,
)
from .websocket import websocket_middleware

if TYPE_CHECKING:
    from genro_asgi import AsgiServer, Envelope
    from genro_asgi.types import ASGIApp

logger = logging.getLogger("genro_asgi_metrics")
GAUGE_INTERVAL = 1.0  # seconds, multiprocess mode only


class MetricsPlugin(Plugin):
    """Prometheus metrics for one server; see docs/metrics.md."""

    config_model = MetricsConfig
    requires_core = ">=0.1,<0.2"
    hookspecs = MetricsHookSpecs
    config: MetricsConfig

    def __init__(self, server: AsgiServer, config: MetricsConfig) -> None:
        super().__init__(server, config)
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess_dir: str | None = None
        self.metrics: ServerMetrics | None = None
        # in-progress requests and open WebSockets are counted from the envelope registry,
        # never per request: at scrape time, and in multiprocess mode also every
        # GAUGE_INTERVAL seconds into this worker's live gauges
        self._gauges: tuple[Any, Any] | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._slots: dict[Any, Any] = {}
        self.listener: MetricsListener | None = None
        self.exposition: Exposition | None = None
        skip = list(config.skip_paths)
        if config.port is None:
            skip.append(config.path)
        self.skipped: Callable[[str], bool] = path_filter(skip)
        # the closed observer checks the user's skip_paths only when there are some, and
        # recognises the exposition's own mount by its route (the core labels a mounted ASGI
        # app with its prefix)
        self._skip_mounts = frozenset(skip) - frozenset(config.skip_paths)
        self._skip_user: Callable[[str], bool] | None = \
            path_filter(config.skip_paths) if config.skip_paths else None

    # -- construction -------------------------------------------------------------------------

    @hookimpl
    def genro_asgi_configure(self, server: AsgiServer) -> None:
        directory = multiprocess_dir_from_env()
        if directory is None and server.settings.server.workers > 1:
            # the parent, before uvicorn spawns the workers: they inherit the variable
            directory = prepare_directory(self.config.multiprocess_dir)
        self.multiprocess_dir = directory
        if directory is not None and not getattr(values.ValueClass, "_multiprocess", False):
            # prometheus_client picks its value class when first imported; this process
            # imported it before the directory was exported
            values.ValueClass = values.MultiProcessValue()
        buckets = {"duration_buckets": self.config.duration_buckets,
                   "size_buckets": self.config.byte_buckets}
        if directory is None:
            self.metrics = LocalMetrics(in_progress=self._in_progress,
                                        websockets_open=self._websockets_open, **buckets)
            self.registry.register(self.metrics)
            self._slots = self.metrics._slots
        else:
            # created after the environment is set; the values live in the directory's files
            # and each scrape aggregates them, so they join no registry
            shared = self.metrics = SharedMetrics(None, **buckets)
            self._gauges = shared.in_progress, shared.ws_active
            self._slots = shared._slots
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
        return {self.config.path: ExpositionApp(self.exposition)}

    @hookimpl
    def genro_asgi_middleware(self) -> Callable[[ASGIApp], ASGIApp] | None:
        if not self.config.websocket or self.metrics is None:
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

    # -- per request: the only per-request hook (compiled into a plain list by the core) -----

    @hookimpl
    def genro_asgi_envelope_closed(self, envelope: Envelope) -> None:
        # the hottest code of the plugin: every line is measured (bench/metrics_overhead.py)
        if envelope.error is not None:
            self.metrics.error(type(envelope.error)).inc()  # type: ignore[union-attr]
        scope = envelope.scope  # read directly: cheaper than the envelope's properties
        if scope["type"] != "http":
            return
        route = envelope.route  # a route template, a mount prefix, or None: no match
        if route is None:
            route = UNMATCHED
        elif route in self._skip_mounts:
            return
        if self._skip_user is not None and self._skip_user(scope["path"]):
            return
        key = (scope["method"], route, envelope.status)
        slot = self._slots.get(key) or self.metrics.slot(*key)  # type: ignore[union-attr]
        slot.record(monotonic() - envelope.created_at, envelope.request_size,
                    envelope.response_size)

    @hookimpl
    def genro_asgi_envelope_stuck(self, level: str) -> None:
        self.metrics.stuck(level).inc()  # type: ignore[union-attr]
