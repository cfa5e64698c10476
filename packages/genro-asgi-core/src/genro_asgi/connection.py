"""What an HTTP request and a WebSocket connection share: the scope and what it tells."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .datastructures import URL, Address, Headers, QueryParams, State
from .exceptions import BadRequest
from .types import Scope

if TYPE_CHECKING:
    from .envelope import Envelope
    from .identity import Identity


class Connection:
    """The parts of a scope both Request and WebSocket expose, parsed on first access."""

    __slots__ = ("_headers", "_query", "scope")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self._headers: Headers | None = None
        self._query: QueryParams | None = None

    @property
    def path(self) -> str:
        return self.scope["path"]  # type: ignore[no-any-return]

    @property
    def url(self) -> URL:
        return URL(scope=self.scope)

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(scope=self.scope)
        return self._headers

    @property
    def query_params(self) -> QueryParams:
        if self._query is None:
            try:
                self._query = QueryParams(self.scope.get("query_string", b""))
            except ValueError as exc:  # parse_qsl: more than max_num_fields fields
                raise BadRequest(detail=f"malformed query string: {exc}") from None
        return self._query

    @property
    def client(self) -> Address | None:
        client = self.scope.get("client")
        return Address(client[0], client[1]) if client else None

    @property
    def state(self) -> State:
        """Per-request (or per-connection) state shared by middleware and handlers."""
        state = self.scope.get("state")
        if not isinstance(state, State):
            state = self.scope["state"] = State(**(state or {}))
        return state

    @property
    def envelope(self) -> Envelope | None:
        return self.scope.get("genro.envelope")

    @property
    def identity(self) -> Identity | None:
        """Who is calling, as established by the auth plugin (None when anonymous)."""
        return self.scope.get("genro.identity")
