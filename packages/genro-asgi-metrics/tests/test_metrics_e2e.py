"""End to end: a real uvicorn scraped over loopback, one process and two workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from helpers import Shop, label_values, value

from genro_asgi import AsgiServer
from genro_asgi.testing import LiveServer, free_port
from genro_asgi_metrics import UNMATCHED

pytestmark = pytest.mark.e2e
STARTUP_LIMIT = 30.0  # a guard against a hung start, never an assertion


def test_scrape_after_a_known_mix(tmp_path: Path) -> None:
    server = AsgiServer(tmp_path, config={"plugins": {"metrics": {}}}, environ={})
    server.mount("/shop", Shop())
    with LiveServer(server) as live, httpx.Client(base_url=live.url) as client:
        for _ in range(7):
            assert client.get("/shop/products").status_code == 200
        for name in ("cup", "pot", "pan"):
            assert client.get(f"/shop/price/{name}").status_code == 200
        for _ in range(2):
            assert client.get("/shop/boom").status_code == 500
        for i in range(25):
            assert client.get(f"/walk/{i}/{os.urandom(4).hex()}").status_code == 404
        assert client.post("/shop/products").status_code == 405
        scraped = client.get("/metrics")
        gzipped = client.get("/metrics", headers={"accept-encoding": "gzip"})
    assert scraped.status_code == 200
    assert gzipped.headers["content-encoding"] == "gzip"
    text = scraped.text
    expected = {
        ("GET", "/shop/products", "200"): 7,
        ("GET", "/shop/price", "200"): 3,
        ("GET", "/shop/boom", "500"): 2,
        ("GET", UNMATCHED, "404"): 25,
        ("POST", "/shop/products", "405"): 1,
    }
    for (method, route, status), count in expected.items():
        assert value(text, "http_requests_total", method=method, route=route,
                     status=status) == count
    assert label_values(text, "http_requests_total", "route") == {
        "/shop/products", "/shop/price", "/shop/boom", UNMATCHED}
    assert value(text, "http_errors_total", exc_type="RuntimeError") == 2
    assert value(text, "http_errors_total", exc_type="NotFound") == 25
    assert value(text, "http_request_duration_seconds_count", method="GET",
                 route="/shop/products") == 7
    assert value(text, "http_requests_in_progress") == 0


def test_separate_port_listener(tmp_path: Path) -> None:
    port = free_port()
    server = AsgiServer(tmp_path, config={"plugins": {"metrics": {
        "port": port, "token": "t0k"}}}, environ={})
    server.mount("/shop", Shop())
    with LiveServer(server) as live:
        httpx.get(live.url + "/shop/products")
        # not on the main server: there it is an ordinary unmatched request
        assert httpx.get(live.url + "/metrics").status_code == 404
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        assert httpx.get(metrics_url).status_code == 401
        scraped = httpx.get(metrics_url, headers={"authorization": "Bearer t0k"})
        assert httpx.get(f"http://127.0.0.1:{port}/other",
                         headers={"authorization": "Bearer t0k"}).status_code == 404
    assert scraped.status_code == 200
    assert value(scraped.text, "http_requests_total", method="GET", route="/shop/products",
                 status="200") == 1
    assert value(scraped.text, "http_requests_total", method="GET", route=UNMATCHED,
                 status="404") == 1
    with pytest.raises(httpx.TransportError):  # stopped with the lifespan
        httpx.get(metrics_url, timeout=2)


APP = '''
from genro_asgi import AsgiApplication, route


class Shop(AsgiApplication):
    @route(methods=["GET"])
    def products(self):
        return {"items": ["cup"]}

    @route(methods=["GET"])
    def pid(self):
        import os
        return str(os.getpid())
'''


def _serve(directory: Path, port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "genro_asgi", "serve", str(directory), "--port", str(port),
         "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _wait(process: subprocess.Popen[str], url: str) -> None:
    deadline = time.monotonic() + STARTUP_LIMIT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{process.stdout.read()}")  # type: ignore[union-attr]
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("server did not answer in time")


def test_two_workers_aggregate_exactly(tmp_path: Path) -> None:
    (tmp_path / "shopapp.py").write_text(APP)
    mp_dir = tmp_path / "prom"
    (tmp_path / "config.yaml").write_text(textwrap.dedent(f"""
        server: {{host: 127.0.0.1}}
        logging: {{level: WARNING}}
        plugins:
          metrics: {{multiprocess_dir: "{mp_dir}"}}
        apps:
          shop: {{module: "shopapp:Shop"}}
    """))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items()
           if k.upper() != "PROMETHEUS_MULTIPROC_DIR"}
    process = _serve(tmp_path, port, {**env, "PYTHONUNBUFFERED": "1"})
    try:
        _wait(process, url + "/shop/products")
        pids: set[str] = set()
        count = 1  # the readiness probe succeeded once
        for _ in range(60):
            # a new connection each time, so both workers get a share
            with httpx.Client() as client:
                pids.add(client.get(url + "/shop/pid").text)
                assert client.get(url + "/shop/products").status_code == 200
                assert client.get(url + "/nope").status_code == 404
            count += 1
        text = httpx.get(url + "/metrics").text
        again = httpx.get(url + "/metrics").text
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for scrape in (text, again):  # whichever worker answers, the totals are the same
        assert value(scrape, "http_requests_total", method="GET", route="/shop/products",
                     status="200") == count
        assert value(scrape, "http_requests_total", method="GET", route="/shop/pid",
                     status="200") == 60
        assert value(scrape, "http_requests_total", method="GET", route=UNMATCHED,
                     status="404") == 60
    assert label_values(text, "http_requests_total", "route") == {
        "/shop/products", "/shop/pid", UNMATCHED}
    # (the in-progress gauge of the other worker is sampled every second: not asserted here)
    # the configured directory was prepared by the parent and filled by the workers
    assert any(path.name.startswith("counter_") for path in mp_dir.iterdir())
