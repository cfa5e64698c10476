"""Password hashes for the ``basic`` backend: PBKDF2-HMAC-SHA256 from the standard library.

The stored form is ``pbkdf2_sha256$<iterations>$<salt>$<hash>`` (salt and hash in unpadded
base64), the format Django and passlib also read. Make one with ``genro-asgi hash-password``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

ALGORITHM = "pbkdf2_sha256"
DEFAULT_ITERATIONS = 600_000  # OWASP's 2023 figure for PBKDF2-HMAC-SHA256
WEAK_ITERATIONS = 100_000
MAX_ITERATIONS = 10_000_000
_SALT_BYTES = 16


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


@dataclass(frozen=True)
class PasswordHash:
    """A parsed hash: verifying costs ``iterations`` rounds, so run it off the event loop."""

    iterations: int
    salt: bytes
    digest: bytes

    @classmethod
    def parse(cls, text: str) -> PasswordHash:
        """Parse the stored form; ValueError says what is wrong (never echoing the value)."""
        parts = text.split("$")
        if len(parts) != 4 or parts[0] != ALGORITHM:
            raise ValueError(f"not a {ALGORITHM} hash (expected '{ALGORITHM}$<iterations>$"
                             "<salt>$<hash>'; make one with 'genro-asgi hash-password')")
        try:
            iterations = int(parts[1])
            salt, digest = _b64decode(parts[2]), _b64decode(parts[3])
        except ValueError:
            raise ValueError(f"malformed {ALGORITHM} hash: bad iterations or base64") from None
        if not 1 <= iterations <= MAX_ITERATIONS:
            raise ValueError(f"iterations must be between 1 and {MAX_ITERATIONS}")
        if len(salt) < 8 or len(digest) < 16:
            raise ValueError("salt or hash too short")
        return cls(iterations, salt, digest)

    def verify(self, password: str, rounds: int = 0) -> bool:
        """Whether ``password`` matches; ``rounds`` above ``iterations`` are spent anyway, so a
        weaker (older) hash takes as long as the strongest one a server holds."""
        candidate = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), self.salt,
                                        self.iterations, len(self.digest))
        if rounds > self.iterations:
            hashlib.pbkdf2_hmac("sha256", candidate, self.salt, rounds - self.iterations)
        return hmac.compare_digest(candidate, self.digest)


def hash_password(password: str, iterations: int = DEFAULT_ITERATIONS) -> str:
    """The stored form of a fresh hash of ``password`` with a random salt."""
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"iterations must be between 1 and {MAX_ITERATIONS}")
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"{ALGORITHM}${iterations}${_b64encode(salt)}${_b64encode(digest)}"
