"""The Streamable HTTP transport: one route of the server's table, POST and DELETE.

A POST carries one JSON-RPC message. A request is answered in the POST's response as JSON
(never as an SSE stream: every answer is one message); a notification or a client's response
is answered 202. ``initialize`` opens a session whose id comes back in ``Mcp-Session-Id``;
every later POST and the DELETE that ends the session carry it. A GET (a server-to-client
stream) is a 405: this server never sends a message of its own.

Problems with the HTTP request itself get a 4xx whose body is a JSON-RPC error without an
id; problems with a well-formed message get HTTP 200 and a JSON-RPC error for its id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mcp_types import INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR, UNSUPPORTED_PROTOCOL_VERSION

from genro_asgi import (
    AsgiApplication,
    BadRequest,
    JSONResponse,
    PayloadTooLarge,
    Request,
    Response,
    route,
)

from .protocol import PROTOCOL_VERSIONS, McpProtocol, RpcError, echo
from .sessions import MAX_ID_LENGTH, SessionStore

if TYPE_CHECKING:
    from genro_asgi.identity import Identity

    from .config import McpConfig

SESSION_HEADER = "mcp-session-id"
VERSION_HEADER = "mcp-protocol-version"
MAX_ID = 256  # characters of a string request id
_ACCEPTED_TYPES = ("application/json", "application/*", "*/*")
_WANTED = {name.encode(): name for name in ("origin", "accept", "content-type", SESSION_HEADER,
                                             VERSION_HEADER)}


class McpTransport:
    """HTTP in, JSON-RPC messages to the protocol, HTTP out."""

    def __init__(self, protocol: McpProtocol, sessions: SessionStore, config: McpConfig,
                 server_max_body: int) -> None:
        self.protocol = protocol
        self.sessions = sessions
        self.allowed_origins = frozenset(config.allowed_origins)
        self.max_body_size = min(int(config.max_body_size), server_max_body)

    async def handle(self, request: Request) -> Response:
        headers = _read_headers(request.scope["headers"])
        if headers is None:
            return http_error(400, INVALID_REQUEST, "a header of the MCP transport (Origin, "
                              "Accept, Content-Type, Mcp-Session-Id, MCP-Protocol-Version) is "
                              "sent more than once")
        origin = headers.get("origin")
        if origin is not None and origin.lower() not in self.allowed_origins:
            return http_error(403, INVALID_REQUEST, f"origin {echo(origin)} is not allowed")
        if request.method == "DELETE":
            return self._delete(request, headers.get(SESSION_HEADER))
        if not _accepts_json(headers.get("accept")):
            return http_error(406, INVALID_REQUEST, "Accept must include application/json")
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return http_error(415, INVALID_REQUEST, "Content-Type must be application/json")
        version = headers.get(VERSION_HEADER)
        if version is not None and version not in PROTOCOL_VERSIONS:
            return http_error(400, UNSUPPORTED_PROTOCOL_VERSION,
                              f"unsupported MCP-Protocol-Version {echo(version)}",
                              {"supported": list(PROTOCOL_VERSIONS), "requested": version[:64]})
        request.max_body_size = self.max_body_size
        try:
            message = await request.json()
        except PayloadTooLarge as exc:
            return http_error(413, INVALID_REQUEST, exc.detail)
        except BadRequest as exc:
            return http_error(400, PARSE_ERROR, exc.detail)
        if not isinstance(message, dict):
            return http_error(400, INVALID_REQUEST, "the body must be one JSON-RPC message "
                              "(an object; batches are not supported)")
        return await self._message(request, message, version, headers.get(SESSION_HEADER))

    async def _message(self, request: Request, message: dict[str, Any], version: str | None,
                       session_id: str | None) -> Response:
        if message.get("jsonrpc") != "2.0":
            return http_error(400, INVALID_REQUEST, 'not JSON-RPC 2.0: "jsonrpc" must be "2.0"')
        method = message.get("method")
        has_id = "id" in message
        request_id = message.get("id")
        if has_id and not _valid_id(request_id):
            return http_error(400, INVALID_REQUEST, f"id must be a string of at most {MAX_ID} "
                              "characters or an integer")
        if method is None:
            if has_id and ("result" in message or "error" in message):
                return accepted()  # a response to a request this server never sends: ignored
            return http_error(400, INVALID_REQUEST, "a message needs a method (or a result or "
                              "an error and an id)")
        if not isinstance(method, str):
            return http_error(400, INVALID_REQUEST, "method must be a string")
        params = message.get("params")
        if params is not None and not isinstance(params, Mapping):
            if not has_id:
                return http_error(400, INVALID_REQUEST, "params must be an object")
            return rpc_error(request_id, RpcError(INVALID_PARAMS, "params must be an object"))
        identity = request.identity
        if method == "initialize":
            if not has_id:
                return http_error(400, INVALID_REQUEST, "initialize must be a request (with "
                                  "an id)")
            return self._initialize(request_id, params, identity)
        if session_id is None:
            return http_error(400, INVALID_REQUEST, "missing Mcp-Session-Id header: initialize "
                              "a session first")
        session = self.sessions.get(session_id, identity) \
            if len(session_id) <= MAX_ID_LENGTH else None
        if session is None:
            return http_error(404, INVALID_REQUEST, "unknown or expired session: initialize "
                              "a new one")
        if version is not None and version != session.protocol_version:
            return http_error(400, INVALID_REQUEST, f"MCP-Protocol-Version {version} is not "
                              f"the session's {session.protocol_version}")
        if not has_id:
            if method == "notifications/initialized":
                session.initialized = True
            elif method == "notifications/cancelled":
                self.protocol.cancel(params, session)
            return accepted()  # other notifications (progress...) need nothing
        try:
            result = await self.protocol.request(method, params, session, identity, request,
                                                 request_id)
        except RpcError as exc:
            return rpc_error(request_id, exc)
        return JSONResponse({"jsonrpc": "2.0", "id": request_id, "result": result})

    def _initialize(self, request_id: Any, params: Mapping[str, Any] | None,
                    identity: Identity | None) -> Response:
        try:
            requested, client_name = self.protocol.initialize_params(params)
        except RpcError as exc:
            return rpc_error(request_id, exc)
        version = self.protocol.negotiate(requested)
        session = self.sessions.open(version, identity, client_name)
        if session is None:
            response = http_error(503, INVALID_REQUEST, "too many MCP sessions are open; try "
                                  "again later")
            response.set_header("Retry-After", "5")
            return response
        result = self.protocol.initialize_result(version)
        return JSONResponse({"jsonrpc": "2.0", "id": request_id, "result": result},
                            headers={"Mcp-Session-Id": session.id})

    def _delete(self, request: Request, session_id: str | None) -> Response:
        if session_id is None:
            return http_error(400, INVALID_REQUEST, "missing Mcp-Session-Id header")
        if len(session_id) > MAX_ID_LENGTH or not self.sessions.close(session_id,
                                                                      request.identity):
            return http_error(404, INVALID_REQUEST, "unknown or expired session")
        return Response(status_code=204)


class McpEndpoint(AsgiApplication):
    """The endpoint as a route: it joins the core's route table, so requests to other
    routes never pass through it (an ASGI mount would be checked on every request)."""

    def __init__(self, transport: McpTransport) -> None:
        super().__init__()
        self.transport = transport

    @route(methods=["POST", "DELETE"])
    async def index(self, request: Request) -> Response:
        return await self.transport.handle(request)


def _read_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str] | None:
    """The transport's headers in one pass (None when one of them is repeated)."""
    found: dict[str, str] = {}
    for name, value in raw:
        key = _WANTED.get(name.lower())
        if key is not None:
            if key in found:
                return None
            found[key] = value.decode("latin-1")
    return found


def _accepts_json(accept: str | None) -> bool:
    if accept is None:
        return True
    return any(part.split(";")[0].strip().lower() in _ACCEPTED_TYPES
               for part in accept.split(","))


def _valid_id(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= MAX_ID
    return isinstance(value, int) and not isinstance(value, bool)


def accepted() -> Response:
    return Response(status_code=202)


def http_error(status: int, code: int, message: str, data: Any = None) -> Response:
    return rpc_error(None, RpcError(code, message, data), status)


def rpc_error(request_id: Any, error: RpcError, status: int = 200) -> Response:
    return JSONResponse({"jsonrpc": "2.0", "id": request_id, "error": error.error()},
                        status_code=status)
