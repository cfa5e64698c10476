"""genro-asgi-spa: the SPA manager, users, connections, sessions and pages over WSX."""

from __future__ import annotations

from .backend import (
    LEVELS,
    ConnectionRecord,
    DataLimitExceeded,
    Delivery,
    MemoryBackend,
    PageRecord,
    SessionRecord,
    SpaBackend,
    UserRecord,
    record_from_dict,
)
from .config import SpaConfig
from .errors import SpaError
from .hookspecs import SpaHookSpecs

__version__ = "0.1.0"

__all__ = ["LEVELS", "ConnectionRecord", "DataLimitExceeded", "Delivery", "MemoryBackend",
           "PageRecord", "SessionRecord", "SpaBackend", "SpaConfig", "SpaError",
           "SpaHookSpecs", "UserRecord", "__version__", "record_from_dict"]
