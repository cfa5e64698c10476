"""Units of the auth plugin's backends: password hashes, the config model, the JWT verifier.

Config errors are checked through a real AsgiServer (what a user sees), and never may echo a
secret, a password or a malformed hash back into the message or the log.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from genro_asgi import AsgiServer, GenroAsgiError, Identity
from genro_asgi.builtin.auth import hash_password
from genro_asgi.builtin.auth.config import AuthConfig, JwtConfig
from genro_asgi.builtin.auth.jwt_backend import InvalidToken, JwtVerifier
from genro_asgi.builtin.auth.passwords import (
    ALGORITHM,
    DEFAULT_ITERATIONS,
    MAX_ITERATIONS,
    PasswordHash,
)

MakeServer = Callable[..., AsgiServer]
SECRET = "s3cret-" * 10  # 70 bytes: HS512 wants at least 64
SENTINEL = "hunter2-SENTINEL"  # a "secret" that must never appear in an error message


def auth_error(make_server: MakeServer, auth: dict[str, Any]) -> str:
    """The startup error a config produces (the test fails if there is none)."""
    with pytest.raises(GenroAsgiError) as info:
        make_server({"plugins": {"auth": auth}})
    return str(info.value)


# -- passwords ----------------------------------------------------------------------------------


def test_hash_roundtrip_and_format() -> None:
    stored = hash_password("correct horse", 1000)
    algorithm, iterations, salt, digest = stored.split("$")
    assert (algorithm, iterations) == (ALGORITHM, "1000")
    assert "=" not in salt + digest  # unpadded base64, as Django/passlib write it
    parsed = PasswordHash.parse(stored)
    assert parsed.iterations == 1000
    assert len(parsed.salt) == 16 and len(parsed.digest) == 32
    assert parsed.verify("correct horse")
    assert not parsed.verify("correct horse ")
    assert not parsed.verify("")


def test_hashes_are_salted() -> None:
    first, second = hash_password("same", 1000), hash_password("same", 1000)
    assert first != second
    assert PasswordHash.parse(first).verify("same") and PasswordHash.parse(second).verify("same")


def test_default_iterations_and_non_ascii_password() -> None:
    assert DEFAULT_ITERATIONS >= 600_000
    stored = hash_password("pässwörd-€", 1000)
    assert PasswordHash.parse(stored).verify("pässwörd-€")
    assert not PasswordHash.parse(stored).verify("passwort-€")


@pytest.mark.parametrize("iterations", [0, -1, MAX_ITERATIONS + 1])
def test_hash_password_refuses_bad_iterations(iterations: int) -> None:
    with pytest.raises(ValueError, match="iterations must be between"):
        hash_password("x", iterations)


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        (SENTINEL, "not a pbkdf2_sha256 hash"),
        (f"md5${SENTINEL}", "not a pbkdf2_sha256 hash"),
        (f"pbkdf2_sha1$1000$c2FsdHNhbHRz$c2FsdHNhbHRzYWx0c2FsdA${SENTINEL}", "not a pbkdf2"),
        (f"pbkdf2_sha256$many$c2FsdHNhbHRz${SENTINEL}", "bad iterations or base64"),
        (f"pbkdf2_sha256$1000$c2FsdHNhbHRz${SENTINEL}!", "bad iterations or base64"),
        ("pbkdf2_sha256$0$c2FsdHNhbHRz$c2FsdHNhbHRzYWx0c2FsdA", "iterations must be between"),
        ("pbkdf2_sha256$99999999$c2FsdHNhbHRz$c2FsdHNhbHRzYWx0c2FsdA", "iterations must be"),
        ("pbkdf2_sha256$1000$c2Fs$c2FsdHNhbHRzYWx0c2FsdA", "salt or hash too short"),
        ("pbkdf2_sha256$1000$c2FsdHNhbHRz$c2FsdA", "salt or hash too short"),
        ("", "not a pbkdf2_sha256 hash"),
    ],
)
def test_malformed_hash_is_refused_without_echo(stored: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        PasswordHash.parse(stored)
    assert message in str(info.value)
    assert "SENTINEL" not in str(info.value)
    assert "c2FsdHNh" not in str(info.value)


@pytest.mark.parametrize(
    "bad_hash",
    [SENTINEL, f"pbkdf2_sha256$1000$c2FsdHNhbHRz${SENTINEL}!", f"pbkdf2_sha256$x$y${SENTINEL}"],
)
def test_malformed_hash_in_config_is_refused_without_echo(
        make_server: MakeServer, bad_hash: str) -> None:
    message = auth_error(make_server, {"basic": {"alice": {"password_hash": bad_hash}}})
    assert "plugins.auth.basic.alice" in message
    assert "password_hash" in message
    assert "SENTINEL" not in message


def test_plain_text_password_in_config_is_refused(make_server: MakeServer) -> None:
    message = auth_error(make_server, {"basic": {"alice": {"password": SENTINEL}}})
    assert "plugins.auth.basic.alice" in message
    assert "hash-password" in message  # it says how to make a hash
    assert "SENTINEL" not in message


@pytest.mark.parametrize(
    "auth",
    [
        {"bearer": {"ci": {"token": "short"}}},
        {"api_key": {"keys": {"svc": {"key": "short"}}}},
    ],
)
def test_short_static_secrets_are_refused_without_echo(
        make_server: MakeServer, auth: dict[str, Any]) -> None:
    message = auth_error(make_server, auth)
    assert "at least 8 characters" in message
    assert "short" not in message.replace("at least 8 characters", "")


def test_short_jwt_secret_is_refused_without_echo(make_server: MakeServer) -> None:
    message = auth_error(make_server, {"jwt": {"secret": "SENTINEL-too-short"}})
    assert "at least 32 bytes" in message
    assert "SENTINEL" not in message


def test_weak_iterations_are_logged_at_startup(
        make_server: MakeServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="genro_asgi.auth"):
        make_server({"plugins": {"auth": {"basic": {"alice": {
            "password_hash": hash_password("pw", 1000)}}}}})
    assert any("only 1000 iterations" in r.getMessage() for r in caplog.records)


# -- the config model ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "where"),
    [
        ({"bearer": {"ci": {"token": "t" * 20, "tags": ["ad min"]}}}, "bearer.ci.tags"),
        ({"bearer": {"ci": {"token": "t" * 20, "tags": ["or"]}}}, "bearer.ci.tags"),
        ({"bearer": {"ci": {"token": "t" * 20, "tags": ["9lives"]}}}, "bearer.ci.tags"),
        ({"bearer": {"ci": {"token": "t" * 20, "scopes": []}}}, "bearer.ci.scopes"),
        ({"public": ["health"]}, "public"),
        ({"public": ["/a/*/b"]}, "public"),
        ({"realm": 'my "realm"'}, "realm"),
        ({"api_key": {"header": "Authorization", "keys": {}}}, "api_key.header"),
        ({"api_key": {"header": "bad header", "keys": {}}}, "api_key.header"),
        ({"basic": {"a:b": {"password_hash": hash_password("x", 1000)}}}, "basic"),
        ({"basic_cache_size": -1}, "basic_cache_size"),
        ({"max_concurrent_hashes": 0}, "max_concurrent_hashes"),
        ({"max_waiting_hashes": -1}, "max_waiting_hashes"),
        ({"unknown": 1}, "plugins.auth.unknown"),
    ],
)
def test_config_errors_name_the_key(
        make_server: MakeServer, auth: dict[str, Any], where: str) -> None:
    assert where in auth_error(make_server, auth)


def test_backends_listed_in_config_order() -> None:
    config = AuthConfig.model_validate({
        "jwt": {"secret": SECRET},
        "api_key": {"keys": {"svc": {"key": "k" * 10}}},
        "bearer": {"ci": {"token": "t" * 10}},
    })
    assert config.backends == ["bearer", "api_key", "jwt"]
    assert AuthConfig.model_validate({"api_key": {"keys": {}}}).backends == []


def test_secrets_do_not_show_in_repr() -> None:
    config = AuthConfig.model_validate({"bearer": {"ci": {"token": SENTINEL}},
                                        "jwt": {"secret": SENTINEL * 3}})
    assert "SENTINEL" not in repr(config)
    assert "SENTINEL" not in str(config.model_dump())


# -- JWT ----------------------------------------------------------------------------------------


def rsa_pair() -> tuple[Any, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return key, public


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[Any, str]:
    return rsa_pair()


def hs_verifier(**options: Any) -> JwtVerifier:
    return JwtVerifier(JwtConfig.model_validate({"secret": SECRET, **options}))


def claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "bob", "exp": int(time.time()) + 600, **extra}


def test_hs256_token_gives_identity_with_claims() -> None:
    token = jwt.encode(claims(tags=["admin", "ops"], name="Bob"), SECRET, "HS256")
    identity = hs_verifier().verify(token)
    assert identity == Identity("bob", frozenset({"admin", "ops"}), "jwt")
    assert identity.claims["name"] == "Bob"
    with pytest.raises(TypeError):
        identity.claims["name"] = "Eve"  # type: ignore[index]


def test_rs256_token(rsa_keys: tuple[Any, str]) -> None:
    private, public = rsa_keys
    verifier = JwtVerifier(JwtConfig(algorithms=["RS256"], public_key=public))  # type: ignore[arg-type]
    token = jwt.encode(claims(tags="read write"), private, "RS256")
    identity = verifier.verify(token)
    assert (identity.id, identity.tags, identity.backend) == ("bob", {"read", "write"}, "jwt")
    other_private, _ = rsa_pair()
    with pytest.raises(InvalidToken, match="signature does not verify"):
        verifier.verify(jwt.encode(claims(), other_private, "RS256"))


def test_rs256_refuses_hmac_token_signed_with_the_public_key(rsa_keys: tuple[Any, str]) -> None:
    """Algorithm confusion: the public PEM used as an HMAC secret must not verify."""
    _, public = rsa_keys
    verifier = JwtVerifier(JwtConfig(algorithms=["RS256"], public_key=public))  # type: ignore[arg-type]
    import base64
    import hashlib
    import hmac
    import json

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims()).encode())
    signature = hmac.new(public.encode(), f"{header}.{payload}".encode(), hashlib.sha256)
    with pytest.raises(InvalidToken, match="algorithm not accepted"):
        verifier.verify(f"{header}.{payload}.{b64(signature.digest())}")


@pytest.mark.parametrize(
    ("payload", "options", "message"),
    [
        ({"exp": int(time.time()) - 60}, {}, "token expired"),
        ({"nbf": int(time.time()) + 3600}, {}, "not valid yet"),
        ({"aud": "other"}, {"audience": "api"}, "audience not accepted"),
        ({}, {"audience": "api"}, "lacks the 'aud' claim"),
        ({"iss": "evil"}, {"issuer": "https://issuer"}, "issuer not accepted"),
        ({}, {"issuer": "https://issuer"}, "lacks the 'iss' claim"),
        ({"exp": None}, {}, "lacks the 'exp' claim"),
        ({"sub": None}, {}, "usable 'sub' claim"),
        ({"sub": ""}, {}, "usable 'sub' claim"),
        ({"sub": True}, {}, "'sub' claim must be a string"),
        ({"sub": 42}, {}, "'sub' claim must be a string"),
        ({"sub": {"id": 1}}, {}, "'sub' claim must be a string"),
        ({"tags": 7}, {}, "'tags' claim must be"),
        ({"tags": ["admin", 1]}, {}, "'tags' claim must be"),
        ({"tags": {"admin": True}}, {}, "'tags' claim must be"),
    ],
)
def test_jwt_claim_checks(payload: dict[str, Any], options: dict[str, Any], message: str) -> None:
    body = {k: v for k, v in claims(**payload).items() if v is not None}
    token = jwt.encode(body, SECRET, "HS256")
    with pytest.raises(InvalidToken, match=message):
        hs_verifier(**options).verify(token)


def test_jwt_accepted_claims() -> None:
    verifier = hs_verifier(audience=["api", "web"], issuer="https://issuer", leeway=30)
    token = jwt.encode(claims(aud="web", iss="https://issuer", exp=int(time.time()) - 10),
                       SECRET, "HS256")
    identity = verifier.verify(token)  # 10 s late, inside the 30 s leeway
    assert identity.id == "bob" and identity.tags == frozenset()


def test_jwt_numeric_id_claim() -> None:
    token = jwt.encode(claims(uid=42), SECRET, "HS256")
    assert hs_verifier(id_claim="uid").verify(token).id == "42"
    token = jwt.encode(claims(uid=False), SECRET, "HS256")
    with pytest.raises(InvalidToken, match="usable 'uid' claim"):
        hs_verifier(id_claim="uid").verify(token)


def test_jwt_custom_id_and_tags_claims() -> None:
    verifier = hs_verifier(id_claim="email", tags_claim="scope", require=[])
    token = jwt.encode({"email": "a@b.c", "scope": "read  write"}, SECRET, "HS256")
    identity = verifier.verify(token)
    assert (identity.id, identity.tags) == ("a@b.c", {"read", "write"})


def test_jwt_alg_none_refused() -> None:
    token = jwt.encode(claims(), None, algorithm="none")
    with pytest.raises(InvalidToken, match="algorithm not accepted"):
        hs_verifier().verify(token)
    with pytest.raises(ValidationError, match="'none' is never accepted"):
        JwtConfig.model_validate({"algorithms": ["none"], "secret": SECRET})


def test_jwt_other_hs_algorithm_than_configured_refused() -> None:
    token = jwt.encode(claims(), SECRET, "HS512")
    with pytest.raises(InvalidToken, match="algorithm not accepted"):
        hs_verifier().verify(token)
    assert hs_verifier(algorithms=["HS256", "HS512"]).verify(token).id == "bob"


@pytest.mark.parametrize(
    "token",
    ["a.b.c", "not-a-token", "....", "eyJhbGciOiJIUzI1NiJ9.e30", "é.é.é", "x" * 5000],
)
def test_jwt_malformed_tokens(token: str) -> None:
    with pytest.raises(InvalidToken):
        hs_verifier().verify(token)


def test_jwt_wrong_secret() -> None:
    token = jwt.encode(claims(), "another-secret-" * 3, "HS256")
    with pytest.raises(InvalidToken, match="signature does not verify"):
        hs_verifier().verify(token)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"algorithms": ["HS256", "RS256"], "secret": SECRET}, "do not mix HS"),
        ({"algorithms": []}, "at least one algorithm"),
        ({"algorithms": ["RS256"]}, "needs 'public_key'"),
        ({"algorithms": ["HS256"]}, "need 'secret'"),
        ({"secret": "x" * 31}, "at least 32 bytes"),
        ({"algorithms": ["HS256", "HS384"], "secret": "x" * 47}, "at least 48 bytes"),
        ({"algorithms": ["HS512"], "secret": "x" * 63}, "at least 64 bytes"),
        ({"algorithms": ["RS256", "ES256"], "public_key": "k"}, "different kinds of key"),
        ({"algorithms": ["ES256", "ES384"], "public_key": "k"}, "different kinds of key"),
        ({"algorithms": ["PS256", "EdDSA"], "public_key": "k"}, "different kinds of key"),
        ({"secret": SECRET, "leeway": 601}, "less than or equal to 600"),
    ],
)
def test_jwt_config_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        JwtConfig.model_validate(options)


def test_jwt_without_pyjwt_is_a_startup_error(make_server: MakeServer,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """PyJWT is the optional extra ``[jwt]``: without it ``jwt`` is refused at startup saying
    what to install, and the other backends need nothing of it."""
    monkeypatch.setitem(sys.modules, "jwt", None)  # ``import jwt`` now raises ImportError
    message = auth_error(make_server, {"jwt": {"secret": SECRET}})
    assert "needs PyJWT" in message and "genro-asgi-core[jwt]" in message
    assert SECRET not in message
    server = make_server({"plugins": {"auth": {"bearer": {"ci": {"token": "t" * 10}}}}})
    assert server.plugins.get("auth").authenticator.jwt is None


def test_jwt_bad_pem_refused_at_startup(make_server: MakeServer) -> None:
    with pytest.raises(GenroAsgiError, match=r"plugins\.auth\.jwt\.public_key: not a usable RS256"):
        make_server({"plugins": {"auth": {"jwt": {"algorithms": ["RS256"],
                                                  "public_key": "-----BEGIN nonsense"}}}})


def test_jwt_hmac_secret_as_public_key_refused(make_server: MakeServer) -> None:
    with pytest.raises(GenroAsgiError, match="not a usable RS256 public key"):
        make_server({"plugins": {"auth": {"jwt": {"algorithms": ["RS256"],
                                                  "public_key": SECRET}}}})


def test_jwt_public_key_from_file(make_server: MakeServer, rsa_keys: tuple[Any, str],
                                  tmp_path: Any) -> None:
    private, public = rsa_keys
    (tmp_path / "jwt.pem").write_text(public, encoding="utf-8")
    server = make_server({"plugins": {"auth": {"jwt": {
        "algorithms": ["RS256"], "public_key": {"$file": "jwt.pem"}}}}})
    assert "BEGIN PUBLIC KEY" not in str(server.config.dump())
    token = jwt.encode(claims(tags=["a"]), private, "RS256")
    from genro_asgi.testing import TestClient

    with TestClient(server) as client:
        assert client.get("/nowhere", headers={"authorization": f"Bearer {token}"}
                          ).status_code == 404
        assert client.get("/nowhere").status_code == 401


def ec_pem(curve: Any) -> tuple[Any, str]:
    key = ec.generate_private_key(curve)
    return key, key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def test_jwt_rsa_family_shares_one_key(rsa_keys: tuple[Any, str]) -> None:
    private, public = rsa_keys
    verifier = JwtVerifier(JwtConfig.model_validate({"algorithms": ["RS256", "PS256"],
                                                     "public_key": public}))
    for algorithm in ("RS256", "PS256"):
        assert verifier.verify(jwt.encode(claims(), private, algorithm)).id == "bob"


def test_jwt_es_key_on_another_curve_refused_at_startup(make_server: MakeServer) -> None:
    _, public = ec_pem(ec.SECP256R1())
    with pytest.raises(GenroAsgiError, match=r"not a usable ES384 public key.*secp256r1"):
        make_server({"plugins": {"auth": {"jwt": {"algorithms": ["ES384"],
                                                  "public_key": public}}}})
    private, public = ec_pem(ec.SECP384R1())
    verifier = JwtVerifier(JwtConfig.model_validate({"algorithms": ["ES384"],
                                                     "public_key": public}))
    assert verifier.verify(jwt.encode(claims(), private, "ES384")).id == "bob"


def test_jwt_rsa_key_for_es_algorithm_refused_at_startup(
        make_server: MakeServer, rsa_keys: tuple[Any, str]) -> None:
    with pytest.raises(GenroAsgiError, match="not a usable ES256 public key"):
        make_server({"plugins": {"auth": {"jwt": {"algorithms": ["ES256"],
                                                  "public_key": rsa_keys[1]}}}})


def test_jwt_any_other_pyjwt_refusal_is_an_invalid_token(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever PyJWT raises for a hostile token is a 401 reason, never a 500."""
    verifier = hs_verifier()

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise jwt.exceptions.InvalidKeyError("key and token disagree")

    monkeypatch.setattr(jwt, "decode", refuse)
    with pytest.raises(InvalidToken, match="invalid token"):
        verifier.verify(jwt.encode(claims(), SECRET, "HS256"))


def test_weaker_hashes_cost_the_strongest_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Verification spends the server's highest iteration count, so a user with an older,
    weaker hash answers as slowly as an unknown name (no timing tells them apart)."""
    spent: list[int] = []
    real = hashlib.pbkdf2_hmac

    def counting(name: str, password: bytes, salt: bytes, rounds: int, *rest: Any) -> bytes:
        spent.append(rounds)
        return real(name, password, salt, rounds, *rest)

    weak = PasswordHash.parse(hash_password("pw", 1000))
    monkeypatch.setattr(hashlib, "pbkdf2_hmac", counting)
    assert weak.verify("pw", 5000) and not weak.verify("nope", 5000)
    assert spent == [1000, 4000, 1000, 4000]
    spent.clear()
    assert weak.verify("pw")  # no padding asked: its own rounds only
    assert spent == [1000]


@pytest.mark.parametrize("realm", ["認証", "caf\u00e9", 'say "hi"', "a\\b", ""])
def test_realm_must_be_plain_ascii(make_server: MakeServer, realm: str) -> None:
    """It is written into WWW-Authenticate: anything else would break every 401."""
    assert "printable ASCII" in auth_error(make_server, {"realm": realm,
                                                         "bearer": {"a": {"token": "t" * 16}}})
