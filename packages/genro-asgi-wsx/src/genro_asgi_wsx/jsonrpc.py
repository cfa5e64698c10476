"""The ``jsonrpc`` subprotocol: JSON-RPC 2.0 over WebSocket text frames, to the letter.

Method names map to route paths (``shop.products.get`` -> ``/shop/products/get``); ``wsx.*``
methods subscribe, unsubscribe, authenticate and ping; pushes are ``wsx.event`` notifications.
A frame ending in ``::JS`` is TYTX text and is answered in TYTX; so is a frame in the json
transport's quoted form (``to_tytx(request, "json")``: ``'"{...}::JS"'``) and every frame of a
connection opened with TYTX (docs/wsx-protocol.md, section 4).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any

from . import errors as E
from .broker import Publication
from .codec import (
    TYTX_MARK,
    check_depth,
    decode_tytx,
    parse_json,
    plain_json,
    scan_json,
    tytx_json_fragment,
)
from .errors import WsxError
from .wire import check_utf8, refuse_lone_surrogates

if TYPE_CHECKING:
    from .connection import WsxConnection

logger = logging.getLogger("genro_asgi_wsx.jsonrpc")

PING = '{"jsonrpc":"2.0","method":"wsx.ping"}'
_EVENT_HEAD = '{"jsonrpc":"2.0","method":"wsx.event","params":{"subscription":"'
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_NO_ID = object()  # a notification: no "id" member at all
_PLAIN_IDS = frozenset({str, int, type(None)})
_CONTAINERS = frozenset({list, dict})
_CACHED_METHODS = 1024  # CallRunner.route_paths: at most this many names,
_CACHED_METHOD = 200  # and names of at most this many characters


class JsonRpcProtocol:
    name = "jsonrpc"

    def __init__(self, conn: WsxConnection) -> None:
        self.conn = conn

    # -- frames out --------------------------------------------------------------------------

    def ping_frame(self) -> str:
        return PING

    def event_frame(self, subscription: str, publication: Publication) -> tuple[str, str]:
        # the head is this subscription's, the tail the same text for every subscriber
        tail: str
        if self.conn.tytx:
            tail = publication.encoded("jsonrpc-tytx", _typed_event_tail)
        else:
            tail = publication.encoded("jsonrpc", _plain_event_tail)
        return _EVENT_HEAD + subscription, tail

    def _fragment(self, response: dict[str, Any], typed: bool) -> tuple[str, bool]:
        """One response as JSON text, and whether it holds typed values."""
        try:
            rid = response["id"]
            if "result" in response and type(rid) in _PLAIN_IDS:
                text, has_types = _result_text(rid, response["result"], typed)
                return check_utf8(text), has_types  # a lone surrogate: a ValueError
            if typed:
                text, has_types = tytx_json_fragment(response)
            else:
                text, has_types = plain_json(response), False
            return (check_utf8(text) if "result" in response else text), has_types
        except Exception as exc:  # a result that cannot be encoded
            rid = response.get("id")
            failure = self.conn.unencodable(f"the result of request {rid!r}", exc)
            return plain_json(error_response(rid, failure)), False

    def _send_one(self, response: dict[str, Any], typed: bool) -> None:
        text, has_types = self._fragment(response, typed)
        self.conn.reply(text + TYTX_MARK if has_types else text)

    def _send_error(self, rid: Any, exc: WsxError) -> None:
        self.conn.reply(plain_json(error_response(rid, exc)))

    # -- frames in ---------------------------------------------------------------------------

    def handle(self, text: str | None, data: bytes | None) -> None:
        conn = self.conn
        try:
            if text is None:
                raise WsxError(E.PARSE_ERROR, "binary frames are not part of JSON-RPC here")
            try:  # plain JSON filling the frame, the common case: parse_json(text), inline
                payload, end = scan_json(text, 0)
                if end != len(text):
                    raise ValueError  # trailing text: a TYTX mark, whitespace or garbage
                typed = False
            except (StopIteration, ValueError, RecursionError):
                depth = conn.config.max_depth
                stripped = text.strip()
                # TYTX: marked ::JS, or between the json transport's two quotes
                typed = stripped.endswith(TYTX_MARK) or (
                    len(stripped) > 1 and stripped[0] == '"' == stripped[-1])
                payload = decode_tytx(stripped, depth)[0] if typed \
                    else parse_json(text, max_depth=depth)
            # decode_tytx() checked the depth of a typed frame; a plain one needs more than
            # twice max_depth characters to nest deeper (check_depth's first test, inline)
            if not typed and len(text) > conn.short_frame:
                check_depth(text, payload, conn.config.max_depth)
            if "\\u" in text:  # the frame may spell a surrogate escape (no call otherwise)
                refuse_lone_surrogates(payload, text)
        except WsxError as exc:
            conn.frame_bad()
            self._send_error(None, exc)
            return
        conn.bad_frames = 0  # a good frame resets the protocol-error count
        typed = typed or conn.tytx
        if isinstance(payload, dict):  # _single(), inline: every call's path
            # validate(), with a fast path for the common well-formed request
            rid = payload.get("id", _NO_ID)
            method = payload.get("method")
            if (type(rid) is int or type(rid) is str) and type(method) is str and method \
                    and payload.get("jsonrpc") == "2.0" and (
                    len(payload) == 3 or "params" not in payload
                    or type(payload["params"]) in _CONTAINERS):
                # three members found: jsonrpc, method and id, so no params to look up
                problem = None
                params = None if len(payload) == 3 else payload.get("params")
            else:
                rid, problem = validate(payload)
                params = payload.get("params")
            if problem is not None:
                self._send_error(rid, problem)
            elif not conn.spawn(self._respond(method, params, rid, typed)) and rid is not _NO_ID:
                self._send_error(rid, self._too_many())
        elif isinstance(payload, list):
            self._batch(payload, typed)
        else:
            self._send_error(None, WsxError(E.INVALID_REQUEST,
                                            "a request is an object or an array of them"))

    def _batch(self, items: list[Any], typed: bool) -> None:
        limit = self.conn.config.max_batch
        if not items:
            self._send_error(None, WsxError(E.INVALID_REQUEST, "an empty batch"))
        elif len(items) > limit:
            self._send_error(None, WsxError(E.INVALID_REQUEST,
                                            f"a batch of {len(items)} items; at most {limit}"))
        elif not self.conn.spawn(self._respond_batch(items, typed)):
            refused = [error_response(item.get("id"), self._too_many()) for item in items
                       if isinstance(item, dict) and "id" in item]
            if refused:
                self.conn.reply(plain_json(refused))

    def _too_many(self) -> WsxError:
        return WsxError(E.TOO_MANY_CALLS,
                        f"at most {self.conn.config.max_in_flight} calls in flight")

    async def _respond(self, method: Any, params: Any, rid: Any, typed: bool) -> None:
        # _process, inlined: one coroutine less on every call's path (``method`` is a
        # validated, non-empty str; ``params`` the request's, None when it has none)
        try:
            conn = self.conn
            route_paths = conn.runner.route_paths
            path = route_paths.get(method)
            if path is None and not method.startswith(("rpc.", "wsx.")):
                path = method if "/" in method else "/" + method.replace(".", "/")
                if len(method) <= _CACHED_METHOD and len(route_paths) < _CACHED_METHODS:
                    route_paths[method] = path
            if path is None:
                result = await self._dispatch(method, params)
            else:  # _dispatch() and conn.call(), inline for a route call
                identity = conn.identity
                if identity is None and conn.require_identity:
                    raise WsxError(E.AUTH_REQUIRED, "authenticate first")
                result = await conn.runner.call(conn.call_scope, identity, path, params)
        except Exception as exc:
            response = self._failed(method, rid, exc)
            if response is not None:
                self._send_one(response, typed)
            return
        if rid is _NO_ID:
            return
        if type(result) is str and type(rid) is int and not typed and result.isascii():
            # _result_text(), inline (any other text is checked there for lone surrogates)
            self.conn.reply(f'{{"jsonrpc":"2.0","result":{encode_basestring(result)},'
                            f'"id":{rid}}}')  # an int (exactly): its repr
            return
        if type(rid) in _PLAIN_IDS:  # the common answer, without a response dict
            try:
                text, has_types = _result_text(rid, result, typed)
                check_utf8(text)  # a lone surrogate: a ValueError, as any unencodable value
            except Exception as exc:  # a result that cannot be encoded
                self._send_error(rid, self.conn.unencodable(f"the result of request {rid!r}",
                                                            exc))
                return
            self.conn.reply(text + TYTX_MARK if has_types else text)
        else:
            self._send_one({"jsonrpc": "2.0", "result": result, "id": rid}, typed)

    async def _respond_batch(self, items: list[Any], typed: bool) -> None:
        responses = await asyncio.gather(*(self._process_item(item) for item in items))
        fragments = [self._fragment(r, typed) for r in responses if r is not None]
        if not fragments:
            return  # a batch of notifications is not answered at all
        body = "[" + ",".join(text for text, _ in fragments) + "]"
        self.conn.reply(body + TYTX_MARK if any(t for _, t in fragments) else body)

    async def _process_item(self, item: Any) -> dict[str, Any] | None:
        rid, problem = validate(item)
        if problem is not None:
            return error_response(rid, problem)
        return await self._process(item, rid)

    async def _process(self, item: dict[str, Any], rid: Any) -> dict[str, Any] | None:
        """Run one valid request; its response, or None for a notification."""
        try:
            result = await self._dispatch(item["method"], item.get("params"))
        except Exception as exc:
            return self._failed(item["method"], rid, exc)
        if rid is _NO_ID:
            return None
        return {"jsonrpc": "2.0", "result": result, "id": rid}

    def _failed(self, method: str, rid: Any, exc: Exception) -> dict[str, Any] | None:
        """The error response for a failed request (None for a notification)."""
        if not isinstance(exc, WsxError):
            exc = self.conn.internal_error(f"method {method!r} failed", exc)
        return None if rid is _NO_ID else error_response(rid, exc)

    def _dispatch(self, method: str, params: Any) -> Awaitable[Any]:
        """What answers ``method``, to await; a route call is not wrapped in a coroutine."""
        if method.startswith("rpc."):
            raise WsxError(E.NOT_FOUND, "rpc.* methods are reserved")
        if method.startswith("wsx."):
            return self._wsx_method(method, params)
        path = method if "/" in method else "/" + method.replace(".", "/")
        return self.conn.call(path, params)

    async def _wsx_method(self, method: str, params: Any) -> Any:
        conn = self.conn
        name = method[4:]
        if name == "subscribe":
            since = params.get("since") if isinstance(params, dict) else None
            sid, recovered = await conn.subscribe(_argument(params, "channel"), since)
            return sid if recovered is None else {"subscription": sid, "recovered": recovered}
        if name == "unsubscribe":
            await conn.unsubscribe(_argument(params, "subscription"))
            return True
        if name == "auth":
            return (await conn.authenticate(_argument(params, "token"))).summary()
        if name == "ping":
            return "pong"
        if name == "pong":
            return None
        raise WsxError(E.NOT_FOUND, f"no method {method[:80]!r}")


def _result_text(rid: Any, result: Any, typed: bool) -> tuple[str, bool]:
    """``{"jsonrpc":"2.0","result":...,"id":...}`` as encoding that dict writes it, for an id
    that is never typed (str, int, None), and whether the result holds typed values."""
    if typed:
        fragment, has_types = tytx_json_fragment(result)
    else:
        fragment, has_types = plain_json(result), False
    return f'{{"jsonrpc":"2.0","result":{fragment},"id":{plain_json(rid)}}}', has_types


def validate(item: Any) -> tuple[Any, WsxError | None]:
    """The request's id (``_NO_ID`` for a notification) and what is wrong with it, if anything."""
    if not isinstance(item, dict):
        return None, WsxError(E.INVALID_REQUEST, "a request is a JSON object")
    rid = item.get("id", _NO_ID)
    # a float id must be finite: 1e999 parses as inf, which no JSON answer can echo
    if rid is not _NO_ID and not (rid is None or isinstance(rid, str) or (
            isinstance(rid, int) and not isinstance(rid, bool)) or (
            isinstance(rid, float) and math.isfinite(rid))):
        return None, WsxError(E.INVALID_REQUEST, "id must be a string, a number or null")
    shown = None if rid is _NO_ID else rid
    if item.get("jsonrpc") != "2.0":
        return shown, WsxError(E.INVALID_REQUEST, 'jsonrpc must be exactly "2.0"')
    method = item.get("method")
    if not isinstance(method, str) or not method:
        return shown, WsxError(E.INVALID_REQUEST, "method must be a non-empty string")
    if "params" in item and not isinstance(item["params"], (list, dict)):
        return shown, WsxError(E.INVALID_REQUEST, "params must be an array or an object")
    return rid, None


def error_response(rid: Any, exc: WsxError) -> dict[str, Any]:
    kind = exc.kind
    data: dict[str, Any] = {"status": exc.status}
    if kind is not E.INTERNAL_ERROR:
        data["detail"] = exc.message
    data.update(exc.data)
    error = {"code": kind.rpc_code, "message": kind.rpc_message, "data": data}
    return {"jsonrpc": "2.0", "error": error, "id": None if rid is _NO_ID else rid}


def _argument(params: Any, name: str) -> Any:
    if isinstance(params, dict) and name in params:
        return params[name]
    if isinstance(params, list) and len(params) == 1:
        return params[0]
    raise WsxError(E.INVALID_PARAMS, f"expected {{{name!r}: ...}} or [{name}]")


def _offset(publication: Publication) -> str:
    return "" if publication.offset is None else f'"offset":{_dumps(publication.offset)},'


def _plain_event_tail(publication: Publication) -> str:
    return (f'",{_offset(publication)}"channel":{_dumps(publication.channel)},'
            f'"data":{plain_json(publication.data)}}}}}')


def _typed_event_tail(publication: Publication) -> str:
    fragment, typed = tytx_json_fragment(publication.data)
    tail = (f'",{_offset(publication)}"channel":{_dumps(publication.channel)},'
            f'"data":{fragment}}}}}')
    return tail + TYTX_MARK if typed else tail
