"""The plugin in a server: the document's route, the explorer's page and assets, the command."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from openapi_sites import Kinds, mount_site, site_config

from genro_asgi import AsgiServer
from genro_asgi.cli import main
from genro_asgi.testing import TestClient

PLUGIN = "genro_asgi_openapi.plugin:OpenApiPlugin"


def site(tmp_path: Path, **openapi: Any) -> AsgiServer:
    return mount_site(AsgiServer(tmp_path, config=site_config(**openapi), environ={}))


def test_the_document_route(tmp_path: Path) -> None:
    server = site(tmp_path)
    with TestClient(server) as client:
        answer = client.get("/openapi.json")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/json")
        assert answer.json() == server.plugins.get("openapi").document()
        assert client.head("/openapi.json").status_code == 200
        refused = client.post("/openapi.json")
        assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
        assert client.get("/openapi.json", params={"x": "1"}).status_code == 400
        assert client.get("/openapi.json/more").status_code == 404


def test_built_once_and_again_only_for_a_new_route_table(tmp_path: Path) -> None:
    server = AsgiServer(tmp_path, environ={}, config={"plugins": {"openapi": {"module": PLUGIN}}})
    plugin = server.plugins.get("openapi")
    with TestClient(server) as client:
        first = plugin.document()
        assert plugin.document() is first  # not rebuilt per request
        assert client.get("/openapi.json").json()["paths"] == {}
        server.mount("/kinds", Kinds())  # after startup: the table is replaced
        assert "/kinds/scalars" in client.get("/openapi.json").json()["paths"]
        assert plugin.document() is not first


def test_two_servers_never_share_a_document(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = site(tmp_path / "a", title="One")
    two = AsgiServer(tmp_path / "b", environ={},
                     config={"plugins": {"openapi": {"module": PLUGIN, "title": "Two"}}})
    with TestClient(one) as first, TestClient(two) as second:
        assert first.get("/openapi.json").json()["info"]["title"] == "One"
        doc = second.get("/openapi.json").json()
        assert doc["info"]["title"] == "Two" and doc["paths"] == {}


def test_a_document_over_its_byte_limit_stops_the_startup(tmp_path: Path) -> None:
    server = site(tmp_path, max_document_bytes=1024)
    # the test client reports a failed lifespan startup as a RuntimeError
    with pytest.raises(RuntimeError, match=r"plugin 'openapi'.*max_document_bytes \(1024\)"), \
            TestClient(server):
        pass


def test_the_explorer_page_loads_only_local_assets(tmp_path: Path) -> None:
    server = site(tmp_path, title="Shop <API>")
    with TestClient(server) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "<title>Shop &lt;API&gt;</title>" in page.text
        assert 'data-spec="/openapi.json"' in page.text
        links = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert links and all(link.startswith("/docs/assets/") for link in links)
        for link in links:
            asset = client.get(link)
            assert asset.status_code == 200, link
            assert asset.headers["cache-control"] == "public, max-age=86400"
            assert len(asset.content) > 0
        bundle = client.get("/docs/assets/swagger-ui-bundle.js")
        assert bundle.headers["content-type"].startswith("text/javascript")
        assert len(bundle.content) > 500_000  # the real Swagger UI, from the package
        assert client.get("/docs/assets/swagger-ui.css").headers["content-type"].startswith(
            "text/css")
        assert b"data-spec" in client.get("/docs/assets/init.js").content
        # Swagger UI's ?url= / ?configUrl= cannot point the page at another document
        assert client.get("/docs", params={"url": "http://elsewhere.example/x.json"}
                          ).status_code == 400


@pytest.mark.parametrize("path", ["/docs/assets/index.html", "/docs/assets/nope.js",
                                  "/docs/assets/..%2F..%2Fplugin.py",
                                  "/docs/assets/swagger-ui.js.map", "/docs/assets"])
def test_only_the_listed_assets_are_served(tmp_path: Path, path: str) -> None:
    with TestClient(site(tmp_path)) as client:
        answer = client.get(path)
    assert answer.status_code in (400, 404), answer.text
    assert answer.json()["error"]["status"] == answer.status_code


def test_explorer_and_document_paths_are_configurable(tmp_path: Path) -> None:
    server = site(tmp_path, path="/api/schema.json", explorer_path="/api/explore")

    async def behind_a_proxy(scope: Any, receive: Any, send: Any) -> None:
        await server({**scope, "root_path": "/prefix"}, receive, send)

    with TestClient(behind_a_proxy) as client:
        assert client.get("/api/schema.json").status_code == 200
        page = client.get("/api/explore").text
        assert 'data-spec="/prefix/api/schema.json"' in page
        assert 'src="/prefix/api/explore/assets/swagger-ui-bundle.js"' in page
        assert client.get("/docs").status_code == 404


def test_the_explorer_can_be_turned_off(tmp_path: Path) -> None:
    with TestClient(site(tmp_path, explorer_path=None)) as client:
        assert client.get("/docs").status_code == 404
        assert client.get("/openapi.json").status_code == 200


def _write_site(directory: Path, **openapi: Any) -> None:
    """A server directory whose config.yaml mounts the test site's apps."""
    config = site_config(**openapi)
    config["apps"] = {"kinds": {"module": "openapi_sites:Kinds"},
                      "guarded": {"module": "openapi_sites:Guarded"}}
    (directory / "config.yaml").write_text(json.dumps(config))


def test_the_command_prints_the_document(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    _write_site(tmp_path, title="From the CLI")
    assert main(["openapi", str(tmp_path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["info"]["title"] == "From the CLI"
    assert "/kinds/scalars" in doc["paths"] and "/guarded/reset" in doc["paths"]


def test_the_command_writes_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_site(tmp_path)
    target = tmp_path / "openapi.json"
    assert main(["openapi", str(tmp_path), "-o", str(target), "--indent", "0"]) == 0
    text = target.read_text()
    assert text.count("\n") == 1  # one line
    assert json.loads(text)["openapi"] == "3.1.0"
    assert "paths" in capsys.readouterr().err
    assert main(["openapi", str(tmp_path), "-o", str(tmp_path / "no" / "such.json")]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert main(["openapi", str(tmp_path), "--indent", "-1"]) == 2


def test_the_command_needs_the_plugin_enabled(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "config.yaml").write_text("plugins: {}\n")
    assert main(["openapi", str(tmp_path)]) == 2
    assert "unknown command 'openapi'" in capsys.readouterr().err


def test_behind_an_auth_plugin_that_admits_no_anonymous_requests(tmp_path: Path) -> None:
    config = site_config()
    config["plugins"]["auth"]["anonymous"] = False
    closed = mount_site(AsgiServer(tmp_path, config=config, environ={}))
    with TestClient(closed) as client:
        assert client.get("/openapi.json").status_code == 401
        assert client.get("/docs").status_code == 401
    # the documented way to open them: list them as public
    config["plugins"]["auth"]["public"] = ["/openapi.json", "/docs", "/docs/*"]
    opened = mount_site(AsgiServer(tmp_path, config=config, environ={}))
    with TestClient(opened) as client:
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/docs").status_code == 200
        assert client.get("/docs/assets/swagger-ui.css").status_code == 200
        assert client.get("/kinds/scalars", params={"text": "x"}).status_code == 401
