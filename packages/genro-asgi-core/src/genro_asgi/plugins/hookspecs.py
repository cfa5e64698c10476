"""The core's hook specifications. One page per hook in docs/hooks/ holds the full contract.

An implementation may take any subset of a spec's arguments, may be ``async def`` where the
docstring says so, and is ordered by the ``order`` key in config, then tryfirst/trylast, then
plugin name. Per-request hooks (envelope_*) are compiled into plain lists at startup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .markers import hookspec

if TYPE_CHECKING:
    from ..connection import Connection
    from ..envelope import Envelope
    from ..identity import Identity
    from ..request import Request
    from ..response import Response
    from ..server import AsgiServer
    from ..types import MiddlewareFactory
    from .base import CliCommand


@hookspec
def genro_asgi_configure(server: AsgiServer) -> None:
    """Plugins are loaded and config apps mounted; adjust the server before it compiles. Sync."""


@hookspec
def genro_asgi_mount(server: AsgiServer) -> Mapping[str, Any] | None:
    """Return ``{prefix: app}`` to mount (routing classes, ASGI apps). Sync."""


@hookspec
def genro_asgi_middleware(server: AsgiServer) -> MiddlewareFactory | None:
    """Return ``factory(app) -> asgi_app`` to wrap the dispatcher; first plugin is outermost."""


@hookspec
async def genro_asgi_startup(server: AsgiServer) -> None:
    """Lifespan startup, in plugin order. May be async. Raising aborts startup."""


@hookspec
async def genro_asgi_drain(server: AsgiServer, timeout: float) -> None:
    """A shutdown signal arrived and the server is about to close every open connection:
    finish the work in flight on long-lived ones (WebSocket calls) within ``timeout`` seconds,
    refusing new work. All plugins drain at once; one still running after ``timeout`` is
    cancelled. Only under ``server.run()`` / ``genro-asgi serve`` in one process. May be async.
    """


@hookspec
async def genro_asgi_shutdown(server: AsgiServer) -> None:
    """Lifespan shutdown, in reverse plugin order, after in-flight requests. May be async."""


@hookspec
def genro_asgi_envelope_opened(server: AsgiServer, envelope: Envelope) -> None:
    """A request or WebSocket connection started. Sync, per request: keep it cheap."""


@hookspec
def genro_asgi_envelope_closed(server: AsgiServer, envelope: Envelope) -> None:
    """A request or connection ended (status, error, size are set). Sync, per request."""


@hookspec
def genro_asgi_envelope_stuck(server: AsgiServer, envelope: Envelope, level: str) -> None:
    """The watchdog found an envelope older than ``timeout`` (``warning``) or ``critical``."""


@hookspec(firstresult=True)
async def genro_asgi_exception_response(
    server: AsgiServer, request: Request, exc: Exception
) -> Response | None:
    """Turn an exception into a response; the first non-None wins. May be async."""


@hookspec(firstresult=True)
async def genro_asgi_identify(server: AsgiServer, connection: Connection) -> Identity | None:
    """Identify the client of a request or WebSocket handshake; the first non-None wins.

    Called by the ``auth`` plugin after its configured backends found no credential they
    recognise. Raise ``Unauthorized`` for a credential you own that is invalid. May be async.
    """


@hookspec
def genro_asgi_cli_commands(server: AsgiServer) -> list[CliCommand] | None:
    """Return extra ``genro-asgi`` subcommands. Sync."""
