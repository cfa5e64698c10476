"""The options of the ``nats`` plugin (``plugins: {nats: {...}}`` in config.yaml)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
SCHEMES = ("nats", "tls", "ws", "wss")


class TlsConfig(BaseModel):
    """TLS to the NATS servers; file paths are relative to the server directory."""

    model_config = ConfigDict(extra="forbid")

    ca_file: str | None = None
    """CA bundle that signed the servers' certificates (default: the system's)."""
    cert_file: str | None = None
    """Client certificate, for servers that verify clients."""
    key_file: str | None = None
    """The client certificate's private key."""
    hostname: str | None = None
    """The name the server certificate must carry, when it differs from the URL's host."""
    handshake_first: bool = False
    """TLS before the NATS INFO (servers configured with ``handshake_first``)."""


class NatsConfig(BaseModel):
    """Validated options; an unknown key is refused naming ``plugins.nats.<key>``."""

    model_config = ConfigDict(extra="forbid")

    servers: list[str] = Field(default_factory=lambda: ["nats://127.0.0.1:4222"], min_length=1)
    """NATS server URLs; reconnects go to any of them."""
    name: str = "genro-asgi"
    """The connection name shown by the NATS server's monitoring."""
    subject_prefix: str = "genro"
    """First subject token(s) of everything this application sends; two applications on one
    NATS (or one NATS account) must use different prefixes."""
    required: bool = True
    """true: refuse to start when NATS cannot be reached; false: start degraded (publications
    stay in this process), log it as an error and keep trying in the background."""
    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    credentials: SecretStr | None = None
    """The content of a ``.creds`` file (user JWT and nkey seed): ``{$file: app.creds}``."""
    nkey_seed: SecretStr | None = None
    """An nkey seed (``SU...``): ``{$file: app.nk}``."""
    tls: TlsConfig | None = None
    """TLS options; a ``tls://`` URL alone uses the system's CAs."""
    connect_timeout: float = Field(2.0, gt=0, le=60)
    """Seconds for one connection attempt."""
    reconnect_wait: float = Field(0.1, gt=0, le=60)
    """First pause before reconnecting; it doubles on each failure up to ``reconnect_wait_max``
    (with jitter)."""
    reconnect_wait_max: float = Field(2.0, gt=0, le=300)
    """Longest pause between reconnection attempts."""
    max_message_size: ByteSize = Field(ByteSize(1024 * 1024), ge=1024)
    """A publication encoded larger than this is refused to its publisher; a message larger
    than this arriving on our subjects is dropped (and logged). Keep it at or below the NATS
    server's ``max_payload`` (1 MiB by default)."""
    pending_size: ByteSize = Field(ByteSize(8 * 1024 * 1024), ge=64 * 1024)
    """Bytes of outgoing messages buffered while NATS is unreachable; past it a publication
    fails with NatsUnavailable."""
    drain_timeout: float = Field(5.0, gt=0, le=300)
    """Seconds the shutdown waits for subscriptions and pending publications to drain."""

    @field_validator("servers")
    @classmethod
    def _servers(cls, value: list[str]) -> list[str]:
        for url in value:
            parts = urlsplit(url if "://" in url else f"nats://{url}")
            if parts.scheme not in SCHEMES or not parts.hostname:
                raise ValueError(f"{url!r} is not a NATS URL like nats://host:4222")
        return value

    @field_validator("subject_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        tokens = value.split(".")
        if len(tokens) > 4 or not all(_TOKEN.match(t) for t in tokens):
            raise ValueError("must be 1 to 4 dot-separated tokens of letters, digits, '_' or "
                             f"'-', got {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> NatsConfig:
        if self.reconnect_wait > self.reconnect_wait_max:
            raise ValueError("reconnect_wait must not exceed reconnect_wait_max")
        if (self.user is None) != (self.password is None):
            raise ValueError("user and password go together")
        if self.credentials is not None and self.nkey_seed is not None:
            raise ValueError("give credentials or nkey_seed, not both")
        return self
