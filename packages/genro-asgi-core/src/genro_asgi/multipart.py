"""``multipart/form-data`` bodies, parsed as they stream in with python-multipart.

An optional dependency: ``pip install 'genro-asgi-core[multipart]'``; without it such a body is
a 415 that says so. Every limit is checked while the bytes arrive (``MultipartLimits``, from the
``server:`` settings): sizes over a limit are 413s, too many parts and malformed bodies 400s.
When parsing fails, or the client goes away, every file opened so far is closed before the
error propagates.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from .datastructures import Headers
from .exceptions import BadRequest, PayloadTooLarge, UnsupportedMediaType
from .uploads import UploadFile

MIB = 1024 * 1024
EXTRA_HINT = "pip install 'genro-asgi-core[multipart]'"

FormValue = str | UploadFile


@dataclass(frozen=True, slots=True)
class MultipartLimits:
    """Bounds on one multipart body; the server builds it from ``server.*_upload_*`` keys."""

    max_size: int = 64 * MIB  # the whole body (replaces max_body_size for multipart)
    max_parts: int = 100
    max_file_size: int = 64 * MIB  # one file part
    max_field_size: int = 64 * 1024  # one non-file field
    max_part_header_size: int = 8 * 1024  # the headers of one part, names and values
    spool_size: int = MIB  # files larger than this go to a temporary file
    directory: str | None = None  # where those files go (None: the system's temp dir)

    @classmethod
    def from_settings(cls, settings: Any) -> MultipartLimits:
        """From a ``ServerSettings`` (config.py)."""
        return cls(int(settings.max_upload_size), settings.max_upload_parts,
                   int(settings.max_upload_file_size), int(settings.max_upload_field_size),
                   int(settings.max_upload_part_header_size), int(settings.upload_spool_size),
                   settings.upload_dir)


DEFAULT_MULTIPART = MultipartLimits()


def boundary_of(content_type_header: str) -> bytes:
    """The boundary parameter of a ``multipart/form-data`` Content-Type (400 without one)."""
    from python_multipart.multipart import parse_options_header

    _, options = parse_options_header(content_type_header)
    boundary = options.get(b"boundary", b"")
    if not boundary:
        raise BadRequest(detail="multipart/form-data body without a boundary parameter")
    if len(boundary) > 200:  # RFC 2046: at most 70 characters
        raise BadRequest(detail="multipart boundary is longer than 200 characters")
    return boundary


class _Part:
    __slots__ = ("data", "filename", "header_field", "header_size", "headers", "name", "upload")

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_field = b""
        self.header_size = 0
        self.name = ""
        self.filename: str | None = None
        self.data = bytearray()
        self.upload: UploadFile | None = None


class MultipartReader:
    """Feeds body chunks to python-multipart and turns its callbacks into fields and files.

    The parser's callbacks are synchronous: they only record events, which ``feed`` then
    applies (file writes may go to disk, in a worker thread).
    """

    def __init__(self, boundary: bytes, limits: MultipartLimits,
                 scope: Mapping[str, Any] | None = None) -> None:
        from python_multipart.multipart import MultipartParser

        self.limits = limits
        self.scope = scope  # the request's: its server's sync pool does the file I/O
        self.items: list[tuple[str, FormValue]] = []
        self.uploads: list[UploadFile] = []
        self._events: list[tuple[str, Any]] = []
        self._part: _Part | None = None
        self._parts = 0
        self._value = b""
        events = self._events
        self.parser = MultipartParser(boundary, {
            "on_part_begin": lambda: events.append(("begin", None)),
            "on_part_data": lambda data, start, end: events.append(("data", data[start:end])),
            "on_part_end": lambda: events.append(("end", None)),
            "on_header_field": lambda data, start, end: events.append(("field",
                                                                       data[start:end])),
            "on_header_value": lambda data, start, end: events.append(("value",
                                                                       data[start:end])),
            "on_header_end": lambda: events.append(("header_end", None)),
            "on_headers_finished": lambda: events.append(("headers_done", None)),
        })

    async def read(self, chunks: AsyncIterator[bytes]) -> list[tuple[str, FormValue]]:
        """Parse the whole body; on any failure close what was opened and re-raise."""
        from python_multipart.exceptions import MultipartParseError
        from python_multipart.multipart import MultipartState

        try:
            async for chunk in chunks:
                try:
                    self.parser.write(chunk)
                except MultipartParseError as exc:
                    raise BadRequest(detail=f"malformed multipart body: {exc}") from None
                await self._apply()
            if self.parser.state != MultipartState.END:
                raise BadRequest(detail="malformed multipart body: it ends before its "
                                 "closing boundary")
        except BaseException:
            self.close()
            raise
        return self.items

    def close(self) -> None:
        for upload in self.uploads:
            upload.discard()

    async def _apply(self) -> None:
        events = self._events[:]
        self._events.clear()
        for kind, data in events:
            if kind == "begin":
                self._parts += 1
                if self._parts > self.limits.max_parts:
                    raise BadRequest(detail=f"multipart body has more than "
                                     f"{self.limits.max_parts} parts")
                self._part = _Part()
                continue
            part = self._part
            assert part is not None  # python-multipart opens a part before anything else
            if kind == "field":
                part.header_field += data
                self._count_header(part, data)
            elif kind == "value":
                self._value += data
                self._count_header(part, data)
            elif kind == "header_end":
                part.headers.append((part.header_field.lower(), self._value))
                part.header_field = b""
                self._value = b""
            elif kind == "headers_done":
                self._start(part)
            elif kind == "data":
                await self._data(part, data)
            elif kind == "end":
                self._end(part)

    def _count_header(self, part: _Part, data: bytes) -> None:
        part.header_size += len(data)
        if part.header_size > self.limits.max_part_header_size:
            raise PayloadTooLarge(detail=f"the headers of a multipart part are larger than "
                                  f"{self.limits.max_part_header_size} bytes")

    def _start(self, part: _Part) -> None:
        from python_multipart.multipart import parse_options_header

        headers = Headers(part.headers)
        disposition = headers.get("content-disposition")
        if disposition is None:
            raise BadRequest(detail="multipart part without a Content-Disposition header")
        kind, options = parse_options_header(disposition)
        if kind != b"form-data" or b"name" not in options:
            raise BadRequest(detail="multipart part is not form-data with a name")
        try:
            part.name = options[b"name"].decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(detail="multipart field name is not valid UTF-8") from None
        if b"filename" in options:
            part.filename = options[b"filename"].decode("utf-8", errors="replace")
            content_type = headers.get("content-type", "application/octet-stream")
            part.upload = UploadFile(part.filename, content_type, headers,
                                     self.limits.spool_size, self.limits.directory,
                                     self.scope)
            self.uploads.append(part.upload)

    async def _data(self, part: _Part, data: bytes) -> None:
        if part.upload is not None:
            if part.upload.size + len(data) > self.limits.max_file_size:
                raise PayloadTooLarge(detail=f"uploaded file {part.name!r} is larger than "
                                      f"{self.limits.max_file_size} bytes")
            await part.upload.write(data)
            return
        part.data += data
        if len(part.data) > self.limits.max_field_size:
            raise PayloadTooLarge(detail=f"multipart field {part.name!r} is larger than "
                                  f"{self.limits.max_field_size} bytes")

    def _end(self, part: _Part) -> None:
        if part.upload is not None:
            part.upload.file.seek(0)
            self.items.append((part.name, part.upload))
        else:
            try:
                self.items.append((part.name, part.data.decode("utf-8")))
            except UnicodeDecodeError:
                raise BadRequest(detail=f"multipart field {part.name!r} is not valid "
                                 "UTF-8") from None
        self._part = None


async def read_multipart(content_type_header: str, chunks: AsyncIterator[bytes],
                         limits: MultipartLimits, scope: Mapping[str, Any] | None = None,
                         ) -> tuple[list[tuple[str, FormValue]], list[UploadFile]]:
    """The fields and files of a multipart body, in order, and the files opened for it
    (their disk I/O in the sync pool of the server serving ``scope``)."""
    try:
        import python_multipart  # noqa: F401
    except ImportError:
        raise UnsupportedMediaType(
            detail=f"multipart/form-data bodies need python-multipart: {EXTRA_HINT}"
        ) from None
    reader = MultipartReader(boundary_of(content_type_header), limits, scope)
    return await reader.read(chunks), reader.uploads
