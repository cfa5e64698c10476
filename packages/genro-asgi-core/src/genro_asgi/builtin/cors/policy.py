"""The CORS policy compiled from CorsConfig: sets, a regex and prebuilt header byte-pairs.

Everything that does not depend on the request is computed here once, so that deciding about a
request costs a few set lookups. Origins and header values are handled as the raw bytes the
ASGI server hands over; nothing is decoded unless a regex has to look at it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...types import RawHeaders
from .config import DEFAULT_PORTS, TOKEN, CorsConfig

# Fetch: request headers a browser may send without asking (content-type is listed in a
# preflight only for a non-form type such as application/json, which we accept like Starlette)
SAFELISTED_HEADERS = frozenset({"accept", "accept-language", "content-language", "content-type"})
SAFELISTED_METHODS = frozenset({"GET", "HEAD", "POST"})
MAX_ORIGIN = 1024  # longer Origin values are never allowed (and never reach the regex)
MAX_REQUESTED_HEADERS = 100  # browsers ask for a handful; more is not a browser
_REGEX_CACHE = 1024
_SHOWN = 80  # how much of a refused value a 403 body repeats

ACAO = b"access-control-allow-origin"
ACAC = b"access-control-allow-credentials"
ACAM = b"access-control-allow-methods"
ACAH = b"access-control-allow-headers"
ACEH = b"access-control-expose-headers"
ACMA = b"access-control-max-age"
VARY = b"vary"
_PREFLIGHT_VARY = b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
_TOKEN_BYTES = re.compile(TOKEN.pattern.encode())
_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]


@dataclass(frozen=True)
class Preflight:
    """The answer to a preflight: 204 with CORS headers, or 403 with a reason and none."""

    status: int
    headers: RawHeaders
    body: bytes = b""


class CorsPolicy:
    """Decides about origins, preflights and the headers every response gets."""

    def __init__(self, config: CorsConfig) -> None:
        self.allow_all = "*" in config.allow_origins
        self.credentials = config.allow_credentials
        self.origins = frozenset(o.encode() for o in config.allow_origins if o != "*")
        self.regex = re.compile(config.allow_origin_regex) \
            if config.allow_origin_regex and not self.allow_all else None
        self._regex_seen: dict[bytes, bool] = {}
        self.methods = frozenset(config.allow_methods) - {"*"}
        self.all_methods = "*" in config.allow_methods
        self.headers = (frozenset(config.allow_headers) - {"*"}) | SAFELISTED_HEADERS
        self.all_headers = "*" in config.allow_headers
        self.websocket_same_origin = config.websocket_same_origin
        # With '*' and no credentials the answer is the same for every origin: no Vary needed
        self.vary = not (self.allow_all and not self.credentials)

        common: RawHeaders = []
        if self.credentials:
            common.append((ACAC, b"true"))
        self.response_extra: RawHeaders = list(common)
        if config.expose_headers:
            self.response_extra.append((ACEH, ", ".join(config.expose_headers).encode()))
        # what every response gets when the origin does not matter
        self.static_headers: RawHeaders = [(ACAO, b"*"), *self.response_extra] \
            if not self.vary else []

        # Origin value (None: no Origin) -> what a response without Vary or Access-Control-*
        # headers of its own gets appended; see appended_headers
        self._vary_only: RawHeaders = [(VARY, b"Origin")]
        self.by_origin: dict[bytes | None, RawHeaders] = {None: self._vary_only}

        self._acam = b"" if self.all_methods and self.credentials else b"*" \
            if self.all_methods else ", ".join(sorted(self.methods)).encode()
        self._acah = ", ".join(sorted(self.headers)).encode()
        self.preflight_extra: RawHeaders = [
            *common, (ACMA, str(config.max_age).encode()), (VARY, _PREFLIGHT_VARY),
        ]

    # -- origins ------------------------------------------------------------------------------

    def allows(self, origin: bytes) -> bool:
        """Whether a raw Origin header value may read responses."""
        if self.allow_all or origin in self.origins:
            return True
        regex = self.regex
        if regex is None or len(origin) > MAX_ORIGIN:
            return False
        seen = self._regex_seen.get(origin)
        if seen is None:
            seen = regex.fullmatch(origin.decode("latin-1")) is not None
            if len(self._regex_seen) >= _REGEX_CACHE:  # hostile origins cannot grow it
                self._regex_seen.clear()
            self._regex_seen[origin] = seen
        return seen

    def appended_headers(self, origin: bytes | None) -> RawHeaders:
        """What a response without Vary or Access-Control-* headers of its own gets appended:
        ``Vary: Origin`` when the answer depends on the origin, then the CORS headers for
        ``origin``. Remembered per origin (the middleware reads ``by_origin`` first)."""
        if not self.vary:
            return self.static_headers
        if origin is None:
            return self._vary_only
        found = self.by_origin.get(origin)
        if found is None:
            found = [*self._vary_only, (ACAO, origin), *self.response_extra] \
                if self.allows(origin) else self._vary_only
            if len(origin) <= MAX_ORIGIN:  # hostile origins cannot grow it: bounded, cleared
                if len(self.by_origin) >= _REGEX_CACHE:
                    self.by_origin.clear()
                    self.by_origin[None] = self._vary_only
                self.by_origin[origin] = found
        return found

    def same_origin(self, origin: bytes, scheme: str, host: bytes | None) -> bool:
        """Whether ``origin`` is the server's own, from the request's scheme and Host header."""
        if host is None or len(origin) > MAX_ORIGIN:
            return False
        secure = scheme in ("https", "wss")
        own_scheme = b"https://" if secure else b"http://"
        if not origin.startswith(own_scheme):
            return False
        default = b":%d" % DEFAULT_PORTS["https" if secure else "http"]
        netloc = origin[len(own_scheme):].lower()
        host = host.lower()
        return netloc == host or netloc + default == host or netloc == host + default

    def origin_value(self, origin: bytes) -> bytes:
        return b"*" if self.allow_all and not self.credentials else origin

    # -- preflight ----------------------------------------------------------------------------

    def preflight(self, origin: bytes, method: bytes, requested: list[bytes]) -> Preflight:
        """Answer an OPTIONS that carries Origin and Access-Control-Request-Method.

        ``requested`` holds the Access-Control-Request-Headers values (one per header line).
        """
        if not self.allows(origin):
            return _refused(f"origin {_shown(origin)} is not allowed")
        name = method.strip()
        if not _TOKEN_BYTES.fullmatch(name):
            return _refused(f"method {_shown(method)} is not allowed")
        text = name.decode("ascii")
        if not (self.all_methods or text in self.methods or text in SAFELISTED_METHODS):
            return _refused(f"method {_shown(name)} is not allowed")
        names: list[bytes] = []
        for line in requested:
            for part in line.split(b","):
                header = part.strip().lower()
                if not header:
                    continue
                if len(names) == MAX_REQUESTED_HEADERS:
                    return _refused(f"more than {MAX_REQUESTED_HEADERS} request headers")
                if not _TOKEN_BYTES.fullmatch(header) or (
                    not self.all_headers and header.decode("ascii") not in self.headers
                ):
                    return _refused(f"header {_shown(header)} is not allowed")
                names.append(header)
        headers: RawHeaders = [
            (ACAO, self.origin_value(origin)),
            # with credentials '*' is no wildcard (Fetch): name the method asked for; so too
            # when only a safelisted method is allowed (allow_methods: [])
            (ACAM, self._acam or name),
        ]
        if names:
            # '*' would not cover Authorization (Fetch), and with credentials is no wildcard
            headers.append((ACAH, b", ".join(dict.fromkeys(names)) if self.all_headers
                            else self._acah))
        headers.extend(self.preflight_extra)
        return Preflight(204, headers)


def _shown(value: bytes) -> str:
    """A refused value as the 403 body repeats it: quoted, escaped and cut short."""
    more = "..." if len(value) > _SHOWN else ""
    return f"{value[:_SHOWN].decode('latin-1')!r}{more}"


def _refused(reason: str) -> Preflight:
    body = f"CORS preflight refused: {reason}\n".encode()
    return Preflight(403, [*_TEXT, (b"content-length", b"%d" % len(body))], body)
