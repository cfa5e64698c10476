"""Several processes: prometheus_client metric objects whose values live in shared files.

Every worker writes through prometheus_client's metric children (memory-mapped files in the
multiprocess directory), so that whichever worker answers a scrape can aggregate all of them.
The observer finds its series like the one-process store does (``SeriesIndex``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from time import monotonic
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .labels import (
    DOC_DURATION,
    DOC_ERRORS,
    DOC_IN_PROGRESS,
    DOC_REQUEST_SIZE,
    DOC_REQUESTS,
    DOC_RESPONSE_SIZE,
    DOC_STUCK,
    DOC_TASK_EVENTS,
    DOC_WS_ACTIVE,
    DOC_WS_MESSAGES,
    STUCK_LEVELS,
    Labels,
    SeriesIndex,
    task_labels,
)

if TYPE_CHECKING:
    from genro_asgi import Envelope


class SharedSeries:
    """The prometheus_client children of one (method, route, status)."""

    __slots__ = ("count", "duration", "request_size", "response_size")

    def __init__(self, count: Any, duration: Any, request_size: Any, response_size: Any) -> None:
        self.count, self.duration = count, duration
        self.request_size, self.response_size = request_size, response_size

    def record(self, duration: float, request_size: int, response_size: int) -> None:
        self.count.inc()
        self.duration.observe(duration)
        self.request_size.observe(request_size)
        self.response_size.observe(response_size)


class SharedMetrics:
    """Multiprocess mode: created after ``PROMETHEUS_MULTIPROC_DIR`` is set.

    The metrics join ``registry`` (normally None: each scrape aggregates the files with a
    MultiProcessCollector instead).
    """

    multiprocess = True

    def __init__(self, registry: CollectorRegistry | None, *,
                 duration_buckets: Sequence[float], size_buckets: Sequence[float],
                 skipped_route: Callable[[str], bool],
                 route_of: Callable[[Mapping[str, Any]], str | None]) -> None:
        reg: Any = registry
        self.requests_total = Counter("http_requests_total", DOC_REQUESTS,
                                      ("method", "route", "status"), registry=reg)
        self.request_duration = Histogram("http_request_duration_seconds", DOC_DURATION,
                                          ("method", "route"), buckets=duration_buckets,
                                          registry=reg)
        self.in_progress = Gauge("http_requests_in_progress", DOC_IN_PROGRESS, registry=reg,
                                 multiprocess_mode="livesum")
        self.request_size = Histogram("http_request_size_bytes", DOC_REQUEST_SIZE,
                                      ("method", "route"), buckets=size_buckets, registry=reg)
        self.response_size = Histogram("http_response_size_bytes", DOC_RESPONSE_SIZE,
                                       ("method", "route"), buckets=size_buckets, registry=reg)
        self.errors_total = Counter("http_errors_total", DOC_ERRORS, ("exc_type",),
                                    registry=reg)
        self.stuck_total = Counter("requests_stuck_total", DOC_STUCK, ("level",), registry=reg)
        self.ws_active = Gauge("websocket_connections_active", DOC_WS_ACTIVE, registry=reg,
                               multiprocess_mode="livesum")
        messages = Counter("websocket_messages_total", DOC_WS_MESSAGES, ("direction",),
                           registry=reg)
        self.ws_in, self.ws_out = messages.labels("in"), messages.labels("out")
        self.task_events = Counter("executor_task_events_total", DOC_TASK_EVENTS,
                                   ("kind", "state"), registry=reg)
        for level in STUCK_LEVELS:
            self.stuck_total.labels(level)
        self.index: SeriesIndex[SharedSeries] = SeriesIndex(self._series, skipped_route,
                                                             route_of)
        self._errors: dict[type, Any] = {}

    def _series(self, labels: Labels) -> SharedSeries:
        method, route, status = labels
        return SharedSeries(self.requests_total.labels(method, route, status),
                            self.request_duration.labels(method, route),
                            self.request_size.labels(method, route),
                            self.response_size.labels(method, route))

    def observer(self, skip_path: Callable[[str], bool] | None) -> Callable[[Envelope], None]:
        """The ``genro_asgi_envelope_closed`` implementation (see LocalMetrics.observer)."""
        by_method = self.index.by_method
        miss = self.index.miss
        error = self.error

        def envelope_closed(envelope: Envelope) -> None:
            if envelope.error is not None:
                error(type(envelope.error)).inc()
            scope = envelope.scope
            if skip_path is not None and skip_path(scope["path"]):
                return
            route, status = envelope.route, envelope.status
            try:
                series = by_method[scope["method"]][route][status]
            except KeyError:  # new labels, an unknown method, a WebSocket (no method), no route
                series = miss(scope, route, status)
            if series is not None:
                series.record(monotonic() - envelope.created_at, envelope.request_size,
                              envelope.response_size)

        return envelope_closed

    def error(self, exc_class: type) -> Any:
        found = self._errors.get(exc_class)
        if found is None:
            found = self._errors[exc_class] = self.errors_total.labels(exc_class.__name__)
        return found

    def stuck(self, level: str) -> Any:
        return self.stuck_total.labels(level)

    def task_event(self, event: Any) -> None:
        self.task_events.labels(*task_labels(event)).inc()
