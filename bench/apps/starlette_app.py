"""Starlette: two ``Route``s with async endpoints returning PlainTextResponse / JSONResponse."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from bench.apps import HELLO_PATH, HELLO_TEXT, JSON_PATH, JSON_PAYLOAD


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse(HELLO_TEXT)


async def json_endpoint(request: Request) -> JSONResponse:
    return JSONResponse(JSON_PAYLOAD)


ROUTES = [
    Route(HELLO_PATH, hello, methods=["GET"]),
    Route(JSON_PATH, json_endpoint, methods=["GET"]),
]

app = Starlette(routes=ROUTES)
