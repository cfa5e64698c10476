"""One debugger connection: handshake, commands, and at most one attached pdb.

All of it runs on the event loop except the pdb itself (see remote_pdb). Every frame written
goes through one outbox task, so pdb output, answers and ``detached`` stay in order and a slow
client only slows its own session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .incidents import Incident, IncidentBoard
from .protocol import (
    MAX_CLIENT_FRAME,
    PROTOCOL,
    ProtocolError,
    client_proof,
    encode,
    new_nonce,
    proof_matches,
    read_frame,
    server_proof,
    valid_nonce,
)
from .remote_pdb import LineInput, OutputBridge, PostMortem, start_post_mortem

if TYPE_CHECKING:
    from .audit import AuditLog

logger = logging.getLogger("genro_asgi_debug")


@dataclass
class SessionContext:
    """What every session of one listener shares."""

    secret: bytes
    board: IncidentBoard
    audit: AuditLog
    requests: Callable[[], list[dict[str, Any]]]
    info: dict[str, Any]
    handshake_timeout: float
    idle_timeout: float


@dataclass
class Attachment:
    incident: Incident
    stdin: LineInput
    post_mortem: PostMortem


class Session:
    def __init__(self, context: SessionContext, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, peer: str) -> None:
        self.context = context
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.attachment: Attachment | None = None
        self.authenticating = True  # counted by the listener against max_handshakes
        self._outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()

    # -- lifetime ----------------------------------------------------------------------------

    async def run(self) -> None:
        sender = asyncio.create_task(self._send_forever())
        try:
            authenticated = await self._handshake()
            self.authenticating = False
            if authenticated:
                await self._serve()
        except ProtocolError as exc:
            self.context.audit.record("protocol_error", self.peer, self._incident_id(),
                                      detail=str(exc))
            self.send({"type": "error", "error": f"protocol error: {exc}"})
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.end_attach("client disconnected")
            self._outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sender, 5)
            sender.cancel()
            self.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.writer.wait_closed(), 5)

    def send(self, message: dict[str, Any]) -> None:
        self._outbox.put_nowait(message)

    async def _send_forever(self) -> None:
        while (message := await self._outbox.get()) is not None:
            try:
                self.writer.write(encode(message))
                await self.writer.drain()
            except (ConnectionError, RuntimeError):
                return

    async def _read(self, timeout: float) -> dict[str, Any] | None:
        return await asyncio.wait_for(read_frame(self.reader, MAX_CLIENT_FRAME), timeout)

    # -- authentication ----------------------------------------------------------------------

    async def _handshake(self) -> bool:
        context = self.context
        nonce = new_nonce()
        self.send({"type": "hello", "protocol": PROTOCOL, "nonce": nonce})
        try:
            message = await self._read(context.handshake_timeout)
        except TimeoutError:
            context.audit.record("auth_failed", self.peer, reason="handshake timeout")
            return False
        if message is None:
            return False
        client_nonce = message.get("nonce")
        if (message["type"] != "auth" or not isinstance(client_nonce, str)
                or not valid_nonce(client_nonce)
                or not proof_matches(client_proof(context.secret, nonce, client_nonce),
                                     message.get("proof"))):
            context.audit.record("auth_failed", self.peer, reason="bad proof")
            logger.warning("debug: failed authentication attempt from %s", self.peer)
            self.send({"type": "error", "error": "authentication failed"})
            return False
        self.send({"type": "welcome", "protocol": PROTOCOL,
                   "proof": server_proof(context.secret, nonce, client_nonce), **context.info})
        context.audit.record("connected", self.peer)
        return True

    # -- commands ----------------------------------------------------------------------------

    async def _serve(self) -> None:
        audit = self.context.audit
        while True:
            try:
                message = await self._read(self.context.idle_timeout)
            except TimeoutError:
                audit.record("idle_timeout", self.peer, self._incident_id())
                self.end_attach("idle timeout")
                self.send({"type": "error", "error": "idle timeout: session closed"})
                return
            if message is None:
                audit.record("disconnected", self.peer, self._incident_id())
                return
            kind = message["type"]
            if kind == "input":
                self._input(message)
                continue
            audit.record("command", self.peer, self._incident_id(), command=kind,
                         target=message.get("id"))
            if kind == "incidents":
                self.send({"type": "incidents",
                           "incidents": [i.describe() for i in self.context.board.list()]})
            elif kind == "requests":
                self.send({"type": "requests", "requests": self.context.requests()})
            elif kind == "attach":
                self._attach(message.get("id"))
            elif kind == "detach":
                self.end_attach("detached by the client")
            elif kind == "interrupt":
                self._interrupt()
            else:
                self.send({"type": "error", "error": f"unknown command {kind[:40]!r}"})

    def _attach(self, incident_id: Any) -> None:
        if self.attachment is not None:
            self.send({"type": "error", "error": "already attached to incident "
                                                 f"{self.attachment.incident.id}"})
            return
        if incident_id is not None and not isinstance(incident_id, str):
            self.send({"type": "error", "error": "attach: id must be a string"})
            return
        try:
            incident = self.context.board.claim(incident_id, self.peer)
        except LookupError as exc:
            self.send({"type": "error", "error": str(exc.args[0])})
            return
        tb = incident.tb
        if tb is None:  # released between claim and here cannot happen on one loop; be safe
            self.send({"type": "error", "error": f"incident {incident.id} is gone"})
            return
        stdin = LineInput()
        stdout = OutputBridge(lambda text: self._from_thread(self._output, incident, text))
        self.send({"type": "attached", "incident": incident.describe()})
        self.context.audit.record("attached", self.peer, incident.id)
        post_mortem = start_post_mortem(tb, stdin, stdout,
                                        lambda: self._from_thread(self._pdb_finished, incident),
                                        incident.id)
        self.attachment = Attachment(incident, stdin, post_mortem)
        incident.released.add_done_callback(lambda future: self._released(incident, future))

    def _input(self, message: dict[str, Any]) -> None:
        attachment = self.attachment
        if attachment is None:
            self.send({"type": "error", "error": "not attached: attach to an incident first"})
            return
        data = message.get("data", "")
        if not isinstance(data, str):
            self.send({"type": "error", "error": "input: data must be a string"})
            return
        for line in data.splitlines():  # as pdb will read them; whole, or the tail could hide
            self.context.audit.record("pdb", self.peer, attachment.incident.id, command=line)
        attachment.stdin.feed(data)
        if message.get("eof") is True:
            attachment.stdin.close()

    def _interrupt(self) -> None:
        """Ctrl-C: interrupt the command pdb is running; the session stays at the prompt."""
        attachment = self.attachment
        if attachment is None:
            self.send({"type": "error", "error": "not attached: attach to an incident first"})
        elif not attachment.post_mortem.interrupt():
            self.send({"type": "error", "error": "nothing to interrupt: pdb is at its prompt"})

    # -- the pdb thread's callbacks, run on the loop -----------------------------------------

    def _from_thread(self, callback: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
            self._loop.call_soon_threadsafe(callback, *args)

    def _output(self, incident: Incident, text: str) -> None:
        if self.attachment is not None and self.attachment.incident is incident:
            self.send({"type": "output", "incident": incident.id, "data": text})

    def _released(self, incident: Incident, future: asyncio.Future[Any]) -> None:
        # only while still attached to it: a detach and a new attach may have come first
        if self.attachment is not None and self.attachment.incident is incident:
            self.end_attach(
                f"request released ({'cancelled' if future.cancelled() else future.result()})")

    def _pdb_finished(self, incident: Incident) -> None:
        if self.attachment is not None and self.attachment.incident is incident:
            self.end_attach("debugger ended")

    def end_attach(self, reason: str) -> None:
        """Close the pdb's input and release its request now, even if pdb is still busy."""
        attachment = self.attachment
        if attachment is None:
            return
        self.attachment = None
        attachment.stdin.close()
        if attachment.post_mortem is not None:  # a command still running would keep its thread
            attachment.post_mortem.interrupt()
        attachment.incident.release(reason)
        self.context.audit.record("detached", self.peer, attachment.incident.id, reason=reason)
        self.send({"type": "detached", "incident": attachment.incident.id, "reason": reason})

    def _incident_id(self) -> str | None:
        return self.attachment.incident.id if self.attachment is not None else None
