"""Pieces on their own: proofs and frames, redaction, the incident board, the remote pdb."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from typing import Any

import pytest
from debug_helpers import SECRET

from genro_asgi import AsgiServer, Request
from genro_asgi_debug.config import ip_allowed, is_loopback
from genro_asgi_debug.incidents import IncidentBoard
from genro_asgi_debug.protocol import (
    HEADER,
    ProtocolError,
    client_proof,
    decode,
    encode,
    new_nonce,
    proof_matches,
    read_frame,
    server_proof,
    valid_nonce,
)
from genro_asgi_debug.redact import Redactor
from genro_asgi_debug.remote_pdb import LineInput, OutputBridge, start_post_mortem
from genro_asgi_debug.session import Attachment, Session

WAIT = 20.0


def test_proofs_are_mutual_and_bound_to_both_nonces() -> None:
    secret, server_nonce, client_nonce = b"s" * 20, new_nonce(), new_nonce()
    proof = client_proof(secret, server_nonce, client_nonce)
    assert proof_matches(proof, client_proof(secret, server_nonce, client_nonce))
    assert proof != server_proof(secret, server_nonce, client_nonce)  # no reflection
    assert proof != client_proof(secret, new_nonce(), client_nonce)  # no replay
    assert proof != client_proof(b"t" * 20, server_nonce, client_nonce)
    assert secret.hex() not in proof and secret.decode() not in proof


@pytest.mark.parametrize("given", [None, 1, [], "", "zz", "é" * 64])
def test_proof_match_tolerates_hostile_values(given: object) -> None:
    assert proof_matches("ab" * 32, given) is False


def test_nonce_validation() -> None:
    assert valid_nonce(new_nonce())
    for bad in (None, 1, "ab", "zz" * 32, new_nonce() + "00"):
        assert not valid_nonce(bad)


def test_frame_round_trip_and_rejections() -> None:
    assert decode(encode({"type": "x", "data": "è"})[HEADER.size:]) == {"type": "x", "data": "è"}
    for body in (b"\xff\xfe", b"[1]", b'{"no": "type"}', b'{"type": 3}', b"not json", b"",
                 b"[" * 60_000, b'{"type": "auth", "nonce": ' + b"{" * 30_000):
        with pytest.raises(ProtocolError):
            decode(body)


async def test_read_frame_limits() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(HEADER.pack(10_000_000))
    with pytest.raises(ProtocolError, match="over the 1024 byte limit"):
        await read_frame(reader, 1024)
    reader = asyncio.StreamReader()
    reader.feed_data(encode({"type": "a"})[:5])
    reader.feed_eof()
    with pytest.raises(ProtocolError, match="ended inside a frame"):
        await read_frame(reader, 1024)
    reader = asyncio.StreamReader()
    reader.feed_eof()
    assert await read_frame(reader, 1024) is None


def test_loopback_and_allowed_ips() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    from pydantic import TypeAdapter, IPvAnyNetwork  # noqa: I001

    nets = [TypeAdapter(IPvAnyNetwork).validate_python("10.1.0.0/16")]
    assert ip_allowed("127.0.0.1", []) and ip_allowed("10.1.2.3", nets)
    assert ip_allowed("::ffff:10.1.2.3", nets)
    assert not ip_allowed("10.2.0.1", nets) and not ip_allowed("testclient", nets)


def test_redaction_of_headers_and_query() -> None:
    scope = {"type": "http", "method": "GET", "path": "/p",
             "query_string": b"q=shoes&api_key=K&password=P&page=2&access_token=T",
             "headers": [(b"authorization", b"Bearer T"), (b"cookie", b"sid=1"),
                         (b"x-api-key", b"K"), (b"proxy-authorization", b"Basic x"),
                         (b"x-my-session", b"S"), (b"accept", b"text/html")],
             "client": ("127.0.0.1", 5000)}
    summary = Redactor(["x-tenant"]).request_summary(Request(scope, None))  # type: ignore[arg-type]
    assert summary["query"] == [["q", "shoes"], ["api_key", "***"], ["password", "***"],
                                ["page", "2"], ["access_token", "***"]]
    assert dict(summary["headers"]) == {"authorization": "***", "cookie": "***",
                                        "x-api-key": "***", "proxy-authorization": "***",
                                        "x-my-session": "***", "accept": "text/html"}
    assert summary["client"] == "127.0.0.1:5000"
    assert Redactor(["x-tenant"]).is_secret("X-Tenant")


@pytest.mark.parametrize("name", ["ticket", "pass", "pw", "sid", "phpsessid", "jsessionid",
                                  "signature", "hash", "nonce", "SAMLResponse", "private_key"])
def test_redaction_of_more_secret_looking_names(name: str) -> None:
    assert Redactor().is_secret(name)


def test_redaction_of_the_servers_credential_headers(tmp_path: Any) -> None:
    """The auth plugin's API-key header, whatever its name, is redacted through
    server.credential_headers: the debug plugin knows nothing of auth's config."""
    server = AsgiServer(tmp_path, environ={"DEBUG_SECRET": SECRET}, config={"plugins": {
        "auth": {"api_key": {"header": "X-Partner", "keys": {"p": {"key": "k" * 16}}}},
        "debug": {"secret": {"$env": "DEBUG_SECRET"}, "socket_dir": str(tmp_path / "s")}}})
    redactor = server.plugins.get("debug").redactor
    scope = {"type": "http", "method": "GET", "path": "/p", "query_string": b"",
             "headers": [(b"x-partner", b"PARTNER-KEY"), (b"accept", b"*/*")]}
    summary = redactor.request_summary(Request(scope, None))  # type: ignore[arg-type]
    assert dict(summary["headers"]) == {"x-partner": "***", "accept": "*/*"}


async def test_a_release_of_an_earlier_incident_leaves_the_new_attachment_alone() -> None:
    """Detach from A and attach to B in one write: A's release (a callback that may run after
    B's attach) must not end B's session."""
    session = Session(None, None, None, "test")  # type: ignore[arg-type]
    ended: list[str] = []
    session.end_attach = ended.append  # type: ignore[method-assign]
    first, second = object(), object()
    session.attachment = Attachment(second, None, None)  # type: ignore[arg-type]
    released = asyncio.get_running_loop().create_future()
    released.set_result("detached by the client")
    session._released(first, released)  # type: ignore[arg-type]
    assert ended == [] and session.attachment.incident is second
    session._released(second, released)  # type: ignore[arg-type]
    assert ended == ["request released (detached by the client)"]


def test_redaction_bounds_oversized_input() -> None:
    scope = {"type": "http", "method": "GET", "path": "/" + "a" * 5000,
             "query_string": "&".join(f"f{i}={'v' * 500}" for i in range(2000)).encode(),
             "headers": [(f"x-h{i}".encode(), b"v") for i in range(500)]}
    summary = Redactor().request_summary(Request(scope, None))  # type: ignore[arg-type]
    assert len(summary["path"]) < 300
    assert len(summary["query"]) == 51 and len(summary["headers"]) == 51
    assert all(len(value) < 300 for _name, value in summary["query"])


async def test_board_caps_and_claims() -> None:
    board = IncidentBoard(max_parked=2)
    incidents = []
    for n in range(3):
        try:
            raise ValueError(f"e{n}")
        except ValueError as exc:
            incidents.append(board.park(exc, {"request_id": str(n)}))
    first, second, third = incidents
    assert third is None and len(board) == 2
    assert "ValueError: e0" in first.traceback_text
    assert board.claim(None, "me") is first
    with pytest.raises(LookupError, match="already has a debugger attached"):
        board.claim(first.id, "you")
    assert board.claim(None, "you") is second
    with pytest.raises(LookupError, match="no parked incident is waiting"):
        board.claim(None, "them")
    with pytest.raises(LookupError, match="no parked incident 'nope'"):
        board.claim("nope", "them")
    board.release_all("bye")
    assert first.released.result() == "bye"
    board.remove(first)
    assert len(board) == 1 and first.tb is None


def _failing_traceback():  # type: ignore[no-untyped-def]
    secret_sauce = {"answer": 42}  # noqa: F841  (read by the debugger)
    try:
        raise KeyError("missing")
    except KeyError as exc:
        return exc.__traceback__


def _nested_traceback():  # type: ignore[no-untyped-def]
    def inner() -> None:
        depth = "inner"  # noqa: F841
        raise KeyError("deep")

    def outer() -> None:
        depth = "outer"  # noqa: F841
        inner()

    try:
        outer()
    except KeyError as exc:
        return exc.__traceback__


def run_pdb(lines: list[str], tb: Any = None) -> str:
    """A post-mortem session driven directly, without a server: what it printed."""
    chunks: list[str] = []
    finished = threading.Event()
    stdin = LineInput()
    for line in lines:
        stdin.feed(line)
    stdin.close()
    session = start_post_mortem(tb or _failing_traceback(), stdin, OutputBridge(chunks.append),
                                finished.set, "unit")
    assert finished.wait(WAIT)
    session.thread.join(WAIT)
    return "".join(chunks)


def test_remote_pdb_reads_locals_and_ends_on_eof() -> None:
    output = run_pdb(["p secret_sauce['answer']", "pp sorted(secret_sauce)", "w"])
    assert "42\n" in output and "['answer']" in output
    assert "_failing_traceback()" in output


def test_remote_pdb_lists_and_walks_the_traceback() -> None:
    output = run_pdb(["p depth", "l", "up", "p depth", "down", "p depth", "up", "up",
                      "p 'top'"], _nested_traceback())
    replies = output.split("(Pdb) ")[1:]  # one reply per command, after each prompt
    assert replies[0] == "'inner'\n"
    assert 'raise KeyError("deep")' in replies[1] and "->" in replies[1]  # l: the source
    assert "outer()" in replies[2] and replies[3] == "'outer'\n"  # up: the caller
    assert "inner()" in replies[4] and replies[5] == "'inner'\n"  # down: back again
    assert "_nested_traceback()" in replies[7] and replies[8] == "'top'\n"


@pytest.mark.parametrize("command", ["b 10", "break", "step", "n", "interact", "run",
                                     "restart", "debug 1", "clear", "commands 1", "j 3"])
def test_remote_pdb_refuses_commands_that_cannot_work_remotely(command: str) -> None:
    output = run_pdb([command, "p 'still here'"])
    assert "not available in a remote post-mortem session" in output
    assert "'still here'" in output


def test_remote_pdb_does_not_touch_the_process_streams(capfd: pytest.CaptureFixture[str]) -> None:
    before = sys.stdout, sys.stdin
    output = run_pdb(["help", "help pdb", "!print('from exec')"])
    assert "Documented commands" in output and "from exec" in output
    assert (sys.stdout, sys.stdin) == before
    assert "from exec" not in capfd.readouterr().out


def test_overlapping_statements_of_two_sessions_restore_the_process_streams() -> None:
    """pdb's ``!statement`` swaps sys.stdout (and stdin, displayhook) and restores what it
    found: overlapping in two sessions, the second restored the first one's bridge, and the
    worker printed into a dead session for good. Statements now run one at a time."""
    before = sys.stdout, sys.stdin, sys.displayhook
    outputs: list[str] = []
    first = threading.Thread(target=lambda: outputs.append(
        run_pdb(["!import time; time.sleep(0.3)", "!print('first')"])))
    first.start()
    time.sleep(0.1)  # the second statement starts while the first is running, ends after it
    second = run_pdb(["!import time; time.sleep(0.4)", "!print('second')"])
    first.join(WAIT)
    assert (sys.stdout, sys.stdin, sys.displayhook) == before
    assert "first" in outputs[0] and "second" in second


def test_a_statement_that_never_ends_does_not_wedge_other_sessions() -> None:
    # the frame's globals are this module's: the statement waits on STUCK
    stuck = threading.Thread(target=run_pdb, args=(["!STUCK.wait()"],), daemon=True)
    STUCK.clear()
    stuck.start()
    time.sleep(0.1)
    try:
        output = run_pdb(["!1 + 1", "p 'p does not wait'"])
        assert "another debugger session is running a statement" in output
        assert "'p does not wait'" in output
    finally:
        STUCK.set()
        stuck.join(WAIT)


STUCK = threading.Event()


def test_line_input_eof_is_sticky() -> None:
    stdin = LineInput()
    stdin.feed("a\nb")
    stdin.close()
    stdin.feed("ignored\n")
    assert [stdin.readline() for _ in range(4)] == ["a\n", "b\n", "", ""]


def test_output_bridge_chunks_large_output() -> None:
    chunks: list[str] = []
    bridge = OutputBridge(chunks.append)
    bridge.write("x" * 100_000)
    bridge.flush()
    assert "".join(chunks) == "x" * 100_000
    assert max(len(c) for c in chunks) <= 32 * 1024


async def test_a_cancelled_parked_request_is_released_and_audited(tmp_path: Any) -> None:
    """uvicorn cancels requests still running at its shutdown timeout: the incident is then
    released (ending an attached session) and removed, not left behind."""
    from debug_helpers import debug_server

    server = debug_server(tmp_path, park_timeout=WAIT, audit_file="audit.jsonl")
    plugin = server.plugins.get("debug")
    await plugin.genro_asgi_startup(server)
    try:
        scope = {"type": "http", "method": "GET", "path": "/p", "query_string": b"",
                 "headers": [], "client": ("127.0.0.1", 5000)}
        parked = asyncio.create_task(plugin.genro_asgi_exception_response(
            Request(scope, None), RuntimeError("boom")))  # type: ignore[arg-type]
        while not len(plugin.board):
            await asyncio.sleep(0.01)
        (incident,) = plugin.board.list()
        parked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await parked
        assert incident.released.result() == "request cancelled"
        assert len(plugin.board) == 0 and incident.tb is None
    finally:
        await plugin.genro_asgi_shutdown()
    assert '"reason": "request cancelled"' in (tmp_path / "audit.jsonl").read_text()


async def test_every_pdb_line_is_audited_whole(caplog: pytest.LogCaptureFixture) -> None:
    """A long line is audited in full: a clipped record could hide the statement's tail."""
    from genro_asgi_debug.audit import AuditLog
    from genro_asgi_debug.session import SessionContext

    context = SessionContext(secret=b"", board=IncidentBoard(1), audit=AuditLog(None, 1),
                             requests=list, info={}, handshake_timeout=1, idle_timeout=1)
    session = Session(context, None, None, "peer")  # type: ignore[arg-type]
    incident = type("FakeIncident", (), {"id": "abc"})()
    session.attachment = Attachment(incident, LineInput(), None)  # type: ignore[arg-type]
    line = "p 'harmless'" + " " * 5000 + "; __import__('os').system('rm -rf /tmp/x')"
    with caplog.at_level("INFO", logger="genro_asgi_debug.audit"):
        session._input({"type": "input", "data": line + "\nc\n"})
    assert "rm -rf /tmp/x" in caplog.text and '"command": "c"' in caplog.text
    assert session.attachment.stdin.readline() == line + "\n"


def test_the_cli_never_sends_control_characters_to_the_terminal() -> None:
    """A parked request's path and exception message come from its client."""
    import io

    from genro_asgi_debug.cli import print_table, printable

    assert printable("/x\x1b]0;pwned\x07\n\x9b") == "/x\\x1b]0;pwned\\x07\\x0a\\x9b"
    out = io.StringIO()
    print_table([{"path": "/\x1b[2J", "age": 1}], ("path", "age"), out)
    assert "\x1b" not in out.getvalue() and "/\\x1b[2J" in out.getvalue()


def test_the_cli_reads_a_secret_as_the_core_resolves_it(tmp_path: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Same source, same bytes on both sides: a variable as it is, a file stripped."""
    from genro_asgi.config import resolve_secrets
    from genro_asgi_debug.cli import build_parser, read_secret

    padded = " " + SECRET + "\n"
    monkeypatch.setenv("PADDED_SECRET", padded)
    (tmp_path / "secret.txt").write_text(padded)
    for source, argv in [({"$env": "PADDED_SECRET"}, ["--secret-env", "PADDED_SECRET"]),
                         ({"$file": "secret.txt"},
                          ["--secret-file", str(tmp_path / "secret.txt")])]:
        server_side, _ = resolve_secrets(source, tmp_path)
        cli_side = read_secret(build_parser().parse_args([*argv, "incidents"]), None)
        assert cli_side == server_side.encode()


class LiveSession:
    """A post-mortem session fed a line at a time, for interrupting what it runs."""

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.finished = threading.Event()
        self.stdin = LineInput()
        self.session = start_post_mortem(_failing_traceback(), self.stdin,
                                         OutputBridge(self.chunks.append), self.finished.set,
                                         "live")

    def output(self) -> str:
        return "".join(self.chunks)

    def wait_prompts(self, count: int) -> str:
        deadline = time.monotonic() + WAIT
        while self.output().count("(Pdb) ") < count:
            assert time.monotonic() < deadline, self.output()
            time.sleep(0.01)
        return self.output()

    def wait_running(self) -> None:
        deadline = time.monotonic() + WAIT
        while self.session.debugger._running is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)


@pytest.mark.parametrize("runaway", [
    "!while True: x = 1",  # line events: the trace raises it
    "!while True: pass",  # one self-jump, no trace events: raised asynchronously
    "p [i for i in iter(int, 1)]",  # an expression, in a comprehension's frame
    "!while True: __import__('time').sleep(0.01)",  # mostly inside a C call
])
def test_interrupt_stops_a_runaway_command_and_the_session_goes_on(runaway: str) -> None:
    before = sys.stdout, sys.stdin, sys.displayhook
    live = LiveSession()
    live.wait_prompts(1)
    assert live.session.interrupt() is False  # at the prompt: nothing to interrupt
    live.stdin.feed(runaway)
    live.wait_running()
    time.sleep(0.05)  # well inside the loop
    assert live.session.interrupt() is True
    assert "KeyboardInterrupt" in live.wait_prompts(2)
    assert (sys.stdout, sys.stdin, sys.displayhook) == before
    live.stdin.feed("!print('statements still run')\np secret_sauce['answer']")
    output = live.wait_prompts(4)
    assert "statements still run" in output and "42\n" in output  # the same frame
    live.stdin.close()
    assert live.finished.wait(WAIT)
    live.session.thread.join(WAIT)
    assert not live.session.thread.is_alive()
    assert (sys.stdout, sys.stdin, sys.displayhook) == before


def test_a_session_that_ends_during_a_runaway_statement_ends_its_thread() -> None:
    """What end_attach does on detach, disconnect or idle timeout: EOF, then interrupt."""
    live = LiveSession()
    live.wait_prompts(1)
    live.stdin.feed("!while True: pass")
    live.wait_running()
    live.stdin.close()
    assert live.session.interrupt() is True
    assert live.finished.wait(WAIT)
    live.session.thread.join(WAIT)
    assert not live.session.thread.is_alive()
    # the statement lock was given back: another session's statement runs at once
    assert "free again" in run_pdb(["!print('free again')"])


class ScriptedClient:
    """What `interact` talks to: frames from a script; ``CTRL_C`` raises KeyboardInterrupt
    there, once the typed line has been sent."""

    CTRL_C = "ctrl-c"

    def __init__(self, script: list[Any]) -> None:
        self.script = list(script)
        self.sent: list[tuple[str, Any]] = []
        self.line_sent = threading.Event()

    def send_input(self, text: str, *, eof: bool = False) -> None:
        self.sent.append(("input", text))
        self.line_sent.set()

    def interrupt(self) -> None:
        self.sent.append(("interrupt", None))

    def detach(self) -> None:
        self.sent.append(("detach", None))

    def receive(self, timeout: float | None = None) -> dict[str, Any]:
        step = self.script.pop(0)
        if step == self.CTRL_C:
            assert self.line_sent.wait(WAIT)
            raise KeyboardInterrupt
        return step  # type: ignore[no-any-return]


def run_interact(script: list[Any], typed: str) -> tuple[int, ScriptedClient, str]:
    import io

    from genro_asgi_debug.cli import interact

    client = ScriptedClient(script)
    stdin = io.StringIO(typed)
    stdin.isatty = lambda: False  # type: ignore[method-assign]
    out = io.StringIO()
    code = interact(client, stdin, out, io.StringIO())  # type: ignore[arg-type]
    return code, client, out.getvalue()


DETACHED = {"type": "detached", "incident": "abc", "reason": "detached by the client"}


def test_the_cli_interrupts_a_running_command_and_detaches_at_the_prompt() -> None:
    """Ctrl-C in `genro-asgi-debug attach`: interrupt while pdb works, detach at the prompt."""
    code, client, out = run_interact([
        {"type": "output", "data": "> frame\n(Pdb) "},
        ScriptedClient.CTRL_C,  # while the line just typed runs
        {"type": "output", "data": "*** KeyboardInterrupt\n(Pdb) "},
        ScriptedClient.CTRL_C,  # at the prompt
        DETACHED,
    ], "!while True: pass\n")
    assert code == 130
    assert client.sent[0] == ("input", "!while True: pass\n")
    assert [kind for kind, _ in client.sent if kind != "input"] == ["interrupt", "detach"]
    assert "KeyboardInterrupt" in out


def test_the_cli_counts_a_prompt_split_across_two_frames() -> None:
    """Output comes in chunks of at most 32 KiB, so "(Pdb) " can be cut in two."""
    code, client, _out = run_interact([
        {"type": "output", "data": "> frame\n(Pd"},
        {"type": "output", "data": "b) "},
        ScriptedClient.CTRL_C,  # one prompt, one line sent: pdb is working
        {"type": "output", "data": "x" * 40 + "(Pdb"},
        {"type": "output", "data": ") "},
        ScriptedClient.CTRL_C,  # two prompts, one line: at the prompt
        DETACHED,
    ], "p 'x' * 40\n")
    assert code == 130
    assert [kind for kind, _ in client.sent if kind != "input"] == ["interrupt", "detach"]


def test_an_interrupt_scheduled_too_late_can_be_withdrawn() -> None:
    """What _escalate does when the command ended between its look and the scheduling."""
    from genro_asgi_debug.remote_pdb import _raise_in_thread

    release, outcome = threading.Event(), []

    def blocked() -> None:
        try:
            release.wait(WAIT)  # a C call: a scheduled exception waits for its return
            for _ in range(1000):
                pass
            outcome.append("ran on")
        except KeyboardInterrupt:
            outcome.append("interrupted")

    for withdraw in (False, True):
        release.clear()
        outcome.clear()
        thread = threading.Thread(target=blocked)
        thread.start()
        time.sleep(0.05)
        assert thread.ident is not None
        assert _raise_in_thread(thread.ident, KeyboardInterrupt)
        if withdraw:
            _raise_in_thread(thread.ident, None)
        release.set()
        thread.join(WAIT)
        assert outcome == (["ran on"] if withdraw else ["interrupted"])
