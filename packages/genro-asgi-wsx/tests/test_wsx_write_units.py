"""Units of the write path: frame text safe for UTF-8, sizes, fan-out refusal, fair publish."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import ValidationError

from genro_asgi_wsx import MemoryBroker, Publication, PublishError, Subscriber, WsxConfig
from genro_asgi_wsx.wire import NotUtf8, check_utf8, utf8_safe, wire_size

LONE = "a\ud800b\udc00c"


def test_utf8_safe_escapes_surrogates_and_keeps_the_value() -> None:
    inner = json.dumps({"text": LONE}, ensure_ascii=False)  # TYTX-like text, nested below
    frame = json.dumps({"id": LONE, "data": inner, "é": "ü"}, ensure_ascii=False)
    safe = utf8_safe(frame)
    safe.encode("utf-8")  # no UnicodeEncodeError
    decoded = json.loads(safe)
    assert decoded["id"] == LONE and json.loads(decoded["data"]) == {"text": LONE}
    assert decoded["é"] == "ü"
    for fine in ("plain ascii", "é ü \U0001f600"):
        assert utf8_safe(fine) is fine


def test_check_utf8_and_wire_size() -> None:
    with pytest.raises(NotUtf8):
        check_utf8(LONE)
    assert isinstance(NotUtf8("x"), ValueError)
    text = "é \U0001f600"
    assert check_utf8(text) is text
    assert wire_size("abc") == 3 and wire_size(text) == len(text.encode("utf-8")) == 7


class Sink(Subscriber):
    def __init__(self, log: list[Any], backlog: bool = False, fail: bool = False) -> None:
        self.log = log
        self.backlog = backlog
        self.fail = fail

    def prepare(self, publication: Publication) -> Any:
        if self.fail:
            raise ValueError("cannot encode")
        return publication.encoded("test", lambda p: json.dumps(p.data))

    def push(self, prepared: Any) -> bool:
        self.log.append(prepared)
        return self.backlog


async def test_a_publication_one_subscriber_cannot_encode_reaches_nobody() -> None:
    broker = MemoryBroker()
    got: list[Any] = []
    await broker.subscribe("a.b", Sink(got))
    await broker.subscribe("a.b", lambda p: got.append(("plain", p.data)))
    await broker.subscribe("a.*", Sink(got, fail=True))
    with pytest.raises(PublishError, match=r"cannot publish on 'a\.b'"):
        await broker.publish("a.b", 1)
    with pytest.raises(PublishError):
        broker.fan_out(Publication("a.b", 2))
    assert got == []
    with pytest.raises(PublishError):  # only the failing one matches: refused all the same
        await broker.publish("a.c", 3)
    assert got == []
    await broker.publish("x.y", 4)  # nobody subscribed: nothing to encode, nothing refused


async def test_an_event_text_is_encoded_once_and_shared() -> None:
    broker = MemoryBroker()
    got: list[Any] = []
    for _ in range(3):
        await broker.subscribe("c", Sink(got))
    await broker.publish("c", {"v": "é" * 10})
    assert len(got) == 3 and got[0] is got[1] is got[2]
    publication = Publication("c", None)
    text = publication.encoded("k", lambda p: "é" * 10)
    assert publication.size(text) == 20 and publication.size(text) == 20


def test_a_publication_holding_a_lone_surrogate_cannot_be_encoded() -> None:
    publication = Publication("c", LONE)
    with pytest.raises(NotUtf8):
        publication.encoded("k", lambda p: json.dumps(p.data, ensure_ascii=False))
    assert publication.encoded("ascii", lambda p: json.dumps(p.data)) == json.dumps(LONE)


async def test_publish_yields_to_the_loop_only_when_a_subscriber_has_a_backlog() -> None:
    broker = MemoryBroker()
    log: list[Any] = []
    sink = Sink(log)
    await broker.subscribe("c", sink)
    asyncio.get_running_loop().call_soon(log.append, "loop ran")
    await broker.publish("c", 1)
    assert log == ["1"]  # no backlog: the publisher did not yield
    sink.backlog = True
    await broker.publish("c", 2)
    assert log == ["1", "2", "loop ran"]  # a backlog: the writers got a turn before return


def test_budget_options() -> None:
    config = WsxConfig(max_queued_bytes="2MiB", close_timeout=3)
    assert config.max_queued_bytes == 2 * 1024 * 1024 and config.close_timeout == 3
    defaults = WsxConfig()
    assert defaults.max_queued_bytes == 4 * 1024 * 1024 and defaults.close_timeout == 10
    for bad in ({"max_queued_bytes": 10}, {"close_timeout": 0}):
        with pytest.raises(ValidationError):
            WsxConfig(**bad)


def make_connection(tmp_path: Any, send: Any) -> Any:
    """A WsxConnection on a fake socket whose ASGI ``send`` is ``send``."""
    from wsx_helpers import make

    from genro_asgi import WebSocket
    from genro_asgi.websocket import WebSocketState
    from genro_asgi_wsx.connection import WsxConnection

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.disconnect", "code": 1000}

    plugin = make(tmp_path).plugins.get("wsx")
    ws = WebSocket({"type": "websocket", "path": "/_wsx", "headers": []}, receive, send)
    ws.connection_state = WebSocketState.CONNECTED
    return WsxConnection(plugin, ws, receive, send, None, False, False)


@pytest.mark.parametrize(("error", "code", "logged"), [
    (OSError("connection reset"), None, False),  # the client is gone: end quietly
    (RuntimeError("after close"), None, False),  # the server's state error: gone too
    (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), 1011, True),
    (TypeError("bad frame"), 1011, True),  # the frame cannot be written: a bug
])
async def test_a_failed_send_is_a_gone_client_or_a_logged_bug(
        tmp_path: Any, caplog: pytest.LogCaptureFixture, error: Exception, code: int | None,
        logged: bool) -> None:
    async def send(message: dict[str, Any]) -> None:
        raise error

    conn = make_connection(tmp_path, send)
    conn.reply('WSX://{"id":1,"status":200,"data":"1"}')
    assert conn._closed.is_set() and conn.close_code == code
    assert any("could not be sent" in r.getMessage() for r in caplog.records) is logged


async def test_frames_are_counted_in_bytes_and_a_full_budget_closes_4000(tmp_path: Any) -> None:
    blocked = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        await blocked.wait()  # a client that does not read: every send waits

    conn = make_connection(tmp_path, send)
    conn.max_bytes = 2000
    conn.reply("WSX://" + "é" * 600)  # waits, so it is queued: 1,206 bytes
    assert conn.queued_bytes == 1206 and conn.close_code is None
    conn.send("WSX://" + "x" * 10)
    conn.send("WSX://" + LONE)  # made safe first: 6 + 1 + 6 + 1 + 6 + 1 bytes
    assert conn.queued_bytes == 1206 + 16 + 21 and conn.close_code is None
    item, size = conn.queue._queue[-1]
    assert item == "WSX://a\\ud800b\\udc00c" and size == 21
    conn.send("WSX://" + "y" * 800)  # past max_bytes with frames waiting: the client is slow
    assert conn.close_code == 4000 and conn.queued_bytes == 1243


async def test_a_frame_into_an_empty_queue_is_taken_however_large(tmp_path: Any) -> None:
    async def send(message: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    conn = make_connection(tmp_path, send)
    conn.max_bytes = 1024
    conn.send("WSX://" + "z" * 5000)
    assert conn.queued_bytes == 5006 and conn.close_code is None
    conn.max_frames = 1
    conn.send("WSX://{}")  # the frame budget: one is waiting already
    assert conn.close_code == 4000
