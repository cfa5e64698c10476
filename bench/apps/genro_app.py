"""genro-asgi core with its default plugin set (errors): an AsgiApplication mounted at "/".

The server directory is a private temporary directory (the config is given as a mapping, so
nothing is read from it); the access log is off, as it is for every framework benchmarked.
"""

from __future__ import annotations

import tempfile
from typing import Any

from bench.apps import HELLO_TEXT, JSON_PAYLOAD
from genro_asgi import AsgiApplication, AsgiServer, route


class BenchApp(AsgiApplication):
    """``GET /hello`` -> text, ``GET /json`` -> JSON."""

    @route()
    async def hello(self) -> str:
        return HELLO_TEXT

    @route()
    async def json(self) -> dict[str, Any]:
        return JSON_PAYLOAD


_server_dir = tempfile.TemporaryDirectory(prefix="genro-asgi-bench-")

server = AsgiServer(_server_dir.name, config={"logging": {"access_log": False}}, environ={})
server.mount("/", BenchApp())

app = server
