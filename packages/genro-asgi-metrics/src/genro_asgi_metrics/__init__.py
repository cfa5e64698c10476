"""genro-asgi-metrics: Prometheus metrics for genro-asgi, one registry per server."""

from .config import MetricsConfig
from .hookspecs import MetricsHookSpecs
from .metrics import UNMATCHED, ServerMetrics
from .plugin import MetricsPlugin

__version__ = "0.3.0"

__all__ = ["UNMATCHED", "MetricsConfig", "MetricsHookSpecs", "MetricsPlugin", "ServerMetrics",
           "__version__"]
