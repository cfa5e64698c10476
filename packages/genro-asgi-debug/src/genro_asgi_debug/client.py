"""The blocking client the ``genro-asgi-debug`` command (and the tests) use.

``DebugClient(address, secret)`` connects to one worker's listener (``unix:/path``,
``tcp:host:port`` or a ``Path``), performs the mutual challenge-response and then sends
commands. ``worker_addresses`` finds every worker's socket in a directory.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from .protocol import (
    MAX_SERVER_FRAME,
    PROTOCOL,
    ProtocolError,
    client_proof,
    encode,
    new_nonce,
    proof_matches,
    recv_frame,
    server_proof,
)
from .sockets import list_sockets


class DebugClientError(Exception):
    """The server refused something, or is not who it claims to be."""


def worker_addresses(directory: Path) -> list[str]:
    """The ``unix:PATH`` addresses of the debug listeners of the workers in ``directory``."""
    return [f"unix:{path}" for _pid, path in list_sockets(directory)]


class DebugClient:
    """A connection to one worker. Use as a context manager."""

    def __init__(self, address: str | Path, secret: bytes, *, timeout: float = 10.0) -> None:
        self.address = address if isinstance(address, str) else f"unix:{address}"
        self.secret = secret
        self.timeout = timeout
        self.info: dict[str, Any] = {}
        self._sock: socket.socket | None = None

    def __enter__(self) -> DebugClient:
        self.connect()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def connect(self) -> None:
        """Connect to ``address`` (``unix:PATH`` or ``tcp:HOST:PORT``); both sides prove the secret.

        DebugClientError when the listener refuses this client, is busy, speaks another protocol,
        or cannot prove that it knows the secret.
        """
        kind, _, where = self.address.partition(":")
        if kind == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: Any = where
        elif kind == "tcp":
            host, _, port = where.rpartition(":")
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                                 socket.SOCK_STREAM)
            target = (host.strip("[]"), int(port))
        else:
            raise DebugClientError(f"address {self.address!r} is not unix:PATH nor tcp:HOST:PORT")
        sock.settimeout(self.timeout)
        try:
            sock.connect(target)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        try:
            self._authenticate()
        except BaseException:
            self.close()
            raise

    def _authenticate(self) -> None:
        hello = self.receive()
        if hello is None:
            raise DebugClientError(f"{self.address}: the listener closed the connection without "
                                   "a hello: it refused this client (its uid or address is not "
                                   "allowed; see the server's audit log)")
        if hello.get("type") == "error" and hello.get("code") == "busy":
            raise DebugClientError(f"{self.address}: the listener is busy authenticating other "
                                   "connections; try again in a moment")
        if hello.get("type") != "hello" or hello.get("protocol") != PROTOCOL:
            raise DebugClientError(f"{self.address}: not a genro-asgi-debug listener "
                                   f"(protocol {PROTOCOL})")
        server_nonce = str(hello.get("nonce"))
        nonce = new_nonce()
        try:
            proof = client_proof(self.secret, server_nonce, nonce)
        except ValueError:
            raise DebugClientError(f"{self.address}: malformed hello") from None
        self.send({"type": "auth", "nonce": nonce, "proof": proof})
        welcome = self.receive()
        if welcome is None or welcome["type"] == "error":
            raise DebugClientError(f"{self.address}: authentication failed (wrong secret?)")
        if welcome["type"] != "welcome" or not proof_matches(
                server_proof(self.secret, server_nonce, nonce), welcome.get("proof")):
            raise DebugClientError(f"{self.address}: the server could not prove it knows the "
                                   "secret; not talking to it")
        self.info = {k: v for k, v in welcome.items() if k not in ("type", "proof")}

    def close(self) -> None:
        """Close the connection (an attached session is detached by the server)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def send(self, message: dict[str, Any]) -> None:
        """Send one protocol message (a dict with ``type``)."""
        if self._sock is None:
            raise DebugClientError("not connected")
        self._sock.sendall(encode(message))

    def receive(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next message from the server, None when it closed; TimeoutError on timeout."""
        if self._sock is None:
            raise DebugClientError("not connected")
        self._sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            return recv_frame(self._sock, MAX_SERVER_FRAME)
        except ProtocolError as exc:
            raise DebugClientError(f"{self.address}: {exc}") from None

    def call(self, message: dict[str, Any], expect: str) -> dict[str, Any]:
        """Send ``message`` and return the reply of type ``expect``; DebugClientError otherwise."""
        self.send(message)
        reply = self.receive()
        if reply is None:
            raise DebugClientError(f"{self.address}: the server closed the connection")
        if reply["type"] == "error":
            raise DebugClientError(str(reply.get("error")))
        if reply["type"] != expect:
            raise DebugClientError(f"{self.address}: expected {expect!r}, got {reply['type']!r}")
        return reply

    def incidents(self) -> list[dict[str, Any]]:
        """The parked failing requests (incidents) of this worker."""
        return list(self.call({"type": "incidents"}, "incidents")["incidents"])

    def requests(self) -> list[dict[str, Any]]:
        """The requests in flight on this worker (the request inspector)."""
        return list(self.call({"type": "requests"}, "requests")["requests"])

    def attach(self, incident_id: str | None = None) -> dict[str, Any]:
        """Attach to an incident (the oldest free one without an id); its description."""
        return dict(self.call({"type": "attach", "id": incident_id}, "attached")["incident"])

    def send_input(self, text: str, *, eof: bool = False) -> None:
        """Type ``text`` at the pdb prompt (``eof``: end of input, as Ctrl-D)."""
        self.send({"type": "input", "data": text, "eof": eof})

    def detach(self) -> None:
        """Leave the session; the server answers with a ``detached`` frame."""
        self.send({"type": "detach"})

    def interrupt(self) -> None:
        """Ctrl-C: raise ``KeyboardInterrupt`` in the command pdb is running (an ``error``
        comes back when pdb is at its prompt)."""
        self.send({"type": "interrupt"})

    def read_output(self, until: str, timeout: float) -> str:
        """pdb output up to and including ``until`` (e.g. the ``(Pdb) `` prompt).

        Raises DebugClientError if the session ends first, TimeoutError after ``timeout``.
        """
        text = ""
        while until not in text:
            message = self.receive(timeout)
            if message is None or message["type"] == "detached":
                raise DebugClientError(f"session ended before {until!r}: {text!r}")
            if message["type"] == "output":
                text += str(message.get("data", ""))
            elif message["type"] == "error":
                raise DebugClientError(str(message.get("error")))
        return text

    def wait_detached(self, timeout: float) -> tuple[str, str]:
        """The remaining output and the reason, once the server says the session ended."""
        text = ""
        while True:
            message = self.receive(timeout)
            if message is None:
                raise DebugClientError("the server closed the connection")
            if message["type"] == "output":
                text += str(message.get("data", ""))
            elif message["type"] == "detached":
                return text, str(message.get("reason"))
