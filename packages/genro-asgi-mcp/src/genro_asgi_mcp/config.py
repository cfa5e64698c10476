"""The options of the ``mcp`` plugin (``plugins: {mcp: {...}}`` in config.yaml)."""

from __future__ import annotations

from pydantic import BaseModel, ByteSize, ConfigDict, Field, field_validator


class McpConfig(BaseModel):
    """Validated options; an unknown key is refused naming ``plugins.mcp.<key>``."""

    model_config = ConfigDict(extra="forbid")

    path: str = "/mcp"
    """The MCP endpoint (POST messages, DELETE a session)."""
    tools: list[str] = Field(default_factory=list)
    """Route paths exposed as tools: exact (``/shop/products``) or shell patterns
    (``/shop/*``). Routes declaring ``@route(meta_mcp=True)`` are exposed too."""
    name: str = "genro-asgi"
    """The server name announced to clients (``serverInfo.name``)."""
    version: str | None = None
    """The version announced (``serverInfo.version``); genro-asgi-mcp's when unset."""
    instructions: str | None = Field(None, max_length=16384)
    """Text sent to clients at initialisation, telling a model how to use the tools."""
    allowed_origins: list[str] = Field(default_factory=list)
    """Origins (``https://app.example``) whose browsers may call the endpoint. A request
    carrying any other ``Origin`` is a 403 (DNS rebinding); clients that send no ``Origin``
    (every non-browser one) are not affected."""
    max_body_size: ByteSize = Field(ByteSize(1024 * 1024), ge=64)
    """Largest message body; also bounded by ``server.max_body_size``. Bigger is a 413."""
    max_result_size: ByteSize = Field(ByteSize(4 * 1024 * 1024), ge=64)
    """Largest encoded tool result; a bigger one is a tool error."""
    max_calls_per_session: int = Field(16, ge=1)
    """Tool calls of one session in flight at once; one more is a JSON-RPC error."""
    max_sessions: int = Field(1000, ge=1)
    """Sessions open at once; an ``initialize`` past it is a 503 until one ends or expires."""
    session_idle_timeout: float = Field(600.0, gt=0)
    """Seconds a session lives without a request; after that its id is unknown (404)."""
    call_timeout: float = Field(60.0, gt=0)
    """Seconds a tool call may run; then the client gets a tool error. A synchronous
    handler's thread runs to its end, its result discarded."""

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or value.strip("/") == "":
            raise ValueError("must be an absolute path other than '/', like '/mcp'")
        return "/" + value.strip("/")

    @field_validator("tools")
    @classmethod
    def _tools(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.startswith("/"):
                raise ValueError(f"{item!r} is not an absolute route path")
        return ["/" + item.strip("/") for item in value]

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for item in value:
            if "://" not in item or item.endswith("/"):
                raise ValueError(f"{item!r} is not an origin like 'https://app.example'")
        return [item.lower() for item in value]
