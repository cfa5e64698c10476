"""Calling a tool: the route's handler, authorised, bound and coerced as its HTTP request is.

Every failure of the call is a tool error (``isError: true``) whose text is safe to show: the
HTTP status and detail the core would have answered (401/403 for the route's auth rule,
400 for bad arguments), or for an unexpected exception only the ``error_id`` under which the
error hooks logged it. Never a traceback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from genro_routes import NotAuthenticated, NotAuthorized, NotAvailable
from genro_routes import NotFound as RouteNotFound
from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, to_jsonable_python

from genro_asgi import (
    FileResponse,
    HTTPException,
    Request,
    Response,
    StreamingResponse,
    Unauthorized,
)

from .tools import STRUCTURED_SINCE

if TYPE_CHECKING:
    from genro_asgi import AsgiServer
    from genro_asgi.identity import Identity

    from .tools import Tool

logger = logging.getLogger("genro_asgi_mcp.calls")



class ToolFailure(Exception):
    """A call that ends as a tool error: ``message`` goes to the client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def error_result(message: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": message}], "isError": True}


class ToolRunner:
    """Runs tool calls for one server."""

    def __init__(self, server: AsgiServer, timeout: float, max_result_size: int) -> None:
        self.server = server
        self.timeout = timeout
        self.max_result_size = max_result_size

    async def call(self, tool: Tool, arguments: Mapping[str, Any] | None,
                   identity: Identity | None, request: Request,
                   protocol_version: str) -> dict[str, Any]:
        """The ``tools/call`` result for one call (a success or a tool error)."""
        try:
            value = await self._run(tool, arguments or {}, identity, request)
            return self._success(tool, value, protocol_version)
        except ToolFailure as failure:
            return error_result(failure.message)

    async def _run(self, tool: Tool, arguments: Mapping[str, Any], identity: Identity | None,
                   request: Request) -> Any:
        route = tool.route
        try:
            # the route's rule before any argument is bound, as the core does for HTTP
            call = route.callable_for(identity)
            handler_request = _call_request(request, route.path) \
                if route.binder.request_param is not None else None
            args, kwargs = route.binder.bind_mapping(arguments, (), handler_request)
            envelope = request.envelope
            if envelope is not None:
                envelope.params = kwargs
            async with asyncio.timeout(self.timeout):
                return await call(*args, **kwargs)
        except TimeoutError:
            raise ToolFailure(f"{tool.name}: no result within {self.timeout:g} s") from None
        except (Unauthorized, NotAuthenticated):
            raise ToolFailure(f"401 Unauthorized: {tool.name} needs an authenticated "
                              "caller") from None
        except NotAuthorized:
            raise ToolFailure(f"403 Forbidden: not authorized for {tool.name}") from None
        except (RouteNotFound, NotAvailable):
            raise ToolFailure(f"404 Not Found: {tool.name} is not available") from None
        except HTTPException as exc:  # BadRequest from binding, Forbidden, the handler's own
            status = exc.status_code
            raise ToolFailure(f"{status} {_phrase(status)}: {exc.detail}") from None
        except Exception as exc:  # logged as the route's (POST /shop/x), not as /mcp's
            raise ToolFailure(await self._internal(_call_request(request, route.path),
                                                   exc)) from None

    async def _internal(self, request: Request, exc: Exception) -> str:
        """Hand an unexpected exception to the error hooks (they log it with an error_id)."""
        try:
            await self.server.render_error(request, exc)
        except Exception:
            logger.exception("the error hooks failed on %r", exc)
        envelope = request.envelope
        error_id = envelope.error_id if envelope is not None else None
        if error_id is None:
            logger.error("mcp tool call failed", exc_info=exc)
            return "500 Internal Server Error"
        return f"500 Internal Server Error (error_id {error_id})"

    def _success(self, tool: Tool, value: Any, protocol_version: str) -> dict[str, Any]:
        try:
            data = to_jsonable_python(plain(value))
            text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except (PydanticSerializationError, ValueError, TypeError) as exc:
            logger.error("tool %s returned a value JSON cannot carry: %s", tool.name, exc)
            raise ToolFailure(f"500 Internal Server Error: {tool.name} returned a value "
                              "JSON cannot carry") from None
        size = len(text.encode("utf-8"))
        if size > self.max_result_size:
            raise ToolFailure(f"{tool.name}: the result of {size} bytes is over the limit of "
                              f"{self.max_result_size} bytes")
        result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": False}
        if protocol_version >= STRUCTURED_SINCE:
            wrap = tool.wrap if tool.wrap is not None else not isinstance(data, dict)
            result["structuredContent"] = {"result": data} if wrap else data
        return result


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _call_request(request: Request, path: str) -> Request:
    """What a handler taking the Request gets: the MCP request's headers, identity and
    envelope, the route's path, no query and no body."""
    scope = dict(request.scope)
    scope["path"] = path
    scope["raw_path"] = path.encode("utf-8")
    scope["query_string"] = b""
    return Request(scope, _no_body, 0, request.number_limits)


async def _no_body() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def plain(value: Any) -> Any:
    """Models and dataclasses as dicts, a Response as its (JSON-decoded) body."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Response):
        return _response_value(value)
    return value


def _response_value(response: Response) -> Any:
    """A complete Response returned by a handler: its body (decoded JSON when it is JSON);
    a 4xx/5xx one is a tool error carrying its body."""
    if isinstance(response, (StreamingResponse, FileResponse)):
        raise ToolFailure("500 Internal Server Error: a streamed or file response cannot be "
                          "a tool result")
    try:
        text = response.body.decode(response.charset or "utf-8")
    except (UnicodeDecodeError, LookupError):
        raise ToolFailure("500 Internal Server Error: the response body is not text") from None
    if response.status_code >= 400:
        raise ToolFailure(f"{response.status_code} {_phrase(response.status_code)}: "
                          f"{text[:1000]}")
    media_type = (response.media_type or "").split(";")[0].strip()
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text
