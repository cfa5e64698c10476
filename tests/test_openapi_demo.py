"""The demo's OpenAPI document: valid for openapi-spec-validator, and Schemathesis, driven by
it against the demo on a real uvicorn, gets only documented answers (``make fuzz``: longer)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from openapi_spec_validator import validate

from genro_asgi import AsgiServer
from genro_asgi.testing import LiveServer

from .conftest import DEMO, ROOT

sys.path.insert(0, str(ROOT / "packages" / "genro-asgi-openapi" / "tests"))
from openapi_st import schemathesis_run

pytestmark = pytest.mark.e2e
ADMIN = "Authorization: Bearer demo-admin-token-change-me"  # the demo's own, in config.yaml


def demo_server() -> AsgiServer:
    """The demo as config.yaml sets it up, less the remote debugger: it parks a failing
    request for a developer to attach, and a fuzzer needs every answer."""
    if str(DEMO) not in sys.path:
        sys.path.insert(0, str(DEMO))
    config: dict[str, Any] = yaml.safe_load((DEMO / "config.yaml").read_text())
    config["plugins"].pop("debug")
    return AsgiServer(DEMO, config=config, environ={})


def test_the_demo_document_is_valid_and_complete() -> None:
    server = demo_server()
    doc = server.plugins.get("openapi").document()
    validate(doc)
    assert doc["info"]["title"] == "genro-asgi demo"
    assert {tag["name"] for tag in doc["tags"]} == {"home", "shop", "metrics"}
    assert set(doc["paths"]["/shop/quote"]) == {"post"}
    assert doc["paths"]["/shop/restock"]["post"]["security"] == [{"bearer": []}]
    assert "/shop/product/{pid}" in doc["paths"]
    upload = doc["paths"]["/shop/upload_image"]["post"]["requestBody"]["content"]
    assert list(upload) == ["multipart/form-data"]
    assert upload["multipart/form-data"]["schema"]["properties"]["image"]["format"] == "binary"
    assert not any(path.startswith(("/_tasks", "/_wsx", "/static", "/docs"))
                   for path in doc["paths"])


def test_schemathesis_against_the_demo(tmp_path: Path) -> None:
    with LiveServer(demo_server()) as live:
        assert httpx.get(f"{live.url}/docs").status_code == 200
        run = schemathesis_run(
            live.url, "-H", ADMIN,
            # starts a CPU job of up to 20M rounds per call in the process pool
            "--exclude-path", "/crunch",
            # divides by zero on purpose, for the remote debugger's demo (a 500 by design)
            "--exclude-path", "/shop/average_price")
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    # 13 of 15 operations: the shop's multipart upload (with and without {pid}) among them
    assert "Selected: 13/15" in run.stdout and "Tested: 13" in run.stdout, run.stdout[-3000:]
