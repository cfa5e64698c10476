"""Options and connection management: validation, credentials, nkeys from {$file}, TLS,
one connection per server, drained at shutdown."""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

import pytest
from nats_helpers import event, make, notify, open_ws, subscribe

from genro_asgi import AsgiServer, PluginError
from genro_asgi.testing import LiveServer, TestClient
from genro_asgi_nats import NatsConfig, NatsPlugin
from genro_asgi_nats.connection import backoff
from genro_asgi_nats.testing import NatsServer


@pytest.mark.parametrize(("options", "message"), [
    ({"servers": ["http://x:1"]}, "plugins.nats.servers"),
    ({"servers": []}, "plugins.nats.servers"),
    ({"subject_prefix": "a.*"}, "plugins.nats.subject_prefix"),
    ({"subject_prefix": "a..b"}, "plugins.nats.subject_prefix"),
    ({"user": "u"}, "user and password go together"),
    ({"reconnect_wait": 5, "reconnect_wait_max": 1}, "reconnect_wait must not exceed"),
    ({"max_message_size": 10}, "plugins.nats.max_message_size"),
    ({"colour": "red"}, "plugins.nats.colour"),
    ({"tls": {"ca": "x"}}, "plugins.nats.tls.ca"),
])
def test_bad_options_name_the_key(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    with pytest.raises(PluginError, match=message.replace(".", r"\.")):
        AsgiServer(tmp_path, environ={}, config={"plugins": {"nats": options}})


def test_defaults() -> None:
    config = NatsConfig()
    assert config.servers == ["nats://127.0.0.1:4222"] and config.required is True
    assert config.subject_prefix == "genro" and config.max_message_size == 1024 * 1024


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    waits = [backoff(n, 0.1, 2.0) for n in range(8)]
    for n, wait in enumerate(waits):
        base = min(2.0, 0.1 * 2 ** n)
        assert 0.75 * base <= wait <= base
    assert backoff(1000, 0.1, 2.0) <= 2.0


def test_secrets_never_show(tmp_path: Path) -> None:
    server = AsgiServer(tmp_path, environ={}, config={"plugins": {"nats": {
        "user": "app", "password": "hunter2", "token": "tok-123"}}})
    plugin = server.plugins.get("nats")
    assert isinstance(plugin, NatsPlugin)
    assert "hunter2" not in repr(plugin.config) and "tok-123" not in repr(plugin.config)


def test_two_servers_two_connections(tmp_path: Path, nats_server: NatsServer) -> None:
    with LiveServer(make(tmp_path, nats_server.url, name="a")) as a, \
            LiveServer(make(tmp_path, nats_server.url, name="b")) as b:
        links = [live.server.config.app.plugins.get("nats").link for live in (a, b)]
        assert links[0] is not links[1]
        assert all(link.connected for link in links)
        assert links[0].nc is not links[1].nc
    assert all(link.nc is None and link.state == "closed" for link in links)  # drained


def _round_trip(tmp_path: Path, url: str, nats: dict[str, Any]) -> None:
    with LiveServer(make(tmp_path, url, nats=nats, name="a")) as a, \
            LiveServer(make(tmp_path, url, nats=nats, name="b")) as b, open_ws(a) as ws:
        sub = subscribe(ws, "auth.ok")
        notify(b, "auth.ok", datetime.date(2026, 1, 2))
        assert event(ws) == (sub, "auth.ok", datetime.date(2026, 1, 2))


def test_user_and_password_and_a_wrong_password(tmp_path: Path) -> None:
    conf = 'authorization { users = [ {user: app, password: "s3cret-pw"} ] }\n'
    with NatsServer(config_text=conf) as nats_server:
        (tmp_path / "pw.txt").write_text("s3cret-pw\n")
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            (tmp_path / name / "pw.txt").write_text("s3cret-pw\n")
        _round_trip(tmp_path, nats_server.url, {"user": "app", "password": {"$file": "pw.txt"}})
        wrong = make(tmp_path, nats_server.url, name="c",
                     nats={"user": "app", "password": "nope", "connect_timeout": 1})
        with pytest.raises(RuntimeError) as info, TestClient(wrong):
            pass
        assert "plugins.nats.servers" in str(info.value)
        assert "nope" not in str(info.value)


def test_token(tmp_path: Path) -> None:
    with NatsServer(config_text='authorization { token: "t0k3n" }\n') as nats_server:
        _round_trip(tmp_path, nats_server.url, {"token": "t0k3n"})


def test_nkey_seed_from_a_file(tmp_path: Path) -> None:
    nkeys = pytest.importorskip("nkeys", reason="nkeys is not installed (nats-py[nkeys])")
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    conf = f'authorization {{ users = [ {{nkey: "{public}"}} ] }}\n'
    with NatsServer(config_text=conf) as nats_server:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            (tmp_path / name / "app.nk").write_bytes(seed + b"\n")
        _round_trip(tmp_path, nats_server.url, {"nkey_seed": {"$file": "app.nk"}})


def test_tls_with_a_private_ca(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    _make_certs(certs)
    conf = (f'tls {{ cert_file: "{certs / "server.pem"}"\n key_file: "{certs / "server.key"}"\n'
            f' ca_file: "{certs / "ca.pem"}" }}\n')
    with NatsServer(config_text=conf) as nats_server:
        url = f"tls://127.0.0.1:{nats_server.port}"
        tls = {"ca_file": str(certs / "ca.pem")}
        _round_trip(tmp_path, url, {"tls": tls})
        untrusted = make(tmp_path, url, name="c", nats={"connect_timeout": 1, "tls": {}})
        with pytest.raises(RuntimeError, match=r"plugins\.nats\.servers"), TestClient(untrusted):
            pass  # the system's CAs do not trust our private CA


def test_a_missing_tls_file_is_a_config_error(tmp_path: Path) -> None:
    server = make(tmp_path, "tls://127.0.0.1:1", nats={"tls": {"ca_file": "nope.pem"}})
    with pytest.raises(RuntimeError, match=r"plugins\.nats\.tls"), TestClient(server):
        pass


def _make_certs(directory: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, issuer: x509.Name | None, key: Any, signer: Any,
              ca: bool) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            import ipaddress
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                 x509.DNSName("localhost")]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = build("test ca", None, ca_key, ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build("127.0.0.1", ca_cert.subject, key, ca_key, False)
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    (directory / "server.pem").write_bytes(cert.public_bytes(pem))
    (directory / "server.key").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
