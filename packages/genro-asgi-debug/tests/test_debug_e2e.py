"""End to end over a real uvicorn: park, attach a real pdb, inspect, continue, 500."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from debug_helpers import SECRET, WAIT, Background, debug_server, park, wait_until

from genro_asgi import AsgiServer
from genro_asgi.testing import LiveServer, free_port
from genro_asgi_debug import DebugClient, DebugClientError
from genro_asgi_debug.listener import MAX_HANDSHAKES
from genro_asgi_debug.protocol import HEADER, encode, recv_frame
from genro_asgi_debug.sockets import default_socket_dir, socket_path

pytestmark = pytest.mark.e2e
PROMPT = "(Pdb) "


def plugin_of(server: AsgiServer):  # type: ignore[no-untyped-def]
    return server.plugins.get("debug")


def client_for(server: AsgiServer, secret: str = SECRET) -> DebugClient:
    return DebugClient(plugin_of(server).address, secret.encode(), timeout=WAIT)


def audit_lines(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines()]


def attach_and_release(server: AsgiServer, command: str) -> None:
    """Attach to the oldest incident, wait for the prompt, then leave with ``c`` or ``q``."""
    with client_for(server) as debugger:
        debugger.attach()
        debugger.read_output(PROMPT, WAIT)
        debugger.send_input(command + "\n")
        debugger.wait_detached(WAIT)


def test_attach_read_a_local_continue_then_500(tmp_path: Path) -> None:
    server = debug_server(tmp_path, audit_file="audit.jsonl")
    with LiveServer(server) as live:
        failing = park(server, live.url,
                       "/shop/checkout?qty=5&token=hunter2-token")
        with client_for(server) as debugger:
            assert debugger.info["pid"] == os.getpid()
            (listed,) = debugger.incidents()
            assert listed["request"]["path"] == "/shop/checkout"
            assert ["token", "***"] in listed["request"]["query"]
            assert "hunter2" not in json.dumps(listed)
            assert listed["exception"]["type"] == "RuntimeError"
            incident = debugger.attach()
            assert incident["id"] == listed["id"]
            banner = debugger.read_output(PROMPT, WAIT)
            assert "checkout()" in banner and 'raise RuntimeError' in banner
            debugger.send_input("p order_total\n")
            assert debugger.read_output(PROMPT, WAIT) == f"70\n{PROMPT}"
            # the event loop keeps serving while the pdb waits for input
            assert httpx.get(live.url + "/shop/health", timeout=WAIT).text == "ok"
            assert not failing.done
            debugger.send_input("p qty * 2\n")
            assert debugger.read_output(PROMPT, WAIT) == f"10\n{PROMPT}"
            debugger.send_input("c\n")
            _rest, reason = debugger.wait_detached(WAIT)
            assert reason == "debugger ended"
        response = failing.response()
        assert response.status_code == 500
        assert response.json()["error"]["message"] == "Internal Server Error"
        wait_until(lambda: len(plugin_of(server).board) == 0, "the incident to be removed")
    events = audit_lines(tmp_path / "audit.jsonl")
    commands = [e["command"] for e in events if e["event"] == "pdb"]
    assert commands == ["p order_total", "p qty * 2", "c"]
    assert {e["incident"] for e in events if e["event"] == "pdb"} == {incident["id"]}
    assert all(e["peer"].startswith("unix:") for e in events if e["event"] == "pdb")
    assert [(e["command"], e["peer"].startswith("unix:")) for e in events
            if e["event"] == "command"] == [("incidents", True), ("attach", True)]
    kinds = [e["event"] for e in events]
    assert kinds.index("parked") < kinds.index("attached") < kinds.index("released")
    (parked,) = [e for e in events if e["event"] == "parked"]
    assert parked["request"]["path"] == "/shop/checkout"  # what happened, no headers or query
    assert "query" not in parked["request"] and "headers" not in parked["request"]
    assert "hunter2" not in (tmp_path / "audit.jsonl").read_text()
    assert os.stat(tmp_path / "audit.jsonl").st_mode & 0o777 == 0o600


def test_the_cli_attaches_over_the_socket(tmp_path: Path) -> None:
    server = debug_server(tmp_path)
    env = {**os.environ, "GENRO_ASGI_DEBUG_SECRET": SECRET}
    cli = [sys.executable, "-m", "genro_asgi_debug.cli", "--socket-dir",
           str(tmp_path / "sockets")]
    with LiveServer(server) as live:
        failing = park(server, live.url)
        listing = subprocess.run([*cli, "incidents", "--json"], env=env, capture_output=True,
                                 text=True, timeout=WAIT)
        assert listing.returncode == 0, listing.stderr
        (incident,) = json.loads(listing.stdout)
        assert incident["pid"] == str(os.getpid())
        inflight = subprocess.run([*cli, "requests"], env=env, capture_output=True, text=True,
                                  timeout=WAIT)
        assert "/shop/checkout" in inflight.stdout and incident["id"] in inflight.stdout
        attached = subprocess.run([*cli, "attach", incident["id"]], env=env, text=True,
                                  input="p order_total\np 'x' * 3\nc\n", capture_output=True,
                                  timeout=WAIT)
        assert attached.returncode == 0, attached.stderr
        assert "70\n" in attached.stdout and "'xxx'" in attached.stdout
        assert f"detached from {incident['id']}: debugger ended" in attached.stderr
        assert failing.response().status_code == 500


def test_ctrl_c_in_the_cli_interrupts_a_runaway_statement(tmp_path: Path) -> None:
    """SIGINT to a real `genro-asgi-debug attach` while a statement spins: the statement
    stops, the next command answers, and `c` ends the session normally (exit 0)."""
    server = debug_server(tmp_path, park_timeout=WAIT)
    env = {**os.environ, "GENRO_ASGI_DEBUG_SECRET": SECRET}
    with LiveServer(server) as live:
        failing = park(server, live.url)
        process = subprocess.Popen(
            [sys.executable, "-m", "genro_asgi_debug.cli", "--socket",
             plugin_of(server).address, "attach"],
            env=env, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # a shell runs background jobs with SIGINT ignored, and Python then installs no
            # KeyboardInterrupt handler: give the CLI the disposition a terminal gives it
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            assert process.stdin is not None
            process.stdin.write("!while True: pass\n")
            process.stdin.flush()
            wait_until(lambda: any(s.attachment is not None and s.attachment.post_mortem
                                   .debugger._running is not None
                                   for s in plugin_of(server).listener._sessions),
                       "the statement to run")
            time.sleep(0.2)
            process.send_signal(signal.SIGINT)
            time.sleep(0.5)  # the interrupt reaches pdb before the next line
            process.stdin.write("p order_total\nc\n")
            process.stdin.flush()
            out, err = process.communicate(timeout=WAIT)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 0, err
        assert "KeyboardInterrupt" in out and "70\n" in out
        assert "debugger ended" in err
        assert failing.response().status_code == 500


def test_end_of_input_quits_and_releases(tmp_path: Path) -> None:
    server = debug_server(tmp_path)
    env = {**os.environ, "MY_SECRET": SECRET}
    with LiveServer(server) as live:
        failing = park(server, live.url)
        attached = subprocess.run(
            [sys.executable, "-m", "genro_asgi_debug.cli", "--secret-env", "MY_SECRET",
             "--socket", plugin_of(server).address, "attach"],
            env=env, text=True, input="p order_total\n", capture_output=True, timeout=WAIT)
        assert attached.returncode == 0, attached.stderr
        assert "70" in attached.stdout
        assert failing.response().status_code == 500


def test_wrong_secret_is_refused_and_logged(tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    server = debug_server(tmp_path, audit_file="audit.jsonl", park_timeout=WAIT)
    with LiveServer(server) as live:
        failing = park(server, live.url)
        with pytest.raises(DebugClientError, match="authentication failed"):
            client_for(server, "not-the-secret-at-all").connect()
        wrong = subprocess.run(
            [sys.executable, "-m", "genro_asgi_debug.cli", "--socket-dir",
             str(tmp_path / "sockets"), "incidents"],
            env={**os.environ, "GENRO_ASGI_DEBUG_SECRET": "wrong-wrong-wrong-wrong"},
            capture_output=True, text=True, timeout=WAIT)
        assert wrong.returncode == 1 and "authentication failed" in wrong.stderr
        assert not failing.done  # still parked, untouched
        attach_and_release(server, "q")
        assert failing.response().status_code == 500
    failures = [e for e in audit_lines(tmp_path / "audit.jsonl") if e["event"] == "auth_failed"]
    assert len(failures) == 2 and all(e["peer"].startswith("unix:") for e in failures)
    assert "failed authentication attempt" in caplog.text


def test_a_server_without_the_secret_is_not_trusted(tmp_path: Path) -> None:
    """Mutual authentication: a listener that cannot prove the secret is refused."""
    path = tmp_path / "fake.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    listener.settimeout(WAIT)

    import threading

    def impostor() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(encode({"type": "hello", "protocol": 1, "nonce": "ab" * 32}))
            recv_frame(conn)
            conn.sendall(encode({"type": "welcome", "protocol": 1, "proof": "00" * 32}))

    thread = threading.Thread(target=impostor, daemon=True)
    thread.start()
    with pytest.raises(DebugClientError, match="could not prove it knows the secret"):
        DebugClient(path, SECRET.encode(), timeout=WAIT).connect()
    thread.join(WAIT)
    listener.close()


def test_park_timeout_releases_the_request(tmp_path: Path) -> None:
    server = debug_server(tmp_path, park_timeout=0.3, audit_file="audit.jsonl")
    with LiveServer(server) as live:
        response = httpx.get(live.url + "/shop/checkout", timeout=WAIT)
        assert response.status_code == 500
        assert len(plugin_of(server).board) == 0
    released = [e for e in audit_lines(tmp_path / "audit.jsonl") if e["event"] == "released"]
    assert [e["reason"] for e in released] == ["park timeout"]


def test_the_cap_holds(tmp_path: Path) -> None:
    server = debug_server(tmp_path, max_parked=1, park_timeout=WAIT)
    with LiveServer(server) as live:
        first = park(server, live.url)
        # the cap is reached: this one fails at once, while the first is still parked
        second = httpx.get(live.url + "/shop/checkout", timeout=WAIT)
        assert second.status_code == 500
        assert not first.done and len(plugin_of(server).board) == 1
        attach_and_release(server, "c")
        assert first.response().status_code == 500


def test_http_errors_are_not_parked(tmp_path: Path) -> None:
    server = debug_server(tmp_path, park_timeout=WAIT)
    with LiveServer(server) as live:
        assert httpx.get(live.url + "/shop/missing", timeout=WAIT).status_code == 404
        assert httpx.get(live.url + "/nowhere", timeout=WAIT).status_code == 404
        assert httpx.get(live.url + "/shop/checkout?qty=x", timeout=WAIT).status_code == 400
        assert len(plugin_of(server).board) == 0


def test_disconnect_releases_the_request(tmp_path: Path) -> None:
    server = debug_server(tmp_path, park_timeout=WAIT)
    with LiveServer(server) as live:
        failing = park(server, live.url)
        debugger = client_for(server)
        debugger.connect()
        debugger.attach()
        debugger.read_output(PROMPT, WAIT)
        debugger.close()
        assert failing.response().status_code == 500


def test_idle_timeout_closes_the_session_and_releases(tmp_path: Path) -> None:
    server = debug_server(tmp_path, park_timeout=WAIT, idle_timeout=1.0)
    with LiveServer(server) as live:
        failing = park(server, live.url)
        with client_for(server) as debugger:
            debugger.attach()
            _output, reason = debugger.wait_detached(WAIT)
            assert reason == "idle timeout"
        assert failing.response().status_code == 500


def test_one_session_per_incident_and_bad_commands(tmp_path: Path) -> None:
    server = debug_server(tmp_path, park_timeout=WAIT)
    with LiveServer(server) as live:
        failing = park(server, live.url)
        with client_for(server) as first, client_for(server) as second:
            with pytest.raises(DebugClientError, match="not attached"):
                second.call({"type": "input", "data": "p 1\n"}, "output")
            with pytest.raises(DebugClientError, match="unknown command"):
                second.call({"type": "shell", "cmd": "rm -rf /"}, "x")
            with pytest.raises(DebugClientError, match="id must be a string"):
                second.call({"type": "attach", "id": ["a"]}, "attached")
            incident = first.attach()
            with pytest.raises(DebugClientError, match="already has a debugger attached"):
                second.attach(incident["id"])
            with pytest.raises(DebugClientError, match="no parked incident is waiting"):
                second.attach()
            assert second.incidents()[0]["attached_by"].startswith("unix:")
            first.read_output(PROMPT, WAIT)
            first.detach()
            _output, reason = first.wait_detached(WAIT)
            assert reason == "detached by the client"
        assert failing.response().status_code == 500


def raw_connection(server: AsgiServer) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(WAIT)
    sock.connect(plugin_of(server).address.removeprefix("unix:"))
    assert recv_frame(sock)["type"] == "hello"
    return sock


@pytest.mark.parametrize(("payload", "audited"), [
    (HEADER.pack(2**31), "protocol_error"),                                # an absurd length
    (HEADER.pack(5) + b"\xff\xfe\xfd\xfc\xfb", "protocol_error"),            # not UTF-8
    (encode({"type": "auth", "nonce": "x", "proof": 1}), "auth_failed"),   # malformed auth
    (HEADER.pack(60_000) + b"[" * 60_000, "protocol_error"),  # nested past the recursion limit
    (HEADER.pack(0), "protocol_error"),                                    # an empty frame
    (b"GET / HTTP/1.1\r\n\r\n", "protocol_error"),                          # the wrong protocol
])
def test_hostile_clients_are_dropped_and_the_server_keeps_serving(tmp_path: Path,
                                                                  payload: bytes,
                                                                  audited: str) -> None:
    server = debug_server(tmp_path, park_timeout=WAIT, audit_file="audit.jsonl")
    with LiveServer(server) as live:
        failing = park(server, live.url)
        sock = raw_connection(server)
        sock.sendall(payload)
        reply = recv_frame(sock)
        assert reply is None or reply["type"] == "error"
        assert recv_frame(sock) is None  # closed by the server
        sock.close()
        assert [e["event"] for e in audit_lines(tmp_path / "audit.jsonl")
                if e["event"] in ("protocol_error", "auth_failed")] == [audited]
        assert httpx.get(live.url + "/shop/health", timeout=WAIT).text == "ok"
        assert not failing.done
        attach_and_release(server, "c")
        assert failing.response().status_code == 500


def test_silent_client_is_dropped_after_the_handshake_timeout(tmp_path: Path) -> None:
    server = debug_server(tmp_path, handshake_timeout=0.2)
    with LiveServer(server):
        sock = raw_connection(server)
        assert recv_frame(sock) is None
        sock.close()


def test_connections_waiting_to_authenticate_are_capped(tmp_path: Path) -> None:
    """Silent connections cannot pile up file descriptors (a loopback port is reachable by
    every local user): beyond MAX_HANDSHAKES they are told the listener is busy and closed
    at once, and the CLI says so (busy, try again), not that this is no debug listener."""
    server = debug_server(tmp_path, handshake_timeout=WAIT, park_timeout=WAIT,
                          audit_file="audit.jsonl")
    with LiveServer(server) as live:
        failing = park(server, live.url)
        silent = [raw_connection(server) for _ in range(MAX_HANDSHAKES)]
        extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        extra.settimeout(WAIT)
        extra.connect(plugin_of(server).address.removeprefix("unix:"))
        busy = recv_frame(extra)
        assert busy is not None and busy["type"] == "error" and busy["code"] == "busy"
        assert recv_frame(extra) is None  # then closed
        extra.close()
        with pytest.raises(DebugClientError, match="busy") as refused:
            client_for(server).connect()
        assert "not a genro-asgi-debug listener" not in str(refused.value)
        cli = subprocess.run(
            [sys.executable, "-m", "genro_asgi_debug.cli", "--socket-dir",
             str(tmp_path / "sockets"), "incidents"],
            env={**os.environ, "GENRO_ASGI_DEBUG_SECRET": SECRET},
            capture_output=True, text=True, timeout=WAIT)
        assert "busy" in cli.stderr and "try again" in cli.stderr, cli.stderr
        assert "not a genro-asgi-debug listener" not in cli.stderr
        assert httpx.get(live.url + "/shop/health", timeout=WAIT).text == "ok"
        for sock in silent:
            sock.close()
        listener = plugin_of(server).listener
        wait_until(lambda: not listener._sessions, "the silent sessions to end")
        attach_and_release(server, "c")  # room again for a developer
        assert failing.response().status_code == 500
    refused = [e for e in audit_lines(tmp_path / "audit.jsonl") if e["event"] == "refused"]
    assert [e["reason"] for e in refused] == ["too many connections waiting to "
                                              "authenticate"] * 3


def test_max_handshakes_from_the_config(tmp_path: Path) -> None:
    server = debug_server(tmp_path, handshake_timeout=WAIT, max_handshakes=2)
    with LiveServer(server):
        silent = [raw_connection(server) for _ in range(2)]
        with pytest.raises(DebugClientError, match="busy authenticating other connections"):
            client_for(server).connect()
        silent.pop().close()
        listener = plugin_of(server).listener
        wait_until(lambda: len(listener._sessions) == 1, "the closed session to end")
        with client_for(server) as debugger:  # a free slot again
            assert debugger.incidents() == []
        for sock in silent:
            sock.close()


def pdb_threads(incident_id: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"genro-asgi-debug-{incident_id}"]


def test_interrupt_a_runaway_statement_then_detach_during_another(tmp_path: Path) -> None:
    """Ctrl-C in the CLI sends ``interrupt``: the runaway statement stops and the session goes
    on in the same frame; ending a session during one stops its thread as well."""
    server = debug_server(tmp_path, park_timeout=WAIT, audit_file="audit.jsonl")
    with LiveServer(server) as live:
        failing = park(server, live.url)
        with client_for(server) as debugger:
            incident = debugger.attach()
            assert pdb_threads(incident["id"])
            debugger.read_output(PROMPT, WAIT)
            debugger.interrupt()  # at the prompt: said so, nothing else happens
            with pytest.raises(DebugClientError, match="nothing to interrupt"):
                debugger.read_output(PROMPT, WAIT)
            debugger.send_input("!while True: pass\n")
            time.sleep(0.2)
            assert httpx.get(live.url + "/shop/health", timeout=WAIT).text == "ok"
            debugger.interrupt()
            assert "KeyboardInterrupt" in debugger.read_output(PROMPT, WAIT)
            debugger.send_input("p order_total\n")
            assert debugger.read_output(PROMPT, WAIT) == f"70\n{PROMPT}"
            debugger.send_input("!while True: pass\n")
            time.sleep(0.2)
            debugger.detach()
            _rest, reason = debugger.wait_detached(WAIT)
            assert reason == "detached by the client"
        assert failing.response().status_code == 500
        wait_until(lambda: not pdb_threads(incident["id"]), "the pdb thread to end")
    commands = [e.get("command") for e in audit_lines(tmp_path / "audit.jsonl")
                if e["event"] == "command"]
    assert commands.count("interrupt") == 2


def test_over_tcp_on_loopback(tmp_path: Path) -> None:
    port = free_port()
    server = debug_server(tmp_path, port=port, park_timeout=WAIT)
    with LiveServer(server) as live:
        assert plugin_of(server).address == f"tcp:127.0.0.1:{port}"
        assert not (tmp_path / "sockets").exists()
        failing = park(server, live.url)
        result = subprocess.run(
            [sys.executable, "-m", "genro_asgi_debug.cli", "--port", str(port), "attach"],
            env={**os.environ, "GENRO_ASGI_DEBUG_SECRET": SECRET}, text=True,
            input="p order_total\nc\n", capture_output=True, timeout=WAIT)
        assert result.returncode == 0, result.stderr
        assert "70" in result.stdout
        assert failing.response().status_code == 500
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=WAIT)


def test_draining_releases_a_parked_request(tmp_path: Path) -> None:
    """When the core starts draining (lifespan shutdown), parked requests are released."""
    server = debug_server(tmp_path, park_timeout=WAIT, audit_file="audit.jsonl")
    with LiveServer(server) as live:
        failing = park(server, live.url)
        server.draining = True  # what AsgiServer.shutdown() sets first
        try:
            assert failing.response().status_code == 500
        finally:
            server.draining = False
    released = [e for e in audit_lines(tmp_path / "audit.jsonl") if e["event"] == "released"]
    assert [e["reason"] for e in released] == ["server shutting down"]


def test_stopping_the_server_removes_the_socket(tmp_path: Path) -> None:
    server = debug_server(tmp_path, park_timeout=2.0)
    live = LiveServer(server).start()
    try:
        failing = park(server, live.url)
        socket_file = Path(plugin_of(server).address.removeprefix("unix:"))
        assert socket_file.exists()
    finally:
        live.stop(timeout=WAIT)
    assert failing.response().status_code == 500
    assert not socket_file.exists()
    assert plugin_of(server).address is None


def test_requests_from_other_addresses_are_not_parked(tmp_path: Path, make_client) -> None:  # type: ignore[no-untyped-def]
    server = debug_server(tmp_path, park_timeout=WAIT)
    remote = make_client(server, client=("203.0.113.9", 40000))
    assert remote.get("/shop/checkout").status_code == 500
    assert len(plugin_of(server).board) == 0


@pytest.mark.parametrize("mode", ["not named", "disabled", "disabled with a port"])
def test_with_the_plugin_off_nothing_listens_or_parks(tmp_path: Path, mode: str) -> None:
    sockets = tmp_path / "sockets"
    port = free_port()
    tcp = mode == "disabled with a port"
    options = {"enabled": False, "socket_dir": str(sockets), **({"port": port} if tcp else {})}
    plugins = {} if mode == "not named" else {"debug": options}
    server = AsgiServer(tmp_path, config={"plugins": plugins}, environ={})
    from debug_helpers import Shop

    server.mount("/shop", Shop())
    with LiveServer(server) as live:
        started = time.monotonic()
        assert httpx.get(live.url + "/shop/checkout", timeout=WAIT).status_code == 500
        assert time.monotonic() - started < WAIT  # answered, not parked until a timeout
        assert not sockets.exists()
        assert not socket_path(default_socket_dir(), os.getpid()).exists()
        if tcp:
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        if mode != "not named":
            assert plugin_of(server).address is None


def test_genro_asgi_debug_command_uses_the_config(tmp_path: Path) -> None:
    """``genro-asgi debug DIR incidents`` reads the secret and socket dir from config.yaml."""
    (tmp_path / "debug.secret").write_text(SECRET)
    (tmp_path / "config.yaml").write_text(
        "plugins:\n  debug: {secret: {$file: debug.secret}, socket_dir: sockets, "
        f"park_timeout: {WAIT}}}\n")
    server = AsgiServer(tmp_path)
    from debug_helpers import Shop

    server.mount("/shop", Shop())
    with LiveServer(server) as live:
        failing = park(server, live.url)
        env = {k: v for k, v in os.environ.items() if k != "GENRO_ASGI_DEBUG_SECRET"}
        listing = subprocess.run([sys.executable, "-m", "genro_asgi", "debug", str(tmp_path),
                                  "incidents"], env=env, capture_output=True, text=True,
                                 timeout=WAIT)
        assert listing.returncode == 0, listing.stderr
        assert "/shop/checkout" in listing.stdout and "RuntimeError" in listing.stdout
        attached = subprocess.run([sys.executable, "-m", "genro_asgi", "debug", str(tmp_path),
                                   "attach"], env=env, input="c\n", capture_output=True,
                                  text=True, timeout=WAIT)
        assert attached.returncode == 0, attached.stderr
        assert failing.response().status_code == 500


def test_every_worker_has_its_socket_and_the_cli_asks_them_all(tmp_path: Path) -> None:
    (tmp_path / "debug.secret").write_text(SECRET)
    (tmp_path / "shop_app.py").write_text((Path(__file__).parent / "debug_helpers.py").read_text())
    (tmp_path / "config.yaml").write_text(
        "plugins:\n  debug: {secret: {$file: debug.secret}, socket_dir: sockets}\n"
        "apps:\n  shop: {module: 'shop_app:Shop'}\n")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "genro_asgi", "serve", str(tmp_path), "--port", str(port),
         "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: len(list((tmp_path / "sockets").glob("*.sock"))) == 2
                   or process.poll() is not None, "two worker sockets")
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/shop/health"), "the server")
        pids = sorted(int(p.stem.rsplit("-", 1)[1]) for p in (tmp_path / "sockets").glob("*"))
        failing = Background(f"http://127.0.0.1:{port}/shop/checkout")
        listing: list[dict] = []  # type: ignore[type-arg]

        def listed() -> bool:
            result = subprocess.run(
                [sys.executable, "-m", "genro_asgi", "debug", str(tmp_path), "incidents",
                 "--json"], capture_output=True, text=True, timeout=WAIT)
            assert result.returncode == 0 and "warning" not in result.stderr, result.stderr
            listing[:] = json.loads(result.stdout)
            return bool(listing)

        wait_until(listed, "the incident to be listed")
        assert int(listing[0]["pid"]) in pids
        attached = subprocess.run(
            [sys.executable, "-m", "genro_asgi", "debug", str(tmp_path), "attach",
             listing[0]["id"]], input="p order_total\nc\n", capture_output=True, text=True,
            timeout=WAIT)
        assert attached.returncode == 0, attached.stderr
        assert "42" in attached.stdout  # qty defaults to 3
        assert failing.response().status_code == 500
    finally:
        process.terminate()
        try:
            process.wait(WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert not list((tmp_path / "sockets").glob("*.sock"))


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=WAIT).status_code == 200
    except httpx.TransportError:
        return False
