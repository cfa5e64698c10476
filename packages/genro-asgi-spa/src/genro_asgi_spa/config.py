"""The options of the ``spa`` plugin (``plugins: {spa: {...}}`` in config.yaml)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ByteSize, ConfigDict, Field, SecretStr, field_validator

from .backend import backend_class


class SpaConfig(BaseModel):
    """Validated options; an unknown key is refused naming ``plugins.spa.<key>``."""

    model_config = ConfigDict(extra="forbid")

    path: str = "/_spa"
    """Where the spa routes are mounted (``<path>/register`` ...), called over WSX or HTTP."""
    backend: str = "memory"
    """``memory`` (one process), or ``pkg.module:Class``: a ``SpaBackend`` subclass, built with
    ``backend_options`` as keyword arguments."""
    backend_options: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments for the ``backend`` class (``memory`` takes ``process_id``)."""
    allow_anonymous: bool = False
    """Register pages without an identity (each browser connection is then its own user,
    ``anon:<connection id>``). Off: a page without an identity is refused."""
    max_anonymous_users: int = Field(10_000, ge=1)
    """Anonymous users this server holds (live, or with records or data not yet expired: the
    backend's count); a page that would make one more is refused (``spa_anonymous_full``,
    503, ``Retry-After``). Authenticated users are never counted nor refused by it."""
    anonymous_ttl: float = Field(300.0, ge=0)
    """Seconds an anonymous user without pages keeps its records and data (its connection,
    sessions and user record go together), instead of ``connection_idle`` and
    ``user_retention`` (a session still goes at ``session_idle`` when that comes first)."""
    anonymous_retry_after: int = Field(30, ge=1, le=3600)
    """The ``Retry-After`` seconds of ``spa_anonymous_full``."""
    cookie_name: str = Field("spa_connection_id", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    """The cookie naming the browser connection (signed with ``cookie_secret``)."""
    cookie_secret: SecretStr | None = None
    """The key that signs the connection cookie. Unset: a random key per server (cookies do
    not survive a restart and are not shared between processes: set it for several)."""
    cookie_max_age: int = Field(30 * 86400, ge=60)
    """Seconds a connection cookie is valid (also its ``Max-Age``)."""
    cookie_secure: bool | None = None
    """The cookie's ``Secure`` flag. Unset: set when the request came over https/wss."""
    grace_period: float = Field(30.0, ge=0)
    """Seconds a page whose socket closed keeps its state; reconnecting within it resumes."""
    session_idle: float = Field(1800.0, gt=0)
    """Seconds a session without pages lives on; then it and its data are dropped."""
    connection_idle: float = Field(86400.0, gt=0)
    """Seconds a connection without sessions lives on; then it and its data are dropped."""
    user_ttl: float = Field(10.0, ge=0)
    """Seconds a user without pages stays online; then offline (``user_offline`` hook)."""
    user_retention: float = Field(3600.0, ge=0)
    """Seconds an offline user's record and user-level data are kept (a return within it
    finds them)."""
    sweep_interval: float = Field(1.0, gt=0)
    """Seconds between two runs of the one sweeper per server that expires all of the above."""
    max_pages_per_user: int = Field(50, ge=1)
    """Pages (live and in grace) one user may hold; more are refused (429)."""
    max_pages_per_connection: int = Field(20, ge=1)
    """Pages (live and in grace) one browser connection may hold; more are refused (429)."""
    max_connections_per_user: int = Field(20, ge=1)
    """Browser connections one user may hold (with a session, or holding data: one without
    either goes at the next sweep); a page that would mint one more is refused (429)."""
    max_sessions_per_user: int = Field(100, ge=1)
    """Sessions one user may hold (with pages, or holding data until ``session_idle``); a
    master page that would open one more is refused (429)."""
    max_data_bytes: ByteSize = Field(ByteSize(256 * 1024), ge=256)
    """Bytes of data in one tree (one user, connection, session or page); a change past it
    is refused (413) and changes nothing."""
    max_total_data_bytes: ByteSize = Field(ByteSize(256 * 1024 * 1024), ge=1024)
    """Bytes of data in all the trees of this server (when the backend can count them: the
    memory backend does); past it a ``set`` is refused (503) until data expires."""
    anonymous_data_share: float = Field(0.25, gt=0, le=1)
    """The part of ``max_total_data_bytes`` anonymous users may fill: their ``set`` is refused
    (503) once the server's data passes it, so whatever they store, signed-in users keep the
    rest."""
    change_rate: float = Field(50.0, gt=0)
    """Changes and messages per second one page may send (token bucket refill)..."""
    change_burst: int = Field(100, ge=1)
    """... and how many it may send at once (the bucket's size); past it: 429."""
    user_change_rate: float = Field(200.0, gt=0)
    """Changes, messages and page registers per second of one user, all its pages
    together (a page registered anew starts with a full bucket of its own: this one does
    not)..."""
    user_change_burst: int = Field(400, ge=1)
    """... and at once; past it: 429."""
    max_message_bytes: ByteSize = Field(ByteSize(64 * 1024), ge=64)
    """Bytes of the ``data`` of one message a page sends (measured as a tree's values are);
    more is refused (413)."""
    read_bytes_rate: ByteSize = Field(ByteSize(4 * 1024 * 1024), ge=1024)
    """Bytes of data one user may read per second (``get``, ``subscribe``'s value, all its
    pages together; a token bucket in bytes)..."""
    read_bytes_burst: ByteSize = Field(ByteSize(16 * 1024 * 1024), ge=1024)
    """... and at once. A read is let through while the bucket is not empty and then pays
    what it read (it may leave the bucket in debt); past it: 429."""
    max_path_length: int = Field(200, ge=1, le=1024)
    """Characters in a data path."""
    max_path_depth: int = Field(16, ge=1, le=64)
    """Tokens in a data path."""
    max_subscriptions: int = Field(100, ge=0)
    """Data-path subscriptions one page may hold."""
    max_info_bytes: ByteSize = Field(ByteSize(2048), ge=0)
    """Bytes of the ``info`` object a page registers with (its title, url...)."""
    presence_auth: str | None = "admin"
    """Tag rule to list other users' presence (``online``, ``pages`` of another user); None:
    anyone with a page. Everyone may list their own pages and sessions."""
    inspect_auth: str | None = None
    """Tag rule for the inspection routes (``<path>/inspect/...``, ``genro-asgi spa``), on
    the auth plugin's identity. With neither this nor ``inspect_token`` they answer 404."""
    inspect_token: SecretStr | None = None
    """A Bearer secret admitting the inspection routes (for a server without the auth
    plugin; with it, give the CLI a token of the auth plugin and set ``inspect_auth``)."""
    inspect_max_rows: int = Field(1000, ge=1)
    """Rows (users, pages, or tree nodes) in one inspection answer; more are cut, and the
    answer says ``truncated``."""
    inspect_max_bytes: ByteSize = Field(ByteSize(1024 * 1024), ge=1024)
    """Bytes of data values in one ``tree --data`` answer; a tree past what is left is
    omitted (``data_omitted``), its size still shown."""

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or value.strip("/") == "":
            raise ValueError("must be an absolute path other than '/', like '/_spa'")
        return "/" + value.strip("/")

    @field_validator("backend")
    @classmethod
    def _backend(cls, value: str) -> str:
        if value != "memory":
            backend_class(value)  # an import error or a non-backend is reported at startup
        return value
