"""One NATS connection per server: opened at startup, reconnecting with backoff, drained at
shutdown; or, with ``required: false``, a degraded start that keeps trying in the background.

Everything that uses NATS (the wsx broker, metrics) goes through the ``NatsLink`` of its
server's ``nats`` plugin, so a server holds exactly one connection and two servers in one
process hold two.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

from nats.aio.client import Client, RawCredentials
from nats.aio.client import Server as PoolServer

from genro_asgi import ConfigError, ServiceUnavailable

from .config import NatsConfig
from .stats import LinkStats

logger = logging.getLogger("genro_asgi_nats")

State = Literal["idle", "connected", "reconnecting", "degraded", "closed"]
OnConnect = Callable[[], Awaitable[None]]


class NatsUnavailable(ServiceUnavailable):
    """NATS cannot take the message now: unreachable for long enough to fill ``pending_size``,
    or never connected. A 503 (``Retry-After: 1``) when a handler does not catch it."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail=detail, retry_after=1)


def backoff(failures: int, first: float, longest: float) -> float:
    """The pause before attempt ``failures + 1``: doubling from ``first``, at most ``longest``,
    with up to 25% jitter so that many processes do not reconnect in lockstep."""
    base = min(longest, first * 2.0 ** min(failures, 20))
    return base * (0.75 + random.random() * 0.25)


class NatsLink:
    """The server's NATS connection and its state."""

    def __init__(self, config: NatsConfig, server_dir: Path) -> None:
        self.config = config
        self.server_dir = server_dir
        self.prefix = config.subject_prefix
        self.stats = LinkStats()
        self.state: State = "idle"
        self.nc: Client | None = None
        self._on_connect: list[OnConnect] = []
        self._on_reconnect: list[OnConnect] = []
        self._retry: asyncio.Task[None] | None = None
        self._last_error: Exception | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.spa: Any = None  # the NatsSpaBackend on this connection, read by the metrics

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    def subject(self, *tokens: str) -> str:
        """``<subject_prefix>.<tokens...>``."""
        return ".".join((self.prefix, *tokens))

    def on_connect(self, callback: OnConnect) -> None:
        """Call ``callback`` whenever a connection is (re)established after a degraded start
        (subscriptions of an established connection are replayed by the client itself)."""
        self._on_connect.append(callback)

    def on_reconnect(self, callback: OnConnect) -> None:
        """Call ``callback`` (in a task of its own) each time the client reconnects after
        losing an established connection (the spa backend resynchronises its replica)."""
        self._on_reconnect.append(callback)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect; on failure raise ConfigError (``required``) or start degraded."""
        try:
            await self._connect()
        except ConfigError:
            raise
        except Exception as exc:
            reason = _reason(exc)
            where = f"plugins.nats.servers ({', '.join(self.config.servers)})"
            if self.config.required:
                raise ConfigError(f"cannot connect to NATS at {where}: {reason}; start "
                                  f"nats-server there, fix the URL, or set "
                                  f"plugins.nats.required: false to start degraded") from None
            self.state = "degraded"
            logger.error("NATS UNREACHABLE at %s: %s. RUNNING DEGRADED: wsx publications stay "
                         "in this process until NATS answers; retrying in the background",
                         where, reason)
            self._retry = asyncio.create_task(self._keep_trying(), name="nats-connect-retry")

    async def close(self) -> None:
        """Stop retrying; drain the connection (subscriptions end, buffered messages are
        sent) within ``drain_timeout``, then close it."""
        self.state = "closed"
        if self._retry is not None:
            self._retry.cancel()
            await asyncio.gather(self._retry, return_exceptions=True)
            self._retry = None
        nc, self.nc = self.nc, None
        if nc is None or nc.is_closed:
            return
        try:
            if nc.is_connected:
                await asyncio.wait_for(nc.drain(), self.config.drain_timeout)
        except Exception as exc:
            logger.warning("NATS drain did not finish cleanly: %s", _reason(exc))
        if not nc.is_closed:
            try:
                await asyncio.wait_for(nc.close(), self.config.drain_timeout)
            except Exception as exc:  # the socket was already gone: nothing left to close
                logger.info("NATS close: %s", _reason(exc))

    async def _keep_trying(self) -> None:
        failures = 0
        while True:
            await asyncio.sleep(backoff(failures, self.config.reconnect_wait,
                                        self.config.reconnect_wait_max))
            try:
                await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    logger.error("NATS still unreachable after %d attempt(s): %s", failures,
                                 _reason(exc))
                continue
            logger.warning("NATS connected after a degraded start (%s): leaving degraded mode",
                           self.nc.connected_url.netloc if self.nc and self.nc.connected_url
                           else "?")
            for callback in self._on_connect:
                try:
                    await callback()
                except Exception:
                    logger.exception("NATS on-connect callback failed")
            return

    async def _connect(self) -> None:
        nc = Client()
        options = self.connect_options()
        config = self.config
        # the first attempt tries each server twice and gives up (a clear error, or the
        # degraded mode); once connected, the client reconnects forever. The attempt is
        # bounded here too: nats-py can wait forever after a failed TLS handshake.
        budget = 2 * len(config.servers) * (config.connect_timeout + config.reconnect_wait) + 1
        self._last_error = None
        try:
            await asyncio.wait_for(nc.connect(**options, max_reconnect_attempts=1), budget)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 1.0)
            if isinstance(exc, TimeoutError) and self._last_error is not None:
                raise self._last_error from None
            raise
        nc.options["max_reconnect_attempts"] = -1
        self.nc = nc
        self.state = "connected"
        self.stats.connects += 1

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.aio.client.Client.connect``."""
        config = self.config
        options: dict[str, Any] = {
            "servers": list(config.servers),
            "name": config.name,
            "connect_timeout": config.connect_timeout,
            "reconnect_time_wait": config.reconnect_wait,
            "reconnect_to_server_handler": self._choose_server,
            "pending_size": int(config.pending_size),
            "error_cb": self._error,
            "disconnected_cb": self._disconnected,
            "reconnected_cb": self._reconnected,
            "closed_cb": self._closed,
        }
        if config.user is not None and config.password is not None:
            options["user"] = config.user
            options["password"] = config.password.get_secret_value()
        if config.token is not None:
            options["token"] = config.token.get_secret_value()
        if config.credentials is not None:
            _need_nkeys("credentials")
            options["user_credentials"] = RawCredentials(config.credentials.get_secret_value())
        if config.nkey_seed is not None:
            _need_nkeys("nkey_seed")
            options["nkeys_seed_str"] = config.nkey_seed.get_secret_value()
        if config.tls is not None:
            options["tls"] = self._tls_context()
            if config.tls.hostname:
                options["tls_hostname"] = config.tls.hostname
            if config.tls.handshake_first:
                options["tls_handshake_first"] = True
        return options

    def _tls_context(self) -> ssl.SSLContext:
        tls = self.config.tls
        assert tls is not None

        def resolve(path: str | None) -> str | None:
            return str(self.server_dir / path) if path else None

        try:
            context = ssl.create_default_context(cafile=resolve(tls.ca_file))
            if tls.cert_file:
                context.load_cert_chain(str(resolve(tls.cert_file)), resolve(tls.key_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"plugins.nats.tls: {_reason(exc)}") from None
        return context

    def _choose_server(self, servers: list[PoolServer], info: dict[str, Any]
                       ) -> tuple[PoolServer | None, float]:
        """Reconnect to the server with the fewest recent failures, after a backoff."""
        chosen = min(servers, key=lambda s: s.reconnects)
        return chosen, backoff(chosen.reconnects, self.config.reconnect_wait,
                               self.config.reconnect_wait_max)

    # -- client callbacks ---------------------------------------------------------------------

    async def _error(self, exc: Exception) -> None:
        self.stats.errors += 1
        self._last_error = exc
        if self.state == "connected" or self.state == "reconnecting":
            logger.warning("NATS: %s", _reason(exc))

    async def _disconnected(self) -> None:
        if self.state == "connected":
            self.state = "reconnecting"
            self.stats.disconnects += 1
            logger.warning("NATS disconnected; reconnecting (messages are buffered up to "
                           "%d bytes)", int(self.config.pending_size))

    async def _reconnected(self) -> None:
        self.state = "connected"
        self.stats.reconnects += 1
        url = self.nc.connected_url if self.nc is not None else None
        logger.warning("NATS reconnected to %s", url.netloc if url else "?")
        for callback in self._on_reconnect:
            task = asyncio.create_task(_guarded(callback), name="nats-on-reconnect")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _closed(self) -> None:
        if self.state != "closed" and self.nc is not None:
            self.state = "closed"
            logger.error("NATS connection closed")


async def _guarded(callback: OnConnect) -> None:
    try:
        await callback()
    except Exception:
        logger.exception("NATS on-reconnect callback failed")


def _need_nkeys(option: str) -> None:
    if importlib.util.find_spec("nkeys") is None:
        raise ConfigError(f"plugins.nats.{option} needs the nkeys package: "
                          f"pip install 'genro-asgi-nats[nkeys]'")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = ["NatsLink", "NatsUnavailable", "backoff"]
