"""The ``jwt`` backend: JSON Web Tokens verified with PyJWT (the optional extra ``[jwt]``).

Signature, ``exp``/``nbf``/``iat`` (with ``leeway``), ``aud`` and ``iss`` are checked by PyJWT;
the algorithm list comes from config only (never from the token), and HMAC and public-key
algorithms are never mixed, so a public key cannot be replayed as an HMAC secret.
"""

from __future__ import annotations

from typing import Any

from ...exceptions import ConfigError
from ...identity import Identity
from .config import HMAC_ALGORITHMS, JwtConfig


class InvalidToken(Exception):
    """The token is not acceptable; the message is safe to show the client."""


class JwtVerifier:
    def __init__(self, config: JwtConfig) -> None:
        try:
            import jwt
        except ImportError:
            raise ConfigError("plugins.auth.jwt needs PyJWT: pip install "
                              "'genro-asgi-core[jwt]'") from None
        self._jwt = jwt
        reasons: list[tuple[Any, str]] = [
            (jwt.ExpiredSignatureError, "token expired"),
            (jwt.ImmatureSignatureError, "token not valid yet"),
            (jwt.InvalidAudienceError, "token audience not accepted"),
            (jwt.InvalidIssuerError, "token issuer not accepted"),
            (jwt.InvalidSignatureError, "token signature does not verify"),
            (jwt.InvalidAlgorithmError, "token algorithm not accepted"),
            (jwt.DecodeError, "malformed token"),
        ]
        invalid_subject = getattr(jwt.exceptions, "InvalidSubjectError", None)
        if invalid_subject is not None:  # PyJWT >= 2.10 checks that 'sub' is a string itself
            reasons.insert(0, (invalid_subject, "token 'sub' claim must be a string"))
        self._reasons = tuple(reasons)
        self.config = config
        self.algorithms = list(config.algorithms)
        if set(self.algorithms) & HMAC_ALGORITHMS:
            assert config.secret is not None
            self.key: Any = config.secret.get_secret_value()
        else:
            assert config.public_key is not None
            pem = config.public_key.get_secret_value()
            # parse the PEM once, at startup, not per request; it must suit every algorithm
            for name in self.algorithms:
                try:
                    algorithm = jwt.algorithms.get_default_algorithms()[name]
                    self.key = algorithm.prepare_key(pem)
                except Exception as exc:
                    raise ConfigError(f"plugins.auth.jwt.public_key: not a usable {name} "
                                      f"public key: {exc}") from None
        required = list(config.require)
        if config.audience is not None and "aud" not in required:
            required.append("aud")
        if config.issuer is not None and "iss" not in required:
            required.append("iss")
        self.options = {"require": required}

    def verify(self, token: str) -> Identity:
        jwt = self._jwt
        config = self.config
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self.key, algorithms=self.algorithms, audience=config.audience,
                issuer=config.issuer, leeway=config.leeway, options=self.options,
            )
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidTokenError as exc:
            # the first class that matches says why; subclasses come before their bases
            reason = next((text for kind, text in self._reasons if isinstance(exc, kind)),
                          "invalid token")
            raise InvalidToken(reason) from None
        except jwt.PyJWTError:  # anything else PyJWT refuses (e.g. a key error): never a 500
            raise InvalidToken("invalid token") from None
        subject = claims.get(config.id_claim)
        if not isinstance(subject, (str, int)) or isinstance(subject, bool) or subject == "":
            raise InvalidToken(f"token lacks a usable {config.id_claim!r} claim")
        raw_tags = claims.get(config.tags_claim, [])
        if isinstance(raw_tags, str):
            tags = raw_tags.split()
        elif isinstance(raw_tags, list) and all(isinstance(t, str) for t in raw_tags):
            tags = raw_tags
        else:
            raise InvalidToken(f"the {config.tags_claim!r} claim must be a list of strings "
                               "or a space-separated string")
        return Identity.of(str(subject), tags, "jwt", claims)

