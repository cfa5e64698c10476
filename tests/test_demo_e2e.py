"""The demo served by `make serve`, started through the real CLI and driven with httpx."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal

import httpx
import pytest
from genro_tytx import from_tytx

from .conftest import DEMO

pytestmark = pytest.mark.e2e


def test_demo_pages_and_typed_api(serve) -> None:
    server = serve()
    home = httpx.get(server.url + "/")
    assert home.status_code == 200
    assert home.headers["content-type"] == "text/html; charset=utf-8"
    assert "genro-asgi demo" in home.text

    assert httpx.get(server.url + "/hello", params={"name": "you"}).text == "Hello, you!"

    plain = httpx.get(server.url + "/shop/products", params={"limit": 2}).json()
    assert plain["currency"] == "EUR"
    assert [item["price"] for item in plain["items"]] == ["4.50", "29.90"]

    typed = httpx.get(server.url + "/shop/products", params={"max_price": "20"},
                      headers={"X-TYTX-Transport": "json"})
    assert typed.headers["content-type"] == "application/vnd.tytx+json"
    items = from_tytx(typed.text, "json")["items"]
    assert {item["id"] for item in items} == {"p1", "p3"}
    assert all(isinstance(item["price"], Decimal) for item in items)

    quote = httpx.post(server.url + "/shop/quote", json={"pid": "p2", "quantity": 3})
    assert quote.json()["total"] == "89.70"


def test_demo_auth_cors_and_compression(serve) -> None:
    server = serve()
    url = server.url + "/shop/restock"
    assert httpx.post(url, json={"pid": "p1", "quantity": 2}).status_code == 401
    wrong = httpx.post(url, json={"pid": "p1", "quantity": 2},
                       headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    done = httpx.post(url, json={"pid": "p1", "quantity": 2},
                      headers={"Authorization": "Bearer demo-admin-token-change-me"})
    assert done.json() == {"pid": "p1", "added": 2, "by": "demo-admin"}

    origin = "http://localhost:8000"
    preflight = httpx.options(url, headers={"Origin": origin,
                                            "Access-Control-Request-Method": "POST",
                                            "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == origin
    denied = httpx.options(url, headers={"Origin": "https://evil.example",
                                         "Access-Control-Request-Method": "POST"})
    assert denied.status_code == 403
    assert "access-control-allow-origin" not in denied.headers

    with httpx.Client() as client:
        big = client.get(server.url + "/shop/products", headers={"Accept-Encoding": "gzip"})
    assert big.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in big.headers["vary"]
    assert len(big.json()["items"]) == 3


def test_demo_static_files_and_errors(serve) -> None:
    server = serve()
    css = httpx.get(server.url + "/static/style.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "etag" in css.headers

    missing = httpx.get(server.url + "/shop/product/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "no product 'nope'"

    bad = httpx.get(server.url + "/shop/products", params={"limit": "many"})
    assert bad.status_code == 400
    assert "limit" in bad.json()["error"]["message"]

    wrong_method = httpx.get(server.url + "/shop/quote")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"

    echoed = httpx.get(server.url + "/health", headers={"X-Request-ID": "trace-42"})
    assert echoed.headers["x-request-id"] == "trace-42"
    assert echoed.json()["request_id"] == "trace-42"


def test_every_plugin_is_enabled_in_the_demo() -> None:
    listing = subprocess.run(
        [sys.executable, "-m", "genro_asgi", "plugins", str(DEMO), "--json"],
        capture_output=True, text=True, check=True,
    )
    enabled = {row["name"] for row in json.loads(listing.stdout) if row["enabled"]}
    assert {"errors", "cors", "auth", "compression", "wsx", "executor", "metrics",
            "debug"} <= enabled

    routes = subprocess.run(
        [sys.executable, "-m", "genro_asgi", "routes", str(DEMO), "--json"],
        capture_output=True, text=True, check=True,
    )
    paths = {row["path"] for row in json.loads(routes.stdout)}
    assert {"/", "/hello", "/shop/products", "/shop/quote/{pid}", "/static"} <= paths


def test_sigterm_lets_an_in_flight_request_finish(serve, tmp_path) -> None:
    (tmp_path / "slow_app.py").write_text(
        "import asyncio\n"
        "from genro_asgi import AsgiApplication, route\n"
        "class Slow(AsgiApplication):\n"
        "    @route()\n"
        "    async def health(self):\n"
        "        return 'ok'\n"
        "    @route()\n"
        "    async def slow(self, seconds: float = 1.0):\n"
        "        await asyncio.sleep(seconds)\n"
        "        return 'done'\n"
    )
    (tmp_path / "config.yaml").write_text(
        "server: {shutdown_timeout: 10}\napps:\n  root: {module: 'slow_app:Slow', prefix: /}\n"
    )
    server = serve(tmp_path)
    result: dict[str, httpx.Response] = {}
    worker = threading.Thread(
        target=lambda: result.setdefault("slow", httpx.get(server.url + "/slow",
                                                           params={"seconds": 1.5},
                                                           timeout=20)))
    worker.start()
    time.sleep(0.5)  # ordering only: let the slow request reach its handler first
    # uvicorn re-raises the signal it handled once shutdown is complete
    assert server.stop() in (0, -signal.SIGTERM)
    worker.join(20)
    assert result["slow"].status_code == 200
    assert result["slow"].text == "done"


def test_two_workers_serve_the_demo(serve) -> None:
    server = serve(DEMO, "--workers", "2")
    statuses = {httpx.get(server.url + "/hello").status_code for _ in range(20)}
    assert statuses == {200}
    assert server.stop() in (0, -signal.SIGTERM)


def test_demo_debugger_answers_with_the_generated_secret(serve) -> None:
    serve()
    listing = subprocess.run(
        [sys.executable, "-m", "genro_asgi", "debug", str(DEMO), "incidents"],
        capture_output=True, text=True, timeout=30,
    )
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.split()[:3] == ["PID", "ID", "AGE"]
    assert (DEMO / ".debug-secret").stat().st_mode & 0o077 == 0
