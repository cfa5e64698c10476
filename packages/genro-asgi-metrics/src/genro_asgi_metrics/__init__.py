"""genro-asgi-metrics: Prometheus metrics."""

from .plugin import MetricsConfig, MetricsPlugin

__version__ = "0.1.0"

__all__ = ["MetricsConfig", "MetricsPlugin", "__version__"]
