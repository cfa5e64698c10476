"""The options of the ``auth`` plugin (``plugins: {auth: {...}}`` in config.yaml).

Every secret may be written ``{$env: VAR}`` or ``{$file: path}``; they are held as SecretStr so
no dump or repr shows them. Tags must be identifiers, because route rules
(``@route(auth="admin|ops")``) can only name identifiers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from .passwords import PasswordHash

_TAG = re.compile(r"[A-Za-z_]\w*")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
KEY_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                            "ES256", "ES384", "ES512", "EdDSA"})
# one public key serves every listed algorithm, so they must all take the same kind of key
_KEY_KINDS = {**dict.fromkeys(("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"), "RSA"),
              "ES256": "EC P-256", "ES384": "EC P-384", "ES512": "EC P-521", "EdDSA": "EdDSA"}


def _check_tags(tags: list[str]) -> list[str]:
    for tag in tags:
        if not _TAG.fullmatch(tag) or tag.lower() in ("and", "or", "not"):
            raise ValueError(f"tag {tag!r} is not usable in a route rule: use letters, digits "
                             "and underscores, starting with a letter (and not and/or/not)")
    return tags


def _check_secret(data: Any, field: str, check: Callable[[str], object]) -> Any:
    """Run ``check`` on a secret before field validation: an error raised on the model (whose
    input is the whole mapping) is reported without the value, a field error would echo it."""
    value = data.get(field) if isinstance(data, dict) else None
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str):
        try:
            check(value)
        except ValueError as exc:
            raise ValueError(f"{field}: {exc}") from None
    return data


def _min_length(what: str) -> Callable[[str], None]:
    def check(value: str) -> None:
        if len(value) < 8:
            raise ValueError(f"must be at least 8 characters (use a long random {what})")
    return check


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Tagged(_Strict):
    """A credential and the tags its identity gets."""

    tags: list[str] = Field(default_factory=list)

    _tags = field_validator("tags")(_check_tags)


class TokenSpec(_Tagged):
    """One static bearer token: ``bearer: {<name>: {token: ..., tags: [...]}}``."""

    token: SecretStr

    @model_validator(mode="before")
    @classmethod
    def _long_enough(cls, data: Any) -> Any:
        return _check_secret(data, "token", _min_length("token"))


class UserSpec(_Tagged):
    """One basic-auth user: ``basic: {<username>: {password_hash: ..., tags: [...]}}``."""

    password_hash: SecretStr

    @model_validator(mode="before")
    @classmethod
    def _hash(cls, data: Any) -> Any:
        if isinstance(data, dict) and "password" in data:
            raise ValueError("a plain-text 'password' is not accepted: store 'password_hash' "
                             "instead (make one with 'genro-asgi hash-password')")
        return _check_secret(data, "password_hash", PasswordHash.parse)


class KeySpec(_Tagged):
    """One API key: ``api_key: {keys: {<name>: {key: ..., tags: [...]}}}``."""

    key: SecretStr

    @model_validator(mode="before")
    @classmethod
    def _long_enough(cls, data: Any) -> Any:
        return _check_secret(data, "key", _min_length("key"))


class ApiKeyConfig(_Strict):
    header: str = "X-API-Key"
    """The request header carrying the key."""
    keys: dict[str, KeySpec] = Field(default_factory=dict)

    @field_validator("header")
    @classmethod
    def _header(cls, value: str) -> str:
        if not _HEADER_NAME.fullmatch(value) or value.lower() in ("authorization", "cookie"):
            raise ValueError(f"{value!r} is not a usable header name")
        return value


class JwtConfig(_Strict):
    """JSON Web Tokens in ``Authorization: Bearer`` (needs PyJWT: genro-asgi-core[jwt])."""

    algorithms: list[str] = Field(default_factory=lambda: ["HS256"])
    secret: SecretStr | None = None
    """The shared secret, for HS256/384/512."""
    public_key: SecretStr | None = None
    """The PEM public key, for RS*/PS*/ES*/EdDSA (``{$file: ...}`` is handy)."""
    audience: str | list[str] | None = None
    issuer: str | None = None
    leeway: float = Field(0, ge=0, le=600)
    """Seconds of clock skew tolerated on exp/nbf/iat."""
    require: list[str] = Field(default_factory=lambda: ["exp"])
    """Claims a token must carry; ``aud``/``iss`` are added when audience/issuer are set."""
    id_claim: str = "sub"
    tags_claim: str = "tags"
    """A list of tags, or a space-separated string (an OAuth ``scope``)."""

    @field_validator("algorithms")
    @classmethod
    def _algorithms(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("list at least one algorithm")
        unknown = [a for a in value if a not in HMAC_ALGORITHMS | KEY_ALGORITHMS]
        if unknown:
            raise ValueError(f"unsupported algorithm(s) {unknown} ('none' is never accepted)")
        if set(value) & HMAC_ALGORITHMS and set(value) & KEY_ALGORITHMS:
            raise ValueError("do not mix HS* with public-key algorithms: a public key must "
                             "never be usable as an HMAC secret (algorithm confusion)")
        kinds = sorted({_KEY_KINDS[a] for a in value if a in KEY_ALGORITHMS})
        if len(kinds) > 1:
            raise ValueError(f"{value} need different kinds of key ({', '.join(kinds)}); "
                             "one public_key serves them all: list algorithms of one kind")
        return value

    @model_validator(mode="after")
    def _key_material(self) -> JwtConfig:
        if set(self.algorithms) & HMAC_ALGORITHMS:
            if self.secret is None:
                raise ValueError("HS* algorithms need 'secret'")
            needed = max(int(a[2:]) // 8 for a in self.algorithms)  # the hash's size
            if len(self.secret.get_secret_value().encode()) < needed:
                raise ValueError(f"secret must be at least {needed} bytes for "
                                 f"{', '.join(self.algorithms)} (RFC 7518 3.2)")
        elif self.public_key is None:
            raise ValueError(f"{self.algorithms[0]} needs 'public_key' (PEM)")
        return self


class AuthConfig(_Strict):
    """Validated options; an unknown key is refused naming ``plugins.auth.<key>``."""

    realm: str = "genro-asgi"
    public: list[str] = Field(default_factory=list)
    """Paths that need no credential: exact (``/health``) or a prefix ending in ``*``
    (``/static/*``). A credential presented there is still checked."""
    anonymous: bool = False
    """True: requests without a credential pass as anonymous everywhere (routes with an auth
    rule still answer 401). False: only public paths admit anonymous requests."""
    bearer: dict[str, TokenSpec] = Field(default_factory=dict)
    basic: dict[str, UserSpec] = Field(default_factory=dict)
    api_key: ApiKeyConfig | None = None
    jwt: JwtConfig | None = None
    basic_cache_size: int = Field(1024, ge=0, le=1_000_000)
    """Verified basic credentials remembered (under a per-process HMAC key), so a client that
    sends its password on every request costs one hash verification, not one per request."""
    max_concurrent_hashes: int = Field(2, ge=1, le=64)
    """Password verifications run in threads, at most this many at once."""
    max_waiting_hashes: int = Field(64, ge=0, le=100_000)
    """Verifications that may wait for one of those threads; past that a basic request that
    needs a verification is a 503 with ``Retry-After`` (a flood of guesses cannot queue up
    without bound in front of real users)."""

    @field_validator("realm")
    @classmethod
    def _realm(cls, value: str) -> str:
        if not value or '"' in value or "\\" in value or not value.isprintable() \
                or not value.isascii():  # it goes into a WWW-Authenticate header
            raise ValueError("must be printable ASCII text without quotes or backslashes")
        return value

    @field_validator("public")
    @classmethod
    def _public(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not pattern.startswith("/"):
                raise ValueError(f"{pattern!r} is not an absolute path")
            if "*" in pattern[:-1]:
                raise ValueError(f"{pattern!r}: '*' is allowed only at the end (a prefix)")
        return value

    @field_validator("basic")
    @classmethod
    def _usernames(cls, value: dict[str, UserSpec]) -> dict[str, UserSpec]:
        for name in value:
            if not name or ":" in name or not name.isprintable():
                raise ValueError(f"username {name!r}: must be printable and without ':'")
        return value

    @property
    def backends(self) -> list[str]:
        names = []
        if self.bearer:
            names.append("bearer")
        if self.basic:
            names.append("basic")
        if self.api_key is not None and self.api_key.keys:
            names.append("api_key")
        if self.jwt is not None:
            names.append("jwt")
        return names
