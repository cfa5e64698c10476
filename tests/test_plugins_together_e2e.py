"""cors, auth, compression and metrics on together, as the issue-18 benchmark runs them, on a
real uvicorn with httpx: each still does its whole job on the trimmed request path (CORS per
the Fetch standard, auth enforced, compression negotiated, metrics labelled by route template,
never the raw path)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from genro_asgi import AsgiApplication, route

pytestmark = pytest.mark.e2e

ORIGIN = "https://app.example"
TOKEN = "together-token-0123456789"
BIG = {"items": [{"id": i, "name": f"widget {i}", "tags": ["red", "large"]} for i in range(40)]}
HEADERS = {"Origin": ORIGIN, "Authorization": f"Bearer {TOKEN}", "Accept-Encoding": "gzip"}


class Api(AsgiApplication):
    @route(methods=["GET"])
    async def hello(self) -> str:
        return "Hello, world!"

    @route(methods=["GET"])
    async def big(self) -> dict[str, Any]:
        return BIG

    @route(methods=["GET"])
    async def item(self, item_id: int) -> dict[str, int]:
        return {"id": item_id}


@pytest.fixture
def url(make_server: Any, live_server: Any) -> str:
    server = make_server({"plugins": {
        "cors": {"allow_origins": [ORIGIN], "allow_credentials": True,
                 "allow_headers": ["authorization"]},
        "auth": {"bearer": {"bench": {"token": TOKEN, "tags": ["user"]}}},
        "compression": {},
        "metrics": {},
    }})
    server.mount("/api", Api())
    return str(live_server(server).url)


def raw_get(url: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(url, headers=headers, timeout=10)


def test_all_four_plugins_do_their_work(url: str) -> None:
    small = raw_get(url + "/api/hello", HEADERS)
    assert small.status_code == 200 and small.content == b"Hello, world!"
    assert small.headers["access-control-allow-origin"] == ORIGIN
    assert small.headers["access-control-allow-credentials"] == "true"
    assert small.headers.get_list("vary") == ["Origin"]  # too small to compress: no other Vary
    assert "content-encoding" not in small.headers

    big = raw_get(url + "/api/big", HEADERS)
    assert big.headers["content-encoding"] == "gzip"
    assert big.json() == BIG  # httpx decoded the gzip body
    assert int(big.headers["content-length"]) < len(json.dumps(BIG)) // 2
    assert big.headers["access-control-allow-origin"] == ORIGIN
    assert sorted(v.strip() for v in ",".join(big.headers.get_list("vary")).split(",")) == [
        "Accept-Encoding", "Origin"]

    for item_id in (1, 2, 3):
        assert raw_get(url + f"/api/item/{item_id}", HEADERS).status_code == 200

    # auth enforced, and the refusal still readable by the page (CORS on errors)
    refused = raw_get(url + "/api/hello", {"Origin": ORIGIN, "Accept-Encoding": "gzip"})
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    other = raw_get(url + "/api/hello", {**HEADERS, "Origin": "https://evil.example"})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers

    # a preflight is answered before auth (a browser sends no credentials on it)
    preflight = httpx.options(url + "/api/hello", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ORIGIN

    scrape = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert scrape.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(scrape.text)}
    counted = {(s.labels["route"], s.labels["status"]): s.value
               for s in families["http_requests"].samples if s.name == "http_requests_total"}
    assert counted[("/api/item", "200")] == 3.0  # the route template, never /api/item/1
    assert counted[("/api/hello", "200")] == 2.0
    # refused by auth and answered by cors before the dispatcher: the template of their path
    assert counted[("/api/hello", "401")] == 1.0
    assert counted[("/api/hello", "204")] == 1.0
    assert not any(route == "<unmatched>" for route, _ in counted)
    assert counted[("/api/big", "200")] == 1.0
    assert not any(route.startswith("/api/item/") for route, _ in counted)
