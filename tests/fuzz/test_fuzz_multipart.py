"""Fuzzing multipart/form-data bodies: hostile part headers, names, filenames, boundaries,
truncations and byte flips, split into chunks at random points, against small limits.

Properties, for any body: never a 500, a 4xx carries a message, the answer comes (the liveness
guard in fuzzing.arm), no temporary file is left open or on disk afterwards, and the server
keeps serving. In process through the project's test client, then a smaller run over uvicorn.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fuzzing import arm
from hypothesis import given, settings
from hypothesis import strategies as st

from genro_asgi import AsgiApplication, AsgiServer, UploadFile, route
from genro_asgi.testing import LiveServer, TestClient

BOUNDARY = "fuzzBoundary"


class Uploads(AsgiApplication):
    @route(methods=["POST"])
    async def typed(self, doc: UploadFile | None = None, docs: list[UploadFile] | None = None,
                    n: int = 0, tags: list[str] | None = None, note: str = "") -> dict[str, Any]:
        sizes = [len(await d.read()) for d in ([doc] if doc else []) + (docs or [])]
        return {"sizes": sizes, "n": n, "tags": tags, "note": note}

    @route(methods=["POST"])
    def loose(self, **values: Any) -> dict[str, str]:
        return {name: type(value).__name__ for name, value in values.items()}


def _server(root: Path, spool: Path) -> AsgiServer:
    server = AsgiServer(root, config={"server": {
        "upload_dir": str(spool), "upload_spool_size": 256, "max_upload_parts": 6,
        "max_upload_file_size": 4096, "max_upload_field_size": 512,
        "max_upload_part_header_size": 512, "max_upload_size": 16384}}, environ={})
    server.mount("/m", Uploads())
    return server


def _open_files(directory: Path) -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith(f"{directory}/")
        except OSError:
            continue
    return count


texts = st.text(st.characters(codec="utf-8"), max_size=30)
hostile_names = st.one_of(st.sampled_from(["doc", "docs", "n", "tags", "note", "", "x" * 600]),
                          texts)
header_values = st.one_of(texts, st.binary(max_size=40).map(lambda b: b.decode("latin-1")))
dispositions = st.one_of(
    st.builds(lambda n: f'form-data; name="{n}"', hostile_names),
    st.builds(lambda n, f: f'form-data; name="{n}"; filename="{f}"', hostile_names,
              st.one_of(texts, st.just("../../etc/passwd"), st.just(""))),
    st.builds(lambda n, f: f"form-data; name={n}; filename*=UTF-8''{f}", hostile_names, texts),
    header_values,
)
extra_headers = st.lists(st.tuples(st.sampled_from(["Content-Type", "X-A", "Content-Length",
                                                    "content-disposition", "Bad Name", ""]),
                                   header_values), max_size=3)
payloads = st.one_of(st.binary(max_size=600), st.sampled_from([b"1", b"-5", b"abc", b"\xff"]),
                     st.integers(0, 6000).map(lambda n: b"z" * n),
                     st.just(f"\r\n--{BOUNDARY}".encode()))


@st.composite
def parts(draw: st.DrawFn) -> bytes:
    head = f"--{BOUNDARY}\r\n"
    if draw(st.booleans()):
        head += f"Content-Disposition: {draw(dispositions)}\r\n"
    for name, value in draw(extra_headers):
        head += f"{name}: {value}\r\n"
    return head.encode("utf-8", "surrogatepass") + b"\r\n" + draw(payloads) + b"\r\n"


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    data = b"".join(draw(st.lists(parts(), max_size=8)))
    data += draw(st.sampled_from([f"--{BOUNDARY}--\r\n".encode(), b"", f"--{BOUNDARY}".encode(),
                                  f"--{BOUNDARY}--\r\nepilogue".encode()]))
    mutation = draw(st.sampled_from(["none", "truncate", "flip", "insert"]))
    if data and mutation == "truncate":
        data = data[:draw(st.integers(0, len(data)))]
    elif data and mutation == "flip":
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
    elif mutation == "insert":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=20)) + data[at:]
    return data


content_types = st.sampled_from([
    f"multipart/form-data; boundary={BOUNDARY}", f'multipart/form-data; boundary="{BOUNDARY}"',
    "multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; boundary=x",
    f"Multipart/Form-Data; charset=utf-8; boundary={BOUNDARY}",
])


def _chunks(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    start = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        yield data[start:cut]
        start = cut
    yield data[start:]


def _check(response: httpx.Response, spool: Path) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        if response.headers.get("content-type", "").startswith("application/json"):
            assert response.json()["error"]["message"]
        else:  # refused by the HTTP protocol before the app: plain text
            assert response.text.strip()
    assert _open_files(spool) == 0
    assert os.listdir(spool) == []


@pytest.fixture(scope="module")
def spool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-multipart-spool")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, spool: Path) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("fuzz-multipart")
    with TestClient(_server(root, spool)) as test_client:
        yield test_client


@settings(max_examples=max(300, settings().max_examples))
@given(data=bodies(), content_type=content_types, path=st.sampled_from(["/m/typed", "/m/loose"]),
       cuts=st.lists(st.integers(0, 20000), max_size=4))
def test_hostile_multipart_bodies(client: TestClient, spool: Path, data: bytes,
                                  content_type: str, path: str, cuts: list[int]) -> None:
    arm()
    response = client.post(path, content=_chunks(data, cuts),
                           headers={"content-type": content_type})
    _check(response, spool)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Path]]:
    root = tmp_path_factory.mktemp("fuzz-multipart-live")
    spool_dir = root / "spool"
    spool_dir.mkdir()
    with LiveServer(_server(root, spool_dir)) as running, \
            httpx.Client(base_url=running.url, timeout=60) as http:
        yield http, spool_dir


@settings(max_examples=40)
@given(data=bodies(), content_type=content_types, cuts=st.lists(st.integers(0, 20000),
                                                                max_size=3))
def test_hostile_multipart_bodies_over_uvicorn(live: tuple[httpx.Client, Path], data: bytes,
                                               content_type: str, cuts: list[int]) -> None:
    arm()
    http, spool_dir = live
    response = http.post("/m/typed", content=_chunks(data, cuts),
                         headers={"content-type": content_type})
    assert response.status_code < 500, (response.status_code, response.text[:500])
    # uvicorn's thread may still be closing the request when the response is read
    arm()
    for _ in range(600):
        if _open_files(spool_dir) == 0:
            break
        time.sleep(0.05)
    _check(response, spool_dir)
    assert http.post("/m/loose", files={"f": ("a", b"a")}).status_code == 200
