"""Uploaded files: what a handler receives for a file part of a ``multipart/form-data`` body.

The content lives in a ``tempfile.SpooledTemporaryFile``: in memory up to the server's
``upload_spool_size``, then in an anonymous temporary file in ``upload_dir`` (it has no name on
disk, so nothing is left behind whatever happens to the process). The client's ``filename`` is
data, never a path: use :func:`safe_filename` to derive a name to store under.
"""

from __future__ import annotations

import asyncio
import os
import re
import unicodedata
from tempfile import SpooledTemporaryFile
from typing import IO, Any

from .datastructures import Headers

_UNSAFE = re.compile(r"[^\w.\- ]+")


class UploadFile:
    """One uploaded file. ``size`` is its length in bytes; ``headers`` its part's headers.

    Reads run in a worker thread once the content is on disk. ``file`` is the underlying
    binary file object for synchronous code (positioned at 0 when the handler gets it).
    """

    __slots__ = ("_spool", "content_type", "file", "filename", "headers", "size")

    def __init__(self, filename: str, content_type: str, headers: Headers, spool_size: int,
                 directory: str | None = None) -> None:
        self.filename = filename
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
        """Append ``data`` (used while the body is parsed; disk writes leave the event loop)."""
        self.size += len(data)
        if self.on_disk:
            await asyncio.to_thread(self.file.write, data)
        else:
            self.file.write(data)

    async def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that is left by default) from the current position."""
        if self.on_disk:
            return await asyncio.to_thread(self.file.read, size)
        return self.file.read(size)

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position, as ``file.seek``; returns the new position."""
        if self.on_disk:
            return await asyncio.to_thread(self.file.seek, offset, whence)
        return self.file.seek(offset, whence)

    async def close(self) -> None:
        """Close (and so delete) the file; the request closes it anyway when the handler returns."""
        if self.on_disk:
            await asyncio.to_thread(self.file.close)
        else:
            self.file.close()

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
