"""SPA metrics for the metrics plugin, read at scrape time from the manager's live pages and
its plain counters (nothing is computed per event). Imported only from the
``genro_asgi_metrics_collectors`` hook, so prometheus_client is needed only when metrics is on.

Every figure is this process's: with several processes (the NATS backend) sum them; a user
with pages in two processes is online in both.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .manager import SpaManager


class SpaCollector(Collector):
    def __init__(self, manager: SpaManager) -> None:
        self.manager = manager

    def collect(self) -> Iterator[Any]:
        manager = self.manager
        records = [live.record for live in list(manager.live.values())]
        pages = GaugeMetricFamily("spa_pages_online",
                                  "Pages with an open socket in this process")
        pages.add_metric([], len(records))
        users = GaugeMetricFamily("spa_users_online",
                                  "Users with at least one open page in this process")
        users.add_metric([], len({r.user_id for r in records}))
        sessions = GaugeMetricFamily("spa_sessions_online",
                                     "Sessions with at least one open page in this process")
        sessions.add_metric([], len({r.session_id for r in records}))
        connections = GaugeMetricFamily("spa_connections_online",
                                        "Browser connections with at least one open page in "
                                        "this process")
        connections.add_metric([], len({r.connection_id for r in records}))
        stats = manager.stats
        deliveries = CounterMetricFamily("spa_deliveries",
                                         "Deliveries sent from this process, by target (page, "
                                         "session, connection, user, all; path: to the "
                                         "subscribers of a data path) and kind (change: a "
                                         "data change; message)", labels=["target", "kind"])
        for (target, kind), count in stats.deliveries.items():
            deliveries.add_metric([target, kind], count)
        pushed = CounterMetricFamily("spa_events_pushed",
                                     "Events pushed to this process's pages (one per page "
                                     "per delivery)")
        pushed.add_metric([], stats.pushed)
        refused = CounterMetricFamily("spa_refused",
                                      "Spa requests refused, by error code (forged or foreign "
                                      "ids, tampered cookies, limits...)", labels=["code"])
        for code, count in stats.refused.items():
            refused.add_metric([code], count)
        yield from (pages, users, sessions, connections, deliveries, pushed, refused)
