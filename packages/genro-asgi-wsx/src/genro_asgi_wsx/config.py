"""The options of the ``wsx`` plugin (``plugins: {wsx: {...}}`` in config.yaml)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ByteSize, ConfigDict, Field, field_validator

from genro_asgi.components import component_class

from .broker import Broker, MemoryBroker
from .channels import check_pattern

Subprotocol = Literal["wsx", "jsonrpc"]
_BOTH: list[Subprotocol] = ["wsx", "jsonrpc"]


class WsxConfig(BaseModel):
    """Validated options; an unknown key is refused naming ``plugins.wsx.<key>``."""

    model_config = ConfigDict(extra="forbid")

    path: str = "/_wsx"
    """Where the WebSocket endpoint is served; ``<path>/client.js`` serves the browser client."""
    subprotocols: list[Subprotocol] = Field(default_factory=lambda: _BOTH.copy(), min_length=1)
    """The subprotocols offered; a client offering none gets the first of this list."""
    allowed_origins: list[str] | None = None
    """Browser origins allowed to connect (``["*"]``: any). Unset: the cors plugin's rule when
    it is on, else the server's own origin only."""
    require_identity: bool | None = None
    """Refuse calls until an identity is established. Unset: required when ``auth`` is on."""
    auth_deadline: float = Field(10.0, gt=0)
    """Seconds a connection without identity has to send its ``auth`` message (4001 after)."""
    max_message_size: ByteSize = ByteSize(1024 * 1024)
    """A larger frame closes the connection with 1009."""
    max_in_flight: int = Field(32, ge=1)
    """Calls of one connection running at once; more are answered ``too_many_calls``."""
    max_subscriptions: int = Field(100, ge=0)
    """Subscriptions one connection may hold."""
    max_batch: int = Field(100, ge=1)
    """Items in one JSON-RPC batch."""
    outbound_queue: int = Field(1000, ge=1)
    """Frames waiting to be sent to one client; when full the client is closed with 4000."""
    max_queued_bytes: ByteSize = Field(ByteSize(4 * 1024 * 1024), ge=1024)
    """UTF-8 bytes waiting to be sent to one client (a frame into an empty queue is always
    taken); more closes the client with 4000."""
    close_timeout: float = Field(10.0, gt=0)
    """Seconds the close frame may wait to be written (a client that does not read never
    takes it); then the socket is dropped."""
    heartbeat_interval: float = Field(20.0, ge=0)
    """Seconds between server pings (0 disables the heartbeat)."""
    heartbeat_timeout: float = Field(20.0, gt=0)
    """Seconds a client has to send anything after a ping (4002 after)."""
    max_connections: int = Field(0, ge=0)
    """Open connections per server process (0: no limit); more are closed with 1013."""
    max_depth: int = Field(128, ge=1, le=400)
    """Nesting of arrays and objects in one frame (and in a TYTX ``data`` string); deeper is a
    parse error. At most 400: deeper values cannot be hydrated or encoded again safely."""
    max_protocol_errors: int = Field(20, ge=1)
    """Consecutive malformed frames tolerated before closing with 1002."""
    broker: str = "memory"
    """``memory`` (one process), or ``pkg.module:Class``: a ``Broker`` subclass, built with
    ``broker_options`` as keyword arguments."""
    broker_options: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments for the ``broker`` class (``memory`` takes none)."""
    channel_auth: dict[str, str] = Field(default_factory=dict)
    """``{pattern: tag rule}``: a subscription to a channel matching ``pattern`` needs an
    identity whose tags satisfy the rule (``"admin|ops"``)."""

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or value.strip("/") == "":
            raise ValueError("must be an absolute path other than '/', like '/_wsx'")
        return "/" + value.strip("/")

    @field_validator("broker")
    @classmethod
    def _broker(cls, value: str) -> str:
        if value != "memory":
            broker_class(value)  # an import error or a non-Broker is reported at startup
        return value

    @field_validator("subprotocols")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("lists a subprotocol twice")
        return value

    @field_validator("channel_auth")
    @classmethod
    def _channel_rules(cls, value: dict[str, str]) -> dict[str, str]:
        for pattern in value:
            problem = check_pattern(pattern)
            if problem:
                raise ValueError(f"{pattern!r}: {problem}")
        return value


def broker_class(spec: str) -> type[Broker]:
    """The ``Broker`` subclass named ``memory`` or ``pkg.module:Class``."""
    builtins: dict[str, type[Broker]] = {"memory": MemoryBroker}
    return component_class(spec, Broker, builtins)
