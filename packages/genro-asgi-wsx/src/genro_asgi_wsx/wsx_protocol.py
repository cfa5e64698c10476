"""The ``wsx`` subprotocol: ``WSX://`` + JSON frames with TYTX payloads (the Genro format).

A call is ``{"id", "method", "path", "data"}`` and is answered ``{"id", "status", "data"}``;
without ``id`` it is an event, handled and never answered. ``type`` adds subscribe,
unsubscribe, auth, ping and pong. docs/wsx-protocol.md has every shape.

``data`` is TYTX text in any form genro-tytx writes; a call whose ``data`` came in the json
transport's quoted form (``to_tytx(value, "json")``) is answered in that form, so
``from_tytx(answer, "json")`` gives back every value. ``"method": "WSK"`` (Genro's legacy
clients send it on every call) is no method: whatever the route takes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any

from . import errors as E
from .broker import Publication
from .codec import check_depth, decode_tytx, parse_json, plain_json, scan_json, tytx_text
from .errors import WsxError
from .wire import check_utf8, refuse_lone_surrogates

if TYPE_CHECKING:
    from .connection import WsxConnection

PREFIX = "WSX://"
MAX_ID = 128
PING = PREFIX + '{"type":"ping"}'
PONG = PREFIX + '{"type":"pong"}'
json_string = encode_basestring  # a str as a JSON string literal, as _dumps writes it
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_REQUEST_ID = "x-request-id"
ANY_METHOD = "WSK"  # Genro's legacy clients: no method asked, whatever the route takes
logger = logging.getLogger("genro_asgi_wsx.protocol")


def _valid_id(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= MAX_ID
    return isinstance(value, int) and not isinstance(value, bool)


class WsxProtocol:
    name = "wsx"

    def __init__(self, conn: WsxConnection) -> None:
        self.conn = conn

    # -- frames out --------------------------------------------------------------------------

    def ping_frame(self) -> str:
        return PING

    def event_frame(self, subscription: str, publication: Publication) -> tuple[str, str]:
        # the head is this subscription's, the tail the same text for every subscriber
        return (f'{PREFIX}{{"type":"event","subscription":"{subscription}",',
                publication.encoded("wsx", _event_tail))

    def answer(self, msg_id: Any, value: Any, quoted: bool = False) -> None:
        """``quoted``: ``data`` as the json transport writes it, ``to_tytx(value, "json")``."""
        # what _dumps({"id", "status", "data"}) writes, put together directly
        text = encode_basestring(value) if type(value) is str else tytx_text(value)
        data = json_string(f'"{text}"' if quoted else text)
        rid = int.__repr__(msg_id) if type(msg_id) is int else json_string(msg_id)
        # a lone surrogate in the result: a ValueError, as any value TYTX cannot encode
        self.conn.reply(check_utf8(f'{PREFIX}{{"id":{rid},"status":200,"data":{data}}}'))

    def fail(self, msg_id: Any, exc: WsxError) -> None:
        try:
            text = plain_json(_error_frame(msg_id, exc))
        except Exception as problem:  # a handler's error detail JSON cannot write
            failure = self.conn.internal_error("an error answer cannot be encoded", problem)
            text = plain_json(_error_frame(msg_id, failure))
        self.conn.reply(PREFIX + text)

    # -- frames in ---------------------------------------------------------------------------

    def handle(self, text: str | None, data: bytes | None) -> None:
        conn = self.conn
        try:
            if text is None:
                raise WsxError(E.PARSE_ERROR, "binary frames are not part of the wsx protocol")
            if text[:6] != PREFIX:
                raise WsxError(E.PARSE_ERROR, "a wsx frame starts with 'WSX://'")
            try:  # parse_json(text, 6), inline for the common well-formed frame
                message, end = scan_json(text, 6)
                if end != len(text):
                    message = parse_json(text, 6)
            except (StopIteration, ValueError, RecursionError):
                message = parse_json(text, 6, max_depth=conn.config.max_depth)
            # a frame needs more than twice max_depth characters to nest deeper (check_depth's
            # first test, inline: every frame's path)
            if len(text) > conn.short_frame:
                check_depth(text, message, conn.config.max_depth)
            if "\\u" in text:  # the frame may spell a surrogate escape (no call otherwise)
                refuse_lone_surrogates(message, text)
            if type(message) is not dict:
                raise WsxError(E.PARSE_ERROR, "a wsx frame holds a JSON object")
        except WsxError as exc:
            conn.frame_bad()
            self.fail(None, exc)
            return
        conn.bad_frames = 0  # a good frame resets the protocol-error count
        msg_id = message.get("id")
        if msg_id is not None and type(msg_id) is not int and not _valid_id(msg_id):
            self.fail(None, WsxError(E.INVALID_REQUEST,
                                     f"id must be a string of at most {MAX_ID} characters "
                                     "or an integer"))
            return
        if len(message) == 2 and msg_id is not None and "path" in message:
            # {"id", "path"}: a call and nothing else, the common frame (no lookups for the
            # members it cannot hold)
            if not conn.spawn(self._calling(msg_id, message, True)):
                self.fail(msg_id, WsxError(E.TOO_MANY_CALLS,
                                           f"at most {conn.config.max_in_flight} calls in flight"))
            return
        kind = message.get("type", "call")
        if kind == "call":
            if not conn.spawn(self._calling(msg_id, message, False)) and msg_id is not None:
                self.fail(msg_id, WsxError(E.TOO_MANY_CALLS,
                                           f"at most {conn.config.max_in_flight} calls in flight"))
        elif kind == "pong":
            return
        elif kind == "ping":
            conn.reply(PONG if msg_id is None else PREFIX + _dumps({"type": "pong", "id": msg_id}))
        elif kind == "subscribe":
            self._start(msg_id, self._subscribe, message)
        elif kind == "unsubscribe":
            self._start(msg_id, self._unsubscribe, message)
        elif kind == "auth":
            self._start(msg_id, self._auth, message)
        else:
            shown = kind[:40] if isinstance(kind, str) else type(kind).__name__
            self.fail(msg_id, WsxError(E.INVALID_REQUEST, f"unknown message type {shown!r}"))

    def _start(self, msg_id: Any, work: Callable[[dict[str, Any]], Awaitable[Any]],
               message: dict[str, Any]) -> None:
        if self.conn.spawn(self._answering(msg_id, work, message)):
            return
        if msg_id is not None:
            self.fail(msg_id, WsxError(E.TOO_MANY_CALLS,
                                       f"at most {self.conn.config.max_in_flight} calls in flight"))

    async def _answering(self, msg_id: Any, work: Callable[[dict[str, Any]], Awaitable[Any]],
                         message: dict[str, Any]) -> None:
        """Run ``work(message)`` and answer with its result or its error."""
        try:
            result = await work(message)
        except WsxError as exc:
            if msg_id is not None:
                self.fail(msg_id, exc)
            return
        except Exception as exc:
            failure = self.conn.internal_error(f"message {msg_id!r} failed", exc)
            if msg_id is not None:
                self.fail(msg_id, failure)
            return
        if msg_id is not None:
            try:
                self.answer(msg_id, result)
            except Exception as exc:  # a result that cannot be encoded
                self.fail(msg_id, self.conn.unencodable(f"the result of {msg_id!r}", exc))

    async def _calling(self, msg_id: Any, message: dict[str, Any], bare: bool) -> None:
        """``_answering`` of a call, with the call's preparation and ``conn.call`` inline: every
        call takes this path, and each function layer is a measurable part of its cost.

        ``bare``: the message holds only ``id`` and ``path`` (no method, data, query or
        headers to look up)."""
        conn = self.conn
        quoted = False
        try:
            if bare:
                method = params = request_id = None
            else:
                method = message.get("method")
                if method is not None:
                    if not isinstance(method, str):
                        raise WsxError(E.INVALID_REQUEST, "method must be a string")
                    if method.upper() == ANY_METHOD:
                        method = None
                data = message.get("data")
                depth = conn.config.max_depth
                params, quoted = (None, False) if data is None else _decode_data(data, depth)
                query = message.get("query")
                if query is not None:
                    params = _merge_query(params, query, depth)
                headers = message.get("headers")
                request_id = None if headers is None else _request_id(headers)
                if type(data) is str or query is not None:  # TYTX text, decoded above
                    refuse_lone_surrogates(params, data, *(query.values() if query else ()))
            identity = conn.identity
            if identity is None and conn.require_identity:
                raise WsxError(E.AUTH_REQUIRED, "authenticate first")
            result = await conn.runner.call(conn.call_scope, identity, message["path"]
                                            if bare else message.get("path"), params, method,
                                            request_id)
        except WsxError as exc:
            if msg_id is not None:
                self.fail(msg_id, exc)
            return
        except Exception as exc:
            failure = conn.internal_error(f"message {msg_id!r} failed", exc)
            if msg_id is not None:
                self.fail(msg_id, failure)
            return
        if msg_id is None:
            return
        if type(result) is str and not result.isascii():  # the inline answer skips answer()
            try:
                check_utf8(result)
            except ValueError as exc:
                self.fail(msg_id, conn.unencodable(f"the result of {msg_id!r}", exc))
                return
        if type(result) is str and type(msg_id) is int and not quoted:  # answer(), inline
            conn.reply(f'WSX://{{"id":{msg_id},"status":200,'
                       f'"data":{json_string(encode_basestring(result))}}}')
            return
        try:
            self.answer(msg_id, result, quoted)
        except Exception as exc:  # a result that cannot be encoded
            self.fail(msg_id, conn.unencodable(f"the result of {msg_id!r}", exc))

    async def _subscribe(self, message: dict[str, Any]) -> Any:
        channel = message.get("channel")
        if channel is None:
            raise WsxError(E.INVALID_REQUEST, "subscribe needs a channel")
        sid, recovered = await self.conn.subscribe(channel, message.get("since"))
        if recovered is None:
            return {"subscription": sid, "channel": channel}
        return {"subscription": sid, "channel": channel, "recovered": recovered}

    async def _unsubscribe(self, message: dict[str, Any]) -> Any:
        sid = message.get("subscription")
        if sid is None:
            raise WsxError(E.INVALID_REQUEST, "unsubscribe needs a subscription")
        await self.conn.unsubscribe(sid)
        return {"subscription": sid}

    async def _auth(self, message: dict[str, Any]) -> Any:
        identity = await self.conn.authenticate(message.get("token"))
        return identity.summary()


def _error_frame(msg_id: Any, exc: WsxError) -> dict[str, Any]:
    error = {"code": exc.kind.code, "message": exc.message, **exc.data}
    if msg_id is None:
        return {"type": "error", "status": exc.status, "error": error}
    return {"id": msg_id, "status": exc.status, "error": error}


def _event_tail(publication: Publication) -> str:
    offset = "" if publication.offset is None else f'"offset":{_dumps(publication.offset)},'
    return (f'{offset}"channel":{_dumps(publication.channel)},'
            f'"data":{_dumps(tytx_text(publication.data))}}}')


def _decode_data(data: Any, max_depth: int) -> tuple[Mapping[str, Any] | None, bool]:
    """The call's keyword arguments, and whether ``data`` came in the json transport's quoted
    form (the answer is written the same way)."""
    if data is None or data == "":
        return None, False
    quoted = False
    if isinstance(data, str):
        data, quoted = decode_tytx(data, max_depth)
        if data is None:
            return None, quoted
    if not isinstance(data, dict):
        raise WsxError(E.INVALID_PARAMS, "data must be an object (or TYTX text of one)")
    return data, quoted


def _merge_query(params: Mapping[str, Any] | None, query: Any,
                 max_depth: int) -> dict[str, Any]:
    if not isinstance(query, dict):
        raise WsxError(E.INVALID_REQUEST, "query must be an object")
    merged = dict(params or {})
    for name, value in query.items():
        if name in merged:
            raise WsxError(E.INVALID_PARAMS, f"parameter {name[:60]!r} given twice")
        if isinstance(value, str) and "::" in value:  # a typed scalar, either form
            value = decode_tytx(value, max_depth)[0]
        merged[name] = value
    return merged


def _request_id(headers: Any) -> str | None:
    if isinstance(headers, dict):
        value = headers.get(_REQUEST_ID)
        if isinstance(value, str) and 0 < len(value) <= 200 and value.isprintable():
            return value
    return None

