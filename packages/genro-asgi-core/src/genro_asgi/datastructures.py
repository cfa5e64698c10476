"""Small request data structures: Headers, QueryParams, URL, Address, State."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

from .types import RawHeaders, Scope


class Address(NamedTuple):
    """A network peer: host and port."""

    host: str
    port: int


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only view over ASGI raw headers; repeated names are kept."""

    __slots__ = ("_index", "raw")

    def __init__(self, raw: RawHeaders | None = None, *, scope: Scope | None = None) -> None:
        if scope is not None:
            raw = scope.get("headers") or []
        self.raw: RawHeaders = list(raw or [])
        self._index: dict[str, str] | None = None

    def _lookup(self) -> dict[str, str]:
        if self._index is None:
            index: dict[str, str] = {}
            for key, value in self.raw:
                name = key.decode("latin-1").lower()
                text = value.decode("latin-1")
                index[name] = f"{index[name]}, {text}" if name in index else text
            self._index = index
        return self._index

    def __getitem__(self, key: str) -> str:
        return self._lookup()[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._lookup()

    def __iter__(self) -> Iterator[str]:
        return iter(self._lookup())

    def __len__(self) -> int:
        return len(self._lookup())

    def getlist(self, key: str) -> list[str]:
        """Every value sent under ``key``, in order, without joining."""
        wanted = key.lower().encode("latin-1")
        return [v.decode("latin-1") for k, v in self.raw if k.lower() == wanted]

    def __repr__(self) -> str:
        return f"Headers({self.raw!r})"


class QueryParams(Mapping[str, str]):
    """Query string parameters; ``params[name]`` is the last value, ``getlist`` all of them."""

    __slots__ = ("_items", "_last")

    def __init__(self, query: str | bytes | list[tuple[str, str]] = "") -> None:
        if isinstance(query, bytes):
            query = query.decode("latin-1")
        if isinstance(query, str):
            self._items = parse_qsl(query, keep_blank_values=True, max_num_fields=1000)
        else:
            self._items = list(query)
        self._last = dict(self._items)

    def __getitem__(self, key: str) -> str:
        return self._last[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._last)

    def __len__(self) -> int:
        return len(self._last)

    def getlist(self, key: str) -> list[str]:
        """Every value of ``key``, in order (``?tag=a&tag=b`` gives ``['a', 'b']``)."""
        return [v for k, v in self._items if k == key]

    def multi_items(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` pair, repeats included, in order."""
        return list(self._items)

    def __repr__(self) -> str:
        return f"QueryParams({self._items!r})"


class URL:
    """The request URL rebuilt from the ASGI scope (or parsed from a string)."""

    __slots__ = ("fragment", "hostname", "path", "port", "query", "scheme")

    def __init__(self, url: str = "", *, scope: Scope | None = None) -> None:
        if scope is not None:
            self.scheme = scope.get("scheme", "http")
            self.path = scope.get("root_path", "") + scope["path"]
            self.query = scope.get("query_string", b"").decode("latin-1")
            self.fragment = ""
            host_header = Headers(scope=scope).get("host")
            server = scope.get("server")
            if host_header:
                parsed = urlsplit(f"//{host_header}")
                self.hostname, self.port = parsed.hostname or "", parsed.port
            elif server:
                self.hostname, self.port = server[0], server[1]
            else:
                self.hostname, self.port = "", None
        else:
            parts = urlsplit(url)
            self.scheme, self.path, self.query = parts.scheme, parts.path, parts.query
            self.fragment, self.port = parts.fragment, parts.port
            self.hostname = parts.hostname or ""

    @property
    def netloc(self) -> str:
        default = {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(self.scheme)
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return host if self.port in (None, default) else f"{host}:{self.port}"

    def __str__(self) -> str:
        text = f"{self.scheme}://{self.netloc}{self.path}" if self.hostname else self.path
        if self.query:
            text += f"?{self.query}"
        if self.fragment:
            text += f"#{self.fragment}"
        return text

    def __repr__(self) -> str:
        return f"URL({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


class State:
    """An attribute bag for per-request or per-application state."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"State({self.__dict__!r})"
