"""The metrics of one server: label bounding, and the two stores the observers write to.

``LocalMetrics`` (one process, the default) keeps plain Python numbers in per-label-set slots
and turns them into metric families only when scraped (``collect``): a request costs one dict
lookup, one method call, a few integer additions and three ``bisect`` calls, with no lock (the
observers all run on the event loop thread). ``SharedMetrics`` (multiprocess mode) writes
through prometheus_client's metric objects, whose values live in the shared directory's files,
so that any worker can aggregate all of them at scrape time.

Both have the same shape: ``slot(method, route, status).record(duration, req_size, resp_size)``,
``error(exc_class).inc()``, ``stuck(level).inc()``, and the WebSocket counters.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

UNMATCHED = "<unmatched>"
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
STUCK_LEVELS = ("warning", "critical")

DOC_REQUESTS = "HTTP requests by method, route template and status."
DOC_DURATION = "HTTP request duration in seconds."
DOC_IN_PROGRESS = "HTTP requests being served."
DOC_REQUEST_SIZE = "HTTP request body size in bytes."
DOC_RESPONSE_SIZE = "HTTP response body size in bytes."
DOC_ERRORS = "Requests and connections that ended with an exception, by exception class."
DOC_STUCK = "In-flight requests reported by the watchdog, by level."
DOC_WS_ACTIVE = "WebSocket connections open (from the handshake to the close)."
DOC_WS_MESSAGES = "WebSocket data messages by direction (in: from clients, out: to clients)."


def label_method(method: str) -> str:
    return method if method in KNOWN_METHODS else "OTHER"


def label_status(status: int | None) -> str:
    return str(status) if status is not None else "none"


def finite(bounds: Sequence[float]) -> tuple[float, ...]:
    """Histogram bounds without +Inf (always added as the last bucket)."""
    return tuple(float(b) for b in bounds if b != float("inf"))


def path_filter(paths: Iterable[str]) -> Callable[[str], bool]:
    """A predicate: is ``path`` one of ``paths`` or under one of them."""
    exact = frozenset(paths)
    under = tuple(p + "/" for p in exact)

    def skipped(path: str) -> bool:
        return path in exact or path.startswith(under)

    return skipped


# -- one process --------------------------------------------------------------------------------

class Tally:
    """A counter as a plain number (``inc`` has the prometheus_client shape)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class LocalSlot:
    """Everything one (method, route, status) records: the count, bucket counts and sums.

    Bucket counts are not cumulative (the last one is +Inf); histograms of the same
    (method, route) are summed over statuses at scrape time.
    """

    __slots__ = ("count", "d_bounds", "d_counts", "d_sum", "q_counts", "q_sum", "r_counts",
                 "r_sum", "s_bounds")

    def __init__(self, duration: tuple[float, ...], size: tuple[float, ...]) -> None:
        self.count = 0
        self.d_bounds, self.s_bounds = duration, size
        self.d_counts = [0] * (len(duration) + 1)
        self.q_counts = [0] * (len(size) + 1)
        self.r_counts = [0] * (len(size) + 1)
        self.d_sum = 0.0
        self.q_sum = 0
        self.r_sum = 0

    def record(self, duration: float, request_size: int, response_size: int) -> None:
        self.count += 1
        self.d_counts[bisect_left(self.d_bounds, duration)] += 1
        self.d_sum += duration
        if request_size:
            self.q_counts[bisect_left(self.s_bounds, request_size)] += 1
            self.q_sum += request_size
        else:  # most requests have no body: the first bucket, bounds are positive
            self.q_counts[0] += 1
        self.r_counts[bisect_left(self.s_bounds, response_size)] += 1
        self.r_sum += response_size


def _cumulative(bounds: tuple[float, ...], counts: list[int]) -> list[tuple[str, float]]:
    running, out = 0, []
    for bound, count in zip((*bounds, float("inf")), counts, strict=True):
        running += count
        out.append((floatToGoString(bound), running))
    return out


def _add(into: list[int] | None, counts: list[int]) -> list[int]:
    return list(counts) if into is None else [a + b for a, b in zip(into, counts, strict=True)]


class LocalMetrics:
    """One process: plain numbers, exposed by ``collect`` (registered as a collector)."""

    multiprocess = False

    def __init__(self, *, duration_buckets: Sequence[float], size_buckets: Sequence[float],
                 in_progress: Callable[[], int], websockets_open: Callable[[], int]) -> None:
        self._duration_bounds = finite(duration_buckets)
        self._size_bounds = finite(size_buckets)
        self._in_progress = in_progress
        self._websockets_open = websockets_open
        self._slots: dict[tuple[str, str, int | None], LocalSlot] = {}
        self._errors: dict[str, Tally] = {}
        self._stuck = {level: Tally() for level in STUCK_LEVELS}
        self.ws_in, self.ws_out = Tally(), Tally()

    # the observers' side
    def slot(self, method: str, route: str, status: int | None) -> LocalSlot:
        found = self._slots.get((method, route, status))
        if found is None:
            found = self._slots[(method, route, status)] = LocalSlot(self._duration_bounds,
                                                                     self._size_bounds)
        return found

    def error(self, exc_class: type) -> Tally:
        name = exc_class.__name__
        found = self._errors.get(name)
        if found is None:
            found = self._errors[name] = Tally()
        return found

    def stuck(self, level: str) -> Tally:
        found = self._stuck.get(level)
        if found is None:
            found = self._stuck[level] = Tally()
        return found

    # the scrape's side (in-progress requests are counted then, from the envelope registry)
    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("http_requests", DOC_REQUESTS,
                                       labels=("method", "route", "status"))
        totals: dict[tuple[str, str, str], int] = {}
        # per (method, route): [duration counts, sum, request size counts, sum, response ...]
        series: dict[tuple[str, str], list[Any]] = {}
        for (method, route, status), slot in list(self._slots.items()):
            key = (label_method(method), route, label_status(status))
            totals[key] = totals.get(key, 0) + slot.count
            acc = series.setdefault(key[:2], [None, 0.0, None, 0, None, 0])
            acc[0], acc[1] = _add(acc[0], slot.d_counts), acc[1] + slot.d_sum
            acc[2], acc[3] = _add(acc[2], slot.q_counts), acc[3] + slot.q_sum
            acc[4], acc[5] = _add(acc[4], slot.r_counts), acc[5] + slot.r_sum
        for key, count in totals.items():
            requests.add_metric(key, count)
        yield requests
        families = (
            HistogramMetricFamily("http_request_duration_seconds", DOC_DURATION,
                                  labels=("method", "route")),
            HistogramMetricFamily("http_request_size_bytes", DOC_REQUEST_SIZE,
                                  labels=("method", "route")),
            HistogramMetricFamily("http_response_size_bytes", DOC_RESPONSE_SIZE,
                                  labels=("method", "route")),
        )
        bounds = (self._duration_bounds, self._size_bounds, self._size_bounds)
        for labels, acc in series.items():
            for i, family in enumerate(families):
                family.add_metric(labels, _cumulative(bounds[i], acc[2 * i]), acc[2 * i + 1])
        yield from families
        yield GaugeMetricFamily("http_requests_in_progress", DOC_IN_PROGRESS,
                                value=self._in_progress())
        errors = CounterMetricFamily("http_errors", DOC_ERRORS, labels=("exc_type",))
        for name, tally in self._errors.items():
            errors.add_metric((name,), tally.value)
        yield errors
        stuck = CounterMetricFamily("requests_stuck", DOC_STUCK, labels=("level",))
        for level, tally in self._stuck.items():
            stuck.add_metric((level,), tally.value)
        yield stuck
        yield GaugeMetricFamily("websocket_connections_active", DOC_WS_ACTIVE,
                                value=self._websockets_open())
        messages = CounterMetricFamily("websocket_messages", DOC_WS_MESSAGES,
                                       labels=("direction",))
        messages.add_metric(("in",), self.ws_in.value)
        messages.add_metric(("out",), self.ws_out.value)
        yield messages


# -- several processes --------------------------------------------------------------------------

class SharedSlot:
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
    """Multiprocess mode: prometheus_client metrics whose values live in the shared files.

    Created after ``PROMETHEUS_MULTIPROC_DIR`` is set. They join ``registry`` (normally None:
    each scrape aggregates the files with a MultiProcessCollector instead).
    """

    multiprocess = True

    def __init__(self, registry: CollectorRegistry | None, *,
                 duration_buckets: Sequence[float], size_buckets: Sequence[float]) -> None:
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
        for level in STUCK_LEVELS:
            self.stuck_total.labels(level)
        self._slots: dict[tuple[str, str, int | None], SharedSlot] = {}
        self._errors: dict[type, Any] = {}

    def slot(self, method: str, route: str, status: int | None) -> SharedSlot:
        found = self._slots.get((method, route, status))
        if found is None:
            m = label_method(method)
            found = self._slots[(method, route, status)] = SharedSlot(
                self.requests_total.labels(m, route, label_status(status)),
                self.request_duration.labels(m, route),
                self.request_size.labels(m, route),
                self.response_size.labels(m, route),
            )
        return found

    def error(self, exc_class: type) -> Any:
        found = self._errors.get(exc_class)
        if found is None:
            found = self._errors[exc_class] = self.errors_total.labels(exc_class.__name__)
        return found

    def stuck(self, level: str) -> Any:
        return self.stuck_total.labels(level)


ServerMetrics = LocalMetrics | SharedMetrics
