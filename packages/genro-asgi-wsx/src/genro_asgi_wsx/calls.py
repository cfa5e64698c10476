"""Calling the server's routes from a WebSocket message, each call in its own envelope.

The same compiled routes that answer HTTP answer here: the route is found in the core's table,
the arguments are bound and coerced by the handler's binder, route requirements are checked
against the connection's identity, and every failure becomes a ``WsxError`` whose message is
safe to send (an unexpected exception goes to the error hooks and only its ``error_id`` leaves).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from genro_routes import NotAuthenticated, NotAuthorized, NotAvailable
from genro_routes import NotFound as RouteNotFound
from pydantic import BaseModel

from genro_asgi import (
    BadRequest,
    Forbidden,
    HTTPException,
    NotFound,
    Request,
    Response,
    Unauthorized,
)
from genro_asgi.envelope import Envelope, notify_observers

from . import errors as E
from .errors import WsxError

if TYPE_CHECKING:
    from genro_asgi import AsgiServer
    from genro_asgi.identity import Identity
    from genro_asgi.routing import CompiledRoute

logger = logging.getLogger("genro_asgi_wsx.calls")

MAX_PATH = 2048
_SCALARS = frozenset({str, int, float, bool, type(None)})


def bind(route: CompiledRoute, params: Any, segments: list[str], connection: Any
         ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Arguments from path segments plus params: an object binds by name, an array by
    position (after the segments), exactly as the core binds an HTTP call's values."""
    if route.takes_nothing and not segments and not params and (
            params is None or isinstance(params, (list, Mapping))):
        return (), {}  # what the binder answers for a handler without parameters
    binder = route.binder
    try:
        if isinstance(params, list):
            limit = len(binder.positional)
            if len(segments) + len(params) > limit and not binder.accepts_args:
                raise WsxError(E.INVALID_PARAMS, f"too many positional arguments: at most "
                               f"{limit}")
            return binder.bind_mapping({}, [*segments, *params], connection)
        if params is None:
            params = {}
        elif not isinstance(params, Mapping):
            raise WsxError(E.INVALID_PARAMS, "params must be an object or an array")
        return binder.bind_mapping(params, segments, connection)
    except BadRequest as exc:
        raise WsxError(E.INVALID_PARAMS, exc.detail) from None
    except NotFound as exc:  # more path segments than the handler takes
        raise WsxError(E.NOT_FOUND, exc.detail) from None


class CallRunner:
    """Runs calls for the connections of one server."""

    def __init__(self, server: AsgiServer) -> None:
        self.server = server
        # JSON-RPC method name -> route path (never rpc.* or wsx.*): a name maps to the same
        # path on every call, so it is worked out once; bounded in count and name length, and
        # per server, so a dropped server takes it along
        self.route_paths: dict[str, str] = {}

    async def call(self, call_scope: dict[str, Any], identity: Identity | None, path: Any,
                   params: Any, method: str | None = None,
                   request_id: str | None = None) -> Any:
        """Call the route at ``path``; returns its (plain) result or raises WsxError.

        ``call_scope`` is the connection's template of a call's scope (WsxConnection).
        """
        if not (isinstance(path, str) and 0 < len(path) <= MAX_PATH):
            raise WsxError(E.INVALID_REQUEST, f"path must be a string of 1 to {MAX_PATH} "
                           "characters")
        if path[0] != "/":
            path = "/" + path
        server = self.server
        scope = call_scope.copy()
        scope["path"] = path
        if method:  # else the template's "CALL"
            scope["method"] = method
        envelope = server.envelopes.open(scope)
        scope["genro.envelope"] = envelope
        if identity is not None:  # None: the template's, and the class default (no instance
            scope["genro.identity"] = identity  # dict for it)
            envelope.identity = identity
        if request_id is not None:
            envelope.external_id = request_id
        compiled = server.compiled
        if compiled.envelope_opened:
            notify_observers(compiled.envelope_opened, envelope, "envelope_opened")
        # one coroutine for the whole call, no helper awaited on the way: every call takes
        # this path, and each coroutine layer is a measurable part of its cost
        try:
            if server.draining:
                raise WsxError(E.SHUTTING_DOWN, "the server is shutting down")
            # the exact path straight from the core's route table (replaced on every mount):
            # find_route() only for paths with trailing segments
            route = server.routes.get(path)
            if route is None:
                found = server.find_route(path)
                if found is None:
                    raise WsxError(E.NOT_FOUND, f"no route for {path[:200]!r}")
                route, segments = found
            else:
                segments = None
            envelope.route = route.path
            if method is not None and method.upper() not in route.methods:
                raise WsxError(E.METHOD_NOT_ALLOWED,
                               f"{method[:20]} is not allowed on {path[:200]!r}",
                               data={"allow": route.allow})
            # bind()'s answer for no params to a handler without parameters, without the call
            # like HTTP, a call that binds nothing leaves envelope.params None (no dict for it)
            bare = params is None and segments is None and route.takes_nothing
            try:
                # route.invoke(), without its coroutine: authorize (inline when there is
                # nothing to authorize) BEFORE binding, as HTTP does: a caller the route
                # refuses never has its parameters coerced; then the handler
                call = route.call if identity is None and route.auth_rule is None \
                    else route.callable_for(identity)
                if not bare:
                    # a handler that takes the Request gets this call's: its method (or
                    # CALL), path, envelope and identity, the handshake's headers, no body
                    request = Request(scope, _no_body) if route.binder.request_param else None
                    args, kwargs = bind(route, params, segments or [], request)
                    envelope.params = kwargs
                result = await (call() if bare else call(*args, **kwargs))
            except WsxError:
                raise
            except (Unauthorized, NotAuthenticated):
                raise WsxError(E.UNAUTHENTICATED, "authentication required") from None
            except (Forbidden, NotAuthorized):
                raise WsxError(E.FORBIDDEN, "not authorized for this route") from None
            except (RouteNotFound, NotAvailable):
                raise WsxError(E.NOT_FOUND, f"no route for {path[:200]!r}") from None
            except HTTPException as exc:
                raise handler_error(exc) from None
            except Exception as exc:
                raise await self._internal(scope, exc) from None
            if type(result) not in _SCALARS:
                if isinstance(result, Response) and result.status_code >= 400:
                    raise refusal(result)  # returned rather than raised: still an error
                result = plain(result)
            envelope.status = 200
            return result
        except WsxError as exc:
            envelope.status = exc.status
            envelope.error = exc
            raise
        except BaseException as exc:  # cancelled on disconnect: recorded, then propagated
            envelope.error = exc
            raise
        finally:
            server.envelopes.close(envelope)
            if compiled.envelope_closed:
                notify_observers(compiled.envelope_closed, envelope, "envelope_closed")
            # the envelope keeps the scope; dropping the way back leaves no reference cycle
            # for the garbage collector to find (as the core's dispatcher does)
            del scope["genro.envelope"]

    async def _internal(self, scope: dict[str, Any], exc: Exception) -> WsxError:
        """Hand an unexpected exception to the error hooks (they log it with an error_id)."""
        envelope: Envelope = scope["genro.envelope"]
        try:
            await self.server.render_error(Request(scope, _no_body), exc)
        except Exception:
            logger.exception("the error hooks failed on %r", exc)
        if envelope.error_id is None:
            logger.error("wsx call %s %s failed", envelope.request_id, envelope.path,
                         exc_info=exc)
        data = {"error_id": envelope.error_id} if envelope.error_id else {}
        return WsxError(E.INTERNAL_ERROR, "Internal Server Error", data=data)


def handler_error(exc: HTTPException) -> WsxError:
    """The error answer for an ``HTTPException``: its status and detail, and its
    ``Retry-After`` as ``retry_after`` (seconds as an integer; an HTTP date as given), so a
    client told 503 (a full sync pool) or 429 knows when to try again, as over HTTP."""
    retry_after: int | str | None = None
    for name, value in exc.headers.items():
        if name.lower() == "retry-after":
            value = value.strip()
            retry_after = int(value) if value.isascii() and value.isdigit() and len(value) < 10 \
                else value[:64]
            break
    return WsxError(E.HANDLER_ERROR, exc.detail, status=exc.status_code,
                    data=None if retry_after is None else {"retry_after": retry_after})


async def _no_body() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def refusal(response: Response) -> WsxError:
    """The error frame for an error ``Response`` a handler returned: its status, and its text
    as the message, as for an ``HTTPException`` it raised (a 403 is never a 200 here)."""
    text = plain(response)
    detail = text.strip()[:200] if isinstance(text, str) else ""
    return WsxError(E.HANDLER_ERROR, detail or f"status {response.status_code}",
                    status=response.status_code)


def plain(value: Any) -> Any:
    """What TYTX can encode: models and dataclasses as dicts, a Response as its body."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, BaseModel):
        return value.model_dump()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Response):
        body = value.body
        try:
            return body.decode(value.charset or "utf-8")
        except (UnicodeDecodeError, LookupError):
            return body
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value
