"""The built-in ``cors`` plugin: the Fetch standard's CORS for http and WebSocket scopes."""

from .config import CorsConfig
from .middleware import CorsMiddleware
from .plugin import CorsPlugin
from .policy import CorsPolicy

__all__ = ["CorsConfig", "CorsMiddleware", "CorsPlugin", "CorsPolicy"]
