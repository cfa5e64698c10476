"""route(subpaths=...): a handler that serves trailing paths itself declares each one's methods,
and `genro-asgi routes` lists those instead of the union the route accepts."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import pytest

from genro_asgi import (
    AsgiApplication,
    AsgiServer,
    MethodNotAllowed,
    Request,
    UploadFile,
    route,
)
from genro_asgi.cli import cmd_routes, route_rows
from genro_asgi.testing import TestClient

ALL = ["GET", "POST", "PUT", "DELETE"]


class Files(AsgiApplication):
    @route(methods=ALL, subpaths={"": ["GET"], "{name}": ["GET", "PUT", "DELETE"],
                                  "{name}/lock": ["post"]})
    async def index(self, *path: str, request: Request) -> str:
        allowed = {0: ["GET", "HEAD"], 1: ["GET", "HEAD", "PUT", "DELETE"], 2: ["POST"]}
        methods = allowed.get(len(path), [])
        if request.method not in methods:
            raise MethodNotAllowed(methods)
        return "/".join(path) or "list"

    @route()
    async def plain(self, pid: str) -> str:
        return pid


def make(tmp_path: Path) -> AsgiServer:
    server = AsgiServer(tmp_path, config={}, environ={})
    server.mount("/files", Files())
    return server


def test_compiled_route_and_listing(tmp_path: Path) -> None:
    server = make(tmp_path)
    compiled = server.routes["/files/index"]
    assert compiled.subpaths == {"": ["GET", "HEAD"], "{name}": ["DELETE", "GET", "HEAD", "PUT"],
                                 "{name}/lock": ["POST"]}
    assert compiled.allow == ["DELETE", "GET", "HEAD", "POST", "PUT"]  # what reaches it
    assert server.routes["/files/plain"].subpaths is None
    rows = {row["path"]: row for row in route_rows(server)}
    assert rows["/files"]["methods"] == ["GET", "HEAD"]
    assert rows["/files/{name}"]["methods"] == ["DELETE", "GET", "HEAD", "PUT"]
    assert rows["/files/{name}"]["path_params"] == ["name"]
    assert rows["/files/{name}/lock"]["methods"] == ["POST"]
    assert rows["/files/{name}/lock"]["kind"] == "index of /files/index"
    assert rows["/files/plain/{pid}"]["methods"] == ["GET", "HEAD", "POST"]


def test_the_listing_tells_the_truth(tmp_path: Path) -> None:
    """Every method listed for a sub-path is served there; every other one is a 405."""
    server = make(tmp_path)
    with TestClient(server) as client:
        for row in route_rows(server):
            if not row["path"].startswith("/files") or "plain" in row["path"]:
                continue
            url = row["path"].replace("{name}", "a.txt")
            for method in ["GET", "POST", "PUT", "DELETE"]:
                status = client.request(method, url).status_code
                assert (status == 200) == (method in row["methods"]), (method, url, status)


def test_cli_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "files_app.py").write_text(Path(__file__).read_text())
    (tmp_path / "config.yaml").write_text(
        "apps:\n  files: {module: 'files_app:Files'}\n")
    args = argparse.Namespace(dir=str(tmp_path), config=None, json=True)
    assert cmd_routes(args) == 0
    rows = {row["path"]: row["methods"] for row in json.loads(capsys.readouterr().out)}
    assert rows["/files/{name}/lock"] == ["POST"]
    args.json = False
    cmd_routes(args)
    table = capsys.readouterr().out
    assert re.search(r"^/files/\{name\}/lock +POST +- ", table, re.M)
    assert "TRACE" not in table


@pytest.mark.parametrize(("subpaths", "message"), [
    ({}, "non-empty mapping"),
    ([("", ["GET"])], "non-empty mapping"),
    ({"../x": ["GET"]}, "not a sub-path template"),
    ({"{1bad}": ["GET"]}, "not a sub-path template"),
    ({"a//b": ["GET"]}, "not a sub-path template"),
    ({3: ["GET"]}, "not a sub-path template"),
    ({"x": []}, "non-empty list"),
    ({"x": "GET"}, "non-empty list"),
    ({"x": ["PATCH"]}, "among the route's"),
])
def test_bad_declarations(subpaths: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        route(methods=ALL, subpaths=subpaths)


class Uploads(AsgiApplication):
    @route(methods=["POST"])
    async def attach(self, pid: str, image: UploadFile) -> str:
        return pid


def test_a_file_parameter_is_not_a_path_parameter(tmp_path: Path) -> None:
    server = AsgiServer(tmp_path, config={}, environ={})
    server.mount("/up", Uploads())
    rows = {row["path"]: row for row in route_rows(server)}
    assert rows["/up/attach/{pid}"]["path_params"] == ["pid"]
