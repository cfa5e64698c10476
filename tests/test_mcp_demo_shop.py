"""The demo's shop as MCP tools, next to the auth, compression, cors and metrics plugins, on a
real uvicorn, driven by the official ``mcp`` client SDK: the plugins cooperate only through
the core (the route table, the identity on the request, the envelope)."""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import DEMO

pytestmark = pytest.mark.e2e

ADMIN = "demo-admin-token-0123456789"


@pytest.fixture
def url(make_server, live_server, monkeypatch) -> str:
    monkeypatch.syspath_prepend(str(DEMO))
    sys.modules.pop("demo_app", None)
    server = make_server({
        "plugins": {
            "cors": {"allow_origins": ["http://127.0.0.1:8000"]},
            "auth": {"anonymous": True,
                     "bearer": {"demo-admin": {"token": ADMIN, "tags": ["admin"]}}},
            "compression": {"minimum_size": 200},
            "metrics": {},
            "mcp": {"tools": ["/shop/product*", "/shop/restock", "/shop/quote"],
                    "instructions": "Prices are decimal strings in EUR."},
        },
        "apps": {"shop": {"module": "demo_app:ShopApp", "currency": "EUR"}},
    })
    return str(live_server(server).url)


def connect(url: str, token: str | None = None) -> tuple[Client, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(headers=headers, timeout=30)
    return Client(streamable_http_client(url + "/mcp", http_client=http), mode="legacy"), http


def mcp_posts(url: str) -> dict[str, float]:
    scrape = httpx.get(url + "/metrics").text
    families = {family.name: family for family in text_string_to_metric_families(scrape)}
    return {sample.labels["status"]: sample.value
            for sample in families["http_requests"].samples
            if sample.name == "http_requests_total" and sample.labels["route"] == "/mcp/index"
            and sample.labels["method"] == "POST"}


async def test_the_demo_shop_over_mcp(url: str) -> None:
    client, http = connect(url)
    async with http, client:
        assert client.instructions == "Prices are decimal strings in EUR."
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert names == {"shop.products", "shop.product", "shop.quote"}  # restock is admin's

        cheap = await client.call_tool("shop.products", {"max_price": "10", "limit": 5})
        assert cheap.is_error is False
        assert cheap.structured_content is not None
        prices = [Decimal(item["price"]) for item in cheap.structured_content["items"]]
        assert prices and all(price <= 10 for price in prices)

        quote = await client.call_tool("shop.quote", {"pid": "p1", "quantity": 3})
        assert quote.is_error is False and quote.structured_content is not None
        assert quote.structured_content["quantity"] == 3

        missing = await client.call_tool("shop.product", {"pid": "nope"})
        assert missing.is_error is True
        assert missing.content[0].text == "404 Not Found: no product 'nope'"  # type: ignore[union-attr]

        refused = await client.call_tool("shop.restock", {"pid": "p1", "quantity": 1})
        assert refused.is_error is True
        assert refused.content[0].text.startswith("401 Unauthorized")  # type: ignore[union-attr]

    admin, http = connect(url, ADMIN)
    async with http, admin:
        restocked = await admin.call_tool("shop.restock", {"pid": "p1", "quantity": 2})
        assert restocked.is_error is False
        assert restocked.structured_content == {"pid": "p1", "added": 2, "by": "demo-admin"}

    # every MCP message is one POST to /mcp, counted by the metrics plugin like any request
    # (under the route template of the endpoint, its index)
    posts = mcp_posts(url)
    # eight requests of this test (the SDK may list the tools again on its own), two
    # notifications/initialized
    assert posts["200"] >= 8 and posts["202"] == 2
    assert httpx.get(url + "/shop/products").status_code == 200  # HTTP unchanged
