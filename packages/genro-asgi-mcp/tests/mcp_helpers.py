"""Apps and a raw JSON-RPC client shared by the tests of genro-asgi-mcp."""

from __future__ import annotations

import asyncio
import datetime
import decimal
from typing import Any

from pydantic import BaseModel

from genro_asgi import AsgiApplication, JSONResponse, NotFound, Request, route

ADMIN = "admin-token-0123456789"
USER = "user-token-0123456789"
VERSION = "2025-11-25"
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


class Item(BaseModel):
    id: int
    price: decimal.Decimal
    day: datetime.date | None = None


class Shop(AsgiApplication):
    """Routes that opt in with meta_mcp, one that does not, and a few that misbehave."""

    @route(meta_mcp=True)
    def get(self, item_id: int, day: datetime.date | None = None) -> Item:
        """Get an item by id."""
        return Item(id=item_id, price=decimal.Decimal("1.50"), day=day)

    @route(meta_mcp=True, methods=["GET"])
    def count(self, n: int = 3) -> list[int]:
        return list(range(n))

    @route(meta_mcp={"name": "restock", "title": "Restock"}, auth="admin")
    def restock(self, pid: str, quantity: int) -> dict[str, Any]:
        """Add stock (admins only)."""
        return {"pid": pid, "quantity": quantity}

    @route()
    def hidden(self) -> str:
        return "not a tool"

    @route(meta_mcp=True)
    def boom(self) -> int:
        raise RuntimeError("secret internals")

    @route(meta_mcp=True)
    def missing(self, pid: str) -> str:
        raise NotFound(detail=f"no product {pid}")

    @route(meta_mcp=True)
    def nan(self) -> float:
        return float("nan")

    @route(meta_mcp=True)
    def big(self, size: int) -> str:
        return "x" * size

    @route(meta_mcp=True)
    def whoami(self, request: Request) -> dict[str, Any]:
        identity = request.identity
        return {"path": request.path, "id": identity.id if identity else None}

    @route(meta_mcp=True)
    def echo(self, **values: Any) -> Any:
        return values

    @route(meta_mcp=True)
    def as_response(self) -> JSONResponse:
        return JSONResponse({"ok": True})

    @route(meta_mcp=True)
    async def stall(self) -> None:
        await asyncio.Event().wait()


def auth_config(public: bool = True) -> dict[str, Any]:
    return {"public": ["/mcp"] if public else [],
            "bearer": {"adm": {"token": ADMIN, "tags": ["admin"]},
                       "usr": {"token": USER, "tags": ["user"]}}}


def message(method: str, params: dict[str, Any] | None = None, id: Any = 1) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if id is not None:
        body["id"] = id
    if params is not None:
        body["params"] = params
    return body


def initialize(version: str = VERSION) -> dict[str, Any]:
    return message("initialize", {"protocolVersion": version, "capabilities": {},
                                  "clientInfo": {"name": "tests", "version": "1"}})


class RawMcp:
    """A hand-written client for poking at the transport: any httpx client (TestClient or a
    real one) and optional extra headers."""

    def __init__(self, http: Any, url: str = "/mcp", token: str | None = None) -> None:
        self.http = http
        self.url = url
        self.headers = dict(JSON_HEADERS)
        if token is not None:
            self.headers["Authorization"] = f"Bearer {token}"
        self.session: str | None = None
        self.version = VERSION

    def post(self, body: Any, **headers: str) -> Any:
        sent = dict(self.headers)
        if self.session is not None:
            sent["Mcp-Session-Id"] = self.session
            sent["MCP-Protocol-Version"] = self.version
        sent.update(headers)
        return self.http.post(self.url, json=body, headers=sent)

    def start(self, version: str = VERSION) -> dict[str, Any]:
        response = self.post(initialize(version))
        assert response.status_code == 200, response.text
        self.session = response.headers["mcp-session-id"]
        self.version = response.json()["result"]["protocolVersion"]
        assert self.post(message("notifications/initialized", id=None)).status_code == 202
        return dict(response.json()["result"])

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.post(message(method, params))
        assert response.status_code == 200, response.text
        return dict(response.json())

    def tool(self, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        reply = self.call("tools/call", {"name": name, "arguments": arguments or {}})
        return dict(reply["result"])
