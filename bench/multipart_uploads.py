"""multipart/form-data uploads, side by side with Starlette (both parse with python-multipart).

The same handler served both ways: read one file part whole and answer its size and a text
field, as JSON. genro-asgi binds ``doc: UploadFile, title: str``; Starlette reads
``await request.form()``. Both keep files in memory up to 1 MiB and spool larger ones to a
temporary file (Starlette's default, ``server.upload_spool_size`` here). Each app is driven
in-process (no socket) with the body delivered in 64 KiB ``http.request`` messages, as uvicorn
delivers it; rounds are interleaved; medians in microseconds per request and the ratio
genro-asgi / Starlette:

- ``1 KB file + 2 fields``: the common small form;
- ``256 KB file``: in memory;
- ``4 MB file``: spooled to disk (writes in a worker thread in genro-asgi).

Run from the repository root: ``.venv/bin/python bench/multipart_uploads.py [--rounds 5]``.
The suite only reports; nothing here compares a figure with a threshold.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.inprocess import Lifespan
from bench.machine import wait_for_quiet
from genro_asgi import AsgiApplication, AsgiServer, UploadFile, route

BOUNDARY = "benchBoundary7MA4YWxkTrZu0gW"
CHUNK = 64 * 1024


def multipart(size: int) -> bytes:
    fields = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        .encode() for name, value in (("title", "report"), ("n", "3")))
    return fields + (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="doc"; '
                     f'filename="a.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
                     ).encode() + os.urandom(size) + f"\r\n--{BOUNDARY}--\r\n".encode()


SCENARIOS = {"1 KB file + 2 fields": (1024, 2000), "256 KB file": (256 * 1024, 300),
             "4 MB file": (4 * 1024 * 1024, 30)}


def genro_app() -> Any:
    class Site(AsgiApplication):
        @route(methods=["POST"])
        async def upload(self, doc: UploadFile, title: str, n: int = 0) -> dict[str, Any]:
            return {"size": len(await doc.read()), "title": title}

    server = AsgiServer(tempfile.mkdtemp(prefix="genro-multipart-bench-"), environ={},
                        config={"logging": {"access_log": False, "level": "WARNING"}})
    server.mount("/", Site())
    return server


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def upload(request: Any) -> Any:
        async with request.form() as form:
            data = await form["doc"].read()
            return JSONResponse({"size": len(data), "title": form["title"]})

    return Starlette(routes=[Route("/upload", upload, methods=["POST"])])


class Sink:
    def __init__(self) -> None:
        self.status = 0
        self.body = b""

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")


def scope(length: int) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000), "scheme": "http",
            "method": "POST", "root_path": "", "path": "/upload", "raw_path": b"/upload",
            "query_string": b"", "state": {},
            "headers": [(b"host", b"127.0.0.1:8000"),
                        (b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
                        (b"content-length", str(length).encode())]}


async def once(app: Any, body: bytes) -> Sink:
    chunks = [body[i:i + CHUNK] for i in range(0, len(body), CHUNK)]
    index = 0

    async def receive() -> dict[str, Any]:
        nonlocal index
        index += 1
        return {"type": "http.request", "body": chunks[index - 1],
                "more_body": index < len(chunks)}

    sink = Sink()
    await app(scope(len(body)), receive, sink)
    return sink


async def timed(app: Any, body: bytes, requests: int) -> float:
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        for _ in range(requests):
            await once(app, body)
        return (time.perf_counter() - started) / requests * 1e6
    finally:
        gc.enable()


async def main(rounds: int) -> None:
    apps = {"genro-asgi": genro_app(), "starlette": starlette_app()}
    lifespans = [Lifespan(app) for app in apps.values()]
    for running in lifespans:
        await running.start()
    bodies = {label: multipart(size) for label, (size, _) in SCENARIOS.items()}
    for label, body in bodies.items():
        for name, app in apps.items():
            sink = await once(app, body)
            print(f"{label:22} {name:11} {sink.status} {sink.body.decode()[:60]}")
    figures: dict[tuple[str, str], list[float]] = {}
    busy = 0
    for _ in range(rounds):
        if not wait_for_quiet():
            busy += 1
        for label, body in bodies.items():
            requests = SCENARIOS[label][1]
            for name, app in apps.items():
                await timed(app, body, max(1, requests // 10))  # warm up
                figures.setdefault((label, name), []).append(await timed(app, body, requests))
    print(f"\nmedians of {rounds} rounds, us/request ({busy} rounds started on a busy machine)")
    print(f"{'scenario':22} {'genro-asgi':>11} {'starlette':>11} {'genro/starlette':>16}")
    for label in bodies:
        genro = statistics.median(figures[(label, "genro-asgi")])
        star = statistics.median(figures[(label, "starlette")])
        print(f"{label:22} {genro:11.1f} {star:11.1f} {genro / star:16.2f}")
    for running in lifespans:
        await running.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main(parser.parse_args().rounds))
