"""Static files: ``FileResponse`` sends one file, ``StaticRouter`` serves a whole directory.

``FileResponse`` owns the HTTP side: content type, validators (ETag, Last-Modified),
conditional requests (304), single byte ranges (206/416) and a body streamed in chunks read
off the event loop. A handler may return one directly.

``StaticRouter`` owns the filesystem side: it maps the request path onto its directory and
refuses anything that could leave it (``..``, encoded separators, NUL bytes, absolute paths,
symlinks pointing outside), then hands the file to a ``FileResponse``. It is a plain ASGI
app, mounted with ``server.mount("/static", StaticRouter("public"))`` or from config.yaml.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import re
import stat
import weakref
from collections.abc import Mapping
from email.utils import formatdate, parsedate_to_datetime
from typing import IO, TYPE_CHECKING
from urllib.parse import quote, unquote_to_bytes

from .exceptions import ConfigError, HTTPException, MethodNotAllowed, NotFound
from .request import Request
from .response import PlainTextResponse, RedirectResponse, Response
from .sync_pool import off_loop, off_loop_step
from .types import Message, RawHeaders, Receive, Scope, Send

if TYPE_CHECKING:
    from .server import AsgiServer

CHUNK_SIZE = 64 * 1024
ALLOWED_METHODS = ("GET", "HEAD")

# Pinned here so that a file gets the same type on every machine: the system's mime.types
# (read by the mimetypes module) differs between distributions and Python versions.
WEB_MEDIA_TYPES: Mapping[str, str] = {
    ".html": "text/html", ".htm": "text/html", ".css": "text/css",
    ".js": "text/javascript", ".mjs": "text/javascript", ".json": "application/json",
    ".map": "application/json", ".webmanifest": "application/manifest+json",
    ".txt": "text/plain", ".md": "text/markdown", ".csv": "text/csv", ".xml": "application/xml",
    ".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
    ".gif": "image/gif", ".webp": "image/webp", ".avif": "image/avif", ".ico": "image/x-icon",
    ".woff": "font/woff", ".woff2": "font/woff2", ".ttf": "font/ttf", ".otf": "font/otf",
    ".wasm": "application/wasm", ".pdf": "application/pdf", ".zip": "application/zip",
    ".mp4": "video/mp4", ".webm": "video/webm", ".mp3": "audio/mpeg", ".ogg": "audio/ogg",
}
# mimetypes reports "a.tar.gz" as a tar with gzip *encoding*; we send the file as stored,
# without Content-Encoding, so its type is the compressed container.
_COMPRESSED_TYPES = {
    "gzip": "application/gzip", "bzip2": "application/x-bzip2", "xz": "application/x-xz",
    "compress": "application/x-compress",
}
_DEFAULT_TYPE = "application/octet-stream"
_RANGE = re.compile(r"\s*bytes=\s*([0-9]{0,64})\s*-\s*([0-9]{0,64})\s*", re.IGNORECASE)
_CONDITIONAL = (b"if-none-match", b"if-modified-since", b"range", b"if-range")
_FORBIDDEN_IN_SEGMENT = ("\\", "\x00")
_FORBIDDEN_RAW = (b"/", b"\\", b"\x00")
_FRAMING = (b"content-length", b"content-range")


class RangeNotSatisfiable(HTTPException):
    """416: the requested range starts past the end of the file."""

    status_code = 416

    def __init__(self, size: int) -> None:
        super().__init__(detail=f"requested range not satisfiable (size {size})",
                         headers={"Content-Range": f"bytes */{size}"})


def guess_media_type(name: str, overrides: Mapping[str, str] = WEB_MEDIA_TYPES) -> str:
    """The media type for a file name: ``overrides`` by suffix, then mimetypes."""
    suffix = os.path.splitext(name)[1].lower()
    pinned = overrides.get(suffix)
    if pinned is not None:
        return pinned
    guessed, encoding = mimetypes.guess_type(name, strict=False)
    if encoding is not None:
        return _COMPRESSED_TYPES.get(encoding, _DEFAULT_TYPE)
    return guessed or _DEFAULT_TYPE


def make_etag(st: os.stat_result) -> str:
    """A strong ETag from modification time and size (what most file servers use)."""
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'


class FileResponse(Response):
    """One file from disk, with validators, 304, single-range 206/416 and a chunked body.

    Conditional and range headers are honoured only for a 200 response to GET/HEAD (a custom
    ``status_code`` such as a 404 page is sent whole). ``filename`` adds a Content-Disposition
    attachment header. A missing file raises NotFound before anything is sent.
    """

    chunk_size = CHUNK_SIZE

    def __init__(
        self,
        path: str | os.PathLike[str],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        *,
        filename: str | None = None,
        stat_result: os.stat_result | None = None,
        chunk_size: int | None = None,
    ) -> None:
        self.path = os.fspath(path)
        if media_type is None:
            media_type = guess_media_type(filename or self.path)
        super().__init__(None, status_code, headers, media_type)
        self.stat_result = stat_result
        if chunk_size is not None:
            self.chunk_size = chunk_size
        if filename is not None:
            self.set_header("content-disposition", content_disposition(filename))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        st = self.stat_result
        if st is None:
            st = await off_loop_step(scope, self._stat)
        etag = make_etag(st)
        headers = self._validators(etag, formatdate(st.st_mtime, usegmt=True))
        method = scope.get("method")
        conditions = _conditional_headers(scope) if self.status_code == 200 else {}
        if conditions and method in ALLOWED_METHODS and _not_modified(conditions, etag, st):
            await self._send_headers_only(send, 304, headers)
            return
        span = _requested_span(conditions, etag, st) if method == "GET" else None
        if span is None:
            status, first, length = self.status_code, 0, st.st_size
        else:
            status, first, length = 206, span[0], span[1] - span[0] + 1
            headers.append((b"content-range",
                            f"bytes {span[0]}-{span[1]}/{st.st_size}".encode("latin-1")))
        headers.append((b"content-length", str(length).encode("latin-1")))
        if method == "HEAD" or length == 0:
            await self._send_headers_only(send, status, headers)
            return
        start = {"type": "http.response.start", "status": status,
                 "headers": self._full_headers(headers)}
        await self._send_file(scope, receive, send, start, first, length)

    def _stat(self) -> os.stat_result:
        try:
            st = os.stat(self.path)
        except OSError:
            raise NotFound(detail="file not found") from None
        if not stat.S_ISREG(st.st_mode):
            raise NotFound(detail="not a regular file")
        return st

    def _validators(self, etag: str, last_modified: str) -> RawHeaders:
        return [(b"etag", etag.encode("latin-1")),
                (b"last-modified", last_modified.encode("latin-1")),
                (b"accept-ranges", b"bytes")]

    def _full_headers(self, computed: RawHeaders) -> RawHeaders:
        """Computed headers and the content type, then the caller's own (they win a clash,
        except for the framing headers, which must describe the body actually sent)."""
        own = [h for h in self.raw_headers if h[0] not in _FRAMING]
        names = {name for name, _ in own}
        content_type = self.content_type
        if content_type is not None:
            computed = [*computed, (b"content-type", content_type)]
        return [*(h for h in computed if h[0] not in names), *own]

    async def _send_headers_only(self, send: Send, status: int, computed: RawHeaders) -> None:
        if status == 304:
            headers = [*computed, *(h for h in self.raw_headers if h[0] not in _FRAMING)]
        else:
            headers = self._full_headers(computed)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def _send_file(self, scope: Scope, receive: Receive, send: Send, start: Message,
                         first: int, length: int) -> None:
        """The file is opened before the headers go out, so a vanished file is still a 404."""
        if length <= self.chunk_size:
            data = await off_loop_step(scope, _read_span, self.path, first, length)
            await send(start)
            await send({"type": "http.response.body", "body": data})
            return
        handle = await off_loop_step(scope, _open_at, self.path, first)
        # A big body keeps being read only while the client is there to receive it.
        gone = asyncio.create_task(_wait_for_disconnect(receive))
        try:
            await send(start)
            await self._stream(scope, handle, send, length, gone)
        finally:
            gone.cancel()
            await asyncio.wait((gone,))  # unlike awaiting it, never swallows our own cancel
            handle.close()

    async def _stream(self, scope: Scope, handle: IO[bytes], send: Send, length: int,
                      gone: asyncio.Task[None]) -> None:
        remaining = length
        while remaining:
            chunk = await off_loop_step(scope, handle.read, min(self.chunk_size, remaining))
            if not chunk:
                raise OSError(f"{self.path} shrank while it was being sent")
            remaining -= len(chunk)
            if gone.done():
                return
            await send({"type": "http.response.body", "body": chunk,
                        "more_body": remaining > 0})


class StaticRouter:
    """Serve the files under ``directory`` (GET and HEAD), never anything outside it.

    - ``index``: the file served for a directory (``None``: directories are 404).
    - ``html``: site mode: ``/about`` also tries ``about.html``, and a ``404.html`` at the
      top of the directory becomes the body of every 404.
    - ``follow_symlinks``: serve symlinks whose target lies outside the directory. Off by
      default; symlinks that stay inside are always served.
    - ``allow_hidden``: serve dotfiles and dot-directories (``.well-known``); off by default
      so that a ``.env`` or ``.git`` left in the directory is never published.
    - ``cache_control``: a Cache-Control value sent with every file.
    - ``media_types``: extra or replacement types by suffix (``{".log": "text/plain"}``).
    """

    path_params = ("directory",)
    # GET /static (the bare mount prefix) is redirected to /static/ by the dispatcher, so that
    # relative links in the top index.html resolve under the prefix
    redirect_bare_prefix = True

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        index: str | None = "index.html",
        html: bool = False,
        follow_symlinks: bool = False,
        allow_hidden: bool = False,
        cache_control: str | None = None,
        media_types: Mapping[str, str] | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.directory = os.path.realpath(directory)
        if not os.path.isdir(self.directory):
            raise ConfigError(f"StaticRouter: directory {os.fspath(directory)!r} does not exist "
                              f"or is not a directory (resolved to {self.directory!r})")
        if index is not None and not _is_plain_name(index):
            raise ConfigError(f"StaticRouter: index must be a plain file name, got {index!r}")
        if chunk_size <= 0:
            raise ConfigError(f"StaticRouter: chunk_size must be positive, got {chunk_size!r}")
        self.index = index
        self.html = html
        self.follow_symlinks = follow_symlinks
        self.allow_hidden = allow_hidden
        self.chunk_size = chunk_size
        self.headers = {"Cache-Control": cache_control} if cache_control else {}
        self.media_types = {**WEB_MEDIA_TYPES,
                            **{k.lower(): v for k, v in (media_types or {}).items()}}
        self._server_ref: weakref.ReferenceType[AsgiServer] | None = None

    def bind_server(self, server: AsgiServer, name: str, prefix: str) -> None:
        """Errors are then rendered by the server's error hooks, like those of any route."""
        self._server_ref = weakref.ref(server)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            elif kind == "lifespan":
                await _trivial_lifespan(receive, send)
            return
        try:
            response = await self._respond(scope)
            await response(scope, receive, send)
        except HTTPException as exc:  # raised only before the response starts
            await self._send_error(scope, receive, send, exc)

    async def _respond(self, scope: Scope) -> Response:
        if scope["method"] not in ALLOWED_METHODS:
            raise MethodNotAllowed(list(ALLOWED_METHODS))
        segments, is_dir = self._segments(scope)
        return await off_loop(scope, self._lookup, segments, is_dir,  # type: ignore[no-any-return]
                              scope.get("query_string", b""))

    def _segments(self, scope: Scope) -> tuple[list[str], bool]:
        """The path as checked segments, and whether it ends with a slash; NotFound if hostile."""
        if not _raw_path_is_safe(scope.get("raw_path")):
            raise NotFound()
        path: str = scope["path"]
        if not path.startswith("/"):
            raise NotFound()
        segments = path.split("/")[1:]
        is_dir = not segments or segments[-1] == ""
        if is_dir:
            segments = segments[:-1]
        for segment in segments:
            if not self._segment_allowed(segment):
                raise NotFound()
        return segments, is_dir

    def _segment_allowed(self, segment: str) -> bool:
        if segment in ("", ".", "..") or os.path.splitdrive(segment)[0]:
            return False
        if any(bad in segment for bad in _FORBIDDEN_IN_SEGMENT):
            return False
        return self.allow_hidden or not segment.startswith(".")

    # -- filesystem (runs in a worker thread) -----------------------------------------------

    def _lookup(self, segments: list[str], is_dir: bool, query: bytes) -> Response:
        path = os.path.join(self.directory, *segments)
        found = self._stat_inside(path)
        if found is None and self.html and segments and not is_dir and "." not in segments[-1]:
            path += ".html"
            found = self._stat_inside(path)
        if found is None:
            return self._not_found()
        real, st = found
        if stat.S_ISDIR(st.st_mode):
            return self._directory(path, segments, is_dir, query)
        if is_dir or not stat.S_ISREG(st.st_mode):
            return self._not_found()
        return self._file(real, st, path)

    def _directory(self, path: str, segments: list[str], is_dir: bool, query: bytes) -> Response:
        if self.index is None:
            return self._not_found()
        found = self._stat_inside(os.path.join(path, self.index))
        if found is None or not stat.S_ISREG(found[1].st_mode):
            return self._not_found()
        if not is_dir and segments:
            location = quote(segments[-1], safe="") + "/"
            if query:
                location += "?" + query.decode("latin-1")
            return RedirectResponse(location, status_code=307)
        return self._file(found[0], found[1], self.index)

    def _file(self, real: str, st: os.stat_result, requested: str,
              status_code: int = 200) -> Response:
        return FileResponse(real, status_code, self.headers, self._media_type(requested, real),
                            stat_result=st, chunk_size=self.chunk_size)

    def _media_type(self, requested: str, real: str) -> str:
        """By the name asked for; a symlink named without a suffix falls back to its target."""
        media_type = guess_media_type(requested, self.media_types)
        if media_type == _DEFAULT_TYPE and real != requested:
            return guess_media_type(real, self.media_types)
        return media_type

    def _not_found(self) -> Response:
        if self.html:
            found = self._stat_inside(os.path.join(self.directory, "404.html"))
            if found is not None and stat.S_ISREG(found[1].st_mode):
                return self._file(found[0], found[1], "404.html", status_code=404)
        raise NotFound()

    def _stat_inside(self, path: str) -> tuple[str, os.stat_result] | None:
        """The real path and stat of ``path``, or None if missing or resolving outside."""
        real = os.path.realpath(path)
        if not self.follow_symlinks:
            if not _is_within(real, self.directory):
                return None
            if not self.allow_hidden and _has_hidden_part(real, self.directory):
                return None
        try:
            return real, os.stat(real)
        except (OSError, ValueError):
            return None

    async def _send_error(self, scope: Scope, receive: Receive, send: Send,
                          exc: HTTPException) -> None:
        server = self._server_ref() if self._server_ref is not None else None
        if server is not None:
            request = Request(scope, receive, int(server.settings.server.max_body_size))
            response = await server.render_error(request, exc)
        else:
            response = PlainTextResponse(exc.detail, exc.status_code, exc.headers)
        await response(scope, receive, send)

    def __repr__(self) -> str:
        return f"<StaticRouter {self.directory}>"


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The first and last byte of a single ``bytes=`` range, clamped to ``size``.

    None means "serve the whole file": a malformed header, another unit, or several ranges
    (RFC 9110 lets a server ignore Range). A range starting past the end raises
    RangeNotSatisfiable.
    """
    match = _RANGE.fullmatch(header)
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text:
        if not last_text:
            return None
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - suffix), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last_text and last < first:
        return None
    if first >= size:
        raise RangeNotSatisfiable(size)
    return first, min(last, size - 1)


def content_disposition(filename: str) -> str:
    """An attachment header; names that are not plain ASCII use the RFC 6266 ``filename*``."""
    if filename.isascii() and filename.isprintable() and not any(c in filename for c in '"\\'):
        return f'attachment; filename="{filename}"'
    return f"attachment; filename*=utf-8''{quote(filename, safe='')}"


def _conditional_headers(scope: Scope) -> dict[bytes, str]:
    found: dict[bytes, str] = {}
    for key, value in scope.get("headers") or ():
        if key in _CONDITIONAL:
            text = value.decode("latin-1")
            found[key] = f"{found[key]}, {text}" if key in found else text
    return found


def _not_modified(conditions: Mapping[bytes, str], etag: str, st: os.stat_result) -> bool:
    """If-None-Match (weak comparison) decides when present; otherwise If-Modified-Since."""
    none_match = conditions.get(b"if-none-match")
    if none_match is not None:
        return _etag_listed(none_match, etag)
    since = conditions.get(b"if-modified-since")
    if since is not None:
        when = _parse_http_date(since)
        return when is not None and int(st.st_mtime) <= when
    return False


def _requested_span(conditions: Mapping[bytes, str], etag: str,
                    st: os.stat_result) -> tuple[int, int] | None:
    wanted = conditions.get(b"range")
    if wanted is None or not _if_range_holds(conditions, etag, st):
        return None
    return parse_range(wanted, st.st_size)


def _if_range_holds(conditions: Mapping[bytes, str], etag: str, st: os.stat_result) -> bool:
    """If-Range is a strong ETag or an exact date; any mismatch means "send it all"."""
    value = conditions.get(b"if-range")
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        return value == etag
    when = _parse_http_date(value)
    return when is not None and when == int(st.st_mtime)


def _etag_listed(header: str, etag: str) -> bool:
    opaque = etag.removeprefix("W/")
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == opaque:
            return True
    return False


def _parse_http_date(value: str) -> int | None:
    try:
        return int(parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _raw_path_is_safe(raw_path: bytes | None) -> bool:
    """The undecoded path: no segment may decode to a dot segment or carry a separator/NUL."""
    if not raw_path:
        return True
    for segment in raw_path.split(b"/"):
        if b"%" not in segment:
            continue
        decoded = unquote_to_bytes(segment)
        if decoded in (b".", b"..") or any(bad in decoded for bad in _FORBIDDEN_RAW):
            return False
    return True


def _is_within(path: str, root: str) -> bool:
    try:
        return os.path.commonpath((path, root)) == root
    except ValueError:  # different drives on Windows
        return False


def _has_hidden_part(real: str, root: str) -> bool:
    relative = os.path.relpath(real, root)
    return relative != "." and any(part.startswith(".") for part in relative.split(os.sep))


def _is_plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\x00")


def _read_span(path: str, first: int, length: int) -> bytes:
    with _open_at(path, first) as handle:
        data = handle.read(length)
    if len(data) != length:
        raise OSError(f"{path} shrank while it was being sent")
    return data


def _open_at(path: str, first: int) -> IO[bytes]:
    try:
        handle = open(path, "rb")  # noqa: SIM115 -- closed by the caller once the body is sent
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise NotFound(detail="file not found") from None
    try:
        handle.seek(first)
    except BaseException:
        handle.close()
        raise
    return handle


async def _trivial_lifespan(receive: Receive, send: Send) -> None:
    """Nothing to start or stop; answering lets the router run alone under any ASGI server."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _wait_for_disconnect(receive: Receive) -> None:
    try:
        message: Message = await receive()
        while message["type"] != "http.disconnect":
            message = await receive()
    except Exception:  # a broken receive channel is a gone client as far as we care
        return


__all__ = ["FileResponse", "RangeNotSatisfiable", "StaticRouter", "guess_media_type",
           "make_etag", "parse_range"]
