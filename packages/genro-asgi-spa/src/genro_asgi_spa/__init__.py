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
from .context import page_context, spa_of
from .errors import CODES, SpaError
from .hookspecs import SpaHookSpecs
from .manager import PageContext, SpaManager
from .plugin import SpaPlugin

__version__ = "0.1.0"

__all__ = ["CODES", "LEVELS", "ConnectionRecord", "DataLimitExceeded", "Delivery",
           "MemoryBackend", "PageContext", "PageRecord", "SessionRecord", "SpaBackend",
           "SpaConfig", "SpaError", "SpaHookSpecs", "SpaManager", "SpaPlugin", "UserRecord",
           "__version__", "page_context", "record_from_dict", "spa_of"]
