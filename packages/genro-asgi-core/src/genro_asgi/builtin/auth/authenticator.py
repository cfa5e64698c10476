"""Credentials -> Identity: the configured backends, then the ``genro_asgi_identify`` hook.

One pass over the request headers finds the ``Authorization`` and API-key headers. A credential
a backend recognises but rejects raises Unauthorized (its reason is safe to show and is logged
without the secret); no credential at all gives None, and the caller decides whether anonymous
is acceptable. Secrets are compared in constant time, against digests computed at startup.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import inspect
import logging
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from ...connection import Connection
from ...exceptions import BadRequest, PluginError, ServiceUnavailable, Unauthorized
from ...identity import Identity
from ...types import Scope
from .config import AuthConfig
from .jwt_backend import InvalidToken, JwtVerifier
from .passwords import WEAK_ITERATIONS, PasswordHash, hash_password

if TYPE_CHECKING:
    from ...server import AsgiServer

logger = logging.getLogger("genro_asgi.auth")

_AUTHORIZATION = b"authorization"
NEEDS_AWAIT = object()  # Authenticator.check: the answer needs check_slow
_MAX_SUBJECT_LOGGED = 64
# RFC 9110 11.3: auth-scheme (a token), then optionally a space and its parameters
_CHALLENGE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+( [\x20-\x7e]*)?")


def _secret(value: str) -> bytes:
    return value.encode("utf-8")


def _ambiguous(header: str) -> NoReturn:
    """Two credentials in one request: refused, so no two readers can take different ones."""
    raise BadRequest(detail=f"more than one {header} header")


def _match(candidate: bytes, table: list[tuple[bytes, Identity]]) -> Identity | None:
    """Compare with every entry in constant time (hmac.compare_digest), without stopping at
    a match, so timing tells neither which entry matched nor how much of one did. (Like every
    compare_digest use, a length mismatch may show; token lengths are not the secret.)"""
    found = None
    for stored, identity in table:
        if hmac.compare_digest(candidate, stored):
            found = identity
    return found


def declared_challenges(plugin_name: str, plugin: Any) -> list[str]:
    """The ``auth_challenge`` an identify plugin declares (a string or a list of them),
    checked: each must be a WWW-Authenticate challenge, an auth-scheme token then optional
    parameters, in printable ASCII (it goes into a response header)."""
    declared = getattr(plugin, "auth_challenge", None)
    if declared is None:
        return []
    values = [declared] if isinstance(declared, str) else declared
    if not isinstance(values, list | tuple) or not values:
        raise PluginError(f"plugin {plugin_name!r}: auth_challenge must be a string or a "
                          f"non-empty list of strings, not {type(declared).__name__}")
    for value in values:
        if not isinstance(value, str) or not _CHALLENGE.fullmatch(value):
            raise PluginError(f"plugin {plugin_name!r}: auth_challenge {str(value)[:80]!r} is "
                              "not a WWW-Authenticate challenge (an auth-scheme such as "
                              "'Session', optionally followed by a space and parameters, in "
                              "printable ASCII)")
    return list(values)


class Authenticator:
    """The auth plugin's credential checker, also reachable as ``server.identify``."""

    def __init__(self, config: AuthConfig) -> None:
        self.realm = config.realm
        self.tokens = [(_secret(spec.token.get_secret_value()), Identity.of(name, spec.tags,
                                                                             "bearer"))
                       for name, spec in config.bearer.items()]
        self.users = {name: (PasswordHash.parse(spec.password_hash.get_secret_value()),
                             Identity.of(name, spec.tags, "basic"))
                      for name, spec in config.basic.items()}
        for name, (parsed, _) in self.users.items():
            if parsed.iterations < WEAK_ITERATIONS:
                logger.warning("plugins.auth.basic.%s: the password hash has only %d "
                               "iterations (use at least %d)", name, parsed.iterations,
                               WEAK_ITERATIONS)
        # every basic verification costs the same rounds (unknown users a decoy's, users with
        # fewer iterations padding), so timing does not reveal which names exist
        self._rounds = max((p.iterations for p, _ in self.users.values()), default=1)
        self._decoy = PasswordHash.parse(hash_password(secrets.token_hex(8), self._rounds))
        api = config.api_key
        self.api_header = api.header.lower().encode("latin-1") if api and api.keys else None
        self.keys = [(_secret(spec.key.get_secret_value()), Identity.of(name, spec.tags,
                                                                         "api_key"))
                     for name, spec in (api.keys.items() if api else ())]
        self.jwt = JwtVerifier(config.jwt) if config.jwt is not None else None
        self.bearer_on = bool(self.tokens) or self.jwt is not None
        self._cache_key = secrets.token_bytes(32)
        self._cache: OrderedDict[bytes, Identity] = OrderedDict()
        self._cache_size = config.basic_cache_size
        self._hashing = asyncio.Semaphore(config.max_concurrent_hashes)
        # verifications running or waiting: past the cap a flood of guesses gets 503s instead of
        # a queue that delays every basic user without a cached credential
        self._hash_load = 0
        self._hash_capacity = config.max_concurrent_hashes + config.max_waiting_hashes
        self.hooks: tuple[tuple[str, Callable[..., Any], tuple[str, ...]], ...] = ()
        self.builtin_challenges = self._challenges(config)
        self.challenge = self._joined(self.builtin_challenges)

    def _challenges(self, config: AuthConfig) -> list[str]:
        challenges = []
        if self.tokens or self.jwt is not None:
            challenges.append(f'Bearer realm="{self.realm}"')
        if self.users:
            challenges.append(f'Basic realm="{self.realm}", charset="UTF-8"')
        if self.keys:
            challenges.append(f'ApiKey realm="{self.realm}", header="{config.api_key.header}"'  # type: ignore[union-attr]
                              )
        return challenges

    def _joined(self, challenges: list[str]) -> str:
        # RFC 9110 11.6.1: one WWW-Authenticate field may list several challenges; a 401
        # must carry at least one
        return ", ".join(challenges) or f'Bearer realm="{self.realm}"'

    def compile_hooks(self, server: AsgiServer) -> None:
        """The ``genro_asgi_identify`` impls in plugin order, called directly per request, and
        the challenges they declare (``auth_challenge``) after the built-in backends'."""
        impls = server.plugins.ordered_impls("genro_asgi_identify")
        self.hooks = tuple((impl.plugin_name, impl.function, tuple(impl.argnames))
                           for impl in impls)
        challenges = list(self.builtin_challenges)
        for impl in impls:
            for challenge in declared_challenges(impl.plugin_name, impl.plugin):
                if challenge not in challenges:
                    challenges.append(challenge)
        self.challenge = self._joined(challenges)

    async def __call__(self, scope: Scope, server: AsgiServer | None = None) -> Identity | None:
        """The identity the request's credentials prove, None without any; Unauthorized when
        a credential is rejected."""
        result = self.check(scope)
        if result is NEEDS_AWAIT:
            return await self.check_slow(scope, server)
        return result  # type: ignore[return-value]

    def check(self, scope: Scope) -> Identity | object | None:
        """What needs no waiting (bearer, JWT, API key, no credential), without a coroutine:
        this runs for every request. ``NEEDS_AWAIT`` when basic or the hook must decide."""
        authorization = api_key = None
        api_header = self.api_header
        if api_header is None:  # one comparison per header: most configs have no API keys
            for name, value in scope["headers"]:
                if name == _AUTHORIZATION:
                    if authorization is not None:
                        _ambiguous("Authorization")
                    authorization = value
        else:
            for name, value in scope["headers"]:
                if name == _AUTHORIZATION:
                    if authorization is not None:
                        _ambiguous("Authorization")
                    authorization = value
                elif name == api_header:
                    if api_key is not None:
                        _ambiguous(name.decode("latin-1"))
                    api_key = value
        if authorization is not None:
            scheme, _, param = authorization.partition(b" ")
            scheme = scheme.lower()
            if scheme == b"bearer" and self.bearer_on:
                return self._bearer(param.strip(), scope)
            if scheme == b"basic" and self.users:
                return NEEDS_AWAIT
        if api_key is not None:
            identity = _match(api_key.strip(), self.keys)
            if identity is None:
                self._refuse(scope, "api_key", "-", "unknown API key")
            return identity
        return NEEDS_AWAIT if self.hooks else None

    async def check_slow(self, scope: Scope, server: AsgiServer | None) -> Identity | None:
        """Basic credentials (a slow hash, in a thread) and the identify hook."""
        for name, value in scope["headers"]:
            if name == _AUTHORIZATION:
                scheme, _, param = value.partition(b" ")
                if scheme.lower() == b"basic" and self.users:
                    return await self._basic(param.strip(), scope)
                break
        if self.hooks and server is not None:
            return await self._from_hooks(scope, server)
        return None

    def _bearer(self, token: bytes, scope: Scope) -> Identity:
        if not token:
            self._refuse(scope, "bearer", "-", "empty bearer token")
        found = None
        for stored, identity in self.tokens:  # _match, inline: every request with a token
            if hmac.compare_digest(token, stored):
                found = identity
        if found is not None:
            return found
        if self.jwt is not None and token.count(b".") == 2:
            try:
                return self.jwt.verify(token.decode("latin-1"))
            except InvalidToken as exc:
                self._refuse(scope, "jwt", "-", str(exc), bearer_error=True)
        self._refuse(scope, "bearer", "-", "unknown bearer token", bearer_error=True)

    async def _basic(self, encoded: bytes, scope: Scope) -> Identity:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            self._refuse(scope, "basic", "-", "malformed basic credentials")
        username, colon, password = decoded.partition(":")
        if not colon:
            self._refuse(scope, "basic", "-", "malformed basic credentials")
        cache_key = hmac.new(self._cache_key, decoded.encode("utf-8"), "sha256").digest()
        cached = self._cache.get(cache_key)
        if cached is not None:
            self._cache.move_to_end(cache_key)
            return cached
        user = self.users.get(username)
        parsed = user[0] if user is not None else self._decoy
        if self._hash_load >= self._hash_capacity:
            logger.warning("auth: basic verification refused for %r: %d already running or "
                           "waiting (max_concurrent_hashes + max_waiting_hashes)", username,
                           self._hash_load)
            raise ServiceUnavailable("too many password verifications in progress",
                                     retry_after=1)
        self._hash_load += 1
        try:
            async with self._hashing:  # verification is deliberately slow: off the loop
                verified = await asyncio.to_thread(parsed.verify, password, self._rounds)
        finally:
            self._hash_load -= 1
        if user is None or not verified:
            self._refuse(scope, "basic", username, "wrong username or password")
        identity = user[1]
        if self._cache_size:
            self._cache[cache_key] = identity
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return identity

    async def _from_hooks(self, scope: Scope, server: AsgiServer) -> Identity | None:
        connection = Connection(scope)
        for plugin_name, function, argnames in self.hooks:
            kwargs = {"server": server, "connection": connection}
            try:
                result = function(**{n: kwargs[n] for n in argnames})
                if inspect.isawaitable(result):
                    result = await result
            except Unauthorized:
                raise
            except Exception as exc:
                raise PluginError(f"plugin {plugin_name!r} failed in genro_asgi_identify: "
                                  f"{exc!r}") from exc
            if result is not None:
                if not isinstance(result, Identity):
                    raise PluginError(f"plugin {plugin_name!r}: genro_asgi_identify must "
                                      f"return an Identity or None, not {type(result).__name__}")
                return result
        return None

    def _refuse(self, scope: Scope, backend: str, subject: str, reason: str,
                bearer_error: bool = False) -> NoReturn:
        client = scope.get("client")
        logger.warning("authentication failed: backend=%s subject=%r client=%s path=%r "
                       "reason=%s", backend, subject[:_MAX_SUBJECT_LOGGED],
                       client[0] if client else "-", scope.get("path"), reason)
        headers = {}
        if bearer_error:  # RFC 6750 3.1: say why, so clients know to refresh the token
            headers["WWW-Authenticate"] = (f'Bearer realm="{self.realm}", '
                                           f'error="invalid_token", error_description="{reason}"')
        raise Unauthorized(detail=reason, headers=headers)
