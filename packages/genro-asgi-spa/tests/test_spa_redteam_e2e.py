"""A hostile client over a real uvicorn (the ``websockets`` client, WSX and JSON-RPC).

What one user may pile up beyond its pages (connections and sessions holding data), its change
rate across new pages, message size, the byte count of a value's keys, a token signed with the
same key for another purpose, and wrong types of every kind: each refused with a stable code,
nothing else disturbed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from genro_toolbox import sign
from spa_helpers import TOKENS, Clock, make_server
from test_spa_e2e import TIMEOUT, LivePage
from websockets.sync.client import connect

from genro_asgi.testing import LiveServer
from genro_asgi_spa import spa_of


def _refused(frame: dict[str, object], status: int, code: str) -> None:
    assert frame["status"] == status, frame
    error = frame["error"]
    assert isinstance(error, dict) and str(error["message"]).startswith(code + ":"), frame


def test_one_user_cannot_pile_up_connections_holding_data(tmp_path: Path) -> None:
    server = make_server(tmp_path, {"max_connections_per_user": 3, "grace_period": 0})
    with LiveServer(server) as live:
        tokens = []
        for _ in range(3):  # a new browser connection each time (no cookie)
            page = LivePage(live, "alice")
            answer = page.ok("register")
            tokens.append(answer["connection_token"])
            page.ok("set", level="connection", path="blob", value="x" * 100)
            page.close()
        attacker = LivePage(live, "alice")
        _refused(attacker.call("register"), 429, "spa_too_many_connections")
        # the refusal changed nothing: alice's known connections still open pages
        attacker.ok("register", connection=tokens[0])
        assert attacker.ok("get", level="connection", path="blob") == "x" * 100
        attacker.close()
        other = LivePage(live, "bob")  # another user is not counted with alice
        other.ok("register")
        other.ok("set", level="connection", path="k", value=1)
        other.close()
        manager = spa_of(server)
        assert len(manager.backend._records["connection"]) <= 4  # type: ignore[attr-defined]


def test_one_user_cannot_pile_up_sessions_holding_data(tmp_path: Path) -> None:
    server = make_server(tmp_path, {"max_sessions_per_user": 3})
    with LiveServer(server) as live:
        page = LivePage(live, "alice")
        first = page.ok("register")
        token = first["connection_token"]
        page.ok("set", level="session", path="blob", value="x" * 100)
        page.ok("unregister")
        for _ in range(2):  # one socket: register a master page, store, unregister, again
            page.ok("register", connection=token)
            page.ok("set", level="session", path="blob", value="x" * 100)
            page.ok("unregister")
        _refused(page.call("register", connection=token), 429, "spa_too_many_sessions")
        # joining a session the user holds is no new session
        joined = page.ok("register", connection=token, session_id=first["session_id"])
        assert joined["session_id"] == first["session_id"]
        assert page.ok("get", level="session", path="blob") == "x" * 100
        page.close()
        other = LivePage(live, "bob")
        other.ok("register")
        other.close()


def test_a_level_of_the_wrong_type_is_a_400_not_a_500(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    with LiveServer(server) as live:
        page = LivePage(live, "alice")
        page.ok("register")
        for name, data in (("set", {"level": ["user"], "path": "x", "value": 1}),
                           ("get", {"level": {"a": 1}}),
                           ("delete", {"level": ["page"]}),
                           ("subscribe", {"level": ["user"], "path": ""})):
            _refused(page.call(name, **data), 400, "spa_bad_request")
        assert page.ok("set", level="user", path="x", value=1) == {"size": 2}
        page.close()


def test_new_pages_do_not_refill_a_users_change_rate(tmp_path: Path) -> None:
    # each page has its own bucket: without one per user, register/unregister in a loop on
    # one socket gave a full burst each time (20 changes for a burst of 5, clock stopped)
    server = make_server(tmp_path, {"change_rate": 1, "change_burst": 5,
                                    "user_change_rate": 1, "user_change_burst": 10})
    spa_of(server).clock = Clock()  # stopped: no token comes back during the test
    with LiveServer(server) as live:
        page = LivePage(live, "alice")
        token = page.ok("register")["connection_token"]  # the user's first token
        accepted = 0
        for _ in range(5):
            for _ in range(4):
                frame = page.call("set", level="user", path="x", value=1)
                if frame["status"] == 200:
                    accepted += 1
                else:
                    _refused(frame, 429, "spa_rate_limited")
            page.ok("unregister")
            frame = page.call("register", connection=token)
            if frame["status"] != 200:
                _refused(frame, 429, "spa_rate_limited")
                break
        assert accepted < 10
        _refused(page.call("register", connection=token), 429, "spa_rate_limited")
        other = LivePage(live, "bob")  # another user keeps his own budget
        other.ok("register")
        other.ok("set", level="user", path="x", value=1)
        other.close()
        page.close()


def test_a_message_past_max_message_bytes_is_refused_and_not_delivered(tmp_path: Path) -> None:
    # without a bound a page could fan 900 KB per message out to each of its user's pages
    server = make_server(tmp_path, {"max_message_bytes": 1024})
    with LiveServer(server) as live:
        sender, receiver = LivePage(live, "alice"), LivePage(live, "alice")
        sender.ok("register")
        receiver.ok("register")
        _refused(sender.call("send", to="user", topic="t", data="y" * 2000), 413,
                 "spa_message_too_large")
        _refused(sender.call("send", to="user", topic="t", data={"a": ["y" * 600] * 3}), 413,
                 "spa_message_too_large")
        assert sender.ok("send", to="user", topic="t", data="y" * 500) == {"sent": True}
        event = receiver.event()
        assert event["channel"] == "spa.message" and event["data"] == "y" * 500
        receiver.quiet()
        sender.close()
        receiver.close()


def test_a_value_signed_with_the_key_for_another_purpose_is_no_connection_token(
        tmp_path: Path) -> None:
    # the same secret signing something else (an app reusing cookie_secret with genro-toolbox
    # sign) must not let a client pick its connection id
    server = make_server(tmp_path)
    with LiveServer(server) as live:
        other_use = str(sign("Z0HHchosenbyattacker1", "test-secret-0123456789"))
        page = LivePage(live, "alice")
        _refused(page.call("register", connection=other_use), 401, "spa_bad_cookie")
        answer = page.ok("register")
        assert answer["connection_id"] != "Z0HHchosenbyattacker1"
        page.close()
        again = LivePage(live, "alice")  # a token the server minted still works
        assert again.ok("register", connection=answer["connection_token"])[
            "connection_id"] == answer["connection_id"]
        again.close()


def test_keys_inside_a_value_are_counted_in_utf8_bytes(tmp_path: Path) -> None:
    # a key of 600 two-byte characters is 1,200 bytes: counted as 600 characters, a tree
    # could hold several times max_data_bytes in keys
    server = make_server(tmp_path, {"max_data_bytes": 1024})
    with LiveServer(server) as live:
        page = LivePage(live, "alice")
        page.ok("register")
        _refused(page.call("set", level="page", path="k", value={"é" * 600: 1}), 413,
                 "spa_data_too_large")
        _refused(page.call("set", level="page", path="k", value={"a": {"😀" * 300: 1}}), 413,
                 "spa_data_too_large")
        assert page.ok("get", level="page") is None  # nothing changed
        size = page.ok("set", level="page", path="k", value={"é" * 100: 1})["size"]
        assert size == len("k.") + 200 + 1
        page.close()


def test_protocol_abuse_over_json_rpc_gets_a_clear_error_each_time(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    with LiveServer(server) as live, connect(
            live.ws_url + "/_wsx", subprotocols=["jsonrpc"],  # type: ignore[list-item]
            additional_headers=[("Authorization", f"Bearer {TOKENS['alice']}")],
            open_timeout=TIMEOUT, close_timeout=TIMEOUT) as ws:
        ids = iter(range(1, 1000))

        def rpc(method: str, params: Any) -> dict[str, Any]:
            msg_id = next(ids)
            ws.send(json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": method,
                                "params": params}))
            while True:
                frame = json.loads(ws.recv(timeout=TIMEOUT))
                if frame.get("id") == msg_id:
                    return frame  # type: ignore[no-any-return]

        def refused(frame: dict[str, Any], status: int, code: str) -> None:
            assert frame["error"]["code"] == -32000, frame
            assert frame["error"]["data"]["status"] == status, frame
            assert frame["error"]["data"]["detail"].startswith(code + ":"), frame

        refused(rpc("_spa.set", {"level": "user", "path": "x", "value": 1}), 401, "spa_no_page")
        assert "page_id" in rpc("_spa.register", {})["result"]
        refused(rpc("_spa.register", {}), 409, "spa_already_registered")
        for method, params in (
                ("_spa.set", {"level": ["user"], "path": "x", "value": 1}),
                ("_spa.set", {"level": "user", "path": 5, "value": 1}),
                ("_spa.get", {"level": None}),
                ("_spa.send", {"to": ["user"], "topic": "t"}),
                ("_spa.send", {"to": "page", "topic": "t", "id": ["x"]}),
                ("_spa.send", {"to": "user", "topic": ["t"]}),
                ("_spa.send", {"to": "all", "topic": "t"}),
                ("_spa.unsubscribe", {"subscription": {"a": 1}}),
                ("_spa.subscribe", {"level": "user", "path": ["a"]})):
            refused(rpc(method, params), 400, "spa_bad_request")
        refused(rpc("_spa.pages", {"user_id": "bob"}), 403, "spa_forbidden")
        refused(rpc("_spa.online", {}), 403, "spa_forbidden")
        assert rpc("_spa.set", {"level": "user", "path": "x", "value": 1})["result"] == {
            "size": 2}
        rpc("_spa.unregister", {})
        refused(rpc("_spa.whoami", {}), 401, "spa_no_page")
        refused(rpc("_spa.set", {"level": "user", "path": "x", "value": 2}), 401,
                "spa_no_page")


def test_a_users_reads_are_bounded_in_bytes_per_second(tmp_path: Path) -> None:
    # reads cost no change token: one page pulling a 256 KiB tree in a loop took 100 MB/s
    # and another user's ping p99 went from 0.3 to 65 ms (an attacker in another process)
    server = make_server(tmp_path, {"read_bytes_rate": 1024, "read_bytes_burst": 60_000})
    spa_of(server).clock = Clock()  # stopped: no byte comes back during the test
    with LiveServer(server) as live:
        page = LivePage(live, "alice")
        page.ok("register")
        page.ok("set", level="user", path="blob", value="x" * 40_000)
        assert page.ok("get", level="user", path="blob") == "x" * 40_000
        assert page.ok("subscribe", level="user", path="blob")["value"] == "x" * 40_000
        _refused(page.call("get", level="user", path="blob"), 429, "spa_rate_limited")
        _refused(page.call("subscribe", level="user", path=""), 429, "spa_rate_limited")
        other = LivePage(live, "bob")
        other.ok("register")
        other.ok("set", level="user", path="blob", value="y" * 40_000)
        assert other.ok("get", level="user", path="blob") == "y" * 40_000
        other.close()
        page.close()
