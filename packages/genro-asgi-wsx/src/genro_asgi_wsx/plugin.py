"""The ``wsx`` plugin: mounts the endpoint, owns the broker and the open connections.

Everything lives on the plugin instance (one per server): the broker, the call runner and the
set of connections, so two servers in one process never share a subscription. Other plugins
publish through the ``genro_asgi_wsx_publish`` hook this plugin declares and implements; the
executor's task events arrive through ``genro_asgi_executor_task_event``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from genro_toolbox import tags_match

from genro_asgi import Plugin, hookimpl
from genro_asgi.components import build_component

from . import errors as E
from .broker import Broker
from .calls import CallRunner
from .channels import check_channel, overlaps
from .config import WsxConfig, broker_class
from .endpoint import CLIENT_JS, WsxEndpoint, same_origin
from .errors import CloseCode, WsxError
from .hookspecs import WsxHookSpecs

if TYPE_CHECKING:
    from genro_asgi import AsgiServer
    from genro_asgi.identity import Identity

    from .connection import WsxConnection

logger = logging.getLogger("genro_asgi_wsx")
SHUTDOWN_WAIT = 5.0  # seconds for connections to finish closing at shutdown
DRAIN_POLL = 0.02  # seconds between looks at the calls in flight while draining


class WsxPlugin(Plugin):
    """WebSocket RPC and subscriptions; see docs/wsx.md."""

    config_model = WsxConfig
    requires_core = ">=0.1,<0.2"
    hookspecs = WsxHookSpecs
    config: WsxConfig

    def __init__(self, server: AsgiServer, config: WsxConfig) -> None:
        super().__init__(server, config)
        self.broker: Broker = _make_broker(config)
        self.broker.bind(server)
        self.runner = CallRunner(server)
        self.connections: set[WsxConnection] = set()
        self.closing = False
        self._channel_rules = [(tuple(p.split(".")), rule)
                               for p, rule in config.channel_auth.items()]
        self._origins = set(config.allowed_origins or ())

    @property
    def require_identity(self) -> bool:
        if self.config.require_identity is not None:
            return self.config.require_identity
        return self.server.plugins.get("auth") is not None

    # -- hooks --------------------------------------------------------------------------------

    @hookimpl
    def genro_asgi_configure(self, server: AsgiServer) -> None:
        # the endpoint authenticates its clients itself (header or first message): the auth
        # plugin lets a handshake without a credential reach it
        server.self_authenticating_paths.add(self.config.path)
        # the browser client is public code, and a browser imports it without credentials
        server.self_authenticating_paths.add(f"{self.config.path}/{CLIENT_JS}")

    @hookimpl
    def genro_asgi_mount(self) -> Mapping[str, Any]:
        return {self.config.path: WsxEndpoint(self)}

    @hookimpl
    async def genro_asgi_startup(self) -> None:
        self.closing = False
        await self.broker.start()

    @hookimpl(optionalhook=True)
    async def genro_asgi_drain(self, timeout: float) -> None:
        """A shutdown signal (before uvicorn closes the sockets): calls in flight finish and
        answer, new ones are refused, then every socket closes with 1012."""
        await self.drain(timeout, CloseCode.SERVICE_RESTART)

    @hookimpl
    async def genro_asgi_shutdown(self) -> None:
        """Lifespan shutdown: the calls still in flight finish (within shutdown_timeout),
        every socket closes with 1001 (going away), then the broker stops."""
        await self.drain(self.server.settings.server.shutdown_timeout, CloseCode.GOING_AWAY)
        await self.broker.close()

    @hookimpl
    async def genro_asgi_wsx_publish(self, channel: str, data: Any) -> None:
        await self.publish(channel, data)

    @hookimpl(optionalhook=True)
    async def genro_asgi_executor_task_event(self, event: dict[str, Any]) -> None:
        task_id = event.get("task_id") if isinstance(event, dict) else None
        channel = f"tasks.{task_id}"
        if not isinstance(task_id, str) or check_channel(channel) is not None:
            logger.warning("task event with an unusable task_id %r not published", task_id)
            return
        await self.publish(channel, event)

    # -- API ----------------------------------------------------------------------------------

    async def publish(self, channel: str, data: Any) -> None:
        """Deliver ``data`` to every subscription matching ``channel`` (a concrete name)."""
        problem = check_channel(channel)
        if problem is not None:
            raise ValueError(f"cannot publish on {channel!r}: the channel {problem}")
        await self.broker.publish(channel, data)

    async def drain(self, timeout: float, code: int) -> None:
        """Refuse new connections and calls, let the calls in flight finish for at most
        ``timeout`` seconds (those still running then are cancelled), then close every
        connection with ``code`` once its answers are sent."""
        self.closing = True  # new handshakes: 1013; new calls: shutting_down (server.draining)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(conn.tasks for conn in self.connections) and loop.time() < deadline:
            await asyncio.sleep(DRAIN_POLL)
        left = sum(len(conn.tasks) for conn in self.connections)
        if left:
            logger.warning("shutdown: %d wsx call(s) still running after %.1fs, cancelled",
                           left, timeout)
        await self.close_all(code, flush=True)

    async def close_all(self, code: int = CloseCode.GOING_AWAY, *, flush: bool = False) -> None:
        """Close every open connection with ``code`` and wait (bounded) for them to end;
        ``flush``: after sending the frames already queued (answers)."""
        connections = list(self.connections)
        for conn in connections:
            conn.close(code, flush=flush)
        deadline = asyncio.get_running_loop().time() + SHUTDOWN_WAIT
        while self.connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)

    def origin_allowed(self, origin: str | None, host: str | None) -> bool:
        if origin is None:
            return True  # not a browser: Origin protects browsers' ambient credentials
        if "*" in self._origins or origin in self._origins:
            return True
        if self.config.allowed_origins is None:
            cors = self.server.plugins.get("cors")
            checker = getattr(cors, "origin_allowed", None)
            if checker is not None and checker(origin):
                return True
        return same_origin(origin, host)

    async def authorize_channel(self, identity: Identity | None, pattern: str) -> None:
        """Raise WsxError unless ``identity`` may subscribe to ``pattern``."""
        if self.server.draining or self.closing:
            raise WsxError(E.SHUTTING_DOWN, "the server is shutting down")
        tokens = pattern.split(".")
        for rule_tokens, rule in self._channel_rules:
            if overlaps(rule_tokens, tokens):
                if identity is None:
                    raise WsxError(E.UNAUTHENTICATED, "this channel needs an identity")
                if not tags_match(rule, set(identity.tags)):
                    raise WsxError(E.FORBIDDEN, "not authorized for this channel")
        # the first non-None answer wins, as call_first, but failing closed: an authorizer that
        # raises refuses the subscription instead of being skipped (skipping would let through
        # what it may have been written to keep out)
        for plugin_name, call in self.server.plugins.bound_impls(
                "genro_asgi_wsx_authorize_channel", server=self.server, identity=identity,
                channel=pattern):
            try:
                answer = call()
                if inspect.isawaitable(answer):
                    answer = await answer
            except Exception:
                logger.exception("plugin %r failed in genro_asgi_wsx_authorize_channel; "
                                 "subscription to %r refused", plugin_name, pattern)
                answer = False
            if answer is False:
                raise WsxError(E.FORBIDDEN, "not authorized for this channel")
            if answer is not None:
                return


def _make_broker(config: WsxConfig) -> Broker:
    return build_component(broker_class(config.broker), config.broker_options,
                           "plugins.wsx.broker", config.broker)
