"""Executor gauges for the metrics plugin, collected at scrape time (nothing per job).

Imported only from the ``genro_asgi_metrics_collectors`` hook, which the metrics plugin calls
when it is enabled, so prometheus_client is never needed otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .plugin import ExecutorPlugin


class ExecutorCollector(Collector):
    def __init__(self, plugin: ExecutorPlugin) -> None:
        self.plugin = plugin

    def collect(self) -> Iterator[Any]:
        workers = GaugeMetricFamily("executor_pool_workers", "Workers a pool may run",
                                    labels=["pool", "kind"])
        pending = GaugeMetricFamily("executor_pool_pending",
                                    "Jobs accepted by a pool and waiting for a worker",
                                    labels=["pool"])
        running = GaugeMetricFamily("executor_pool_running", "Jobs holding a worker",
                                    labels=["pool"])
        restarts = CounterMetricFamily("executor_pool_worker_restarts",
                                       "Worker processes that died and were replaced",
                                       labels=["pool"])
        for pool in self.plugin.pools.values():
            stats = pool.stats()
            workers.add_metric([pool.name, pool.kind], stats["workers"])
            pending.add_metric([pool.name], stats["pending"])
            running.add_metric([pool.name], stats["running"])
            restarts.add_metric([pool.name], stats["restarts"])
        tasks = GaugeMetricFamily("executor_tasks", "Task records by state", labels=["state"])
        if self.plugin.tasks is not None:
            for state, count in self.plugin.tasks.counts().items():
                tasks.add_metric([state], count)
        yield from (workers, pending, running, restarts, tasks)
