"""The options of the ``metrics`` plugin (``plugins: {metrics: {...}}`` in config.yaml)."""

from __future__ import annotations

from prometheus_client.metrics import Histogram
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

DEFAULT_SIZE_BUCKETS: tuple[float, ...] = (
    64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
)


def _check_buckets(value: list[float] | None) -> list[float] | None:
    if value is None:
        return value
    if not value:
        raise ValueError("must list at least one bucket bound")
    if any(b <= 0 for b in value):
        raise ValueError("bucket bounds must be positive")
    if any(b >= a for a, b in zip(value[1:], value, strict=False)):
        raise ValueError("bucket bounds must be strictly increasing")
    return value


class MetricsConfig(BaseModel):
    """Validated options; an unknown key is refused naming ``plugins.metrics.<key>``."""

    model_config = ConfigDict(extra="forbid")

    path: str = "/metrics"
    """Where the exposition is served (on the main server, or on ``port`` when set)."""
    port: int | None = Field(None, ge=1, le=65535)
    """Serve the exposition on this separate port instead of the main server."""
    host: str = "127.0.0.1"
    """The interface of the separate ``port`` listener."""
    token: SecretStr | None = None
    """When set, scrapes must send ``Authorization: Bearer <token>``."""
    auth_rule: str | None = None
    """A tag rule (``"admin|ops"``, the syntax of ``@route(auth=...)``) the identity that the
    auth plugin puts on the envelope must match. With ``token`` too, either one admits."""
    skip_paths: list[str] = Field(default_factory=list)
    """Paths (and everything under them) whose requests are not counted."""
    buckets: list[float] | None = None
    """Bounds of ``http_request_duration_seconds`` (prometheus_client's defaults when unset)."""
    size_buckets: list[float] | None = None
    """Bounds of the request/response size histograms, in bytes."""
    websocket: bool = True
    """Count WebSocket messages (a pure-ASGI middleware in the WebSocket chain only, so HTTP
    requests do not pay for it; open connections are always counted, from the registry)."""
    multiprocess_dir: str | None = None
    """Directory for multiprocess mode; a fresh temporary one when unset."""

    @model_validator(mode="after")
    def _auth_rule_needs_the_main_server(self) -> MetricsConfig:
        if self.auth_rule is not None and self.port is not None:
            raise ValueError("auth_rule needs the exposition on the main server (no port): "
                             "the separate listener sees no identity; use token there")
        return self

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or value.strip("/") == "":
            raise ValueError("must be an absolute path other than '/', like '/metrics'")
        return "/" + value.strip("/")

    @field_validator("skip_paths")
    @classmethod
    def _skip_paths(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.startswith("/"):
                raise ValueError(f"{item!r} is not an absolute path")
        return ["/" + item.strip("/") for item in value]

    @field_validator("buckets", "size_buckets")
    @classmethod
    def _buckets(cls, value: list[float] | None) -> list[float] | None:
        return _check_buckets(value)

    @property
    def duration_buckets(self) -> tuple[float, ...]:
        return tuple(self.buckets) if self.buckets else Histogram.DEFAULT_BUCKETS

    @property
    def byte_buckets(self) -> tuple[float, ...]:
        return tuple(self.size_buckets) if self.size_buckets else DEFAULT_SIZE_BUCKETS
