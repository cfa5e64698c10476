"""The ``errors`` plugin (always on): the default exception -> response handler.

HTTP exceptions keep their status and detail; anything else is a 500 with a short ``error_id``
that also appears in the log line, so a user's report leads straight to the traceback. The
body is JSON, or HTML when the client prefers it; the traceback is shown only when
``show_traceback: true``.
"""

from __future__ import annotations

import logging
import secrets
import traceback
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..exceptions import HTTPException
from ..plugins import Plugin, hookimpl
from ..request import Request
from ..response import HTMLResponse, JSONResponse, Response

logger = logging.getLogger("genro_asgi.errors")


class ErrorsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    show_traceback: bool = False
    log_client_errors: bool = False


def new_error_id() -> str:
    return secrets.token_hex(4)


def prefers_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    html_at = accept.find("text/html")
    json_at = accept.find("application/json")
    return html_at != -1 and (json_at == -1 or html_at < json_at)


class ErrorsPlugin(Plugin):
    config_model = ErrorsConfig
    config: ErrorsConfig

    @hookimpl(trylast=True)
    def genro_asgi_exception_response(self, request: Request, exc: Exception) -> Response:
        envelope = request.envelope
        error_id = new_error_id()
        if envelope is not None:
            envelope.error_id = error_id
        request_id = envelope.request_id if envelope is not None else None
        where = f"{request.method} {request.path}"
        if isinstance(exc, HTTPException):
            status, message, headers = exc.status_code, exc.detail, exc.headers
            if self.config.log_client_errors or status >= 500:
                logger.warning("error_id=%s request_id=%s %s -> %d %s", error_id, request_id,
                               where, status, message)
        else:
            status, message, headers = 500, "Internal Server Error", {}
            logger.error("error_id=%s request_id=%s %s -> 500 %s: %s", error_id, request_id,
                         where, type(exc).__name__, exc, exc_info=exc)
        payload: dict[str, Any] = {"status": status, "message": message, "error_id": error_id}
        if request_id:
            payload["request_id"] = request_id
        if self.config.show_traceback and not isinstance(exc, HTTPException):
            payload["traceback"] = traceback.format_exception(exc)
        if prefers_html(request):
            return HTMLResponse(render_html(payload), status_code=status, headers=headers)
        return JSONResponse({"error": payload}, status_code=status, headers=headers)


def render_html(payload: dict[str, Any]) -> str:
    import html  # its entity table is large: loaded by the first HTML error page only

    title = f"{payload['status']} {html.escape(str(payload['message']))}"
    rows = "".join(
        f"<p>{html.escape(key)}: <code>{html.escape(str(payload[key]))}</code></p>"
        for key in ("error_id", "request_id") if key in payload
    )
    trace = ""
    if "traceback" in payload:
        trace = f"<pre>{html.escape(''.join(payload['traceback']))}</pre>"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body><h1>{title}</h1>{rows}{trace}</body></html>")
