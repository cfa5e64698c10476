"""AsgiApplication: a genro-routes RoutingClass mounted on a server, with config and hooks."""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from genro_routes import RoutingClass

from .datastructures import State

if TYPE_CHECKING:
    from .server import AsgiServer


class AsgiApplication(RoutingClass):
    """Base class for applications: decorate methods with ``@route()``.

    Config params from ``apps: {name: {module: ..., **params}}`` arrive as constructor keywords
    and are kept in ``self.config``. ``on_startup``/``on_shutdown`` may be sync or async.
    """

    name: str | None = None
    prefix: str | None = None
    _server_ref: weakref.ReferenceType[AsgiServer] | None = None

    def __init__(self, **config: Any) -> None:
        self.config: Mapping[str, Any] = MappingProxyType(dict(config))
        self.state = State()

    @property
    def server(self) -> AsgiServer:
        server = self._server_ref() if self._server_ref is not None else None
        if server is None:
            raise RuntimeError(f"application {type(self).__name__} is not mounted on a server")
        return server

    def bind_server(self, server: AsgiServer, name: str, prefix: str) -> None:
        """Called when the app is mounted: the server, its name in ``apps:`` and its URL prefix.

        After it, ``self.server``, ``self.name`` and ``self.prefix`` are set. Overriding it? Call
        ``super().bind_server(...)``.
        """
        self._server_ref = weakref.ref(server)
        self.name = name
        self.prefix = prefix

    def on_startup(self) -> Any:
        """Called at lifespan startup, after the plugins' startup hooks."""

    def on_shutdown(self) -> Any:
        """Called at lifespan shutdown, before the plugins' shutdown hooks."""
