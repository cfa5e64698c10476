"""genro-asgi: a pluggable ASGI framework for the Genro ecosystem.

The public API is what this module exports; everything else is internal. Each name is
imported on first use (``lazy.lazy_exports``), so ``import genro_asgi`` costs next to nothing
and a program loads only the parts it uses: a server without static files never imports
them, one without a config file never imports YAML.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "Section": "genro_routes",
    "AsgiApplication": ".application",
    "Connection": ".connection",
    **dict.fromkeys(("URL", "Address", "Headers", "QueryParams", "State"), ".datastructures"),
    "Envelope": ".envelope",
    **dict.fromkeys((
        "BadRequest", "ConfigError", "Forbidden", "GenroAsgiError", "HTTPException",
        "MethodNotAllowed", "NotFound", "PayloadTooLarge", "PluginError", "ServiceUnavailable",
        "StartupError", "Unauthorized", "UnsupportedMediaType",
    ), ".exceptions"),
    "Identity": ".identity",
    **dict.fromkeys(("CliCommand", "Plugin"), ".plugins.base"),
    **dict.fromkeys(("hookimpl", "hookspec"), ".plugins.markers"),
    "Request": ".request",
    **dict.fromkeys((
        "HTMLResponse", "JSONResponse", "PlainTextResponse", "RedirectResponse", "Response",
        "StreamingResponse", "TytxResponse",
    ), ".response"),
    "route": ".routing",
    "AsgiServer": ".server",
    **dict.fromkeys(("FileResponse", "StaticRouter"), ".staticfiles"),
    **dict.fromkeys(("UploadFile", "safe_filename"), ".uploads"),
    **dict.fromkeys(("WebSocket", "WebSocketDisconnect", "WebSocketState"), ".websocket"),
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
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
    from .plugins.base import CliCommand, Plugin
    from .plugins.markers import hookimpl, hookspec
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
