"""The options of the ``openapi`` plugin (``plugins: {openapi: {...}}`` in config.yaml)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ServerEntry(BaseModel):
    """One entry of the document's ``servers`` list."""

    model_config = ConfigDict(extra="forbid")

    url: str
    description: str | None = None


def _check_path(value: str) -> str:
    if not value.startswith("/") or value == "/" or value.endswith("/"):
        raise ValueError(f"{value!r} must be an absolute path below / without a trailing slash")
    if any(not part or part in (".", "..") for part in value[1:].split("/")):
        raise ValueError(f"{value!r} has an empty, '.' or '..' segment")
    return value


class OpenApiConfig(BaseModel):
    """Validated options; an unknown key is refused naming ``plugins.openapi.<key>``."""

    model_config = ConfigDict(extra="forbid")

    path: str = "/openapi.json"
    """Where the document is served."""
    explorer_path: str | None = "/docs"
    """Where the API explorer (Swagger UI) is served; null turns it off."""
    title: str = "genro-asgi API"
    version: str = "0.1.0"
    """The version of *your* API (``info.version``), not of genro-asgi."""
    description: str | None = None
    servers: list[ServerEntry] = Field(default_factory=list)
    """``servers`` of the document; empty: the explorer calls the origin it was loaded from."""
    apps: list[str] | None = None
    """Names of the mounted applications to describe (as in ``apps:`` or a plugin's mount);
    null: every mounted routing application."""
    exclude_tags: list[str] = Field(default_factory=list)
    """Leave out every operation carrying one of these tags: an application's name, or a tag
    a route declares with ``@route(meta_tags=[...])``."""
    hide_protected: bool = False
    """Leave out the routes that declare an auth rule (``@route(auth=...)``)."""
    path_parameters: bool = True
    """Also describe ``/route/{param}`` for routes whose leading parameters are required and
    positional (the core takes them from trailing path segments)."""
    max_document_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    """A document larger than this, encoded, stops the startup: a route table that large is a
    mistake, and the document is held in memory."""

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return _check_path(value)

    @field_validator("explorer_path")
    @classmethod
    def _explorer_path(cls, value: str | None) -> str | None:
        return None if value is None else _check_path(value)
