"""In-process test clients that drive an ASGI app directly: no sockets, real ASGI messages.

``AsyncTestClient`` is for async tests; ``TestClient`` wraps it for plain tests by running a
private event loop. Both are httpx clients for HTTP, run the lifespan when used as context
managers, and open WebSocket sessions with ``websocket_connect``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import httpx

from ..types import ASGIApp, Message
from ..websocket import WebSocketDisconnect

T = TypeVar("T")
BASE_URL = "http://testserver"


class _AsgiTransport(httpx.AsyncBaseTransport):
    """Turns an httpx request into one ASGI http scope."""

    def __init__(self, app: ASGIApp, client: tuple[str, int]) -> None:
        self.app = app
        self.client = client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        url = request.url
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": request.method, "scheme": url.scheme,
            "path": url.path, "raw_path": url.raw_path.split(b"?", 1)[0],  # httpx decoded it
            "query_string": url.query, "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "client": self.client, "server": (url.host, url.port or 80),
        }
        request_sent = False
        response_done = asyncio.Event()
        status = 500
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def receive() -> Message:
            nonlocal request_sent
            if not request_sent:
                request_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await response_done.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    response_done.set()

        try:
            await self.app(scope, receive, send)
        finally:
            response_done.set()
        # As a real server does, a HEAD response carries no body whatever the app sent.
        content = b"" if request.method == "HEAD" else b"".join(chunks)
        return httpx.Response(status, headers=headers, content=content, request=request)


class WebSocketSession:
    """One in-process WebSocket connection, seen from the client side."""

    def __init__(self, app: ASGIApp, path: str, headers: Sequence[tuple[str, str]],
                 subprotocols: Sequence[str], client: tuple[str, int]) -> None:
        parts = urlsplit(path)
        self.scope = {
            "type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws",
            "path": unquote(parts.path) or "/", "raw_path": (parts.path or "/").encode(),
            "query_string": parts.query.encode(), "root_path": "",
            "headers": [(b"host", b"testserver"),
                        *[(k.lower().encode(), v.encode()) for k, v in headers]],
            "subprotocols": list(subprotocols), "client": client, "server": ("testserver", 80),
        }
        self.app = app
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.accepted_subprotocol: str | None = None
        self.response_headers: list[tuple[bytes, bytes]] = []
        self.close_code: int | None = None

    async def connect(self) -> WebSocketSession:
        """Run the handshake; WebSocketDisconnect when the app closes or refuses it."""
        self._task = asyncio.create_task(self._run())
        await self._to_app.put({"type": "websocket.connect"})
        message = await self._next()
        if message["type"] == "websocket.close":
            self.close_code = message.get("code", 1000)
            raise WebSocketDisconnect(self.close_code, message.get("reason", ""))
        if message["type"] == "websocket.http.response.start":
            raise WebSocketDisconnect(1008, f"refused with HTTP {message['status']}")
        self.accepted_subprotocol = message.get("subprotocol")
        self.response_headers = list(message.get("headers", []))
        return self

    async def _run(self) -> None:
        try:
            await self.app(self.scope, self._to_app.get, self._from_app.put)
        finally:
            await self._from_app.put({"type": "websocket.close", "code": 1006, "_ended": True})

    async def _next(self) -> Message:
        return await self._from_app.get()

    async def send_text(self, data: str) -> None:
        """Send a text message to the app."""
        await self._to_app.put({"type": "websocket.receive", "text": data})

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary message to the app."""
        await self._to_app.put({"type": "websocket.receive", "bytes": data})

    async def receive(self) -> Message:
        """The next message the app sent; WebSocketDisconnect when it closed (``close_code``)."""
        message = await self._next()
        if message["type"] == "websocket.close":
            self.close_code = message.get("code", 1000)
            raise WebSocketDisconnect(self.close_code, message.get("reason", ""))
        return message

    async def receive_text(self) -> str:
        """The text of the next message the app sent."""
        return (await self.receive())["text"]  # type: ignore[no-any-return]

    async def receive_bytes(self) -> bytes:
        """The bytes of the next message the app sent."""
        return (await self.receive())["bytes"]  # type: ignore[no-any-return]

    async def close(self, code: int = 1000) -> None:
        """Disconnect with ``code`` and wait (at most 5 s) for the app's handler to end."""
        if self._task is None:
            return
        await self._to_app.put({"type": "websocket.disconnect", "code": code})
        with contextlib.suppress(asyncio.TimeoutError, Exception):
            await asyncio.wait_for(self._task, 5)
        self._task = None


class AsyncTestClient(httpx.AsyncClient):
    """``async with AsyncTestClient(app) as client: await client.get("/")``."""

    def __init__(self, app: ASGIApp, *, base_url: str = BASE_URL, lifespan: bool = True,
                 client: tuple[str, int] = ("127.0.0.1", 50000), **kwargs: Any) -> None:
        super().__init__(transport=_AsgiTransport(app, client), base_url=base_url, **kwargs)
        self.app = app
        self.client_address = client
        self.run_lifespan = lifespan
        self._lifespan_task: asyncio.Task[None] | None = None
        self._lifespan_in: asyncio.Queue[Message] = asyncio.Queue()
        self._lifespan_out: asyncio.Queue[Message] = asyncio.Queue()

    async def __aenter__(self) -> AsyncTestClient:
        await super().__aenter__()
        if self.run_lifespan:
            await self.startup()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            if self._lifespan_task is not None:
                await self.shutdown()
        finally:
            await super().__aexit__(*exc_info)

    async def startup(self) -> None:
        """Send lifespan startup and wait for it (``async with`` does); RuntimeError on failure."""
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        async def lifespan() -> None:
            await self.app(scope, self._lifespan_in.get, self._lifespan_out.put)

        self._lifespan_task = asyncio.create_task(lifespan())
        await self._lifespan_in.put({"type": "lifespan.startup"})
        message = await self._lifespan_out.get()
        if message["type"] == "lifespan.startup.failed":
            await self._lifespan_task
            self._lifespan_task = None
            raise RuntimeError(message.get("message", "lifespan startup failed"))

    async def shutdown(self) -> None:
        """Send lifespan shutdown and wait for it; RuntimeError if it failed."""
        task, self._lifespan_task = self._lifespan_task, None
        if task is None:
            return
        await self._lifespan_in.put({"type": "lifespan.shutdown"})
        message = await self._lifespan_out.get()
        await task
        if message["type"] == "lifespan.shutdown.failed":
            raise RuntimeError(message.get("message", "lifespan shutdown failed"))

    @contextlib.asynccontextmanager
    async def websocket_connect(
        self, path: str, *, headers: Sequence[tuple[str, str]] = (),
        subprotocols: Sequence[str] = (),
    ) -> AsyncIterator[WebSocketSession]:
        """``async with client.websocket_connect("/ws") as ws:`` a connected WebSocketSession.

        The handshake runs on entry (WebSocketDisconnect if it is refused); the session is
        closed on exit.
        """
        session = WebSocketSession(self.app, path, headers, subprotocols, self.client_address)
        await session.connect()
        try:
            yield session
        finally:
            await session.close()


class _SyncWebSocket:
    def __init__(self, session: WebSocketSession, run: Any) -> None:
        self._session = session
        self._run = run

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._session, name)
        if asyncio.iscoroutinefunction(attr):
            return lambda *a, **k: self._run(attr(*a, **k))
        return attr


class TestClient(httpx.Client):
    """The synchronous twin of AsyncTestClient, for plain (non-async) tests."""

    __test__ = False

    def __init__(self, app: ASGIApp, *, base_url: str = BASE_URL, lifespan: bool = True,
                 client: tuple[str, int] = ("127.0.0.1", 50000), **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._async = AsyncTestClient(app, base_url=base_url, lifespan=lifespan, client=client)
        transport = _SyncTransport(self._async._transport, self._run)  # type: ignore[arg-type]
        super().__init__(transport=transport, base_url=base_url, **kwargs)
        self.app = app
        self.run_lifespan = lifespan

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coro)

    def __enter__(self) -> TestClient:
        super().__enter__()
        if self.run_lifespan:
            try:
                self._run(self._async.startup())
            except BaseException:
                self.__exit__(None, None, None)  # close the loop and the client: no leak
                raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            if self.run_lifespan:
                self._run(self._async.shutdown())
        finally:
            super().__exit__(*exc_info)
            self._run(self._async.aclose())
            self._loop.close()

    @contextlib.contextmanager
    def websocket_connect(self, path: str, *, headers: Sequence[tuple[str, str]] = (),
                          subprotocols: Sequence[str] = ()) -> Iterator[Any]:
        """``with client.websocket_connect("/ws") as ws:`` a session whose methods are synchronous.

        Same methods as WebSocketSession (``ws.send_text(...)``, ``ws.receive_text()``); closed on
        exit.
        """
        session = WebSocketSession(self.app, path, headers, subprotocols,
                                   self._async.client_address)
        self._run(session.connect())
        try:
            yield _SyncWebSocket(session, self._run)
        finally:
            self._run(session.close())


class _SyncTransport(httpx.BaseTransport):
    def __init__(self, transport: _AsgiTransport, run: Any) -> None:
        self.transport = transport
        self.run = run

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        content = request.read()
        async_request = httpx.Request(request.method, request.url, headers=request.headers,
                                      content=content)
        response: httpx.Response = self.run(self.transport.handle_async_request(async_request))
        # hand over the raw stream: httpx decodes it (gzip...) once, on the client's side
        return httpx.Response(response.status_code, headers=response.headers.raw,
                              stream=response.stream, request=request)
