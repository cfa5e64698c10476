"""One WSX connection: the receive loop, the bounded outbound queue, heartbeat and limits.

Four tasks live as long as the socket: the reader (frames go to the subprotocol), the writer
(the only one that sends, so frames never interleave), the heartbeat and, while no identity is
established, the auth deadline. Each call runs in its own task, counted against
``max_in_flight`` and cancelled when the connection ends. Closing from anywhere (slow consumer,
heartbeat, shutdown) sets a code and wakes ``run``, which tears everything down in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Coroutine
from time import monotonic
from typing import TYPE_CHECKING, Any, Protocol

from genro_asgi import Unauthorized, WebSocket, WebSocketDisconnect

from . import errors as E
from .broker import Publication
from .channels import check_pattern
from .errors import CloseCode, WsxError

if TYPE_CHECKING:
    from genro_asgi.identity import Identity

    from .plugin import WsxPlugin

logger = logging.getLogger("genro_asgi_wsx.connection")

MAX_TOKEN = 4096


class Subprotocol(Protocol):
    """What a subprotocol (wsx, jsonrpc) does with frames; see wsx_protocol / jsonrpc."""

    name: str

    def handle(self, text: str | None, data: bytes | None) -> None: ...

    def ping_frame(self) -> str: ...

    def event_frame(self, subscription: str, publication: Publication) -> str: ...


class WsxConnection:
    """The server side of one accepted WSX socket."""

    _ids = itertools.count(1)

    def __init__(self, plugin: WsxPlugin, ws: WebSocket, identity: Identity | None,
                 require_identity: bool, tytx: bool) -> None:
        self.plugin = plugin
        self.config = config = plugin.config
        self.ws = ws
        self.id = next(self._ids)
        self.identity = identity
        self.require_identity = require_identity
        self.tytx = tytx
        self.protocol: Subprotocol | None = None
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=config.outbound_queue)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.subscriptions: dict[str, int] = {}
        self._pending_subscriptions = 0
        self._sub_ids = itertools.count(1)
        self.last_seen = monotonic()
        self.bad_frames = 0
        self.close_code: int | None = None
        self._flush_before_close = False
        self._closed = asyncio.Event()
        self.max_size = int(config.max_message_size)
        scope = ws.scope
        # what every call's scope starts from: the handshake's headers and client
        self.base_scope = {"headers": scope.get("headers") or [], "client": scope.get("client"),
                           "scheme": scope.get("scheme", "ws"), "server": scope.get("server"),
                           "query_string": b"", "root_path": "", "wsx.connection": self}

    @property
    def needs_identity(self) -> bool:
        return self.require_identity and self.identity is None

    # -- life --------------------------------------------------------------------------------

    async def run(self, protocol: Subprotocol) -> None:
        """Serve until the client leaves or the server closes the connection."""
        self.protocol = protocol
        helpers = [asyncio.create_task(self._writer())]
        if self.config.heartbeat_interval > 0:
            helpers.append(asyncio.create_task(self._heartbeat()))
        if self.identity is None and self.require_identity:
            helpers.append(asyncio.create_task(self._auth_deadline()))
        reader = asyncio.create_task(self._reader())
        closer = asyncio.create_task(self._closed.wait())
        try:
            await asyncio.wait({reader, closer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await self._teardown(reader, closer, helpers)

    def close(self, code: int, *, flush: bool = False) -> None:
        """Ask for the connection to end with ``code`` (the first code asked wins)."""
        if self.close_code is None:
            self.close_code = code
            self._flush_before_close = flush
            self._closed.set()

    async def _teardown(self, reader: asyncio.Task[Any], closer: asyncio.Task[Any],
                        helpers: list[asyncio.Task[Any]]) -> None:
        for task in (reader, closer, *self.tasks):
            task.cancel()
        if self._flush_before_close and self.close_code is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.queue.join(), 1.0)
        for task in helpers:
            task.cancel()
        await asyncio.gather(reader, closer, *self.tasks, *helpers, return_exceptions=True)
        self.tasks.clear()
        handles = list(self.subscriptions.values())
        self.subscriptions.clear()
        for handle in handles:
            await self.plugin.broker.unsubscribe(handle)
        if self.close_code is not None:
            with contextlib.suppress(Exception):  # the socket may already be gone
                await self.ws.close(self.close_code)

    async def _reader(self) -> None:
        ws = self.ws
        max_size = self.max_size
        protocol = self.protocol
        assert protocol is not None
        while True:
            try:
                message = await ws.receive()
            except WebSocketDisconnect:
                return
            text = message.get("text")
            data = message.get("bytes") if text is None else None
            size = len(text) if text is not None else len(data or b"")
            if size > max_size // 4 and (
                len(text.encode("utf-8")) if text is not None else size
            ) > max_size:
                self.close(CloseCode.MESSAGE_TOO_BIG)
                return
            self.last_seen = monotonic()
            protocol.handle(text, data)

    async def _writer(self) -> None:
        queue = self.queue
        send = self.ws.send_text
        while True:
            frame = await queue.get()
            try:
                await send(frame)
            except Exception:  # the client is gone: nothing more can be sent
                queue.task_done()
                self._closed.set()
                return
            queue.task_done()

    async def _heartbeat(self) -> None:
        interval = self.config.heartbeat_interval
        timeout = self.config.heartbeat_timeout
        assert self.protocol is not None
        while True:
            await asyncio.sleep(interval)
            if monotonic() - self.last_seen < interval:
                continue  # traffic from the client already proves it is alive
            pinged_at = monotonic()
            self.send(self.protocol.ping_frame())
            await asyncio.sleep(timeout)
            if self.last_seen < pinged_at:
                self.close(CloseCode.HEARTBEAT_TIMEOUT)
                return

    async def _auth_deadline(self) -> None:
        await asyncio.sleep(self.config.auth_deadline)
        if self.identity is None:
            self.close(CloseCode.AUTH_DEADLINE)

    # -- used by the subprotocols ------------------------------------------------------------

    def send(self, frame: str) -> None:
        """Queue a frame; a full queue means the client does not read: close with 4000."""
        if self.close_code is not None:
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            logger.warning("wsx connection %d: outbound queue full, closing (slow consumer)",
                           self.id)
            self.close(CloseCode.SLOW_CONSUMER)

    def frame_ok(self) -> None:
        self.bad_frames = 0

    def frame_bad(self) -> None:
        self.bad_frames += 1
        if self.bad_frames >= self.config.max_protocol_errors:
            self.close(CloseCode.PROTOCOL_ERROR, flush=True)

    def spawn(self, work: Coroutine[Any, Any, Any]) -> bool:
        """Run ``work`` as an in-flight call; False (and ``work`` dropped) when at the limit."""
        if len(self.tasks) >= self.config.max_in_flight or self.close_code is not None:
            work.close()
            return False
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def call(self, path: Any, params: Any, *, method: str | None = None,
                   request_id: str | None = None) -> Any:
        if self.needs_identity:
            raise WsxError(E.AUTH_REQUIRED, "authenticate first")
        return await self.plugin.runner.call(self.base_scope, self.identity, path, params,
                                             method=method, request_id=request_id)

    async def authenticate(self, token: Any) -> Identity:
        """Establish the identity from a token sent in a message (once per connection)."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN \
                or not token.isprintable() or not token.isascii():
            raise WsxError(E.INVALID_REQUEST, f"token must be 1 to {MAX_TOKEN} printable "
                           "ASCII characters")
        if self.identity is not None:
            raise WsxError(E.INVALID_REQUEST, "this connection is already authenticated")
        identify = getattr(self.plugin.server, "identify", None)
        identity = None
        if identify is not None:
            scope = {**self.base_scope, "type": "websocket", "path": self.ws.scope["path"],
                     "headers": [(b"authorization", b"Bearer " + token.encode("ascii"))]}
            try:
                identity = await identify(scope)
            except Unauthorized:
                identity = None
        if identity is None:
            if self.require_identity:
                # after this task step, once the caller has queued its error answer
                asyncio.get_running_loop().call_soon(
                    lambda: self.close(CloseCode.POLICY_VIOLATION, flush=True))
            raise WsxError(E.AUTH_REQUIRED, "invalid credential")
        self.identity = identity
        self.ws.scope["genro.identity"] = identity
        return identity  # type: ignore[no-any-return]

    async def subscribe(self, pattern: Any) -> str:
        problem = check_pattern(pattern)
        if problem is not None:
            raise WsxError(E.INVALID_CHANNEL, f"channel {problem}")
        if self.needs_identity:
            raise WsxError(E.AUTH_REQUIRED, "authenticate first")
        limit = self.config.max_subscriptions
        if len(self.subscriptions) + self._pending_subscriptions >= limit:
            raise WsxError(E.TOO_MANY_SUBSCRIPTIONS, f"at most {limit} subscriptions")
        self._pending_subscriptions += 1
        try:
            await self.plugin.authorize_channel(self.identity, pattern)
            sid = f"s{next(self._sub_ids)}"
            protocol = self.protocol
            assert protocol is not None
            send = self.send

            def deliver(publication: Publication) -> None:
                send(protocol.event_frame(sid, publication))

            handle = await self.plugin.broker.subscribe(pattern, deliver)
        finally:
            self._pending_subscriptions -= 1
        if self.close_code is not None:
            await self.plugin.broker.unsubscribe(handle)
            raise WsxError(E.SHUTTING_DOWN, "the connection is closing")
        self.subscriptions[sid] = handle
        return sid

    async def unsubscribe(self, sid: Any) -> None:
        handle = self.subscriptions.pop(sid, None) if isinstance(sid, str) else None
        if handle is None:
            raise WsxError(E.UNKNOWN_SUBSCRIPTION, "no such subscription on this connection")
        await self.plugin.broker.unsubscribe(handle)
