"""Exceptions: the HTTPException family raised by handlers, and the framework's own errors."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus


class HTTPException(Exception):
    """An error that becomes an HTTP response with its own status (4xx/5xx)."""

    status_code = 500

    def __init__(
        self,
        status_code: int | None = None,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if status_code is not None:
            self.status_code = status_code
        if detail is None:
            detail = HTTPStatus(self.status_code).phrase
        self.detail = detail
        self.headers = dict(headers or {})
        super().__init__(self.status_code, detail)

    def __str__(self) -> str:
        return f"{self.status_code}: {self.detail}"


class BadRequest(HTTPException):
    """400: the request is malformed or a parameter is invalid (``detail`` says which)."""

    status_code = 400


class Unauthorized(HTTPException):
    """401: the request carries no valid credential."""

    status_code = 401


class Forbidden(HTTPException):
    """403: the identity is known but not allowed."""

    status_code = 403


class NotFound(HTTPException):
    """404: nothing answers this path (or the handler found no such resource)."""

    status_code = 404


class MethodNotAllowed(HTTPException):
    """405 with an ``Allow`` header listing the ``allowed`` methods."""

    status_code = 405

    def __init__(self, allowed: list[str], detail: str | None = None) -> None:
        self.allowed = allowed
        super().__init__(detail=detail, headers={"Allow": ", ".join(allowed)})


class PayloadTooLarge(HTTPException):
    """413: a body or upload over its configured limit."""

    status_code = 413


class UnsupportedMediaType(HTTPException):
    """415: a body in a content type the route cannot read."""

    status_code = 415


class RequestHeaderFieldsTooLarge(HTTPException):
    """431: too many request headers, or headers too large."""

    status_code = 431


class ServiceUnavailable(HTTPException):
    """503 with ``Retry-After: retry_after`` seconds (shutting down, a full pool)."""

    status_code = 503

    def __init__(self, detail: str | None = None, retry_after: int = 5) -> None:
        super().__init__(detail=detail, headers={"Retry-After": str(retry_after)})


class GenroAsgiError(Exception):
    """Base of the framework's own configuration and startup errors."""


class ConfigError(GenroAsgiError):
    """The configuration is invalid; the message names the source and the key path."""


class PluginError(GenroAsgiError):
    """A plugin cannot be found, loaded, configured or run; the message names the plugin."""


class StartupError(GenroAsgiError):
    """Startup failed; the message names the plugin or application at fault."""
