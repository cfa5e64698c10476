"""The benchmarked applications: the same two GET endpoints in each framework.

Each framework lives in its own module exposing a module-level ASGI callable ``app`` so that
uvicorn can import it by string (``bench.apps.genro_app:app``) and the in-process harness can
import the very same object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HELLO_PATH = "/hello"
JSON_PATH = "/json"
HELLO_TEXT = "Hello, world!"
JSON_PAYLOAD: dict[str, Any] = {"id": 1, "name": "widget", "tags": ["a", "b"], "price": 9.5}


@dataclass(frozen=True)
class Framework:
    """One benchmarked framework: a short key, the import string of its ASGI app, a label,
    and the headers every request to it carries besides Host (none unless given)."""

    key: str
    target: str
    label: str
    headers: tuple[tuple[str, str], ...] = ()


FRAMEWORKS: tuple[Framework, ...] = (
    Framework("bare", "bench.apps.bare_app:app", "bare ASGI callable"),
    Framework("starlette", "bench.apps.starlette_app:app", "Starlette"),
    Framework("starlette_3mw", "bench.apps.starlette_mw_app:app", "Starlette + 3 ASGI mw"),
    Framework("genro", "bench.apps.genro_app:app", "genro-asgi core+errors"),
)

ENDPOINTS: tuple[tuple[str, str], ...] = (("hello", HELLO_PATH), ("json", JSON_PATH))
