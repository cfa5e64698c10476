"""The blocking steps of a request that are not its handler (decoding a large body, finding and
reading a static file, an uploaded file's disk I/O) run in the serving server's own sync pool,
like ``def`` handlers: bounded
(a full pool answers 503 with ``Retry-After`` instead of queueing without limit), one per
server, and never in asyncio's process-wide default executor. Outside a server, a ``Request``
or ``FileResponse`` still works (default executor).

Handlers that must keep the pool busy wait on a ``threading.Event`` the test sets; every wait
is bounded by ``SAFETY`` against a hang and is never an assertion about speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from genro_asgi import AsgiApplication, AsgiServer, Request, StaticRouter, UploadFile, route
from genro_asgi import staticfiles as staticfiles_module
from genro_asgi.request import DECODE_IN_THREAD_ABOVE
from genro_asgi.staticfiles import FileResponse
from genro_asgi.sync_pool import off_loop
from genro_asgi.testing import AsyncTestClient, LiveServer

SAFETY = 20.0  # seconds: a guard against a hung test, never an assertion
BIG_JSON = ('{"pad": "' + "x" * DECODE_IN_THREAD_ABOVE + '", "a": 1}').encode()


class Busy(AsgiApplication):
    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.uploads: list[UploadFile] = []

    @route()
    def hold(self) -> str:
        self.entered.set()
        if not self.release.wait(SAFETY):
            raise RuntimeError("the test never released the handler")
        return "released"

    @route(methods=["POST"])
    async def raw_json(self, request: Request) -> int:
        return len(await request.json())

    @route(methods=["POST"])
    async def upload(self, doc: UploadFile) -> dict[str, Any]:
        data = await doc.read()
        await doc.seek(0)
        self.uploads.append(doc)
        return {"size": len(data), "head": (await doc.read(4)).decode()}


async def eventually(check: Any, what: str) -> None:
    """Wait until ``check()`` holds, bounded by SAFETY: a regression fails, never hangs."""
    deadline = asyncio.get_running_loop().time() + SAFETY
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"never: {what}"
        await asyncio.sleep(0.01)


def _thread_names(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[str]:
    names: list[str] = []
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        names.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return names


UPLOAD = b"head" + b"u" * (256 * 1024)  # over the spool size below: written to disk


def _server(tmp_path: Path, **overrides: Any) -> tuple[AsgiServer, Busy]:
    (tmp_path / "public").mkdir(exist_ok=True)
    (tmp_path / "public" / "big.bin").write_bytes(b"z" * (3 * 64 * 1024 + 5))
    server = AsgiServer(tmp_path, config={"server": {"upload_spool_size": "64KiB"}},
                        environ={}, **overrides)
    app = Busy()
    server.mount("/b", app)
    server.mount("/files", StaticRouter(tmp_path / "public"))
    return server, app


async def test_a_large_body_is_decoded_in_the_servers_pool(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import genro_asgi.request as request_module

    names = _thread_names(monkeypatch, request_module.json, "loads")
    server, _ = _server(tmp_path)
    async with AsyncTestClient(server) as client:
        answer = await client.post("/b/raw_json", content=BIG_JSON,
                                   headers={"content-type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert names and names[0].startswith(server.sync.pool.name)


async def test_a_static_file_is_found_and_read_in_the_servers_pool(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lookups = _thread_names(monkeypatch, StaticRouter, "_lookup")
    reads = _thread_names(monkeypatch, staticfiles_module, "_open_at")
    server, _ = _server(tmp_path)
    async with AsyncTestClient(server) as client:
        answer = await client.get("/files/big.bin")
    assert answer.status_code == 200 and len(answer.content) == 3 * 64 * 1024 + 5
    pool = server.sync.pool.name
    assert lookups and all(name.startswith(pool) for name in lookups)
    assert reads and all(name.startswith(pool) for name in reads)


@contextlib.asynccontextmanager
async def held_pool(server: AsgiServer, app: Busy,
                    ) -> AsyncIterator[tuple[AsyncTestClient, asyncio.Future[Any]]]:
    """A client of ``server`` whose sync pool is busy with ``/b/hold`` (``held``) until the
    test sets ``app.release``."""
    async with AsyncTestClient(server) as client:
        held = asyncio.ensure_future(client.get("/b/hold"))
        await eventually(app.entered.is_set, "the held handler started")
        yield client, held


async def test_a_full_pool_refuses_a_large_body_and_a_static_lookup_with_503(
        tmp_path: Path) -> None:
    server, app = _server(tmp_path, sync_workers=1, sync_queue=0, sync_retry_after=3)
    async with held_pool(server, app) as (client, held):
        decoded = await client.post("/b/raw_json", content=BIG_JSON,
                                    headers={"content-type": "application/json"})
        found = await client.get("/files/big.bin")
        small = await client.post("/b/raw_json", content=b'{"a": 1}',
                                  headers={"content-type": "application/json"})
        app.release.set()
        assert (await asyncio.wait_for(held, SAFETY)).text == "released"
        after = await client.post("/b/raw_json", content=BIG_JSON,
                                  headers={"content-type": "application/json"})
    for refused in (decoded, found):
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "3"
    assert small.status_code == 200  # a small body decodes on the loop: never refused
    assert after.status_code == 200  # room again once the pool has a free worker


async def test_an_uploaded_files_disk_io_runs_in_the_servers_pool(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spooled = tempfile.SpooledTemporaryFile
    calls = {name: _thread_names(monkeypatch, spooled, name)
             for name in ("write", "read", "seek", "close")}
    server, app = _server(tmp_path)
    async with AsyncTestClient(server) as client:
        answer = await client.post("/b/upload", files={"doc": ("a.bin", UPLOAD)})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"size": len(UPLOAD), "head": "head"}
        (upload,) = app.uploads
        # closed once a worker is free, after the answer
        await eventually(lambda: upload.closed, "the upload closed")
    pool = server.sync.pool.name
    for name in ("write", "read", "close"):
        assert calls[name] and all(thread.startswith(pool) for thread in calls[name]), name
    # the parser rewinds a finished file on the loop (an lseek: no disk access); the
    # handler's own seek goes to the pool
    assert calls["seek"][-1].startswith(pool)


@contextlib.contextmanager
def recording_uploads() -> Iterator[list[UploadFile]]:
    """The UploadFile objects created inside the block, in order."""
    opened: list[UploadFile] = []
    original = UploadFile.__init__

    def record(self: UploadFile, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        opened.append(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(UploadFile, "__init__", record)
        yield opened


async def test_a_full_pool_refuses_an_upload_and_its_file_is_still_closed(
        tmp_path: Path) -> None:
    server, app = _server(tmp_path, sync_workers=1, sync_queue=0, sync_retry_after=3)
    async with held_pool(server, app) as (client, held):
        with recording_uploads() as opened:
            refused = await client.post("/b/upload", files={"doc": ("a.bin", UPLOAD)})
        assert refused.status_code == 503, refused.text  # answered while the pool is held
        assert refused.headers["retry-after"] == "3"
        assert opened and not app.uploads
        app.release.set()
        assert (await asyncio.wait_for(held, SAFETY)).text == "released"
        await eventually(lambda: all(upload.closed for upload in opened),  # when free
                         "the refused uploads closed")
        served = await client.post("/b/upload", files={"doc": ("a.bin", UPLOAD)})
    assert served.status_code == 200 and served.json()["size"] == len(UPLOAD)


async def test_a_refused_upload_is_closed_at_once_not_pinned_until_the_pool_frees(
        tmp_path: Path) -> None:
    # the write that would have moved the file to disk was refused: its content is still in
    # memory (up to upload_spool_size each), so it is closed with the 503, not queued behind
    # the busy pool (where each refused upload pinned its spool until a worker was free)
    server, app = _server(tmp_path, sync_workers=1, sync_queue=0)
    async with held_pool(server, app) as (client, held):
        try:
            with recording_uploads() as opened:
                for _ in range(3):
                    refused = await client.post("/b/upload", files={"doc": ("a.bin", UPLOAD)})
                    assert refused.status_code == 503, refused.text
            assert len(opened) == 3 and all(upload.closed for upload in opened)
            assert all(not upload.on_disk for upload in opened)
            assert server.sync.pool.admitted == 1  # the held call: nothing queued for them
        finally:
            app.release.set()
        assert (await asyncio.wait_for(held, SAFETY)).text == "released"


async def test_outside_a_server_the_default_executor_is_used() -> None:
    loop_thread = threading.current_thread().name
    name = await off_loop({}, lambda: threading.current_thread().name)
    assert name != loop_thread and not name.startswith("genro-sync")

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    response = FileResponse(__file__)
    await response({"type": "http", "method": "GET", "headers": []}, receive, send)
    assert sent[0]["status"] == 200


@pytest.mark.e2e
def test_over_uvicorn_a_full_pool_refuses_a_large_body_then_serves_it_and_an_upload(
        tmp_path: Path) -> None:
    server, app = _server(tmp_path, sync_workers=1, sync_queue=0)
    with LiveServer(server) as live, ThreadPoolExecutor(1) as pool, \
            httpx.Client(base_url=live.url, timeout=SAFETY) as http:
        held = pool.submit(http.get, "/b/hold")
        assert app.entered.wait(SAFETY)
        refused = http.post("/b/raw_json", content=BIG_JSON,
                            headers={"content-type": "application/json"})
        app.release.set()
        assert held.result(SAFETY).text == "released"
        served = http.post("/b/raw_json", content=BIG_JSON,
                           headers={"content-type": "application/json"})
        file = http.get("/files/big.bin")
        uploaded = http.post("/b/upload", files={"doc": ("a.bin", UPLOAD)})
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert uploaded.status_code == 200
    assert uploaded.json() == {"size": len(UPLOAD), "head": "head"}
    assert served.status_code == 200 and served.json() == 2
    assert file.status_code == 200 and len(file.content) == 3 * 64 * 1024 + 5
