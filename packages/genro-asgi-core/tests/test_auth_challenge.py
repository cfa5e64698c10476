"""A custom identity backend declares its own WWW-Authenticate challenge.

A plugin implementing ``genro_asgi_identify`` sets ``auth_challenge`` (a string or a list):
its challenges follow the built-in backends' in every 401, alone when no built-in backend is
configured (no stray ``Bearer``). A refusal may carry its own challenge in the exception's
headers. Malformed challenges stop the server where it is built.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from genro_asgi import (
    AsgiApplication,
    AsgiServer,
    Connection,
    Identity,
    Plugin,
    PluginError,
    Unauthorized,
    hookimpl,
    route,
)
from genro_asgi.testing import LiveServer, TestClient


class Site(AsgiApplication):
    @route()
    def open(self) -> str:
        return "open"

    @route(auth="member")
    def account(self) -> str:
        return "yours"


class SessionBackend(Plugin):
    """Identifies ``Cookie: session=<user>``; ``session=stale`` is a refused credential."""

    auth_challenge: Any = 'Session realm="site", login="/login"'

    @hookimpl
    def genro_asgi_identify(self, connection: Connection) -> Identity | None:
        cookie = connection.headers.get("cookie", "")
        if not cookie.startswith("session="):
            return None
        user = cookie.split("=", 1)[1]
        if user == "stale":
            raise Unauthorized(detail="session expired",
                               headers={"WWW-Authenticate": 'Session error="expired"'})
        return Identity.of(user, ["member"], "session")


class TwoSchemes(SessionBackend):
    auth_challenge = ['Session realm="site"', "Negotiate"]


def make(tmp_path: Path, backend: str = "SessionBackend", **auth: Any) -> AsgiServer:
    server = AsgiServer(tmp_path, environ={}, config={"plugins": {
        "auth": {"public": ["/open"], **auth},
        "session": {"module": f"{__name__}:{backend}"},
    }})
    server.mount("/", Site())
    return server


def test_the_backend_challenge_alone_without_builtin_backends(tmp_path: Path) -> None:
    server = make(tmp_path)
    assert server.auth_challenge == 'Session realm="site", login="/login"'
    with TestClient(server) as client:
        refused = client.get("/account")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Session realm="site", login="/login"'
        assert client.get("/account", headers={"Cookie": "session=ann"}).text == "yours"


def test_after_the_builtin_ones_and_on_route_rule_401s(tmp_path: Path) -> None:
    server = make(tmp_path, "TwoSchemes", anonymous=True,
                  bearer={"ops": {"token": "ops-token-123456"}})
    expected = 'Bearer realm="genro-asgi", Session realm="site", Negotiate'
    with TestClient(server) as client:
        assert client.get("/open").text == "open"
        refused = client.get("/account")  # anonymous admitted, the route's rule refuses
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == expected


def test_a_refusal_carries_its_own_challenge(tmp_path: Path) -> None:
    server = make(tmp_path)
    with TestClient(server) as client:
        refused = client.get("/account", headers={"Cookie": "session=stale"})
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Session error="expired"'
        assert refused.json()["error"]["message"] == "session expired"


@pytest.mark.parametrize("declared", [
    "", "Session\r\nSet-Cookie: x=1", "Session\tx", " Session", "Séssion", 42, [], ["ok", 7],
])
def test_a_malformed_challenge_stops_the_server(tmp_path: Path, declared: Any) -> None:
    class Broken(SessionBackend):
        auth_challenge = declared

    globals()["Broken"] = Broken
    try:
        with pytest.raises(PluginError, match="plugin 'session': auth_challenge"):
            make(tmp_path, "Broken")
    finally:
        del globals()["Broken"]


async def echo_socket(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": 1000})


def test_over_uvicorn(tmp_path: Path) -> None:
    server = make(tmp_path, "TwoSchemes", basic={})
    server.mount("/ws", echo_socket)

    async def refused_handshake(url: str) -> Any:
        with pytest.raises(InvalidStatus) as info:
            async with websockets.connect(url, open_timeout=30):
                pass
        return info.value.response

    with LiveServer(server) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        refused = client.get("/account")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Session realm="site", Negotiate'
        stale = client.get("/account", headers={"Cookie": "session=stale"})
        assert stale.headers["www-authenticate"] == 'Session error="expired"'
        assert client.get("/account", headers={"Cookie": "session=bo"}).text == "yours"
        # a WebSocket handshake refused with an HTTP 401 carries the same challenge
        handshake = asyncio.run(refused_handshake(f"{live.ws_url}/ws"))
        assert handshake.status_code == 401
        assert handshake.headers["WWW-Authenticate"] == 'Session realm="site", Negotiate'
