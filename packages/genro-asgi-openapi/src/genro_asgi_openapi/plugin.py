"""The ``openapi`` plugin: mounts the document's route and the explorer, builds the document
at startup, and adds ``genro-asgi openapi`` to the command line.

Both endpoints are routes, so they join the core's route table: requests to any other route
do not pass through this plugin at all (no middleware, no observer).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from genro_asgi import CliCommand, Plugin, hookimpl

from .cli import openapi_command
from .config import OpenApiConfig
from .document import build_document
from .endpoint import DocumentRoute
from .explorer import ExplorerRoute

if TYPE_CHECKING:
    from genro_asgi import AsgiServer


def encode(document: Mapping[str, Any], indent: int | None = None) -> bytes:
    separators = (",", ":") if indent is None else (",", ": ")
    return json.dumps(document, ensure_ascii=False, indent=indent,
                      separators=separators).encode("utf-8")


class OpenApiPlugin(Plugin):
    """An OpenAPI 3.1 document of the routes and an offline explorer; see docs/openapi.md."""

    config_model = OpenApiConfig
    requires_core = ">=0.1,<0.2"
    config: OpenApiConfig

    def __init__(self, server: AsgiServer, config: OpenApiConfig) -> None:
        super().__init__(server, config)
        self.document_route = DocumentRoute(self.document_bytes)
        self.explorer: ExplorerRoute | None = None
        if config.explorer_path is not None:
            self.explorer = ExplorerRoute(lambda: config.title, config.explorer_path,
                                          config.path)
        self._document: dict[str, Any] | None = None
        self._body: bytes | None = None
        self._built_for: object = None  # the route table the document describes

    @property
    def own_apps(self) -> tuple[Any, ...]:
        return tuple(app for app in (self.document_route, self.explorer) if app is not None)

    def document(self) -> dict[str, Any]:
        """The document of the current route table (built again only if it was replaced)."""
        routes = self.server.routes
        if self._document is None or routes is not self._built_for:
            document = build_document(self.server, self.config, self.own_apps)
            body = encode(document)
            if len(body) > self.config.max_document_bytes:
                raise RuntimeError(
                    f"the OpenAPI document is {len(body)} bytes, over "
                    f"plugins.openapi.max_document_bytes ({self.config.max_document_bytes}); "
                    "raise it or leave applications out (apps, exclude_tags)")
            self._document, self._body, self._built_for = document, body, routes
        return self._document

    def document_bytes(self) -> bytes:
        self.document()
        assert self._body is not None
        return self._body

    @hookimpl
    def genro_asgi_mount(self) -> dict[str, Any]:
        mounts: dict[str, Any] = {self.config.path: self.document_route}
        if self.explorer is not None and self.config.explorer_path is not None:
            mounts[self.config.explorer_path] = self.explorer
        return mounts

    @hookimpl
    def genro_asgi_startup(self) -> None:
        self.document()
        if self.explorer is not None:
            self.explorer.load()

    @hookimpl
    def genro_asgi_cli_commands(self) -> list[CliCommand]:
        return [openapi_command(self)]
