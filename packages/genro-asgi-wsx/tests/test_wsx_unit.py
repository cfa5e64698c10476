"""Units: channel grammar and matching, the memory broker, options, the safe decoders."""

from __future__ import annotations

from typing import Any

import pytest

from genro_asgi import AsgiServer, ConfigError, PluginError
from genro_asgi.plugins import installed_plugins
from genro_asgi_wsx import MemoryBroker, Publication, WsxConfig, WsxError, WsxPlugin
from genro_asgi_wsx.channels import check_channel, check_pattern, overlaps, pattern_matches
from genro_asgi_wsx.codec import check_depth, parse_json, parse_tytx, tytx_json_fragment


@pytest.mark.parametrize(("pattern", "channel", "expected"), [
    ("orders.*", "orders.42", True),
    ("orders.*", "orders.42.lines", False),
    ("orders.*", "orders", False),
    ("orders.>", "orders.42", True),
    ("orders.>", "orders.42.lines", True),
    ("orders.>", "orders", False),
    ("*.42", "orders.42", True),
    (">", "anything.at.all", True),
    ("orders.42", "orders.42", True),
    ("orders.42", "orders.43", False),
])
def test_pattern_matching(pattern: str, channel: str, expected: bool) -> None:
    assert pattern_matches(pattern, channel) is expected


@pytest.mark.parametrize("bad", ["", "a..b", "a b", "a.*", "a.>", ".a", "a.", 5, None,
                                 "x" * 201, ".".join(["a"] * 17), "città"])
def test_bad_channels(bad: Any) -> None:
    assert check_channel(bad) is not None


@pytest.mark.parametrize(("pattern", "ok"), [
    ("a.*", True), ("a.>", True), ("*", True), (">", True), ("a.>.b", False),
    ("a*", False), ("a.**", False), ("", False)])
def test_patterns(pattern: str, ok: bool) -> None:
    assert (check_pattern(pattern) is None) is ok


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("staff.>", "staff.*", True), ("staff.>", ">", True), ("staff.>", "public.*", False),
    ("staff.>", "staff", False), ("a.*", "*.b", True), ("a.b", "a.c", False)])
def test_overlaps(a: str, b: str, expected: bool) -> None:
    assert overlaps(a.split("."), b.split(".")) is expected
    assert overlaps(b.split("."), a.split(".")) is expected


async def test_memory_broker_delivers_and_isolates_failures() -> None:
    broker = MemoryBroker()
    got: list[tuple[str, Any]] = []

    def failing(publication: Publication) -> None:
        raise RuntimeError("subscriber bug")

    exact = await broker.subscribe("a.b", lambda p: got.append(("exact", p.data)))
    await broker.subscribe("a.*", failing)
    await broker.subscribe("a.>", lambda p: got.append(("rest", p.data)))
    assert broker.fan_out(Publication("a.b", 1)) == 2
    await broker.unsubscribe(exact)
    await broker.unsubscribe(exact)  # twice is harmless
    await broker.publish("a.b", 2)
    assert got == [("exact", 1), ("rest", 1), ("rest", 2)]
    assert broker.subscription_count == 2


def test_publication_encodes_once_per_format() -> None:
    calls: list[str] = []
    publication = Publication("c", {"x": 1})

    def encode(p: Publication) -> str:
        calls.append(p.channel)
        return "encoded"

    assert publication.encoded("wsx", encode) == publication.encoded("wsx", encode)
    assert calls == ["c"]


def test_options_validated_with_precise_keys(tmp_path: Any) -> None:
    for options, key in [({"path": "/"}, "path"), ({"max_in_flight": 0}, "max_in_flight"),
                         ({"subprotocols": ["mqtt"]}, "subprotocols"),
                         ({"subprotocols": []}, "subprotocols"),
                         ({"channel_auth": {"a b": "admin"}}, "channel_auth"),
                         ({"bogus": 1}, "bogus")]:
        with pytest.raises(PluginError, match=rf"plugins\.wsx\.{key}"):
            AsgiServer(tmp_path, config={"plugins": {"wsx": options}}, environ={})
    config = WsxConfig(max_message_size="2MiB", path="/ws/")
    assert int(config.max_message_size) == 2 * 1024 * 1024 and config.path == "/ws"


def test_defaults() -> None:
    config = WsxConfig()
    assert (int(config.max_message_size), config.max_in_flight, config.max_subscriptions,
            config.max_batch, config.outbound_queue, config.heartbeat_interval,
            config.heartbeat_timeout, config.max_depth) == (1024 * 1024, 32, 100, 100, 1000,
                                                            20.0, 20.0, 128)


@pytest.mark.parametrize("depth", [0, 401])
def test_max_depth_bounds(tmp_path: Any, depth: int) -> None:
    with pytest.raises(PluginError, match=r"plugins\.wsx\.max_depth"):
        AsgiServer(tmp_path, config={"plugins": {"wsx": {"max_depth": depth}}}, environ={})


def nested(depth: int, inner: str = "1") -> str:
    """Arrays and objects alternating, ``depth`` containers deep."""
    opening = "".join('{"k":' if level % 2 else "[" for level in range(depth))
    closing = "".join("}" if level % 2 else "]" for level in reversed(range(depth)))
    return opening + inner + closing


@pytest.mark.parametrize("limit", [1, 2, 5, 128])
def test_check_depth_allows_the_limit_and_refuses_one_more(limit: int) -> None:
    at_limit = nested(limit)
    check_depth(at_limit, parse_json(at_limit), limit)
    too_deep = nested(limit + 1)
    with pytest.raises(WsxError, match=f"nested deeper than {limit} levels") as refused:
        check_depth(too_deep, parse_json(too_deep), limit)
    assert refused.value.kind.code == "parse_error"


def test_check_depth_counts_the_deepest_branch_not_the_brackets() -> None:
    wide = "[" + ",".join(["[[1]]"] * 200) + "]"  # 600 brackets, 3 deep
    check_depth(wide, parse_json(wide), 3)
    in_strings = '["' + "[" * 500 + '"]'  # brackets inside a string are not nesting
    check_depth(in_strings, parse_json(in_strings), 1)
    lopsided = '{"a":[1,2],"b":' + nested(10) + "}"
    with pytest.raises(WsxError):
        check_depth(lopsided, parse_json(lopsided), 10)
    for scalar in ("1", '"x"', "null"):
        check_depth(scalar, parse_json(scalar), 1)


def test_check_depth_on_typed_values() -> None:
    text = "[" * 6 + '"1.5::N"' + "]" * 6 + "::JS"
    check_depth(text, parse_tytx(text), 6, typed=True)
    with pytest.raises(WsxError):
        check_depth(text, parse_tytx(text), 5, typed=True)


def test_tytx_text_refuses_non_finite_floats_but_not_their_names() -> None:
    from genro_asgi_wsx.codec import tytx_text

    for value in (float("nan"), float("inf"), {"deep": [1, float("-inf")]}):
        with pytest.raises(ValueError, match="not JSON compliant"):
            tytx_text(value)
    assert tytx_text({"a": "NaN", "b": ["Infinity"]}) == '{"a":"NaN","b":["Infinity"]}'
    assert tytx_text("NaN") == '"NaN"'


def test_typed_strings_that_hydrate_into_containers_are_walked() -> None:
    """``::QS`` hydrates into a list: nesting without a single bracket in the text."""
    text = '"a' + "::QS" * 8 + '"'
    hydrated = parse_tytx(text)
    check_depth(text, hydrated, 5)  # as plain JSON the text cannot nest: not walked
    with pytest.raises(WsxError, match="nested deeper than 5 levels"):
        check_depth(text, hydrated, 5, typed=True)
    check_depth(text, hydrated, 8, typed=True)


def test_entry_point_and_loading(tmp_path: Any) -> None:
    assert installed_plugins()["wsx"].value == "genro_asgi_wsx.plugin:WsxPlugin"
    assert "wsx" not in AsgiServer(tmp_path, config={}, environ={}).plugins.names()
    server = AsgiServer(tmp_path, config={"plugins": {"wsx": {"path": "/rt"}}}, environ={})
    assert isinstance(server.plugins.get("wsx"), WsxPlugin)
    assert server.find_route("/rt") is None  # an ASGI mount, not a route


@pytest.mark.parametrize("text", ["{", "[" * 50_000, '{"a":NaN}', '{"a":Infinity}',
                                  "1" * 5000, ""])
def test_parse_json_refuses_cleanly(text: str) -> None:
    with pytest.raises(WsxError) as failed:
        parse_json(text)
    assert failed.value.kind.code == "parse_error"


@pytest.mark.parametrize("text", ['{"p":"x::N"}::JS', '{"d":"2025-13-01::D"}', "{broken",
                                  "[" * 50_000 + "]" * 50_000 + "::JS"])
def test_parse_tytx_refuses_cleanly(text: str) -> None:
    with pytest.raises(WsxError):
        parse_tytx(text)


def test_tytx_fragment() -> None:
    from decimal import Decimal

    assert tytx_json_fragment({"a": 1}) == ('{"a":1}', False)
    assert tytx_json_fragment(Decimal("1.5")) == ('"1.5::N"', True)
    assert tytx_json_fragment(None) == ("null", False)


async def test_heartbeat_pings_a_quiet_client_only_and_drops_a_silent_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames read since the heartbeat last looked prove the client alive; no frame after a
    ping closes 4002. Driven step by step: each sleep is one scripted stretch of traffic."""
    from types import SimpleNamespace

    from genro_asgi_wsx import connection as connection_module
    from genro_asgi_wsx.connection import WsxConnection
    from genro_asgi_wsx.errors import CloseCode

    sent: list[str] = []
    closed: list[int] = []
    conn = SimpleNamespace(
        config=SimpleNamespace(heartbeat_interval=5.0, heartbeat_timeout=2.0),
        protocol=SimpleNamespace(ping_frame=lambda: "ping"), frames_in=7,
        send=sent.append, close=closed.append)
    # frames the client sends during each sleep: traffic (no ping), quiet (ping), a pong,
    # quiet again (ping), then silence after the ping
    script = [3, 0, 1, 0, 0]
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)
        conn.frames_in += script[len(slept) - 1]

    monkeypatch.setattr(connection_module.asyncio, "sleep", sleep)
    await WsxConnection._heartbeat(conn)  # type: ignore[arg-type]
    assert slept == [5.0, 5.0, 2.0, 5.0, 2.0]
    assert sent == ["ping", "ping"]
    assert closed == [CloseCode.HEARTBEAT_TIMEOUT]


def test_broker_from_config(tmp_path: Any) -> None:
    from wsx_helpers import RecordingBroker

    server = AsgiServer(tmp_path, config={"plugins": {"wsx": {
        "broker": "wsx_helpers:RecordingBroker", "broker_options": {"label": "eu-1"}}}},
        environ={})
    broker = server.plugins.get("wsx").broker
    assert isinstance(broker, RecordingBroker) and broker.label == "eu-1"
    default = AsgiServer(tmp_path, config={"plugins": {"wsx": {}}}, environ={})
    assert type(default.plugins.get("wsx").broker) is MemoryBroker


@pytest.mark.parametrize(("options", "key", "message"), [
    ({"broker": "nats"}, "broker", "must be 'memory' or 'pkg.module:Class'"),
    ({"broker": "no_such_module_here:Broker"}, "broker", "cannot import"),
    ({"broker": "wsx_helpers:NoSuchClass"}, "broker", "cannot import"),
    ({"broker": "wsx_helpers:Shop"}, "broker", "is not a genro_asgi_wsx.Broker subclass"),
    ({"broker": "genro_asgi_wsx.broker:Broker"}, "broker", "is abstract"),
    ({"broker": "wsx_helpers:RecordingBroker", "broker_options": {"colour": "red"}},
     "broker_options", "unexpected keyword argument 'colour'"),
    ({"broker_options": {"x": 1}}, "broker_options", "MemoryBroker.. got an unexpected"),
    ({"broker": "wsx_helpers:RecordingBroker", "broker_options": {"label": ""}},
     "broker", "failed to start: ValueError"),
])
def test_a_bad_broker_is_a_config_error_naming_the_key(tmp_path: Any, options: dict[str, Any],
                                                      key: str, message: str) -> None:
    with pytest.raises((PluginError, ConfigError), match=rf"plugins\.wsx\.{key}.*{message}"):
        AsgiServer(tmp_path, config={"plugins": {"wsx": options}}, environ={})
