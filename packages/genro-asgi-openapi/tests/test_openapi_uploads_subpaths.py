"""Upload routes are described as multipart/form-data bodies (files: binary strings), and a
route's declared ``subpaths`` as one path item per sub-path with its own methods. The document
stays valid for openapi-spec-validator, and over uvicorn a client following it is answered."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from genro_asgi import AsgiApplication, AsgiServer, MethodNotAllowed, Request, UploadFile, route
from genro_asgi.testing import LiveServer

FILE = {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream"}


class Media(AsgiApplication):
    """Uploads."""

    @route(methods=["POST"])
    async def attach(self, pid: str, image: UploadFile, note: str = "",
                     extra: list[UploadFile] | None = None) -> dict[str, Any]:
        data = await image.read()
        return {"pid": pid, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                "note": note, "extra": [f.filename for f in extra or []]}

    @route(methods=["GET", "POST"])
    async def maybe(self, label: str = "x", image: UploadFile | None = None) -> str:
        return label if image is None else f"{label}:{image.filename}"


class Files(AsgiApplication):
    """Files served by one handler."""

    @route(methods=["GET", "POST", "PUT", "DELETE"],
           subpaths={"": ["GET"], "{name}": ["GET", "DELETE"], "{name}/lock": ["POST"]})
    async def index(self, *path: str, request: Request, limit: int = 10) -> dict[str, Any]:
        allowed = {0: ["GET", "HEAD"], 1: ["GET", "HEAD", "DELETE"], 2: ["POST"]}
        if request.method not in allowed.get(len(path), []):
            raise MethodNotAllowed(allowed.get(len(path), []))
        return {"path": list(path), "limit": limit}


@pytest.fixture
def server(tmp_path: Path) -> AsgiServer:
    app = AsgiServer(tmp_path, environ={}, config={"plugins": {"openapi": {}}})
    app.mount("/media", Media())
    app.mount("/files", Files())
    return app


def document(server: AsgiServer) -> dict[str, Any]:
    doc: dict[str, Any] = server.plugins.get("openapi").document()
    validate(doc)
    return doc


def test_upload_routes_are_multipart(server: AsgiServer) -> None:
    doc = document(server)
    body = doc["paths"]["/media/attach"]["post"]["requestBody"]
    assert body["required"] is True
    assert list(body["content"]) == ["multipart/form-data"]  # no JSON: it cannot carry a file
    schema = body["content"]["multipart/form-data"]["schema"]
    assert schema["properties"]["image"] == FILE
    assert schema["properties"]["extra"] == {"type": "array", "items": FILE}
    assert schema["properties"]["note"]["type"] == "string"
    assert schema["required"] == ["pid", "image"]
    # a file is never a path parameter
    assert "/media/attach/{pid}/{image}" not in doc["paths"]
    responses = doc["paths"]["/media/attach"]["post"]["responses"]
    assert {"400", "413", "415"} <= set(responses)


def test_a_file_is_never_a_query_parameter(server: AsgiServer) -> None:
    doc = document(server)
    query = [p["name"] for p in doc["paths"]["/media/maybe"]["get"].get("parameters", [])]
    assert query == ["label"]
    post = doc["paths"]["/media/maybe"]["post"]["requestBody"]
    assert post["required"] is False
    assert post["content"]["multipart/form-data"]["schema"]["properties"]["image"] == FILE


def test_subpaths_are_described_each_with_its_methods(server: AsgiServer) -> None:
    paths = document(server)["paths"]
    assert set(paths["/files"]) == {"get"}
    assert [p["name"] for p in paths["/files"]["get"]["parameters"]] == ["limit"]
    assert set(paths["/files/{name}"]) == {"get", "delete"}
    (name,) = paths["/files/{name}"]["get"]["parameters"]
    assert name["in"] == "path" and name["required"] is True
    assert set(paths["/files/{name}/lock"]) == {"post"}
    assert "requestBody" not in paths["/files/{name}/lock"]["post"]
    assert not any(method in ("put", "trace") for item in paths.values() for method in item)


def test_over_uvicorn(server: AsgiServer) -> None:
    content = b"\x89PNG fake image bytes" * 100
    with LiveServer(server) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        doc = client.get("/openapi.json").json()
        validate(doc)
        fields = doc["paths"]["/media/attach"]["post"]["requestBody"]["content"][
            "multipart/form-data"]["schema"]["properties"]
        assert fields["image"] == FILE
        sent = client.post("/media/attach", data={"pid": "p1", "note": "front"},
                           files=[("image", ("a.png", content, "image/png")),
                                  ("extra", ("b.png", b"1", "image/png")),
                                  ("extra", ("c.png", b"2", "image/png"))])
        assert sent.status_code == 200, sent.text
        assert sent.json() == {"pid": "p1", "size": len(content), "note": "front",
                               "sha256": hashlib.sha256(content).hexdigest(),
                               "extra": ["b.png", "c.png"]}
        as_json = client.post("/media/attach", json={"pid": "p1", "image": "not a file"})
        assert as_json.status_code == 400
        for path, methods in (("/files", {"GET"}), ("/files/a", {"GET", "DELETE"}),
                              ("/files/a/lock", {"POST"})):
            for method in ("GET", "POST", "PUT", "DELETE"):
                status = client.request(method, path).status_code
                assert (status == 200) == (method in methods), (method, path, status)
