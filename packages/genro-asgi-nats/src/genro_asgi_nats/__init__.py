"""genro-asgi-nats: one genro-asgi application on many processes and machines, over NATS."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .broker import NatsBroker
from .config import NatsConfig, TlsConfig
from .connection import NatsLink, NatsUnavailable
from .plugin import NatsPlugin

if TYPE_CHECKING:
    from .spa_backend import NatsSpaBackend

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # imported on first use: genro-asgi-spa is an optional dependency ([spa] extra)
    if name == "NatsSpaBackend":
        from .spa_backend import NatsSpaBackend

        return NatsSpaBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["NatsBroker", "NatsConfig", "NatsLink", "NatsPlugin", "NatsSpaBackend",
           "NatsUnavailable", "TlsConfig", "__version__"]
