"""multipart/form-data end to end: httpx against a real uvicorn on a loopback port, files spooled
to disk and gone afterwards, limits and malformed bodies over the wire, a client that hangs up
in the middle of an upload."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from genro_asgi import AsgiApplication, AsgiServer, UploadFile, route
from genro_asgi.testing import LiveServer

pytestmark = pytest.mark.e2e


class Files(AsgiApplication):
    @route(methods=["POST"])
    async def store(self, docs: list[UploadFile], owner: str, count: int = 0) -> dict[str, Any]:
        out = []
        for doc in docs:
            digest = hashlib.sha256()
            while chunk := await doc.read(65536):
                digest.update(chunk)
            out.append({"name": doc.filename, "size": doc.size, "on_disk": doc.on_disk,
                        "sha": digest.hexdigest()})
        return {"owner": owner, "count": count, "docs": out}


def open_files(directory: Path) -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith(f"{directory}/")
        except OSError:
            continue
    return count


def wait_until_clean(directory: Path) -> None:
    """Bounded wait (against hangs, not a timing assertion) for the server to let go."""
    deadline = time.monotonic() + 30
    while open_files(directory) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_files(directory) == 0
    assert os.listdir(directory) == []


@pytest.fixture
def upload_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "spool"
    directory.mkdir()
    return directory


@pytest.fixture
def live(tmp_path: Path, upload_dir: Path) -> Iterator[LiveServer]:
    server = AsgiServer(tmp_path, config={"server": {
        "upload_dir": str(upload_dir), "upload_spool_size": 65536,
        "max_upload_file_size": 4 * 1024 * 1024, "max_upload_size": 8 * 1024 * 1024,
        "max_upload_field_size": 1000,
    }}, environ={})
    server.mount("/files", Files())
    with LiveServer(server) as running:
        yield running


def test_files_and_fields_over_uvicorn(live: LiveServer, upload_dir: Path) -> None:
    big = os.urandom(3 * 1024 * 1024)
    files: list[tuple[str, Any]] = [("docs", ("small.txt", b"tiny", "text/plain")),
                                    ("docs", ("big.bin", big))]
    with httpx.Client(base_url=live.url, timeout=60) as client:
        response = client.post("/files/store", files=files, data={"owner": "ann", "count": "2"})
    assert response.status_code == 200, response.text
    got = response.json()
    assert (got["owner"], got["count"]) == ("ann", 2)
    assert got["docs"] == [
        {"name": "small.txt", "size": 4, "on_disk": False,
         "sha": hashlib.sha256(b"tiny").hexdigest()},
        {"name": "big.bin", "size": len(big), "on_disk": True,
         "sha": hashlib.sha256(big).hexdigest()},
    ]
    wait_until_clean(upload_dir)


def test_a_chunked_upload_without_content_length(live: LiveServer, upload_dir: Path) -> None:
    boundary = "e2eb"
    data = os.urandom(512 * 1024)

    def chunks() -> Iterator[bytes]:
        yield (f'--{boundary}\r\nContent-Disposition: form-data; name="owner"\r\n\r\nbob\r\n'
               f'--{boundary}\r\nContent-Disposition: form-data; name="docs"; '
               f'filename="c.bin"\r\n\r\n').encode()
        for start in range(0, len(data), 50_000):
            yield data[start:start + 50_000]
        yield f"\r\n--{boundary}--\r\n".encode()

    with httpx.Client(base_url=live.url, timeout=60) as client:
        response = client.post("/files/store", content=chunks(), headers={
            "content-type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 200, response.text
    assert response.json()["docs"][0]["sha"] == hashlib.sha256(data).hexdigest()
    wait_until_clean(upload_dir)


@pytest.mark.parametrize(("kwargs", "status", "expected"), [
    ({"files": {"docs": ("a", b"a")}, "data": {"owner": "o" * 1001}}, 413,
     "field 'owner' is larger than 1000 bytes"),
    ({"content": b'--b\r\nContent-Disposition: form-data; name="owner"\r\n\r\nx',
      "headers": {"content-type": "multipart/form-data; boundary=b"}}, 400,
     "ends before its closing boundary"),
    ({"content": b"--b--\r\n", "headers": {"content-type": "multipart/form-data"}}, 400,
     "without a boundary"),
    ({"files": {"docs": ("a", b"a")}, "data": {"owner": "o", "count": "many"}}, 400,
     "parameter 'count'"),
])
def test_refusals_over_uvicorn(live: LiveServer, upload_dir: Path, kwargs: dict[str, Any],
                               status: int, expected: str) -> None:
    with httpx.Client(base_url=live.url, timeout=60) as client:
        response = client.post("/files/store", **kwargs)
    assert response.status_code == status, response.text
    assert expected in response.json()["error"]["message"]
    wait_until_clean(upload_dir)


def test_a_file_over_its_limit_is_413_and_the_server_keeps_serving(
        live: LiveServer, upload_dir: Path) -> None:
    with httpx.Client(base_url=live.url, timeout=60) as client:
        try:
            response = client.post("/files/store", data={"owner": "o"},
                                   files={"docs": ("huge", b"h" * (4 * 1024 * 1024 + 1))})
            assert response.status_code == 413
            assert "larger than 4194304 bytes" in response.json()["error"]["message"]
        except httpx.TransportError:
            pass  # the server may answer and close while the client is still sending
        wait_until_clean(upload_dir)
        ok = client.post("/files/store", data={"owner": "o"}, files={"docs": ("a", b"a")})
    assert ok.status_code == 200


def test_a_client_that_hangs_up_mid_upload_leaves_nothing(live: LiveServer,
                                                          upload_dir: Path) -> None:
    head = (b'--b\r\nContent-Disposition: form-data; name="docs"; filename="x"\r\n\r\n'
            + b"x" * 300_000)
    with socket.create_connection((live.host, live.port), timeout=30) as sock:
        sock.sendall(b"POST /files/store HTTP/1.1\r\nHost: t\r\n"
                     b"Content-Type: multipart/form-data; boundary=b\r\n"
                     b"Content-Length: 5000000\r\n\r\n" + head)
        deadline = time.monotonic() + 30  # bounded wait for the part to reach the disk
        while open_files(upload_dir) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert open_files(upload_dir) == 1
    wait_until_clean(upload_dir)
