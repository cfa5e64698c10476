"""The ``debug`` plugin: parks failing requests and serves the debugger listener.

Its ``genro_asgi_exception_response`` runs first (tryfirst) for unhandled exceptions: it parks
the request as an incident (awaiting a future, never blocking the loop) until a debugger is
done with it, the park timeout passes or the server shuts down, then returns None so that the
``errors`` plugin renders the normal 500. Unsafe configurations are refused when the server is
built; see docs/debug.md for the threat model.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genro_asgi import CliCommand, ConfigError, HTTPException, Plugin, Request, hookimpl

from .audit import AuditLog, UnsafeAuditFile
from .config import DebugConfig, ip_allowed, is_loopback
from .incidents import Incident, IncidentBoard
from .listener import DebugListener
from .redact import Redactor
from .session import SessionContext
from .sockets import (
    UnsafeSocketDir,
    check_length,
    default_socket_dir,
    remove_stale,
    secure_dir,
    socket_path,
)

if TYPE_CHECKING:
    from genro_asgi import AsgiServer

logger = logging.getLogger("genro_asgi_debug")
SECRET_PATH = ("plugins", "debug", "secret")
_AUDITED = ("request_id", "method", "path", "client")  # of a request summary
DRAIN_POLL = 0.5  # seconds: how soon a parked request notices the server is shutting down


class DebugPlugin(Plugin):
    """Remote post-mortem pdb on failing requests; see docs/debug.md."""

    config_model = DebugConfig
    requires_core = ">=0.1,<0.2"
    config: DebugConfig

    def __init__(self, server: AsgiServer, config: DebugConfig) -> None:
        super().__init__(server, config)
        if config.enabled:
            self._refuse_unsafe(server, config)
        self.board = IncidentBoard(config.max_parked)
        # the server's set itself, so headers a later plugin declares are redacted too
        self.redactor = Redactor(config.redact, server.credential_headers)
        self.listener: DebugListener | None = None
        audit_path = None
        if config.audit_file:
            audit_path = Path(config.audit_file)
            if not audit_path.is_absolute():
                audit_path = server.server_dir / audit_path
        self.audit = AuditLog(audit_path, os.getpid())

    @staticmethod
    def _refuse_unsafe(server: AsgiServer, config: DebugConfig) -> None:
        if SECRET_PATH not in server.config.secret_paths:
            raise ConfigError("plugins.debug.secret: give the secret as {$env: VAR} or "
                              "{$file: path}, never written in the config itself")
        host = server.settings.server.host
        if not is_loopback(host):
            try:
                config.require_remote_consent(f"the server's bind address (server.host {host!r})")
            except ValueError as exc:
                raise ConfigError(f"plugins.debug: {exc}") from None
        if config.port is not None and server.settings.server.workers > 1:
            raise ConfigError("plugins.debug.port: one TCP port cannot reach several workers; "
                              "leave port unset to get one Unix socket per worker")

    @property
    def address(self) -> str | None:
        """Where this worker's debugger listens (``unix:/path`` or ``tcp:host:port``)."""
        return self.listener.address if self.listener is not None else None

    # -- lifespan -----------------------------------------------------------------------------

    @hookimpl
    async def genro_asgi_startup(self, server: AsgiServer) -> None:
        config = self.config
        if not config.enabled:
            logger.info("debug plugin loaded but disabled (enabled: false): nothing listens")
            return
        assert config.secret is not None  # the config model requires it when enabled
        context = SessionContext(
            secret=config.secret.get_secret_value().encode(), board=self.board,
            audit=self.audit, requests=self.in_flight,
            info={"pid": os.getpid(), "server_dir": str(server.server_dir)},
            handshake_timeout=config.handshake_timeout, idle_timeout=config.idle_timeout)
        listener = DebugListener(context, config.allowed_ips, config.max_handshakes)
        try:
            self.audit.open()
        except UnsafeAuditFile as exc:
            raise ConfigError(f"plugins.debug.audit_file: {exc}") from None
        if config.port is not None:
            await listener.start_tcp(config.host, config.port)
        else:
            directory = Path(config.socket_dir) if config.socket_dir else default_socket_dir()
            if not directory.is_absolute():
                directory = server.server_dir / directory
            path = socket_path(directory, os.getpid())
            try:
                secure_dir(directory)
                check_length(path)
            except UnsafeSocketDir as exc:
                raise ConfigError(f"plugins.debug.socket_dir: {exc}") from None
            remove_stale(directory)
            await listener.start_unix(path)
        self.listener = listener
        logger.warning(
            "DEBUG PLUGIN ENABLED (development/staging only): failing requests are parked up to "
            "%gs (at most %d at once) for a remote pdb, which can run any code in this process; "
            "listening on %s. Attach with: genro-asgi-debug attach",
            config.park_timeout, config.max_parked, listener.address)

    @hookimpl
    async def genro_asgi_shutdown(self) -> None:
        self.board.release_all("server shutting down")
        if self.listener is not None:
            await self.listener.stop()
            self.listener = None
        self.audit.close()

    # -- failing requests ---------------------------------------------------------------------

    @hookimpl(tryfirst=True)
    async def genro_asgi_exception_response(self, request: Request, exc: Exception) -> None:
        if self.listener is None or isinstance(exc, HTTPException):
            return None
        client = request.scope.get("client")
        if client and not ip_allowed(str(client[0]), self.config.allowed_ips):
            return None
        incident = self.board.park(exc, self.redactor.request_summary(request))
        if incident is None:
            logger.warning("debug: %d incidents already parked; %s %s fails normally",
                           len(self.board), request.method, request.path)
            return None
        summary = incident.request  # the audit keeps no headers or query: only what happened
        self.audit.record("parked", "-", incident.id,
                          request={k: summary.get(k) for k in _AUDITED},
                          exception=incident.exc_type)
        logger.warning("debug: %s %s failed with %s; parked as incident %s for up to %gs: "
                       "genro-asgi-debug attach %s", request.method, request.path,
                       incident.exc_type, incident.id, self.config.park_timeout, incident.id)
        try:
            reason = await self._wait(incident)
        except asyncio.CancelledError:  # uvicorn's shutdown timeout: end an attached session too
            incident.release("request cancelled")
            self.audit.record("released", "-", incident.id, reason="request cancelled")
            raise
        finally:
            self.board.remove(incident)
        self.audit.record("released", "-", incident.id, reason=reason)
        return None  # the errors plugin renders the normal response

    async def _wait(self, incident: Incident) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.park_timeout
        server = self.server
        while not incident.released.done():
            if server.draining:
                incident.release("server shutting down")
                break
            wait = DRAIN_POLL
            if incident.attached_by is None:  # once attached, the idle timeout governs
                remaining = deadline - loop.time()
                if remaining <= 0:
                    incident.release("park timeout")
                    break
                wait = min(wait, remaining)
            await asyncio.wait([incident.released], timeout=wait)
        return str(incident.released.result())

    # -- the request inspector ----------------------------------------------------------------

    def in_flight(self) -> list[dict[str, Any]]:
        """The in-flight envelopes of this worker, with the incident of a parked one."""
        parked = {i.request.get("request_id"): i.id for i in self.board.list()}
        rows = []
        for envelope in self.server.envelopes:
            client = envelope.client
            rows.append({
                "id": envelope.request_id, "type": envelope.scope_type,
                "method": envelope.method, "path": envelope.path, "route": envelope.route,
                "age": round(envelope.age, 3),
                "client": f"{client[0]}:{client[1]}" if client else None,
                "status": envelope.status, "incident": parked.get(envelope.request_id),
            })
        return rows

    # -- genro-asgi debug ... -----------------------------------------------------------------

    @hookimpl
    def genro_asgi_cli_commands(self) -> list[CliCommand]:
        from .cli import add_arguments, run_command

        def run(args: Any) -> int:
            return run_command(args, self.config)

        return [CliCommand("debug", "list parked failing requests and in-flight requests; "
                           "attach a pdb to a parked one", run, add_arguments)]
