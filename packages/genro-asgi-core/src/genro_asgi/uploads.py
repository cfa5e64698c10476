"""Uploaded files: what a handler receives for a file part of a ``multipart/form-data`` body.

The content lives in a ``tempfile.SpooledTemporaryFile``: in memory up to the server's
``upload_spool_size``, then in an anonymous temporary file in ``upload_dir`` (it has no name on
disk, so nothing is left behind whatever happens to the process). The client's ``filename`` is
data, never a path: use :func:`safe_filename` to derive a name to store under.

Once a file is on disk its writes, reads, seeks and close leave the event loop: in the serving
server's sync pool (bounded, so a full pool answers 503 with ``Retry-After``), or asyncio's
default executor outside a server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import unicodedata
from collections.abc import Mapping
from tempfile import SpooledTemporaryFile
from typing import IO, Any

from .datastructures import Headers
from .exceptions import ServiceUnavailable
from .sync_pool import SCOPE_KEY, SyncPool, off_loop, off_loop_step

logger = logging.getLogger("genro_asgi.uploads")

_UNSAFE = re.compile(r"[^\w.\- ]+")


class UploadFile:
    """One uploaded file. ``size`` is its length in bytes; ``headers`` its part's headers.

    Once the content is on disk, I/O runs in the sync pool of the server serving ``scope``
    (the request's). ``file`` is the underlying binary file object for synchronous code
    (positioned at 0 when the handler gets it).
    """

    __slots__ = ("_scope", "_spool", "content_type", "file", "filename", "headers", "size")

    def __init__(self, filename: str, content_type: str, headers: Headers, spool_size: int,
                 directory: str | None = None, scope: Mapping[str, Any] | None = None) -> None:
        self.filename = filename
        self._scope: Mapping[str, Any] = {} if scope is None else scope
        self.content_type = content_type
        self.headers = headers
        self.size = 0
        self._spool = spool_size
        spool: SpooledTemporaryFile[bytes] = SpooledTemporaryFile(  # noqa: SIM115 (close())
            max_size=spool_size, dir=directory)
        if spool_size == 0:  # SpooledTemporaryFile reads 0 as "never roll over"
            spool.rollover()
        self.file: IO[bytes] = spool

    @property
    def on_disk(self) -> bool:
        """True once the content went over the spool size into a temporary file."""
        return self.size > self._spool

    async def write(self, data: bytes) -> None:
        """Append ``data`` (used while the body is parsed; disk writes leave the event loop and
        are refused with 503 when the server's sync pool is full)."""
        self.size += len(data)
        if self.on_disk:
            try:
                await off_loop(self._scope, self.file.write, data)
            except ServiceUnavailable:
                # refused before it ran: a first disk write leaves the content in memory, so
                # discard() closes it now instead of queueing it (and its spool) in the pool
                self.size -= len(data)
                raise
        else:
            self.file.write(data)

    async def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that is left by default) from the current position."""
        if self.on_disk:
            return await off_loop(self._scope, self.file.read, size)  # type: ignore[no-any-return]
        return self.file.read(size)

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position, as ``file.seek``; returns the new position."""
        if self.on_disk:
            return await off_loop(self._scope, self.file.seek, offset, whence)  # type: ignore[no-any-return]
        return self.file.seek(offset, whence)

    async def close(self) -> None:
        """Close (and so delete) the file; the request closes it anyway when the handler returns.
        Never refused by a full pool: the file must not outlive its request."""
        if self.on_disk:
            await off_loop_step(self._scope, self.file.close)
        else:
            self.file.close()

    def discard(self) -> None:
        """Close (and so delete) the file without waiting for it: what a request does with its
        files when it ends or its body is refused, so its answer never waits for a free worker.

        On disk the close is queued in the server's sync pool (never refused: the file must
        not outlive its request for lack of room); in memory, or with no running pool, it
        happens now.
        """
        if self.file.closed:
            return
        pool: SyncPool | None = self._scope.get(SCOPE_KEY)
        if not self.on_disk or pool is None or pool.closed:
            self.file.close()
            return
        pool.step(self.file.close).add_done_callback(self._closed)

    def _closed(self, future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None:
            logger.warning("closing the temporary file of upload %r failed: %r",
                           self.filename, future.exception())

    @property
    def closed(self) -> bool:
        return self.file.closed

    async def __aenter__(self) -> UploadFile:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        return (f"UploadFile(filename={self.filename!r}, content_type={self.content_type!r}, "
                f"size={self.size})")


def safe_filename(filename: str, default: str = "upload") -> str:
    """A name safe to store under, derived from a client's filename.

    Keeps the last path component (either separator), letters, digits, ``.``, ``-``, ``_``
    and spaces; drops leading dots (no hidden files, no ``..``) and caps it at 200 characters.
    ``default`` when nothing is left. It never makes a name unique: that is the caller's job.
    """
    name = unicodedata.normalize("NFKC", filename).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", name).strip(" ").lstrip(".")
    return name[:200] or default
