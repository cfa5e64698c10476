"""One WSX connection: the receive loop, the bounded outbound queue, heartbeat and limits.

These tasks live as long as the socket: the reader (frames go to the subprotocol), the writer
(it sends queued frames one at a time, so frames never interleave), the heartbeat and, while
no identity is established, the auth deadline. Closing from anywhere (slow consumer,
heartbeat, shutdown) sets a code and wakes ``run``, which tears everything down in one place.

The common call costs no task: the reader runs it in place, and when it finishes without
waiting (an async handler answering at once) its answer is sent there and then, when nothing
else is waiting to be sent. A call that waits keeps the task it started in, which stops
reading and hands that job to a new reader task: the call keeps one task for its whole life
(``asyncio.current_task()``, ``asyncio.timeout()`` and cancellation behave as in a task of its
own), is counted against ``max_in_flight`` and is cancelled when the connection ends. Each call
runs in its own copy of the context, as a task would.

The outbound queue is bounded in frames (``outbound_queue``) and in bytes
(``max_queued_bytes``); passing either means the client does not read, and closes it with
4000. An event is queued as its subscription's head plus the publication's text, shared by
every subscriber and joined only when sent. A send that fails because the socket is gone ends
the connection quietly; one that fails because the frame cannot be written is a server bug,
logged, and closes with 1011.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import itertools
import logging
import re
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, Protocol

from genro_asgi import Unauthorized, WebSocket
from genro_asgi.builtin.errors import new_error_id
from genro_asgi.types import Receive, Send
from genro_asgi.websocket import WebSocketState

from . import errors as E
from .broker import Publication, PublishError, Subscriber
from .channels import check_pattern
from .errors import CloseCode, WsxError
from .wire import utf8_safe, wire_size

if TYPE_CHECKING:
    from genro_asgi.identity import Identity

    from .plugin import WsxPlugin

logger = logging.getLogger("genro_asgi_wsx.connection")

MAX_TOKEN = 4096
MAX_SINCE = 128  # characters of the event offset a subscribe may resume from
_SERVER_SUBSCRIPTION = re.compile(r"[A-Za-z0-9_.-]{1,64}").fullmatch  # push_event
_CONNECTED = WebSocketState.CONNECTED
_COROUTINE = types.CoroutineType


class Subprotocol(Protocol):
    """What a subprotocol (wsx, jsonrpc) does with frames; see wsx_protocol / jsonrpc."""

    name: str

    def handle(self, text: str | None, data: bytes | None) -> None: ...

    def ping_frame(self) -> str: ...

    def event_frame(self, subscription: str, publication: Publication) -> tuple[str, str]:
        """The event's frame as its head (this subscription's) and its tail (the
        publication's text, the same object for every subscriber)."""
        ...


class WsxConnection:
    """The server side of one accepted WSX socket."""

    _ids = itertools.count(1)

    def __init__(self, plugin: WsxPlugin, ws: WebSocket, receive: Receive, send: Send,
                 identity: Identity | None, require_identity: bool, tytx: bool) -> None:
        self.plugin = plugin
        self.runner = plugin.runner
        self.config = config = plugin.config
        self.ws = ws
        # the ASGI callables behind ``ws``: frames are read and written with them directly,
        # as a bare endpoint would, and ``ws.connection_state`` is kept as WebSocket keeps it
        self._receive = receive
        self._send = send
        self.id = next(self._ids)
        self.identity = identity
        self.require_identity = require_identity
        self.tytx = tytx
        self.protocol: Subprotocol | None = None
        # (item, its UTF-8 size): a frame, an event's (head, shared tail), or a send that
        # started at once and had to wait (the writer finishes it); bounded by hand, below
        self.queue: asyncio.Queue[tuple[str | tuple[str, str] | _Unfinished, int]] = \
            asyncio.Queue()
        self.max_frames = config.outbound_queue
        self.max_in_flight = config.max_in_flight
        # a plain JSON frame this long or shorter cannot nest deeper than max_depth: the
        # subprotocols walk no frame of this size (read per frame: a plain attribute)
        self.short_frame = 2 * config.max_depth
        self.max_bytes = int(config.max_queued_bytes)
        # past a quarter of either budget the connection has a backlog: a publisher yields
        # to let the writer send before publishing more
        self._backlog_frames = max(1, self.max_frames // 4)
        self._backlog_bytes = self.max_bytes // 4
        self.queued_bytes = 0  # of the frames counted in _unsent
        self.tasks: set[asyncio.Task[Any]] = set()  # calls that are waiting
        self._reader_task: asyncio.Task[None] | None = None
        self._handling = False  # the reader is inside protocol.handle()
        self._next_call: Coroutine[Any, Any, Any] | None = None  # for the reader to run
        # frames queued plus the one the writer is sending: reply() sends at once only at 0
        # (a counter, not queue.empty() and a flag: reply() is on every call's path)
        self._unsent = 0
        self._sender = _runner()  # runs reply()'s sends (see _runner)
        self.subscriptions: dict[str, int] = {}
        self._pending_subscriptions = 0
        self._sub_ids = itertools.count(1)
        # frames read so far: the heartbeat looks for new ones (a count, not the time of the
        # last one: a clock read per frame costs more than an addition)
        self.frames_in = 0
        self.bad_frames = 0
        self.close_code: int | None = None
        self._flush_before_close = False
        self._closed = asyncio.Event()
        self._on_close: list[Callable[[WsxConnection], Any]] | None = None  # on_close()
        self.max_size = int(config.max_message_size)
        scope = ws.scope
        # what every call's scope starts from: the handshake's headers and client
        self.base_scope = {"headers": scope.get("headers") or [], "client": scope.get("client"),
                           "scheme": scope.get("scheme", "ws"), "server": scope.get("server"),
                           "query_string": b"", "root_path": "", "wsx.connection": self}
        # every call's scope is a copy of this, with its own values written in (a copy of a
        # dict sized for all the keys costs half what building the dict does)
        self.call_scope = {**self.base_scope, "type": "wsx", "path": "", "method": "CALL",
                           "genro.identity": None, "genro.envelope": None}

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
        self._reader_task = asyncio.create_task(self._reader())
        try:
            await self._closed.wait()  # set by close(), the reader's end or a failed send
        finally:
            await self._teardown(helpers)

    def close(self, code: int, *, flush: bool = False) -> None:
        """Ask for the connection to end with ``code`` (the first code asked wins)."""
        if self.close_code is None:
            self.close_code = code
            self._flush_before_close = flush
            self._closed.set()

    def on_close(self, callback: Callable[[WsxConnection], Any]) -> None:
        """Call ``callback(connection)`` once when the connection ends, after its calls are
        cancelled and its subscriptions removed (an async callback is awaited). A failing
        callback is logged and the others still run. Public extension point for plugins
        that keep state per connection: genro-asgi-spa builds on it."""
        if self._on_close is None:
            self._on_close = []
        self._on_close.append(callback)

    def push_event(self, subscription: str, publication: Publication) -> bool:
        """Queue ``publication`` for this connection alone, as an event of ``subscription``,
        in this connection's wire format (a ``wsx`` event frame, or a JSON-RPC ``wsx.event``).

        ``subscription`` is a name the server chose (1 to 64 of ``A-Za-z0-9_.-``), not one of
        the client's (``s1``...). Raises PublishError (a ValueError), queueing nothing, when
        the publication cannot be encoded. Returns whether the connection now has a backlog
        (a publisher in a loop should yield to the event loop); past the outbound budgets the
        connection is closed with 4000, as for any event. Public extension point:
        genro-asgi-spa builds on it.
        """
        if not _SERVER_SUBSCRIPTION(subscription):
            raise ValueError(f"not a subscription name: {subscription[:80]!r}")
        protocol = self.protocol
        if protocol is None:
            raise RuntimeError("the connection is not running yet")
        try:
            head, tail = protocol.event_frame(subscription, publication)
        except Exception as exc:
            raise PublishError(f"cannot push on {publication.channel!r}: the data cannot be "
                               f"encoded ({type(exc).__name__}: {exc})") from exc
        return self._enqueue((head, tail), len(head) + publication.size(tail))

    async def _teardown(self, helpers: list[asyncio.Task[Any]]) -> None:
        reader = self._reader_task
        assert reader is not None
        for task in (reader, *self.tasks):
            task.cancel()
        if self._flush_before_close and self.close_code is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.queue.join(), 1.0)
        for task in helpers:
            task.cancel()
        await asyncio.gather(reader, *self.tasks, *helpers, return_exceptions=True)
        self.tasks.clear()
        while not self.queue.empty():  # never sent: a started send is closed, not left to gc
            item, size = self.queue.get_nowait()
            self._unsent -= 1
            self.queued_bytes -= size
            if isinstance(item, _Unfinished):
                item.coro.close()
        handles = list(self.subscriptions.values())
        self.subscriptions.clear()
        for handle in handles:
            await self.plugin.broker.unsubscribe(handle)
        callbacks, self._on_close = self._on_close, None
        for callback in callbacks or ():
            try:
                result = callback(self)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("wsx connection %d: an on_close callback failed", self.id)
        if self.close_code is not None:
            # the socket may be gone, or its buffers full of what a client that does not read
            # never took: the close frame waits at most close_timeout, then the app returns and
            # the server drops the socket
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(self.close_code),
                                       self.config.close_timeout)

    async def _reader(self) -> None:
        ws = self.ws
        receive = self._receive
        max_size = self.max_size
        quarter = max_size // 4  # frames up to this many characters are never too big
        protocol = self.protocol
        assert protocol is not None
        runner = _runner()
        run_first = runner.send
        copy_context = contextvars.copy_context
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    ws.connection_state = WebSocketState.CLOSED
                    return
                text = message.get("text")
                data = message.get("bytes") if text is None else None
                size = len(text) if text is not None else len(data or b"")
                if size > quarter and (
                    len(text.encode("utf-8")) if text is not None else size
                ) > max_size:
                    self.close(CloseCode.MESSAGE_TOO_BIG)
                    return
                self.frames_in += 1
                self._handling = True
                try:
                    protocol.handle(text, data)
                except Exception:  # a server bug, whatever the frame: the connection lives on
                    logger.exception("wsx connection %d: a frame could not be handled", self.id)
                finally:
                    self._handling = False
                work = self._next_call
                if work is None:
                    continue
                self._next_call = None
                context = copy_context()
                try:
                    waiting_on = context.run(run_first, work)
                except asyncio.CancelledError:  # raised by the call itself: it ends, as its
                    runner = _runner()  # task would (and the runner with it)
                    run_first = runner.send
                    continue
                except Exception:  # the calls catch their errors: this is a server bug, and
                    # the reader must not die of it (no cost unless raised)
                    logger.exception("wsx connection %d: a call failed", self.id)
                    runner = _runner()
                    run_first = runner.send
                    continue
                if waiting_on is _DONE:
                    continue  # done without waiting: the common call
                # the call waits: this task is the call's from now on, a new one reads
                me = asyncio.current_task()
                assert me is not None
                self.tasks.add(me)
                self._reader_task = asyncio.create_task(self._reader())
                try:
                    await _carry_on(runner, waiting_on, context)
                except Exception:  # as above: logged, not left in a task nobody awaits
                    logger.exception("wsx connection %d: a call failed", self.id)
                finally:
                    self.tasks.discard(me)
                    runner.close()
                return
        finally:
            if self._reader_task is asyncio.current_task():
                self._closed.set()  # reading ended: the connection ends

    async def _writer(self) -> None:
        queue = self.queue
        send = self._send_text
        while True:
            item, size = await queue.get()
            try:
                if type(item) is str:
                    await send(item)
                elif type(item) is tuple:
                    await send(item[0] + item[1])  # an event: joined only now
                else:
                    assert isinstance(item, _Unfinished)
                    await _carry_on(item.coro, item.waiting_on)
            except Exception as exc:
                queue.task_done()
                self._send_failed(exc)
                return
            finally:
                self._unsent -= 1
                self.queued_bytes -= size
            queue.task_done()

    def _send_failed(self, exc: Exception) -> None:
        """A send raised. The socket is gone or closing (OSError, the server's state errors):
        end quietly. The frame itself could not be written (ValueError, TypeError, such as
        text UTF-8 cannot carry): a server bug, logged, and the client told with 1011."""
        if isinstance(exc, (ValueError, TypeError)):
            logger.error("wsx connection %d: a frame could not be sent", self.id, exc_info=exc)
            self.close(CloseCode.INTERNAL_ERROR)
        self._closed.set()

    async def _heartbeat(self) -> None:
        interval = self.config.heartbeat_interval
        timeout = self.config.heartbeat_timeout
        assert self.protocol is not None
        seen = self.frames_in
        while True:
            await asyncio.sleep(interval)
            if self.frames_in != seen:  # traffic from the client since the last look already
                seen = self.frames_in  # proves it is alive
                continue
            self.send(self.protocol.ping_frame())
            await asyncio.sleep(timeout)
            if self.frames_in == seen:  # not a frame since the ping
                self.close(CloseCode.HEARTBEAT_TIMEOUT)
                return
            seen = self.frames_in

    async def _auth_deadline(self) -> None:
        await asyncio.sleep(self.config.auth_deadline)
        if self.identity is None:
            self.close(CloseCode.AUTH_DEADLINE)

    # -- used by the subprotocols ------------------------------------------------------------

    def reply(self, frame: str) -> None:
        """Send an answer at once when nothing is waiting to be sent, else queue it.

        Only answers take this path: each answers a frame the client sent (and
        ``max_in_flight`` bounds them), while events, which a publisher can burst, always go
        through the bounded queue. Should the send have to wait (the client reads slowly),
        the writer finishes it and frames sent after it queue behind it, in order.
        """
        if self.close_code is not None:
            return
        if not frame.isascii():  # a lone surrogate would fail the send (see wire.py)
            frame = utf8_safe(frame)
        if self._unsent:
            self.send(frame)
            return
        if self.ws.connection_state is _CONNECTED:  # _send_text(), inlined
            sending = self._send({"type": "websocket.send", "text": frame})
            if type(sending) is not _COROUTINE:
                sending = _await(sending)
        else:
            sending = _not_connected(self.ws.connection_state)
        sender = self._sender
        try:
            waiting_on = sender.send(sending)
        except Exception as exc:
            self._sender = _runner()
            self._send_failed(exc)
            return
        if waiting_on is _DONE:
            return
        # the send waits: the writer finishes it, with the runner it is in
        self._sender = _runner()
        size = wire_size(frame)
        self.queue.put_nowait((_Unfinished(sender, waiting_on), size))  # the first: accepted
        self._unsent += 1
        self.queued_bytes += size

    def _send_text(self, frame: str) -> Coroutine[Any, Any, None]:
        """``ws.send_text(frame)``, with one coroutine less: the ASGI send, when connected."""
        if self.ws.connection_state is not WebSocketState.CONNECTED:
            return _not_connected(self.ws.connection_state)
        sending = self._send({"type": "websocket.send", "text": frame})
        return sending if type(sending) is types.CoroutineType else _await(sending)

    def send(self, frame: str) -> None:
        """Queue a frame; a full queue means the client does not read: close with 4000."""
        if not frame.isascii():
            frame = utf8_safe(frame)
        self._enqueue(frame, wire_size(frame))

    def _enqueue(self, item: str | tuple[str, str], size: int) -> bool:
        """Queue ``item`` within the frame and byte budgets (a frame into an empty queue is
        always taken, however large); past either, close with 4000. Whether the connection
        now has a backlog."""
        if self.close_code is not None:
            return False
        unsent = self._unsent
        if unsent and (unsent >= self.max_frames
                       or self.queued_bytes + size > self.max_bytes):
            logger.warning("wsx connection %d: outbound queue full (%d frames, %d bytes), "
                           "closing (slow consumer)", self.id, unsent, self.queued_bytes)
            self.close(CloseCode.SLOW_CONSUMER)
            return False
        self.queue.put_nowait((item, size))
        self._unsent = unsent + 1
        self.queued_bytes += size
        return unsent >= self._backlog_frames or self.queued_bytes > self._backlog_bytes

    def internal_error(self, what: str, exc: BaseException,
                       message: str = "Internal Server Error") -> WsxError:
        """Log ``exc`` with a new error_id and return the error answer carrying it: every
        internal error a client sees points to its log record."""
        error_id = new_error_id()
        logger.error("error_id=%s wsx connection %d: %s: %s: %s", error_id, self.id, what,
                     type(exc).__name__, exc, exc_info=exc)
        return WsxError(E.INTERNAL_ERROR, message, data={"error_id": error_id})

    def unencodable(self, what: str, exc: BaseException) -> WsxError:
        """``internal_error`` for a value (a result) that cannot be encoded."""
        return self.internal_error(what, exc, "the result cannot be encoded")

    def frame_bad(self) -> None:
        self.bad_frames += 1
        if self.bad_frames >= self.config.max_protocol_errors:
            self.close(CloseCode.PROTOCOL_ERROR, flush=True)

    def spawn(self, work: Coroutine[Any, Any, Any]) -> bool:
        """Run ``work`` as an in-flight call; False (and ``work`` dropped) when at the limit.

        Called from ``protocol.handle``, the first call of a frame runs in the reader right
        after it (see the module docstring); any other gets a task.
        """
        if len(self.tasks) >= self.max_in_flight or self.close_code is not None:
            work.close()
            return False
        if self._handling and self._next_call is None:
            self._next_call = work
            return True
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    def call(self, path: Any, params: Any, method: str | None = None,
             request_id: str | None = None) -> Coroutine[Any, Any, Any]:
        """The call of the route at ``path``, to await (WsxError raised here or from it)."""
        identity = self.identity
        if identity is None and self.require_identity:
            raise WsxError(E.AUTH_REQUIRED, "authenticate first")
        return self.runner.call(self.call_scope, identity, path, params, method, request_id)

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
        if self.identity is not None:  # a concurrent auth message won while this one waited:
            # the identity, once set, never changes
            raise WsxError(E.INVALID_REQUEST, "this connection is already authenticated")
        if identity is None:
            if self.require_identity:
                # after this task step, once the caller has queued its error answer
                asyncio.get_running_loop().call_soon(
                    lambda: self.close(CloseCode.POLICY_VIOLATION, flush=True))
            raise WsxError(E.AUTH_REQUIRED, "invalid credential")
        self.identity = identity
        self.ws.scope["genro.identity"] = identity
        return identity  # type: ignore[no-any-return]

    async def subscribe(self, pattern: Any, since: Any = None) -> tuple[str, bool | None]:
        """A new subscription's id, and (with ``since``, the offset of the last event the client
        saw) whether every event after it was recovered: False when the broker's history does
        not reach back that far, or it keeps none."""
        problem = check_pattern(pattern)
        if problem is not None:
            raise WsxError(E.INVALID_CHANNEL, f"channel {problem}")
        if since is not None and not (isinstance(since, str) and 0 < len(since) <= MAX_SINCE):
            raise WsxError(E.INVALID_REQUEST, f"since must be an event offset (a string of 1 "
                           f"to {MAX_SINCE} characters)")
        if self.needs_identity:
            raise WsxError(E.AUTH_REQUIRED, "authenticate first")
        limit = self.config.max_subscriptions
        if len(self.subscriptions) + self._pending_subscriptions >= limit:
            raise WsxError(E.TOO_MANY_SUBSCRIPTIONS, f"at most {limit} subscriptions")
        self._pending_subscriptions += 1
        try:
            await self.plugin.authorize_channel(self.identity, pattern)
            sid = f"s{next(self._sub_ids)}"
            broker = self.plugin.broker
            sink = _EventSink(self, sid)
            handle = await (broker.subscribe(pattern, sink) if since is None
                            else broker.subscribe(pattern, sink, since=since))
        finally:
            self._pending_subscriptions -= 1
        if self.close_code is not None:
            await self.plugin.broker.unsubscribe(handle)
            raise WsxError(E.SHUTTING_DOWN, "the connection is closing")
        self.subscriptions[sid] = handle
        if since is None:
            return sid, None
        return sid, broker.recovered(handle) is True

    async def unsubscribe(self, sid: Any) -> None:
        handle = self.subscriptions.pop(sid, None) if isinstance(sid, str) else None
        if handle is None:
            raise WsxError(E.UNKNOWN_SUBSCRIPTION, "no such subscription on this connection")
        await self.plugin.broker.unsubscribe(handle)


class _EventSink(Subscriber):
    """One subscription's end of the broker: events into its connection's queue."""

    __slots__ = ("conn", "protocol", "sid")

    def __init__(self, conn: WsxConnection, sid: str) -> None:
        assert conn.protocol is not None
        self.conn = conn
        self.protocol = conn.protocol
        self.sid = sid

    def prepare(self, publication: Publication) -> tuple[str, str, int]:
        head, tail = self.protocol.event_frame(self.sid, publication)
        return head, tail, len(head) + publication.size(tail)  # the head is ASCII

    def push(self, prepared: tuple[str, str, int]) -> bool:
        head, tail, size = prepared
        return self.conn._enqueue((head, tail), size)


class _Unfinished:
    """A send that was started at once and had to wait: the writer finishes it."""

    __slots__ = ("coro", "waiting_on")

    def __init__(self, coro: Generator[Any, Any, None], waiting_on: Any) -> None:
        self.coro = coro
        self.waiting_on = waiting_on


async def _await(awaitable: Awaitable[None]) -> None:
    await awaitable  # a send that is an awaitable but not a coroutine


async def _not_connected(state: WebSocketState) -> None:
    raise RuntimeError(f"cannot send on a WebSocket that is {state.name}")


def _call(function: Callable[..., Any], *args: Any) -> Any:
    return function(*args)


_DONE = object()  # what a _runner yields when the coroutine it runs has returned


def _runner() -> Generator[Any, Any, None]:
    """A primed _running() generator."""
    runner = _running()
    runner.send(None)
    return runner


@types.coroutine
def _running() -> Generator[Any, Any, None]:
    """Runs each coroutine sent to it and yields ``_DONE`` when it returns.

    ``runner.send(coro)`` takes the coroutine's first step as ``coro.send(None)`` would, but
    a coroutine that returns at once answers ``_DONE`` instead of raising StopIteration: no
    exception object per call and per answer. One that waits yields what it waits on and
    keeps the runner (see _carry_on); an exception leaves the runner finished.
    """
    work = yield
    while True:
        yield from work
        work = yield _DONE


@types.coroutine
def _carry_on(coro: Generator[Any, Any, Any] | Coroutine[Any, Any, Any], waiting_on: Any,
              context: contextvars.Context | None = None) -> Generator[Any, None, Any]:
    """Await ``coro`` after its first step was taken by hand and yielded ``waiting_on``.

    What ``await coro`` would do from there: the task waits on what the coroutine waits on,
    and then resumes it (in ``context``, when given) or throws into it what the task got
    (a cancellation), until it returns (or, a _runner, yields ``_DONE``).
    """
    run = context.run if context is not None else _call
    while True:
        if waiting_on is _DONE:
            return None
        try:
            yield waiting_on
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # a cancellation: it goes to the coroutine
            try:
                waiting_on = run(coro.throw, exc)
            except StopIteration as done:
                return done.value
        else:
            try:
                waiting_on = run(coro.send, None)
            except StopIteration as done:
                return done.value
