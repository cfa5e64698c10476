"""One process (the default): plain Python numbers, turned into metric families when scraped.

The per-request observer (``LocalMetrics.observer``) is the hottest code of the package: it
does three dict subscripts, one clock read and a few integer additions, with no lock (the
observers all run on the event loop thread). To keep it there, each histogram stores only the
buckets above its first one, and the count of the series once: the first bucket of every
histogram is derived when scraped (the count minus the other buckets), and most requests
(fast, bodiless, small answers) touch no bucket at all. Sizes are compared with integer
bounds (``floor`` of the configured ones, which is exact for whole byte counts).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from time import monotonic
from typing import TYPE_CHECKING, Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

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
    finite,
    task_labels,
)

if TYPE_CHECKING:
    from genro_asgi import Envelope


class Tally:
    """A counter as a plain number (``inc`` has the prometheus_client shape)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class LocalSeries:
    """What one (method, route, status) recorded: its count, and per histogram the counts of
    the buckets after the first (index 0 stays 0 until ``buckets`` derives it) and the sum."""

    __slots__ = ("count", "d_counts", "d_sum", "q_counts", "q_sum", "r_counts", "r_sum")

    def __init__(self, duration_buckets: int, size_buckets: int) -> None:
        self.count = 0
        self.d_counts = [0] * duration_buckets
        self.q_counts = [0] * size_buckets
        self.r_counts = [0] * size_buckets
        self.d_sum = 0.0
        self.q_sum = 0
        self.r_sum = 0

    def buckets(self, counts: list[int]) -> list[int]:
        """Per-bucket (not cumulative) counts, the first one derived."""
        return [self.count - sum(counts), *counts[1:]]


def _cumulative(bounds: tuple[float, ...], counts: list[int]) -> list[tuple[str, float]]:
    running, out = 0, list[tuple[str, float]]()
    for bound, count in zip((*bounds, float("inf")), counts, strict=True):
        running += count
        out.append((floatToGoString(bound), running))
    return out


def _add(into: list[int] | None, counts: list[int]) -> list[int]:
    return counts if into is None else [a + b for a, b in zip(into, counts, strict=True)]


class LocalMetrics:
    """One process: plain numbers, exposed by ``collect`` (registered as a collector)."""

    multiprocess = False

    def __init__(self, *, duration_buckets: Sequence[float], size_buckets: Sequence[float],
                 in_progress: Callable[[], int], websockets_open: Callable[[], int],
                 skipped_route: Callable[[str], bool],
                 route_of: Callable[[Mapping[str, Any]], str | None]) -> None:
        self._duration_bounds = finite(duration_buckets)
        self._size_bounds = finite(size_buckets)
        self._in_progress = in_progress
        self._websockets_open = websockets_open
        buckets = len(self._duration_bounds) + 1, len(self._size_bounds) + 1
        self.index: SeriesIndex[LocalSeries] = SeriesIndex(
            lambda labels: LocalSeries(*buckets), skipped_route, route_of)
        self._errors: dict[str, Tally] = {}
        self._stuck = {level: Tally() for level in STUCK_LEVELS}
        self._tasks: dict[tuple[str, str], Tally] = {}
        self.ws_in, self.ws_out = Tally(), Tally()

    # -- the observers' side ------------------------------------------------------------------

    def observer(self, skip_path: Callable[[str], bool] | None) -> Callable[[Envelope], None]:
        """The ``genro_asgi_envelope_closed`` implementation recording into this store.

        ``skip_path``: the user's ``skip_paths`` (None when there are none, so that the common
        case pays nothing for them).
        """
        by_method = self.index.by_method
        miss = self.index.miss
        error = self.error
        d_bounds = self._duration_bounds
        s_bounds = tuple(math.floor(b) for b in self._size_bounds)  # sizes are whole bytes
        d_first, s_first = d_bounds[0], s_bounds[0]

        def envelope_closed(envelope: Envelope) -> None:
            # every line here is counted by bench/metrics_overhead.py --instructions
            if envelope.error is not None:
                error(type(envelope.error)).value += 1
            scope = envelope.scope
            if skip_path is not None and skip_path(scope["path"]):
                return
            route, status = envelope.route, envelope.status
            try:
                series = by_method[scope["method"]][route][status]
            except KeyError:  # new labels, an unknown method, a WebSocket (no method), no route
                series = miss(scope, route, status)
            if series is None:
                return
            duration = monotonic() - envelope.created_at
            series.count += 1
            series.d_sum += duration
            if duration > d_first:  # the first buckets are derived at scrape time
                series.d_counts[bisect_left(d_bounds, duration)] += 1
            size = envelope.request_size
            if size:
                series.q_sum += size
                if size > s_first:
                    series.q_counts[bisect_left(s_bounds, size)] += 1
            size = envelope.response_size
            series.r_sum += size
            if size > s_first:
                series.r_counts[bisect_left(s_bounds, size)] += 1

        return envelope_closed

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

    def task_event(self, event: Any) -> None:
        labels = task_labels(event)
        found = self._tasks.get(labels)
        if found is None:
            found = self._tasks[labels] = Tally()
        found.value += 1

    # -- the scrape's side (in-progress requests are counted then, from the envelope registry)

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("http_requests", DOC_REQUESTS,
                                       labels=("method", "route", "status"))
        # per (method, route), summed over statuses: [duration buckets, sum, request size
        # buckets, sum, response size buckets, sum]
        merged: dict[tuple[str, str], list[Any]] = {}
        items: list[tuple[Labels, LocalSeries]] = list(self.index.series.items())
        for labels, series in items:
            requests.add_metric(labels, series.count)
            acc = merged.setdefault(labels[:2], [None, 0.0, None, 0, None, 0])
            acc[0] = _add(acc[0], series.buckets(series.d_counts))
            acc[1] += series.d_sum
            acc[2] = _add(acc[2], series.buckets(series.q_counts))
            acc[3] += series.q_sum
            acc[4] = _add(acc[4], series.buckets(series.r_counts))
            acc[5] += series.r_sum
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
        for method_route, acc in merged.items():
            for i, family in enumerate(families):
                family.add_metric(method_route, _cumulative(bounds[i], acc[2 * i]),
                                  acc[2 * i + 1])
        yield from families
        yield GaugeMetricFamily("http_requests_in_progress", DOC_IN_PROGRESS,
                                value=self._in_progress())
        yield _tallies("http_errors", DOC_ERRORS, ("exc_type",),
                       [((name,), tally) for name, tally in self._errors.items()])
        yield _tallies("requests_stuck", DOC_STUCK, ("level",),
                       [((level,), tally) for level, tally in self._stuck.items()])
        yield GaugeMetricFamily("websocket_connections_active", DOC_WS_ACTIVE,
                                value=self._websockets_open())
        yield _tallies("websocket_messages", DOC_WS_MESSAGES, ("direction",),
                       [(("in",), self.ws_in), (("out",), self.ws_out)])
        yield _tallies("executor_task_events", DOC_TASK_EVENTS, ("kind", "state"),
                       list(self._tasks.items()))


def _tallies(name: str, doc: str, labels: tuple[str, ...],
             values: list[tuple[tuple[str, ...], Tally]]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for label_values, tally in values:
        family.add_metric(label_values, tally.value)
    return family
