"""Shared helpers for the core's plugin, config, lifecycle, envelope and isolation tests.

``write_module`` writes a throwaway Python module (a plugin or an app) under ``tmp_path``, puts
its directory on ``sys.path`` and forgets the module at teardown; every module gets a unique
name so that two tests never share an import. ``write_module.distribution`` adds a
metadata-only distribution there, so entry-point discovery sees "installed" plugins. Each module
starts with ``PRELUDE``, which gives it the public API and a ``record(server, entry)`` helper
appending to ``server.state.calls``.

``asgi_call`` drives an ASGI app with one raw http scope (for what httpx will not send, such as
non-printable header values, or for a client that disconnects).
"""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

PRELUDE = '''\
import asyncio

from genro_asgi import (
    AsgiApplication, HTTPException, JSONResponse, PlainTextResponse, Plugin, Request,
    hookimpl, hookspec, route,
)


def record(server, entry):
    server.state.__dict__.setdefault("calls", []).append(entry)

'''


class ModuleWriter:
    """``name = write_module(source, stem="audit")``; ``write_module.root`` is on sys.path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.created: list[str] = []

    def __call__(self, *sources: str, stem: str = "mod", package: str | None = None) -> str:
        """Write the ``sources`` (each dedented, after the prelude); return the dotted name.

        With ``package``, the module is written inside that (created) package, so the returned
        name contains a dot.
        """
        name = f"{stem}_{uuid.uuid4().hex[:10]}"
        directory = self.root
        dotted = name
        if package is not None:
            directory = self.root / package
            directory.mkdir(exist_ok=True)
            (directory / "__init__.py").touch()
            dotted = f"{package}.{name}"
            self.created.append(package)
        (directory / f"{name}.py").write_text(
            PRELUDE + "\n".join(textwrap.dedent(source) for source in sources), encoding="utf-8")
        self.created.append(dotted)
        importlib.invalidate_caches()
        return dotted

    def distribution(self, name: str, version: str, entry_points: dict[str, str]) -> Path:
        """Install a metadata-only distribution declaring ``genro_asgi`` entry points."""
        info = self.root / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
        lines = "".join(f"{ep} = {value}\n" for ep, value in entry_points.items())
        (info / "entry_points.txt").write_text(f"[genro_asgi]\n{lines}", encoding="utf-8")
        importlib.invalidate_caches()
        return info

    def forget(self) -> None:
        for name in self.created:
            sys.modules.pop(name, None)


@pytest.fixture
def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleWriter]:
    root = tmp_path / "modules"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    writer = ModuleWriter(root)
    yield writer
    writer.forget()


@dataclass
class RawResponse:
    status: int | None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None


async def _asgi_call(
    app: Any,
    path: str = "/",
    *,
    method: str = "GET",
    headers: Sequence[tuple[bytes, bytes]] = (),
    body: bytes = b"",
    disconnect: bool = False,
) -> RawResponse:
    """One http request through ``app``; ``disconnect`` makes the client vanish at once."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": b"", "root_path": "", "headers": list(headers),
        "client": ("127.0.0.1", 40000), "server": ("testserver", 80),
    }
    response = RawResponse(None)
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if disconnect or sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            response.status = message["status"]
            response.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            response.body += message.get("body", b"")

    await app(scope, receive, send)
    return response


@pytest.fixture
def asgi_call() -> Callable[..., Any]:
    return _asgi_call
