"""Plain counters of the SPA manager, read at scrape time by ``collectors.SpaCollector``.

Counting is an integer addition per delivery and per refusal, so it costs nothing worth
measuring and needs no prometheus_client (imported only when the metrics plugin is on).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from .errors import CODES, SpaError

if TYPE_CHECKING:
    from .backend import Delivery

TARGETS = ("page", "session", "connection", "user", "all", "path")
"""Delivery target kinds as counted: ``path`` is a message to the subscribers of a data path
(``send_to_path``); a data change counts as its level's owner (``user`` for a change at user
level: every page of that user that subscribed to a covering path)."""
KINDS = ("change", "message")

P = ParamSpec("P")
R = TypeVar("R")


class SpaStats:
    """Counters of one server's SPA manager (this process only)."""

    def __init__(self) -> None:
        self.deliveries: dict[tuple[str, str], int] = {
            (target, kind): 0 for target in TARGETS for kind in KINDS}
        self.pushed = 0  # events pushed to this process's pages
        self.refused: dict[str, int] = dict.fromkeys(CODES, 0)

    def delivery(self, delivery: Delivery) -> None:
        """One logical delivery sent from this process, by target and kind."""
        target = "path" if delivery.target == "all" and delivery.path is not None \
            else delivery.target
        kind = "change" if delivery.channel == "spa.change" else "message"
        key = (target, kind)
        self.deliveries[key] = self.deliveries.get(key, 0) + 1

    def refuse(self, code: str) -> None:
        # the codes are a fixed table: an unknown one (a future code) still counts, bounded
        key = code if code in self.refused else "other"
        self.refused[key] = self.refused.get(key, 0) + 1


def counts_refusals(handler: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Decorate a route handler of an object with a ``manager``: each ``SpaError`` it raises
    is counted in ``manager.stats`` by code, then raised unchanged."""

    @functools.wraps(handler)
    async def counted(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await handler(*args, **kwargs)
        except SpaError as exc:
            owner: Any = args[0]
            owner.manager.stats.refuse(exc.code)
            raise

    return counted
