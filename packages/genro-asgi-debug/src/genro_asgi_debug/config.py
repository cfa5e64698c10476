"""The options of the ``debug`` plugin (``plugins: {debug: {...}}`` in config.yaml).

What can be checked from the options alone is checked here (a secret is present and long
enough, a non-loopback listener is explicitly allowed); the checks that need the server's own
settings (its bind address, its workers, where the secret came from) are in the plugin.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, SecretStr, model_validator

MIN_SECRET_LENGTH = 16
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def is_loopback(host: str) -> bool:
    """True for a loopback IP literal or ``localhost``; a name or wildcard is not loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def ip_allowed(ip: str, allowed: Iterable[IPNetwork]) -> bool:
    """Loopback always, otherwise membership of one of the ``allowed`` networks."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if address.is_loopback:
        return True
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in allowed)


class DebugConfig(BaseModel):
    """Validated options; an unknown key is refused naming ``plugins.debug.<key>``."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    """``false`` loads the plugin but leaves it inert: no listener, nothing parked."""
    secret: SecretStr | None = None
    """The shared secret a developer proves to attach; required, from ``{$env}`` or ``{$file}``."""
    park_timeout: float = Field(60.0, gt=0)
    """Seconds a failing request waits for a debugger before it gets its normal 500."""
    max_parked: int = Field(2, ge=1, le=100)
    """Incidents parked at once; beyond this, failing requests fail normally."""
    idle_timeout: float = Field(300.0, gt=0)
    """Seconds without a message from an authenticated client before its session is closed
    (an attached pdb is ended and its request released)."""
    handshake_timeout: float = Field(10.0, gt=0)
    """Seconds a new connection has to authenticate."""
    max_handshakes: int = Field(16, ge=1, le=1024)
    """Connections authenticating at once (each holds a descriptor for up to
    ``handshake_timeout``); one more is told the listener is busy and closed."""
    socket_dir: str | None = None
    """Directory of the Unix sockets (one per worker pid); see ``default_socket_dir``."""
    port: int | None = Field(None, ge=1, le=65535)
    """Listen on this TCP port instead of a Unix socket (one worker only)."""
    host: str = "127.0.0.1"
    """Interface of the TCP listener; a non-loopback one needs ``allow_remote`` and
    ``allowed_ips``."""
    allow_remote: bool = False
    """Consent to a non-loopback server or TCP listener (with ``allowed_ips``)."""
    allowed_ips: list[IPvAnyNetwork] = Field(default_factory=list)
    """Addresses (or networks) besides loopback that may connect a debugger over TCP and whose
    failing requests are parked."""
    audit_file: str | None = None
    """Append one JSON line per event and command here (relative to the server directory);
    the ``genro_asgi_debug.audit`` logger gets every line in any case."""
    redact: list[str] = Field(default_factory=list)
    """Extra header or query parameter names to redact in incident summaries."""

    @model_validator(mode="after")
    def _consistent(self) -> DebugConfig:
        if not self.enabled:
            return self
        if self.secret is None:
            raise ValueError("secret is required to enable the debugger: give it as "
                             "{$env: VAR} or {$file: path} (or set enabled: false)")
        if len(self.secret.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(f"secret must be at least {MIN_SECRET_LENGTH} characters "
                             "(e.g. python -c 'import secrets; print(secrets.token_hex(32))')")
        if self.port is not None and not is_loopback(self.host):
            self.require_remote_consent(f"the debug listener host {self.host!r}")
        return self

    def require_remote_consent(self, what: str) -> None:
        if not (self.allow_remote and self.allowed_ips):
            raise ValueError(f"{what} is not a loopback address: refusing to debug remotely "
                             "unless allow_remote: true and allowed_ips are set")
