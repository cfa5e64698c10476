"""Connections that never finish, over a real uvicorn with genro-asgi's HTTP protocol.

Raw sockets play the misbehaving clients: one that connects and sends nothing, one that stops
halfway through its request head, one that sends its body slower than it promised, one with
an endless header line. Each must be answered (408/414/431) or closed within the configured
time, free its ``limit_concurrency`` slot and its envelope, and never disturb a well-behaved
client (keep-alive, a body that arrives in pieces, WebSockets).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from genro_asgi import AsgiApplication, AsgiServer, Request, route
from genro_asgi.http_protocol import (
    H11Protocol,
    HttpLimits,
    HttpToolsProtocol,
    limits_for,
    protocol_class,
)
from genro_asgi.request import ClientDisconnect
from genro_asgi.testing import LiveServer
from genro_asgi.testing.live import free_port

pytestmark = pytest.mark.e2e

WAIT = 15.0  # bound on every wait: generous, so a loaded machine never makes a test flaky
PROTOCOLS = ["httptools", "h11"]


class Target(AsgiApplication):
    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.disconnects = 0
        self.release = threading.Event()

    @route()
    def hello(self, q: str = "") -> str:
        return "hello"

    @route(methods=["POST"])
    async def upload(self, request: Request) -> dict[str, int]:
        try:
            body = await request.body()
        except ClientDisconnect:
            self.disconnects += 1
            raise
        return {"size": len(body)}

    @route(methods=["POST"])
    async def late_upload(self, request: Request) -> dict[str, int]:
        await asyncio.sleep(2.0)  # twice body_timeout before the body is read
        return {"size": len(await request.body())}

    @route()
    def slow(self) -> str:
        self.release.wait(WAIT)
        return "slow done"


def build(tmp_path: Path, **server: Any) -> tuple[AsgiServer, Target]:
    settings: dict[str, Any] = {"head_timeout": 0.5, "body_timeout": 0.5,
                                "body_min_rate": None, "timeout_keep_alive": 5, **server}
    app_server = AsgiServer(tmp_path, config={"server": settings,
                                              "logging": {"access_log": False}}, environ={})
    target = Target()
    app_server.mount("/", target)
    return app_server, target


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., tuple[LiveServer, AsgiServer, Target]]]:
    lives: list[LiveServer] = []

    def start(**server: Any) -> tuple[LiveServer, AsgiServer, Target]:
        app_server, target = build(tmp_path, **server)
        live = LiveServer(app_server).start()
        lives.append(live)
        return live, app_server, target

    yield start
    for live in lives:
        live.stop()


def connect(live: LiveServer) -> socket.socket:
    return socket.create_connection((live.host, live.port), timeout=WAIT)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; fails if it keeps the connection open."""
    chunks = []
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        except TimeoutError:
            pytest.fail(f"the server kept the connection open for {WAIT}s")
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length, leaving the connection open."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return head + b"\r\n\r\n" + body


def status(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response.split(b" ", 2)[1])


def wait_until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


GET_HELLO = b"GET /hello HTTP/1.1\r\nHost: test\r\n\r\n"


# -- the head ----------------------------------------------------------------------------------

@pytest.mark.parametrize("http", PROTOCOLS)
def test_a_connection_that_sends_nothing_is_closed(serve: Any, http: str) -> None:
    live, _, _ = serve(http=http)
    with connect(live) as sock:
        assert read_until_closed(sock) == b""  # nothing to answer: just closed


@pytest.mark.parametrize("http", PROTOCOLS)
def test_half_a_head_gets_408(serve: Any, http: str) -> None:
    live, _, _ = serve(http=http)
    with connect(live) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        response = read_until_closed(sock)
    assert status(response) == 408
    assert b"connection: close" in response.lower()
    assert response.endswith(b"Request head not received in time.")


@pytest.mark.parametrize("http", PROTOCOLS)
def test_half_a_head_after_a_kept_alive_request_gets_408(serve: Any, http: str) -> None:
    live, _, _ = serve(http=http)
    with connect(live) as sock:
        sock.sendall(GET_HELLO)
        assert read_response(sock).endswith(b"hello")
        sock.sendall(b"GET /hel")
        assert status(read_until_closed(sock)) == 408


@pytest.mark.parametrize("http", PROTOCOLS)
def test_a_head_dripped_byte_by_byte_is_cut_at_head_timeout(serve: Any, http: str) -> None:
    live, _, _ = serve(http=http)
    stop = threading.Event()
    with connect(live) as sock:
        def drip() -> None:  # well within the head timeout between bytes, never ending
            try:
                while not stop.is_set():
                    sock.sendall(b"a")
                    time.sleep(0.05)
            except OSError:
                pass

        sock.sendall(b"GET /hello HTTP/1.1\r\nX-Drip: ")
        dripper = threading.Thread(target=drip)
        dripper.start()
        try:
            assert status(read_until_closed(sock)) == 408
        finally:
            stop.set()
            dripper.join(WAIT)


def test_a_kept_alive_connection_stays_open_past_head_timeout(serve: Any) -> None:
    """head_timeout runs from the first byte of a request; between requests the (longer)
    keep-alive timeout applies."""
    live, _, _ = serve(head_timeout=0.3, timeout_keep_alive=5)
    with connect(live) as sock:
        for _ in range(3):
            sock.sendall(GET_HELLO)
            assert read_response(sock).endswith(b"hello")
            time.sleep(0.8)


def test_an_endless_header_line_gets_431(serve: Any) -> None:
    live, _, _ = serve(max_header_size="4KiB", max_url_size="1KiB", head_timeout=30)
    received: list[bytes] = []
    with connect(live) as sock:
        reader = threading.Thread(target=lambda: received.append(read_until_closed(sock)))
        reader.start()
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: test\r\nX-Big: ")
        try:
            for _ in range(1024):  # up to 64 MiB, the head never ends
                sock.sendall(b"a" * 65536)
                if received:
                    break
        except OSError:  # the server closed: what it answered is in received
            pass
        reader.join(WAIT)
    response = received[0]
    assert status(response) == 431
    assert b"Request head larger than" in response


def test_an_endless_url_gets_414(serve: Any) -> None:
    live, _, _ = serve(max_url_size="1KiB", head_timeout=30)
    received: list[bytes] = []
    with connect(live) as sock:
        reader = threading.Thread(target=lambda: received.append(read_until_closed(sock)))
        reader.start()
        sock.sendall(b"GET /hello?q=")
        try:
            for _ in range(1024):
                sock.sendall(b"a" * 65536)
                if received:
                    break
        except OSError:
            pass
        reader.join(WAIT)
    assert status(received[0]) == 414


@pytest.mark.parametrize("http", PROTOCOLS)
def test_a_complete_url_over_the_limit_gets_414(serve: Any, http: str) -> None:
    live, _, _ = serve(http=http, max_url_size="1KiB")
    with connect(live) as sock:
        sock.sendall(b"GET /hello?q=" + b"a" * 2000 + b" HTTP/1.1\r\nHost: test\r\n\r\n")
        response = read_until_closed(sock)
    assert status(response) == 414  # the errors plugin's answer, and the connection closed
    assert b'"message":"Request URL larger than 1024 bytes."' in response
    with connect(live) as sock:  # just under the limit is served
        sock.sendall(b"GET /hello?q=" + b"a" * 1000 + b" HTTP/1.1\r\nHost: test\r\n\r\n")
        assert read_response(sock).endswith(b"hello")


def test_h11_head_over_the_budget_gets_431(serve: Any) -> None:
    live, _, _ = serve(http="h11", max_header_size="2KiB", max_url_size="1KiB")
    with connect(live) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 8000)
        response = read_until_closed(sock)
    assert status(response) == 431


# -- the body ----------------------------------------------------------------------------------

@pytest.mark.parametrize("http", PROTOCOLS)
def test_a_stalled_body_gets_408_and_releases_the_request(serve: Any, http: str) -> None:
    live, app_server, target = serve(http=http)
    with connect(live) as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n"
                     + b"x" * 10)
        response = read_until_closed(sock)
    assert status(response) == 408
    assert response.endswith(b"Request body not received in time.")
    # the handler's receive() saw the disconnect, and its envelope is gone
    wait_until(lambda: target.disconnects == 1)
    wait_until(lambda: len(app_server.envelopes) == 0)


def test_a_body_dripped_below_the_minimum_rate_gets_408(serve: Any) -> None:
    # never silent for body_timeout, but 10 bytes/s against a minimum of 20
    live, app_server, _ = serve(body_timeout=0.5, body_min_rate=20)
    stop = threading.Event()
    with connect(live) as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\n")

        def drip() -> None:
            try:
                while not stop.is_set():
                    sock.sendall(b"x")
                    time.sleep(0.1)
            except OSError:
                pass

        dripper = threading.Thread(target=drip)
        dripper.start()
        try:
            assert status(read_until_closed(sock)) == 408
        finally:
            stop.set()
            dripper.join(WAIT)
    wait_until(lambda: len(app_server.envelopes) == 0)


@pytest.mark.parametrize("http", PROTOCOLS)
def test_a_body_in_pieces_within_the_timeout_is_served(serve: Any, http: str) -> None:
    # the pauses add up to more than body_timeout: only silence counts, not the total
    live, _, _ = serve(http=http, body_timeout=3.0)
    with connect(live) as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 800\r\n\r\n")
        for _ in range(8):
            time.sleep(0.4)
            sock.sendall(b"y" * 100)
        response = read_response(sock)
        assert status(response) == 200
        assert response.endswith(b'{"size":800}')
        sock.sendall(GET_HELLO)  # still kept alive
        assert read_response(sock).endswith(b"hello")


@pytest.mark.parametrize("http", PROTOCOLS)
def test_a_stalled_chunked_body_gets_408(serve: Any, http: str) -> None:
    live, app_server, target = serve(http=http)
    with connect(live) as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
                     b"\r\n5\r\nhello\r\n")  # no last chunk
        assert status(read_until_closed(sock)) == 408
    wait_until(lambda: target.disconnects == 1)
    wait_until(lambda: len(app_server.envelopes) == 0)


@pytest.mark.parametrize("http", PROTOCOLS)
def test_expect_100_continue_is_not_a_stalled_body(serve: Any, http: str) -> None:
    # the handler reads the body (so uvicorn sends 100 Continue) only after body_timeout
    # 1 s of silence allowed once the body is read: a loaded machine still delivers in time
    live, _, _ = serve(http=http, body_timeout=1.0)
    with connect(live) as sock:
        sock.sendall(b"POST /late_upload HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        interim = sock.recv(1024)
        assert interim.startswith(b"HTTP/1.1 100 ")
        sock.sendall(b"hello")
        assert read_response(sock).endswith(b'{"size":5}')


@pytest.mark.parametrize("http", PROTOCOLS)
def test_a_body_the_handler_reads_late_is_not_a_stalled_body(serve: Any, http: str) -> None:
    # uvicorn stops reading once 64 KiB wait unread: that pause is ours, not the client's
    live, _, _ = serve(http=http, body_timeout=1.0, max_body_size="4MiB")
    size = 2 * 1024 * 1024
    with connect(live) as sock:
        sock.sendall(b"POST /late_upload HTTP/1.1\r\nHost: test\r\nContent-Length: "
                     + str(size).encode() + b"\r\n\r\n" + b"z" * size)
        response = read_response(sock)
    assert response.endswith(b'{"size":%d}' % size)


# -- other clients -----------------------------------------------------------------------------

def test_idle_connections_free_their_limit_concurrency_slots(serve: Any) -> None:
    live, _, _ = serve(limit_concurrency=3)
    idle = [connect(live) for _ in range(3)]
    try:
        for sock in idle:
            assert read_until_closed(sock) == b""
        with connect(live) as sock:
            sock.sendall(GET_HELLO)
            assert status(read_response(sock)) == 200
    finally:
        for sock in idle:
            sock.close()


def test_a_stalled_pipelined_head_waits_for_the_response_in_flight(serve: Any) -> None:
    live, _, target = serve()
    with connect(live) as sock:
        # the second request's head never ends while the first is still being answered
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\nGET /hello HTTP/1.1\r\nX-")
        time.sleep(1.0)  # past head_timeout
        target.release.set()
        response = read_until_closed(sock)
    assert status(response) == 200
    # delivered whole, then the connection closed (on a machine so slow that the head timer
    # fired only after the response, a whole 408 follows it)
    first, _, rest = response.partition(b"slow done")
    assert first and (rest == b"" or rest.startswith(b"HTTP/1.1 408 "))


def test_websocket_outlives_head_timeout(serve: Any) -> None:
    from websockets.sync.client import connect as ws_connect

    live, app_server, _ = serve()

    async def echo(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message.get("text")})

    app_server.mount("/ws", echo)
    with ws_connect(live.ws_url + "/ws", open_timeout=WAIT) as ws:
        time.sleep(1.0)  # twice head_timeout
        ws.send("still here")
        assert ws.recv(timeout=WAIT) == "still here"


@pytest.mark.parametrize("http", PROTOCOLS)
def test_a_malformed_request_on_a_kept_alive_connection_gets_400(serve: Any, http: str) -> None:
    # the read that follows a finished request is the protocol's fast path
    live, _, _ = serve(http=http)
    with connect(live) as sock:
        sock.sendall(GET_HELLO)
        assert read_response(sock).endswith(b"hello")
        sock.sendall(b"GET /hello HTTP/1.1\r\nBad Header\r\n\r\n")
        response = read_until_closed(sock)
    assert status(response) == 400
    assert b"Invalid HTTP request received." in response  # h11 sends it chunked


def test_a_websocket_upgrade_on_a_kept_alive_connection(serve: Any) -> None:
    live, app_server, _ = serve()

    async def echo_once(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": "echo " + message["text"]})

    app_server.mount("/ws", echo_once)
    with connect(live) as sock:
        sock.sendall(GET_HELLO)
        assert read_response(sock).endswith(b"hello")
        sock.sendall(b"GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            assert chunk, data
            data += chunk
        assert data.startswith(b"HTTP/1.1 101 ")
        time.sleep(1.0)  # past head_timeout: the upgraded connection is not cut
        masked = bytes(b ^ m for b, m in zip(b"ping", b"abcd", strict=True))
        sock.sendall(b"\x81\x84abcd" + masked)  # a masked text frame "ping"
        data = data.partition(b"\r\n\r\n")[2]
        while b"echo ping" not in data:
            chunk = sock.recv(4096)
            assert chunk, data
            data += chunk


def test_other_clients_are_served_while_slow_ones_wait(serve: Any) -> None:
    live, _, _ = serve(head_timeout=5, body_timeout=5)
    slow = [connect(live) for _ in range(20)]
    try:
        for i, sock in enumerate(slow):
            sock.sendall(b"GET /hello HTTP/1.1\r\n" if i % 2 else
                         b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\nx")
        with connect(live) as sock:
            sock.sendall(GET_HELLO)
            assert read_response(sock).endswith(b"hello")
    finally:
        for sock in slow:
            sock.close()


# -- the real run() in its own process: memory ------------------------------------------------

SERVE_SCRIPT = textwrap.dedent('''
    import sys
    from genro_asgi import AsgiApplication, AsgiServer, route

    class Hello(AsgiApplication):
        @route()
        def hello(self):
            return "hello"

    server = AsgiServer(sys.argv[1], environ={}, config={
        "server": {"port": int(sys.argv[2]), "head_timeout": 30},
        "logging": {"level": "WARNING", "access_log": False}})
    server.mount("/", Hello())
    server.run()
''')


def _memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_run_bounds_the_memory_of_an_endless_header_line(tmp_path: Path) -> None:
    """``AsgiServer.run()`` (the path of ``genro-asgi serve``) answers a 64 MiB header line
    with a 431 and never holds more than a fraction of it."""
    port = free_port()
    script = tmp_path / "serve.py"
    script.write_text(SERVE_SCRIPT)
    process = subprocess.Popen([sys.executable, str(script), str(tmp_path), str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
                    sock.sendall(GET_HELLO)
                    assert read_response(sock).endswith(b"hello")
                break
            except ConnectionRefusedError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        before = _memory_kib(process.pid, "VmRSS")
        received: list[bytes] = []
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
            reader = threading.Thread(target=lambda: received.append(read_until_closed(sock)))
            reader.start()
            sock.sendall(b"GET /hello HTTP/1.1\r\nHost: test\r\nX-Big: ")
            try:
                for _ in range(1024):  # 64 MiB
                    sock.sendall(b"a" * 65536)
            except OSError:
                pass
            reader.join(WAIT)
        assert status(received[0]) == 431
        grown = _memory_kib(process.pid, "VmHWM") - before
        assert grown < 16 * 1024, f"the server grew by {grown} KiB for a 64 MiB header line"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


HELLO_MODULE = textwrap.dedent('''
    from genro_asgi import AsgiApplication, route

    class Hello(AsgiApplication):
        @route()
        def hello(self):
            return "hello"
''')


def test_serve_with_workers_guards_every_worker(tmp_path: Path) -> None:
    """``genro-asgi serve --workers 2``: each worker process builds its server from
    config.yaml and serves with the guarded protocol."""
    (tmp_path / "hello_slow.py").write_text(HELLO_MODULE)
    (tmp_path / "config.yaml").write_text(textwrap.dedent('''
        server: {head_timeout: 0.5}
        logging: {level: WARNING, access_log: false}
        apps:
          h: {module: "hello_slow:Hello"}
    '''))
    port = free_port()
    cli = Path(sys.executable).with_name("genro-asgi")
    process = subprocess.Popen([str(cli), "serve", str(tmp_path), "--port", str(port),
                                "--workers", "2"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
                    sock.sendall(b"GET /h/hello HTTP/1.1\r\nHost: test\r\n\r\n")
                    assert read_response(sock).endswith(b"hello")
                break
            except (ConnectionRefusedError, ConnectionResetError, AssertionError):
                assert process.poll() is None, "genro-asgi serve exited"
                assert time.monotonic() < deadline, "the workers did not start"
                time.sleep(0.2)
        for _ in range(4):  # whichever worker accepts it
            with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
                sock.sendall(b"GET /h/hello HTTP/1.1\r\nHost: te")
                assert status(read_until_closed(sock)) == 408
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(WAIT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: the workers too
            process.wait()


# -- configuration -----------------------------------------------------------------------------

def test_limits_come_from_the_served_server(tmp_path: Path) -> None:
    app_server, _ = build(tmp_path, head_timeout=3, body_timeout=7, body_min_rate="2KiB",
                          max_url_size="1KiB", max_header_size="4KiB", max_header_count=10,
                          send_timeout=11)
    # uvicorn wraps the app (here for proxy headers); the limits are still found
    config = Config(app_server, proxy_headers=True)
    config.load()
    assert isinstance(config.loaded_app, ProxyHeadersMiddleware)
    limits = limits_for(config)
    assert limits == HttpLimits(head_timeout=3, body_timeout=7, body_min_rate=2048,
                                max_url_size=1024, head_budget=1024 + 4096 + 4 * 10,
                                send_timeout=11)
    assert limits_for(config) is limits  # found once per config


def test_another_app_gets_the_defaults() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    config = Config(app)
    config.load()
    limits = limits_for(config)
    assert (limits.head_timeout, limits.body_timeout, limits.body_min_rate) == (10, 30, 1024)
    assert limits.head_budget == 8192 + 16384 + 400


def test_run_and_live_server_serve_with_the_guarded_protocol(tmp_path: Path) -> None:
    app_server, _ = build(tmp_path)
    assert app_server.uvicorn_options()["http"] is HttpToolsProtocol
    assert build(tmp_path, http="h11")[0].uvicorn_options()["http"] is H11Protocol
    assert protocol_class("auto") is HttpToolsProtocol
    live = LiveServer(app_server)
    assert live.server.config.http is HttpToolsProtocol
    assert LiveServer(app_server, http="h11").server.config.http == "h11"  # explicit wins


@pytest.mark.parametrize("key, value", [("head_timeout", 0), ("body_timeout", -1),
                                        ("body_min_rate", 0), ("max_url_size", 0),
                                        ("http", "zttp")])
def test_bad_settings_are_refused(tmp_path: Path, key: str, value: Any) -> None:
    from genro_asgi.exceptions import ConfigError

    with pytest.raises(ConfigError, match=f"server.{key}"):
        AsgiServer(tmp_path, config={"server": {key: value}}, environ={})


def test_body_min_rate_can_be_switched_off(tmp_path: Path) -> None:
    app_server = AsgiServer(tmp_path, config={"server": {"body_min_rate": None}}, environ={})
    assert app_server.settings.server.body_min_rate is None
    assert HttpLimits.from_settings(app_server.settings.server).body_min_rate is None

