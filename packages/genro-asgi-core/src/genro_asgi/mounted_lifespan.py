"""The ASGI lifespan protocol, spoken to a mounted ASGI app (Starlette, FastAPI, ...).

The server runs each mounted app's lifespan as uvicorn runs the server's own, in "auto" mode:
an app that raises before answering the first event, returns without answering, answers with
something that is not a lifespan message, or asks for another event before answering (an app
that ignores the scope type and waits for its own kind of message) does not support lifespan,
which is not an error; ``lifespan.startup.failed`` is. The ``state`` the app
fills during startup is copied into the scope of every request it then receives, as a server
does with its top-level app's state.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .exceptions import StartupError
from .types import ASGIApp, Message

logger = logging.getLogger("genro_asgi.lifespan")

_ENDED = {"type": "genro.lifespan.ended"}  # the app's coroutine returned or raised
_ANSWERS = {"lifespan.startup": ("lifespan.startup.complete", "lifespan.startup.failed"),
            "lifespan.shutdown": ("lifespan.shutdown.complete", "lifespan.shutdown.failed")}


class MountedLifespan:
    """One mounted app's lifespan: ``startup()`` at the server's startup, ``shutdown()`` at
    its shutdown. ``supported`` says, after startup, whether the app took part."""

    def __init__(self, name: str, app: ASGIApp) -> None:
        self.name = name
        self.app = app
        self.state: dict[str, Any] = {}
        self.supported = False
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._answered = False
        self._expected: tuple[str, ...] = ()  # the answers the event handed out is owed

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                 "state": self.state}
        self._task = asyncio.create_task(self._run(scope), name=f"lifespan {self.name}")
        await self._ask("lifespan.startup")
        message = await self._from_app.get()
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self.supported = True
            return
        if kind == "lifespan.startup.failed":
            await self._finish(timeout=1.0)
            raise StartupError(f"startup failed in mounted application {self.name!r}: "
                               f"{message.get('message') or 'lifespan.startup.failed'}")
        # the app ended without an answer: what the ASGI spec calls an app without lifespan
        # support, which is not an error
        logger.debug("mounted application %r does not support lifespan (%r)", self.name,
                     self._error)

    async def shutdown(self, timeout: float) -> None:
        """Send ``lifespan.shutdown`` and wait up to ``timeout`` for the app's answer."""
        if not self.supported or self._task is None:
            return
        await self._ask("lifespan.shutdown")
        try:
            message = await asyncio.wait_for(self._from_app.get(), timeout)
        except TimeoutError:
            logger.error("mounted application %r did not finish its lifespan shutdown in "
                         "%.1fs; cancelled", self.name, timeout)
            await self._finish(timeout=0)
            return
        if message["type"] == "lifespan.shutdown.failed":
            logger.error("mounted application %r failed its lifespan shutdown: %s", self.name,
                         message.get("message", ""))
        elif message["type"] != "lifespan.shutdown.complete":
            logger.error("mounted application %r ended its lifespan without completing the "
                         "shutdown (%r)", self.name, self._error or message["type"])
        await self._finish(timeout=1.0)

    async def _run(self, scope: dict[str, Any]) -> None:
        try:
            await self.app(scope, self._receive, self._send)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the app's failure is reported, never raised from here
            self._error = exc
            if self._answered:
                logger.error("mounted application %r failed in its lifespan", self.name,
                             exc_info=exc)
        finally:
            self._from_app.put_nowait(_ENDED)

    async def _ask(self, event: str) -> None:
        self._expected = _ANSWERS[event]
        await self._to_app.put({"type": event})

    async def _receive(self) -> Message:
        if self._expected and self._to_app.empty():
            # a lifespan-aware app answers an event before it waits for the next one; an app
            # that does not would otherwise hold the server's startup forever
            raise RuntimeError(f"{self.name!r} waits for another lifespan event without "
                               f"answering with {' or '.join(self._expected)}")
        return await self._to_app.get()

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        if kind not in self._expected:  # uvicorn refuses it the same way (its assertion)
            raise RuntimeError(f"unexpected ASGI message {kind!r} in the lifespan of "
                               f"{self.name!r}; expected one of {', '.join(self._expected)}")
        self._expected = ()
        self._answered = True
        await self._from_app.put(message)

    async def _finish(self, timeout: float) -> None:
        """Let the app's lifespan coroutine end (it should, after its last answer)."""
        task, self._task = self._task, None
        if task is None or task.done():
            return
        if timeout > 0:  # asyncio.wait: a cancellation of the caller still propagates
            await asyncio.wait({task}, timeout=timeout)
        if not task.done():
            task.cancel()
            await asyncio.wait({task})  # _run() reports its own failure; nothing to retrieve
