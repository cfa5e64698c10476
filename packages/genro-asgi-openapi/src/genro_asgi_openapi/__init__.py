"""genro-asgi-openapi: an OpenAPI 3.1 document of a server's routes and an offline explorer."""

from .config import OpenApiConfig, ServerEntry
from .document import build_document
from .plugin import OpenApiPlugin

__version__ = "0.1.0"

__all__ = ["OpenApiConfig", "OpenApiPlugin", "ServerEntry", "__version__", "build_document"]
