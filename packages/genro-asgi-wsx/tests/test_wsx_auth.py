"""Identity at the handshake or in the first message, per-call route rules, Origin checks."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from wsx_helpers import close_code, make, open_ws, rpc, serving, wsx

from genro_asgi.testing import AsyncTestClient

pytestmark = pytest.mark.e2e

ADMIN, USER = "admin-token-123", "user-token-456"
AUTH = {"bearer": {"ci": {"token": ADMIN, "tags": ["admin"]},
                   "ada": {"token": USER, "tags": ["user"]}}}
# no "public": the wsx endpoint registers itself in server.self_authenticating_paths


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = make(tmp_path_factory.mktemp("auth"), {"auth_deadline": 5},
                  plugins={"auth": AUTH})
    with serving(server) as live:
        yield live


def bearer(token: str) -> dict[str, Any]:
    return {"additional_headers": {"Authorization": f"Bearer {token}"}}


def test_identity_from_the_handshake_header(live: Any) -> None:
    with open_ws(live, **bearer(ADMIN)) as ws:
        assert wsx(ws, {"id": 1, "path": "/shop/admin_only"})["data"] == '"secret stuff"'
        assert wsx(ws, {"id": 2, "path": "/shop/whoami"})["data"] == '"ci"'


def test_invalid_header_credential_refuses_the_handshake(live: Any) -> None:
    with pytest.raises(InvalidStatus) as refused:
        open_ws(live, **bearer("wrong-token-000"))
    assert refused.value.response.status_code in (401, 403)


def test_identity_from_the_first_message(live: Any) -> None:
    with open_ws(live) as ws:
        before = wsx(ws, {"id": 1, "path": "/shop/hello"})
        assert before["status"] == 401 and before["error"]["code"] == "auth_required"
        refused_sub = wsx(ws, {"id": 2, "type": "subscribe", "channel": "a.b"})
        assert refused_sub["error"]["code"] == "auth_required"
        who = wsx(ws, {"id": 3, "type": "auth", "token": USER})
        assert json.loads(who["data"]) == {"id": "ada", "tags": ["user"], "backend": "bearer"}
        assert wsx(ws, {"id": 4, "path": "/shop/whoami"})["data"] == '"ada"'
        # the identity may call only what its tags allow
        forbidden = wsx(ws, {"id": 5, "path": "/shop/admin_only"})
        assert forbidden["status"] == 403 and forbidden["error"]["code"] == "forbidden"
        again = wsx(ws, {"id": 6, "type": "auth", "token": ADMIN})  # no escalation
        assert again["status"] == 400
        assert wsx(ws, {"id": 7, "path": "/shop/whoami"})["data"] == '"ada"'


def test_invalid_token_in_the_first_message_closes_1008(live: Any) -> None:
    with open_ws(live) as ws:
        answer = wsx(ws, {"id": 1, "type": "auth", "token": "not-a-token-000"})
        assert answer["status"] == 401
        assert close_code(ws) == 1008
    with open_ws(live) as ws:
        for bad in (None, 5, "", "x" * 5000, "bad\ntoken", "città"):
            answer = wsx(ws, {"id": 1, "type": "auth", "token": bad})
            assert answer["status"] == 400 and answer["error"]["code"] == "invalid_request"


def test_jsonrpc_auth_method(live: Any) -> None:
    with open_ws(live, "jsonrpc") as ws:
        before = rpc(ws, {"jsonrpc": "2.0", "method": "get_data", "id": 1})
        assert before["error"]["code"] == -32001
        who = rpc(ws, {"jsonrpc": "2.0", "method": "wsx.auth", "params": {"token": ADMIN},
                       "id": 2})
        assert who["result"]["id"] == "ci"
        assert rpc(ws, {"jsonrpc": "2.0", "method": "shop.admin_only", "id": 3})[
            "result"] == "secret stuff"


def test_auth_deadline_applies_with_the_auth_plugin(tmp_path: Any) -> None:
    server = make(tmp_path, {"auth_deadline": 0.1}, plugins={"auth": AUTH})
    with serving(server) as live, open_ws(live) as ws:
        assert close_code(ws) == 4001


def test_anonymous_allowed_when_identity_not_required(tmp_path: Any) -> None:
    server = make(tmp_path, {"require_identity": False}, plugins={"auth": AUTH})
    with serving(server) as live, open_ws(live) as ws:
        assert wsx(ws, {"id": 1, "path": "/shop/hello"})["status"] == 200
        assert wsx(ws, {"id": 2, "path": "/shop/admin_only"})["status"] == 401
        wsx(ws, {"id": 3, "type": "auth", "token": ADMIN})
        assert wsx(ws, {"id": 4, "path": "/shop/admin_only"})["status"] == 200


def test_origin_allowlist(tmp_path: Any) -> None:
    server = make(tmp_path, {"allowed_origins": ["https://app.example"]})
    with serving(server) as live:
        with open_ws(live, origin="https://app.example") as ws:
            assert wsx(ws, {"id": 1, "path": "/shop/hello"})["status"] == 200
        with pytest.raises(InvalidStatus) as refused:
            open_ws(live, origin="https://evil.example")
        assert refused.value.response.status_code == 403
        with open_ws(live) as ws:  # no Origin: not a browser
            assert wsx(ws, {"id": 1, "path": "/shop/hello"})["status"] == 200


def test_origin_default_is_same_origin_only(tmp_path: Any) -> None:
    with serving(make(tmp_path)) as live:
        with open_ws(live, origin=live.url) as ws:
            assert wsx(ws, {"id": 1, "path": "/shop/hello"})["status"] == 200
        with pytest.raises(InvalidStatus):
            open_ws(live, origin="https://elsewhere.example")
        with pytest.raises(InvalidStatus):
            open_ws(live, origin="null")


def test_origin_shares_the_cors_policy(tmp_path: Any) -> None:
    server = make(tmp_path, plugins={"cors": {"allow_origins": ["https://app.example"]}})
    with serving(server) as live:
        with open_ws(live, origin="https://app.example") as ws:
            assert wsx(ws, {"id": 1, "path": "/shop/hello"})["status"] == 200
        with pytest.raises(InvalidStatus):
            open_ws(live, origin="https://evil.example")


def test_star_allows_any_origin(tmp_path: Any) -> None:
    with serving(make(tmp_path, {"allowed_origins": ["*"]})) as live, \
            open_ws(live, origin="https://anything.example") as ws:
        assert wsx(ws, {"id": 1, "path": "/shop/hello"})["status"] == 200


def test_client_js_needs_no_credential(live: Any) -> None:
    # a browser imports the module without an Authorization header
    assert httpx.get(live.url + "/_wsx/client.js").status_code == 200
    assert httpx.get(live.url + "/shop/hello").status_code == 401  # the rest stays protected


async def test_concurrent_auth_messages_set_the_identity_once(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    server = make(tmp_path, plugins={"auth": AUTH})
    identify = server.identify

    async def slow_identify(source: Any) -> Any:
        await asyncio.sleep(0.01)  # both auth messages wait here together
        return await identify(source)

    monkeypatch.setattr(server, "identify", slow_identify)
    async with AsyncTestClient(server) as client, client.websocket_connect("/_wsx") as ws:
        for n, token in ((1, USER), (2, ADMIN)):
            await ws.send_text("WSX://" + json.dumps({"id": n, "type": "auth", "token": token}))
        answers = [json.loads((await asyncio.wait_for(ws.receive_text(), 5))[6:])
                   for _ in range(2)]
        assert sorted(a["status"] for a in answers) == [200, 400]
        winner = next(json.loads(a["data"])["id"] for a in answers if a["status"] == 200)
        await ws.send_text('WSX://{"id":3,"path":"/shop/whoami"}')
        who = json.loads((await asyncio.wait_for(ws.receive_text(), 5))[6:])
        assert json.loads(who["data"]) == winner
