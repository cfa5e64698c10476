"""The explorer in headless Chromium with every non-loopback address unreachable: Swagger UI
loads from this server alone and shows every operation of the document.

Needs Debian's ``chromium`` package; skipped with the reason when it is not installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_sites import mount_site, site_config

from genro_asgi import AsgiServer
from genro_asgi.testing import LiveServer

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_LIMIT = 120.0  # a guard against a hung browser, never an assertion


def offline_chromium(profile: Path, *args: str) -> list[str]:
    """Chromium that can reach 127.0.0.1 and nothing else: names do not resolve and any other
    address goes to a proxy that is not there."""
    return [str(CHROMIUM), "--headless=new", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=127.0.0.1",
            "--virtual-time-budget=30000", *args]


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed "
                    "(Debian package 'chromium': apt-get install -y chromium)")
def test_the_explorer_shows_every_operation_offline(tmp_path: Path) -> None:
    server = mount_site(AsgiServer(tmp_path, config=site_config(title="Offline explorer"),
                                   environ={}))
    requested: list[str] = []

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            requested.append(scope["path"])
        await server(scope, receive, send)

    with LiveServer(recording) as live:
        doc = httpx.get(f"{live.url}/openapi.json").json()
        requested.clear()
        dom = subprocess.run(offline_chromium(tmp_path / "profile", "--dump-dom",
                                              f"{live.url}/docs"),
                             capture_output=True, text=True, timeout=BROWSER_LIMIT,
                             check=False).stdout
    assert "Offline explorer" in dom, dom[-2000:]
    assert "Unable to render this definition" not in dom
    shown = set(re.findall(r'id="operations-[^"-]+-([^"]+)"', dom))
    expected = {op["operationId"] for item in doc["paths"].values() for op in item.values()}
    assert expected and expected <= shown, sorted(expected - shown)
    # everything the page needed came from this server: the page, its assets, the document
    assert "/docs/assets/swagger-ui-bundle.js" in requested and "/openapi.json" in requested
    assert {path for path in requested if path != "/favicon.ico"} <= {
        "/docs", "/openapi.json", "/docs/assets/swagger-ui.css",
        "/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui-standalone-preset.js",
        "/docs/assets/init.js", "/docs/assets/favicon-32x32.png"}
