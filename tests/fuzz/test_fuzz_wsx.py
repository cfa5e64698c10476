"""Fuzzing the WSX and JSON-RPC frame decoders over a real uvicorn.

Properties, for any single frame a client sends: the connection survives (a probe sent after
it is answered), nothing a client sends is answered as an internal error (500 / -32603: a
client's bytes are never the server's fault), and the answer comes (the liveness guard in
fuzzing.arm).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fuzzing import ROUTES, Target, arm, param_objects, scalar_text, values
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from genro_asgi import AsgiServer
from genro_asgi.testing import LiveServer

pytestmark = pytest.mark.e2e
TIMEOUT = 30.0  # a guard against a hang, never an assertion about speed


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = AsgiServer(Path(tmp_path_factory.mktemp("fuzz-wsx")), environ={}, config={
        "plugins": {"wsx": {"heartbeat_interval": 0}}})
    server.mount("/f", Target())
    with LiveServer(server) as live_server:
        yield live_server


def _open(live: LiveServer, protocol: str) -> ClientConnection:
    return connect(live.ws_url + "/_wsx", subprotocols=[protocol],  # type: ignore[list-item]
                   open_timeout=TIMEOUT, close_timeout=TIMEOUT, max_size=None)


def _json(value: Any) -> str:
    try:
        return json.dumps(value, default=str)
    except ValueError:  # an int over 4300 digits: the generator's problem, not the server's
        return "null"


def _tytx(value: Any) -> str:
    from genro_tytx import to_tytx

    try:
        return str(to_tytx(value))
    except (TypeError, ValueError):
        return _json(value)


ids = st.one_of(st.none(), st.integers(), st.text(max_size=20), st.floats(), st.booleans(),
                st.lists(st.integers(), max_size=2), st.just("\ud800"), st.text(min_size=129,
                                                                                  max_size=140))
data_fields = st.one_of(param_objects, param_objects.map(_tytx), param_objects.map(_json),
                        param_objects.map(lambda v: json.dumps(_tytx(v))), scalar_text, values)
wsx_paths = st.one_of(st.sampled_from(sorted(ROUTES)).map(lambda p: p),
                      st.text(max_size=30), st.sampled_from(["", "/", "//", "/f/item/1"]))
wsx_messages = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["call", "subscribe", "unsubscribe", "auth", "ping", "pong", "x"]),
    "id": ids,
    "path": wsx_paths,
    "method": st.sampled_from(["GET", "POST", "PUT", "WSK", "get", "", "X" * 300]),
    "data": data_fields,
    "query": st.one_of(st.dictionaries(st.text(max_size=5), scalar_text, max_size=3), values),
    "channel": st.text(max_size=30),
    "subscription": st.text(max_size=10),
    "token": st.text(max_size=30),
})
# a well-formed call with one hostile field: most bugs hide behind an otherwise valid frame
wsx_calls = st.builds(
    lambda path, id_, data, method: {"id": id_, "path": path, "data": data,
                                     **({"method": method} if method else {})},
    st.sampled_from(sorted(ROUTES)), ids, data_fields,
    st.sampled_from([None, "GET", "POST", "WSK"]))
wsx_frames = st.one_of(
    wsx_calls.map(lambda m: "WSX://" + _json(m)),
    wsx_messages.map(lambda m: "WSX://" + _json(m)),
    st.text(max_size=200).map(lambda t: "WSX://" + t),
    st.text(max_size=200),
    st.binary(max_size=200),
    st.integers(1, 3000).map(lambda n: "WSX://" + "[" * n + "]" * n),
)

rpc_methods = st.one_of(st.sampled_from([p.strip("/").replace("/", ".") for p in ROUTES]),
                        st.sampled_from(["wsx.subscribe", "wsx.ping", "wsx.auth", "rpc.x", ""]),
                        st.text(max_size=20))
rpc_requests = st.fixed_dictionaries({"jsonrpc": st.sampled_from(["2.0", "1.0", 2.0])}, optional={
    "id": ids, "method": rpc_methods,
    "params": st.one_of(param_objects, st.lists(values, max_size=3), values)})
rpc_calls = st.builds(
    lambda method, id_, params: {"jsonrpc": "2.0", "id": id_, "method": method,
                                 "params": params},
    st.sampled_from([p.strip("/").replace("/", ".") for p in ROUTES]), ids,
    st.one_of(param_objects, st.lists(values, max_size=3)))
rpc_frames = st.one_of(
    rpc_calls.map(_json),
    rpc_requests.map(_json),
    st.lists(rpc_requests, max_size=4).map(_json),
    values.map(_json),
    st.text(max_size=200),
    st.binary(max_size=100),
    st.just('{"jsonrpc":"2.0","id":1,"method":"f.scalars","params":{"i":' + "9" * 5000 + "}}"),
)


def _survives(live: LiveServer, protocol: str, frame: str | bytes, probe: str,
              pong: str) -> None:
    """Send ``frame``, then ``probe``: the probe's pong must come back (the connection
    survived), and nothing answered before it may be an internal error."""
    with _open(live, protocol) as ws:
        ws.send(frame)
        ws.send(probe)
        while True:
            answer = ws.recv(timeout=TIMEOUT)
            text = answer if isinstance(answer, str) else answer.decode("utf-8", "replace")
            assert '"internal_error"' not in text and "-32603" not in text, text[:500]
            if isinstance(answer, str) and '"probe"' in answer and pong in answer:
                return


@settings(max_examples=max(150, settings().max_examples))
@given(frame=wsx_frames)
def test_wsx_frames(live: LiveServer, frame: str | bytes) -> None:
    arm()
    _survives(live, "wsx", frame, 'WSX://{"type":"ping","id":"probe"}', '"pong"')


@settings(max_examples=max(150, settings().max_examples))
@given(frame=rpc_frames)
def test_jsonrpc_frames(live: LiveServer, frame: str | bytes) -> None:
    arm()
    _survives(live, "jsonrpc", frame, '{"jsonrpc":"2.0","id":"probe","method":"wsx.ping"}',
              "pong")


def test_probes_are_answered(live: LiveServer) -> None:
    # the properties above really exercise the handlers: an ordinary call answers
    with _open(live, "wsx") as ws:
        ws.send('WSX://{"id":1,"path":"/f/scalars","data":{"i":4}}')
        answer = json.loads(ws.recv(timeout=TIMEOUT)[6:])
        assert answer["status"] == 200 and '"i":4' in answer["data"]
    with _open(live, "jsonrpc") as ws:
        ws.send('{"jsonrpc":"2.0","id":2,"method":"f.scalars","params":{"i":5}}')
        assert json.loads(ws.recv(timeout=TIMEOUT))["result"]["i"] == 5
