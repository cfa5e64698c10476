"""pytest fixtures for genro-asgi apps and plugins (registered by the ``pytest11`` entry point).

``make_server(config)`` builds an AsgiServer in a temporary directory; ``make_client(app)``
returns an entered TestClient; ``live_server(app)`` serves an app with a real uvicorn on a free
loopback port. Everything is closed at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def make_server(tmp_path: Path) -> Callable[..., Any]:
    """``make_server(config=None, *, environ=None, **overrides)``: an AsgiServer in ``tmp_path``.

    ``config`` is the mapping used instead of a ``config.yaml``; the environment is ``environ``
    (empty unless given), so the shell's ``GENRO_ASGI_*`` variables never leak into a test.
    """
    from genro_asgi import AsgiServer

    def factory(config: Mapping[str, Any] | None = None, *,
                environ: Mapping[str, str] | None = None, **overrides: Any) -> AsgiServer:
        """A server in tmp_path; its environment is ``environ`` (empty unless given)."""
        return AsgiServer(tmp_path, config=dict(config or {}), environ=dict(environ or {}),
                          **overrides)

    return factory


@pytest.fixture
def make_client() -> Iterator[Callable[..., Any]]:
    """``make_client(app, **options)``: an entered TestClient (lifespan run), closed at teardown."""
    from genro_asgi.testing import TestClient

    clients: list[TestClient] = []

    def factory(app: Any, **options: Any) -> TestClient:
        client = TestClient(app, **options)
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture
def live_server() -> Iterator[Callable[..., Any]]:
    """``live_server(app, **options)``: a started ``LiveServer`` (real uvicorn on a free loopback
    port), stopped at teardown. ``options`` are ``LiveServer``'s.
    """
    from genro_asgi.testing import LiveServer

    servers: list[LiveServer] = []

    def factory(app: Any, **options: Any) -> LiveServer:
        server = LiveServer(app, **options).start()
        servers.append(server)
        return server

    yield factory
    for server in reversed(servers):
        server.stop()
