"""The ``cors`` plugin's options, validated and normalised once at startup.

Every mistake that would silently open or close the policy is an error naming the option: an
origin with a path or a trailing slash, a ``*.example.com`` wildcard, an invalid regex, and
``allow_credentials`` with the ``*`` origin (a browser would then never send cookies, and
reflecting any origin instead would hand every site the user's session).
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*")
_HOST = re.compile(r"[a-z0-9\-._~%!$&'()+,;=]+|\[[0-9a-f:.]+\]")
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalise_origin(value: str) -> str:
    """``scheme://host[:port]`` lower-cased, default port dropped; ValueError saying why not."""
    text = value.strip().lower()
    if text == "*":
        return text
    if "*" in text:
        raise ValueError(f"{value!r}: wildcards are not allowed inside an origin; use "
                         "allow_origin_regex (e.g. 'https://[a-z0-9-]+\\.example\\.com')")
    parts = urlsplit(text)
    if not _SCHEME.fullmatch(parts.scheme) or not text.startswith(parts.scheme + "://"):
        raise ValueError(f"{value!r}: an origin is scheme://host[:port], e.g. "
                         "'https://app.example.com'")
    if parts.path == "/" and not parts.query and not parts.fragment:
        raise ValueError(f"{value!r}: remove the trailing slash; a browser's Origin header "
                         f"never has one ({text.rstrip('/')!r})")
    if parts.path or parts.query or parts.fragment or "?" in text or "#" in text:
        raise ValueError(f"{value!r}: an origin has no path, query or fragment; "
                         "write only scheme://host[:port]")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{value!r}: an origin has no user or password")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{value!r}: the port must be a number from 1 to 65535") from None
    host = parts.hostname or ""
    if not _HOST.fullmatch(host.join("[]") if ":" in host else host):
        raise ValueError(f"{value!r}: the host is missing or invalid")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != DEFAULT_PORTS.get(parts.scheme):
        netloc = f"{netloc}:{port}"
    return f"{parts.scheme}://{netloc}"


def _token(value: str, what: str) -> str:
    text = value.strip()
    if text != "*" and not TOKEN.fullmatch(text):
        raise ValueError(f"{value!r} is not a valid {what} name")
    return text


Origin = Annotated[str, AfterValidator(normalise_origin)]
Method = Annotated[str, AfterValidator(lambda v: _token(v, "method").upper())]
HeaderName = Annotated[str, AfterValidator(lambda v: _token(v, "header").lower())]


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class CorsConfig(BaseModel):
    """``plugins.cors`` in config.yaml; see docs/cors.md."""

    model_config = ConfigDict(extra="forbid")

    allow_origins: list[Origin] = Field(default_factory=list)
    allow_origin_regex: str | None = None
    allow_methods: list[Method] = Field(default_factory=lambda: ["GET", "HEAD", "POST"])
    allow_headers: list[HeaderName] = Field(default_factory=list)
    allow_credentials: bool = False
    expose_headers: list[HeaderName] = Field(default_factory=list)
    max_age: int = Field(default=600, ge=0)
    websocket_same_origin: bool = True

    @field_validator("allow_origins", "allow_methods", "allow_headers", "expose_headers")
    @classmethod
    def _dedupe(cls, values: list[str]) -> list[str]:
        return _unique(values)

    @field_validator("allow_origin_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
        return value

    @field_validator("allow_credentials")
    @classmethod
    def _credentials(cls, value: bool, info: ValidationInfo) -> bool:
        if value and "*" in (info.data.get("allow_origins") or ()):
            raise ValueError(
                "allow_credentials: true cannot be combined with '*' in allow_origins: "
                "browsers refuse credentials with the '*' origin, and reflecting every origin "
                "would let any site act with the user's cookies; list the origins, or use "
                "allow_origin_regex")
        return value

    @field_validator("expose_headers")
    @classmethod
    def _expose(cls, values: list[str], info: ValidationInfo) -> list[str]:
        # allow_credentials is declared before expose_headers, so it is validated already
        if "*" in values and info.data.get("allow_credentials"):
            raise ValueError("with allow_credentials, '*' is not a wildcard in "
                             "expose_headers (Fetch standard); list the header names")
        return values
