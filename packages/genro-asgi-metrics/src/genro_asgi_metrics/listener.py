"""A minimal HTTP/1.1 listener serving the scrape on a separate port (``port`` option).

One request per connection (``Connection: close``): Prometheus scrapes are rare and small, so
this avoids a second uvicorn in the process. Started at lifespan startup, stopped at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .exposition import Exposition

logger = logging.getLogger("genro_asgi_metrics")
_MAX_HEAD = 16384
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            405: "Method Not Allowed"}


class MetricsListener:
    """``await start()`` binds ``host:port``; ``await stop()`` closes it."""

    def __init__(self, exposition: Exposition, host: str, port: int, path: str, *,
                 reuse_port: bool = False) -> None:
        self.exposition = exposition
        self.host = host
        self.port = port
        self.path = path
        self.reuse_port = reuse_port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, reuse_port=self.reuse_port or None)
        logger.info("metrics listening on http://%s:%d%s", self.host, self.port, self.path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return
            status, headers, body = self._reply(head[:_MAX_HEAD])
            lines = [f"HTTP/1.1 {status} {_REASONS.get(status, '')}".encode()]
            lines += [name + b": " + value for name, value in headers]
            if not any(name == b"content-length" for name, _ in headers):
                lines.append(b"content-length: " + str(len(body)).encode())
            lines.append(b"connection: close")
            writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
            await writer.drain()
        except Exception:  # a scrape must never take the worker down
            logger.exception("metrics listener failed to answer a scrape")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _reply(self, head: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        request_line, *header_lines = head.split(b"\r\n")
        parts = request_line.split(b" ")
        if len(parts) != 3:
            return 400, [], b"Bad Request\n"
        method, target = parts[0].decode("latin-1"), parts[1].split(b"?", 1)[0]
        if target.decode("latin-1").rstrip("/") != self.path:
            return 404, [(b"content-type", b"text/plain")], b"Not Found\n"
        headers: dict[bytes, bytes] = {}
        for line in header_lines:
            name, sep, value = line.partition(b":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        status, out, body = self.exposition.reply(method, headers)
        return status, out, body
