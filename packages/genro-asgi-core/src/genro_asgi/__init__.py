"""genro-asgi: a pluggable ASGI framework for the Genro ecosystem.

The public API is what this module re-exports; everything else is internal.
"""

from genro_routes import Section

from .application import AsgiApplication
from .connection import Connection
from .datastructures import URL, Address, Headers, QueryParams, State
from .envelope import Envelope
from .exceptions import (
    BadRequest,
    ConfigError,
    Forbidden,
    GenroAsgiError,
    HTTPException,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PluginError,
    ServiceUnavailable,
    StartupError,
    Unauthorized,
    UnsupportedMediaType,
)
from .identity import Identity
from .plugins import CliCommand, Plugin, hookimpl, hookspec
from .request import Request
from .response import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
    TytxResponse,
)
from .routing import route
from .server import AsgiServer
from .staticfiles import FileResponse, StaticRouter
from .uploads import UploadFile, safe_filename
from .websocket import WebSocket, WebSocketDisconnect, WebSocketState

__version__ = "0.1.0"

__all__ = [
    "URL",
    "Address",
    "AsgiApplication",
    "AsgiServer",
    "BadRequest",
    "CliCommand",
    "ConfigError",
    "Connection",
    "Envelope",
    "FileResponse",
    "Forbidden",
    "GenroAsgiError",
    "HTMLResponse",
    "HTTPException",
    "Headers",
    "Identity",
    "JSONResponse",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "PlainTextResponse",
    "Plugin",
    "PluginError",
    "QueryParams",
    "RedirectResponse",
    "Request",
    "Response",
    "Section",
    "ServiceUnavailable",
    "StartupError",
    "State",
    "StaticRouter",
    "StreamingResponse",
    "TytxResponse",
    "Unauthorized",
    "UnsupportedMediaType",
    "UploadFile",
    "WebSocket",
    "WebSocketDisconnect",
    "WebSocketState",
    "__version__",
    "hookimpl",
    "hookspec",
    "route",
    "safe_filename",
]
