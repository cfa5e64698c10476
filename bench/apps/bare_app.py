"""The floor: a hand-written ASGI callable serving the two endpoints with no framework at all.

It still does the per-request work every real app does for these endpoints (dispatch on the
path, encode the JSON body, build the headers) and answers the lifespan protocol, so uvicorn
runs it with ``--lifespan on`` exactly like the others.
"""

from __future__ import annotations

import json
from typing import Any

from bench.apps import HELLO_PATH, HELLO_TEXT, JSON_PATH, JSON_PAYLOAD

_HELLO_BODY = HELLO_TEXT.encode("utf-8")
_HELLO_HEADERS = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", str(len(_HELLO_BODY)).encode("latin-1")),
]
_NOT_FOUND_BODY = b"Not Found"


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """GET /hello -> text, GET /json -> JSON, anything else -> 404."""
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        return
    path = scope["path"]
    if path == HELLO_PATH:
        await send({"type": "http.response.start", "status": 200, "headers": _HELLO_HEADERS})
        await send({"type": "http.response.body", "body": _HELLO_BODY})
    elif path == JSON_PATH:
        body = json.dumps(JSON_PAYLOAD, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        await send({
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode("latin-1")),
            ],
        })
        await send({"type": "http.response.body", "body": body})
    else:
        await send({
            "type": "http.response.start",
            "status": 404,
            "headers": [(b"content-length", str(len(_NOT_FOUND_BODY)).encode("latin-1"))],
        })
        await send({"type": "http.response.body", "body": _NOT_FOUND_BODY})
