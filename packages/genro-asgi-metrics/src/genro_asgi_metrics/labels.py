"""Metric names and help texts, label bounding, and the per-request series index.

Labels are bounded so that no client can grow the registry: ``route`` is a route template, a
mount prefix or ``<unmatched>`` (for a request answered before the dispatcher, the template its
path would have matched); ``method`` is a standard method or ``OTHER``; ``status`` is the code
sent or ``none``. ``SeriesIndex`` maps what an observer reads off an envelope to the series of
its label set with three dict subscripts, and keeps unknown methods out of the index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

UNMATCHED = "<unmatched>"
OTHER = "OTHER"
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
STUCK_LEVELS = ("warning", "critical")
# with no route, these are <unmatched> without a lookup: the dispatcher's 404 matched nothing,
# and a 414's path is over server.max_url_size (the protocol refused it before any app)
UNMATCHED_STATUSES = frozenset({404, 414})
TASK_KINDS = frozenset({"state", "progress"})
TASK_STATES = frozenset({"pending", "running", "done", "failed", "cancelled", "timed_out"})

DOC_REQUESTS = "HTTP requests by method, route template and status."
DOC_DURATION = "HTTP request duration in seconds."
DOC_IN_PROGRESS = "HTTP requests being served."
DOC_REQUEST_SIZE = "HTTP request body size in bytes."
DOC_RESPONSE_SIZE = "HTTP response body size in bytes."
DOC_ERRORS = "Requests and connections that ended with an exception, by exception class."
DOC_STUCK = "In-flight requests reported by the watchdog, by level."
DOC_WS_ACTIVE = "WebSocket connections open (from the handshake to the close)."
DOC_WS_MESSAGES = "WebSocket data messages by direction (in: from clients, out: to clients)."
DOC_TASK_EVENTS = "Executor task events by kind (state, progress) and task state."

S = TypeVar("S")
Labels = tuple[str, str, str]


def label_method(method: str) -> str:
    return method if method in KNOWN_METHODS else OTHER


def label_status(status: int | None) -> str:
    return str(status) if status is not None else "none"


def task_labels(event: Any) -> tuple[str, str]:
    """``(kind, state)`` of an executor task event; anything unexpected is ``other``."""
    if not isinstance(event, Mapping):
        return "other", "other"
    kind, state = event.get("kind"), event.get("state")
    return (kind if kind in TASK_KINDS else "other", state if state in TASK_STATES else "other")


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


class SeriesIndex(Generic[S]):
    """``by_method[method][route][status]``: the series an observer records into.

    ``route`` and ``status`` are the envelope's own values (``None`` for no route / no
    response). The observers subscript ``by_method`` directly; a ``KeyError`` (labels seen
    for the first time, an unknown method, a WebSocket scope, which has no method, or no
    route) lands in ``miss``, which answers and, for standard methods, fills the index. A
    ``None`` series means "not counted" (not HTTP, or the exposition's own route).

    A request with no route matched nothing (the dispatcher's 404) or never reached the
    dispatcher's match (a 401 of the auth plugin, a CORS preflight). A 404 (or a 414) is
    ``<unmatched>`` and indexed under ``None``, as before: the scan's label, at no extra cost.
    Any other status asks ``route_of(scope)`` (the server's ``route_template``) for the
    template its path matches; the answer depends on the path, so those are never indexed
    under ``None``: they always reach ``miss``, which looks the template up and then the
    index under it (``<unmatched>`` is its own key there: no template has that name).
    Dispatched requests pay nothing for it.
    """

    def __init__(self, make: Callable[[Labels], S], skipped_route: Callable[[str], bool],
                 route_of: Callable[[Mapping[str, Any]], str | None]) -> None:
        self.make = make
        self.skipped_route = skipped_route
        self.route_of = route_of
        self.by_method: dict[str, dict[str | None, dict[int | None, S | None]]] = {}
        self.series: dict[Labels, S] = {}
        """Every series by its label set, for the scrape."""

    def miss(self, scope: Mapping[str, Any], route: str | None, status: int | None) -> S | None:
        if scope.get("type") != "http":
            return None
        method: str = scope["method"]
        if route is None and status not in UNMATCHED_STATUSES:
            route = self.route_of(scope) or UNMATCHED
            try:
                return self.by_method[method][route][status]
            except KeyError:  # labels seen for the first time, or an unknown method
                pass
        found: S | None = None
        if route is None or not self.skipped_route(route):
            labels = (label_method(method), UNMATCHED if route is None else route,
                      label_status(status))
            found = self.series.get(labels)
            if found is None:
                found = self.series[labels] = self.make(labels)
        if method in KNOWN_METHODS:  # arbitrary method tokens stay out: the index is bounded
            self.by_method.setdefault(method, {}).setdefault(route, {})[status] = found
        return found
