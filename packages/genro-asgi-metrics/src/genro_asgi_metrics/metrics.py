"""The store of one server's metrics: ``LocalMetrics`` (one process, the default) or
``SharedMetrics`` (multiprocess mode). Both offer ``observer(skip_path)`` (the per-request
hook implementation), ``error(exc_class)``, ``stuck(level)``, ``task_event(event)`` and the
WebSocket message counters ``ws_in`` / ``ws_out``.
"""

from __future__ import annotations

from .labels import UNMATCHED, path_filter
from .local import LocalMetrics
from .shared import SharedMetrics

ServerMetrics = LocalMetrics | SharedMetrics

__all__ = ["UNMATCHED", "LocalMetrics", "ServerMetrics", "SharedMetrics", "path_filter"]
