"""The MCP methods this server answers, on one decoded JSON-RPC message.

``initialize`` (version negotiation, capabilities), ``ping``, ``tools/list`` and
``tools/call``; the client's notifications are accepted (``notifications/initialized`` marks
the session ready) and every other method is ``-32601``. Parameters are validated with the
official SDK's per-version models (``mcp_types.methods``); results are shaped by hand in the
wire format of the session's protocol version.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND
from mcp_types.methods import parse_client_request, serialize_server_result
from mcp_types.version import LATEST_HANDSHAKE_VERSION
from pydantic import ValidationError

from genro_asgi import ConfigError, Request

from .calls import ToolRunner
from .sessions import Session
from .tools import ToolCatalog, build_catalog

if TYPE_CHECKING:
    from genro_asgi import AsgiServer
    from genro_asgi.identity import Identity

    from .config import McpConfig

# Streamable HTTP exists since 2025-03-26; 2026-07-28 has no initialize handshake
PROTOCOL_VERSIONS = ("2025-03-26", "2025-06-18", LATEST_HANDSHAKE_VERSION)
MAX_ECHOED = 100  # characters of a client's string repeated in an error message
_PLAIN_CALL_KEYS = frozenset({"name", "arguments"})


class RpcError(Exception):
    """A JSON-RPC error answer: ``code``, ``message`` and optional ``data``."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def echo(value: Any) -> str:
    return repr(value)[:MAX_ECHOED]


class McpProtocol:
    """The MCP server of one AsgiServer: its tools and how each method is answered."""

    def __init__(self, server: AsgiServer, config: McpConfig, version: str) -> None:
        self.server = server
        self.config = config
        self.runner = ToolRunner(server, config.call_timeout, int(config.max_result_size))
        self._server_info = {"name": config.name, "version": config.version or version}
        self._initialize_results: dict[str, dict[str, Any]] = {}
        self._catalog: ToolCatalog | None = None

    @property
    def catalog(self) -> ToolCatalog:
        """The tools of the current route table (built again after an app is mounted)."""
        catalog = self._catalog
        if catalog is None or catalog.table is not self.server.routes:
            catalog = self._catalog = build_catalog(self.server, self.config.tools,
                                                    self.config.path)
        return catalog

    def negotiate(self, requested: Any) -> str:
        """The protocol version for a client asking for ``requested``: the same when this
        server speaks it, else the newest it speaks (the client decides whether to go on)."""
        return requested if requested in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[-1]

    def initialize_params(self, params: Mapping[str, Any] | None) -> tuple[str, str]:
        """Validate ``initialize``'s params: (the version asked for, the client's name)."""
        parsed = _parse("initialize", LATEST_HANDSHAKE_VERSION, params)
        return parsed.params.protocol_version, parsed.params.client_info.name

    def initialize_result(self, version: str) -> dict[str, Any]:
        result = self._initialize_results.get(version)
        if result is None:
            data: dict[str, Any] = {"protocolVersion": version,
                                    "capabilities": {"tools": {"listChanged": False}},
                                    "serverInfo": self._server_info}
            if self.config.instructions:
                data["instructions"] = self.config.instructions
            result = serialize_server_result("initialize", version, data)
            self._initialize_results[version] = result
        return result

    async def request(self, method: str, params: Mapping[str, Any] | None, session: Session,
                      identity: Identity | None, request: Request,
                      request_id: Any = None) -> dict[str, Any]:
        """The result of a request in a session, or RpcError."""
        if method == "tools/call":
            return await self._call(params, session, identity, request, request_id)
        if method == "tools/list":
            return self._list(params, session, identity)
        if method == "ping":
            _parse("ping", session.protocol_version, params)
            return {}
        raise RpcError(METHOD_NOT_FOUND, f"method not found: {echo(method)}")

    def _list(self, params: Mapping[str, Any] | None, session: Session,
              identity: Identity | None) -> dict[str, Any]:
        parsed = _parse("tools/list", session.protocol_version, params)
        if parsed.params is not None and parsed.params.cursor is not None:
            raise RpcError(INVALID_PARAMS, "invalid cursor: this server lists every tool at once")
        return {"tools": self._tools().listing(session.protocol_version, identity)}

    async def _call(self, params: Mapping[str, Any] | None, session: Session,
                    identity: Identity | None, request: Request,
                    request_id: Any) -> dict[str, Any]:
        if params is not None and params.keys() <= _PLAIN_CALL_KEYS and \
                type(params.get("name")) is str and \
                isinstance(params.get("arguments", {}), (dict, type(None))):
            # the common call, checked here: the SDK's validator costs a fifth of a call
            name, arguments = params["name"], params.get("arguments")
        else:
            parsed = _parse("tools/call", session.protocol_version, params)
            name, arguments = parsed.params.name, parsed.params.arguments
        tool = self._tools().tools.get(name)
        if tool is None:
            raise RpcError(INVALID_PARAMS, f"unknown tool: {echo(name)}")
        if len(session.calls) >= self.config.max_calls_per_session:
            raise RpcError(INVALID_REQUEST, f"{len(session.calls)} calls of this session are "
                           "in flight: wait for one to end")
        if request_id in session.calls:
            raise RpcError(INVALID_REQUEST, f"a call with the id {echo(request_id)} is already "
                           "in flight in this session")
        # its own task, so that notifications/cancelled (or the session's end) can cancel it
        task = asyncio.ensure_future(self.runner.call(tool, arguments, identity, request,
                                                      session.protocol_version))
        session.calls[request_id] = task
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this request itself is cancelled (the server shuts down): not ours
            raise RpcError(INVALID_REQUEST, "the call was cancelled by the client") from None
        finally:
            del session.calls[request_id]

    def cancel(self, params: Mapping[str, Any] | None, session: Session) -> None:
        """``notifications/cancelled``: cancel the session's call with that id, if any."""
        request_id = (params or {}).get("requestId")
        if isinstance(request_id, (str, int)) and not isinstance(request_id, bool):
            task = session.calls.get(request_id)
            if task is not None:
                task.cancel()

    def _tools(self) -> ToolCatalog:
        try:
            return self.catalog
        except ConfigError as exc:  # an app mounted after startup made the catalog invalid
            raise RpcError(INTERNAL_ERROR, f"the tool catalog is invalid: {exc}") from None


def _parse(method: str, version: str, params: Mapping[str, Any] | None) -> Any:
    try:
        return parse_client_request(method, version, params)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise RpcError(INVALID_PARAMS, f"invalid params for {method}: {where}: "
                       f"{first['msg']}") from None
