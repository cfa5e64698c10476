"""NATS metrics for the metrics plugin, read at scrape time from plain counters (nothing is
computed per message). Imported only from the ``genro_asgi_metrics_collectors`` hook, so
prometheus_client is needed only when metrics is enabled.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .stats import DROP_REASONS

if TYPE_CHECKING:
    from .plugin import NatsPlugin

STATES = ("idle", "connected", "reconnecting", "degraded", "closed")


class NatsCollector(Collector):
    def __init__(self, plugin: NatsPlugin) -> None:
        self.plugin = plugin

    def collect(self) -> Iterator[Any]:
        link = self.plugin.link
        stats = link.stats
        connected = GaugeMetricFamily("nats_connected", "1 while the NATS connection is up")
        connected.add_metric([], 1.0 if link.connected else 0.0)
        state = GaugeMetricFamily("nats_connection_state",
                                  "The connection's state (1 for the current one)",
                                  labels=["state"])
        for name in STATES:
            state.add_metric([name], 1.0 if link.state == name else 0.0)
        reconnects = CounterMetricFamily("nats_reconnects", "Reconnections after a loss")
        reconnects.add_metric([], stats.reconnects)
        disconnects = CounterMetricFamily("nats_disconnects", "Connections lost")
        disconnects.add_metric([], stats.disconnects)
        messages = CounterMetricFamily("nats_messages", "WSX publications sent and received",
                                       labels=["direction"])
        messages.add_metric(["out"], stats.messages_out)
        messages.add_metric(["in"], stats.messages_in)
        sizes = CounterMetricFamily("nats_message_bytes", "Bytes of those messages",
                                    labels=["direction"])
        sizes.add_metric(["out"], stats.bytes_out)
        sizes.add_metric(["in"], stats.bytes_in)
        dropped = CounterMetricFamily("nats_dropped_messages",
                                      "Messages on our subjects dropped, by reason",
                                      labels=["reason"])
        for reason in DROP_REASONS:
            dropped.add_metric([reason], stats.dropped.get(reason, 0))
        yield from (connected, state, reconnects, disconnects, messages, sizes, dropped)
        yield from self._remote()
        if link.spa is not None:
            yield from self._spa(link.spa)

    @staticmethod
    def _spa(backend: Any) -> Iterator[Any]:
        stats = backend.stats
        deliveries = CounterMetricFamily("nats_spa_deliveries", "spa deliveries sent to the "
                                         "other processes and received from them",
                                         labels=["direction"])
        deliveries.add_metric(["out"], stats["deliveries_out"])
        deliveries.add_metric(["in"], stats["deliveries_in"])
        not_sent = CounterMetricFamily("nats_spa_deliveries_not_sent",
                                       "spa deliveries that reached this process's pages only "
                                       "(NATS could not take them)")
        not_sent.add_metric([], stats["deliveries_not_sent"])
        adoptions = CounterMetricFamily("nats_spa_adoptions",
                                        "Gone or silent processes whose records this one took")
        adoptions.add_metric([], stats["adoptions"])
        take_backs = CounterMetricFamily("nats_spa_take_backs", "Records of this process "
                                         "another adopted while it was alive, taken back")
        take_backs.add_metric([], stats["take_backs"])
        kv_errors = CounterMetricFamily("nats_spa_kv_errors", "spa KV operations that failed "
                                        "(records kept here and written when NATS answers)")
        kv_errors.add_metric([], stats["kv_errors"])
        processes = GaugeMetricFamily("nats_spa_processes",
                                      "Processes this one hears beating, itself included")
        processes.add_metric([], len(backend.processes()))
        pending = GaugeMetricFamily("nats_spa_pending_writes",
                                    "spa records written here that NATS has not confirmed")
        pending.add_metric([], len(backend.replica.dirty))
        yield from (deliveries, not_sent, adoptions, take_backs, kv_errors, processes, pending)

    def _remote(self) -> Iterator[Any]:
        submitted = CounterMetricFamily("nats_remote_jobs_submitted",
                                        "Jobs this server put on a remote pool's queue",
                                        labels=["pool"])
        redeliveries = CounterMetricFamily("nats_remote_redeliveries",
                                           "Jobs of this server started again by another "
                                           "worker", labels=["pool"])
        duplicates = CounterMetricFamily("nats_remote_duplicate_outcomes",
                                         "Jobs of this server that ran to completion twice",
                                         labels=["pool"])
        queued = GaugeMetricFamily("nats_remote_queue_jobs",
                                   "Jobs in a remote pool's queue (every server's), by state "
                                   "(waiting: for a worker; running: held by one)",
                                   labels=["pool", "state"])
        for pool in self.plugin.remote_pools:
            submitted.add_metric([pool.name], pool.remote.submitted)
            redeliveries.add_metric([pool.name], pool.remote.redeliveries)
            duplicates.add_metric([pool.name], pool.remote.duplicates)
            if pool.queue_depth is not None:
                waiting, running = pool.queue_depth
                queued.add_metric([pool.name, "waiting"], waiting)
                queued.add_metric([pool.name, "running"], running)
        yield from (submitted, redeliveries, duplicates, queued)
