"""genro-asgi-nats: one genro-asgi application on many processes and machines, over NATS."""

from __future__ import annotations

from .broker import NatsBroker
from .config import NatsConfig, TlsConfig
from .connection import NatsLink, NatsUnavailable
from .plugin import NatsPlugin

__version__ = "0.1.0"

__all__ = ["NatsBroker", "NatsConfig", "NatsLink", "NatsPlugin", "NatsUnavailable",
           "TlsConfig", "__version__"]
