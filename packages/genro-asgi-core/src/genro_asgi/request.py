"""The HTTP request: headers, query, cookies and a size-limited body, read lazily."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

from . import tytx
from .connection import Connection
from .datastructures import QueryParams
from .exceptions import BadRequest, PayloadTooLarge, UnsupportedMediaType
from .multipart import DEFAULT_MULTIPART, FormValue, MultipartLimits, read_multipart
from .numbers import DEFAULT_LIMITS, NumberLimits, NumberOutOfRange, describe_decode_error
from .sync_pool import off_loop
from .types import Receive, Scope
from .tytx import Transport as TytxTransport
from .uploads import UploadFile
from .wellformed import MalformedText, check_decoded

DEFAULT_MAX_BODY = 1024 * 1024
# bodies larger than this are decoded in a worker thread: a MiB of TYTX JSON takes about a
# quarter of a second to hydrate, which the event loop must not spend while other clients wait
DECODE_IN_THREAD_ABOVE = 64 * 1024


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class ClientDisconnect(Exception):
    """The client went away while its request body was being read."""


class Request(Connection):
    """One HTTP request. Cheap to create: everything is parsed on first access."""

    __slots__ = ("_body", "_cookies", "_multipart", "_receive", "max_body_size",
                 "multipart_limits", "number_limits", "uploads")

    def __init__(
        self, scope: Scope, receive: Receive, max_body_size: int = DEFAULT_MAX_BODY,
        number_limits: NumberLimits = DEFAULT_LIMITS,
        multipart_limits: MultipartLimits = DEFAULT_MULTIPART,
    ) -> None:
        super().__init__(scope)
        self._receive = receive
        self.max_body_size = max_body_size
        # the bounds json()/tytx()/body_params() hold decoded numbers to (numbers.py)
        self.number_limits = number_limits
        self._body: bytes | None = None
        self._cookies: dict[str, str] | None = None
        # multipart/form-data: its limits (max_size replaces max_body_size), its parsed items
        # and the files opened for them (close_uploads)
        self.multipart_limits = multipart_limits
        self._multipart: list[tuple[str, FormValue]] | None = None
        self.uploads: list[UploadFile] = []

    @property
    def method(self) -> str:
        """The HTTP method, upper case (``GET``, ``POST``...)."""
        return self.scope["method"]  # type: ignore[no-any-return]

    @property
    def cookies(self) -> dict[str, str]:
        """The request's cookies by name (a malformed ``Cookie`` header gives none)."""
        if self._cookies is None:
            from http.cookies import CookieError, SimpleCookie

            jar: SimpleCookie = SimpleCookie()
            with contextlib.suppress(CookieError):  # a malformed header is ignored, as browsers do
                jar.load(self.headers.get("cookie", ""))
            self._cookies = {key: morsel.value for key, morsel in jar.items()}
        return self._cookies

    @property
    def tytx_transport(self) -> tytx.Transport | None:
        """The TYTX transport the client asked for (``json``, ``msgpack``, ``xml``) or None."""
        return tytx.transport_from_headers(self.scope.get("headers") or ())

    @property
    def content_type(self) -> str:
        """The media type of the body, lower case, without parameters (``application/json``)."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    async def stream(self) -> AsyncIterator[bytes]:
        """The body in chunks as they arrive, enforcing ``max_body_size`` (413)."""
        async for chunk in self._stream(self.max_body_size):
            yield chunk

    async def _stream(self, limit: int) -> AsyncIterator[bytes]:
        if self._body is not None:
            yield self._body
            return
        if self._multipart is not None:  # its bytes are gone: waiting for more would hang
            raise RuntimeError("the body was already read by multipart()")
        declared = self.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise BadRequest(detail="Content-Length must be a non-negative integer")
            if int(declared) > limit:
                raise PayloadTooLarge(detail=self._too_large(limit))
        received = 0
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                raise PayloadTooLarge(detail=self._too_large(limit))
            envelope = self.envelope
            if envelope is not None:
                envelope.request_size = received
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return

    @staticmethod
    def _too_large(limit: int) -> str:
        return f"request body is larger than the limit of {limit} bytes"

    async def body(self) -> bytes:
        """The whole body, read once and cached, within ``max_body_size`` (413 over it)."""
        if self._body is None:
            self._body = b"".join([chunk async for chunk in self.stream()])
        return self._body

    async def json(self) -> Any:
        """The body decoded as JSON; malformed JSON, or numbers over the limits, are a 400."""
        body = await self.body()
        if len(body) > DECODE_IN_THREAD_ABOVE:
            return await off_loop(self.scope, self._decode_json, body)
        return self._decode_json(body)

    def _decode_json(self, body: bytes) -> Any:
        try:
            value = json.loads(body, parse_constant=_reject_constant)
            check_decoded(body, value)
            self.number_limits.check_json(body, value)
            return value
        except (MalformedText, NumberOutOfRange) as exc:
            raise BadRequest(detail=f"malformed JSON body: {exc}") from None
        except UnicodeDecodeError:
            raise BadRequest(detail="JSON body is not valid UTF-8") from None
        except json.JSONDecodeError as exc:
            raise BadRequest(detail=f"malformed JSON body: {exc}") from None
        except ValueError as exc:  # e.g. an integer over sys.get_int_max_str_digits()
            detail = describe_decode_error(exc) or str(exc)[:120]
            raise BadRequest(detail=f"malformed JSON body: {detail}") from None
        except RecursionError:
            raise BadRequest(detail="malformed JSON body: nested too deeply") from None

    async def form(self) -> QueryParams:
        """An ``application/x-www-form-urlencoded`` body."""
        if self.content_type == "multipart/form-data":
            raise UnsupportedMediaType(
                detail="read a multipart/form-data body with await request.multipart()")
        body = await self.body()
        try:
            items = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=1000)
        except UnicodeDecodeError:
            raise BadRequest(detail="form body is not valid UTF-8") from None
        except ValueError as exc:
            raise BadRequest(detail=f"malformed form body: {exc}") from None
        return QueryParams(items)

    async def multipart(self) -> list[tuple[str, FormValue]]:
        """A ``multipart/form-data`` body: (name, str or UploadFile) in order, parsed as it
        streams in under ``multipart_limits``. Its files are closed by ``close_uploads``."""
        if self._multipart is None:
            if self.content_type != "multipart/form-data":
                raise UnsupportedMediaType(detail="the body is not multipart/form-data")
            self._multipart, self.uploads = await read_multipart(
                self.headers.get("content-type", ""),
                self._stream(self.multipart_limits.max_size), self.multipart_limits,
                self.scope)
        return self._multipart

    async def close_uploads(self) -> None:
        """Close (and so delete) the files of a multipart body, without waiting for a free
        worker of the sync pool (``UploadFile.discard``)."""
        for upload in self.uploads:
            upload.discard()

    async def tytx(self) -> Any:
        """The body decoded as TYTX in the transport the client declared (json by default)."""
        return await self._decode_tytx(await self.body(), self.tytx_transport or "json")

    async def _decode_tytx(self, body: bytes, transport: TytxTransport) -> Any:
        if len(body) > DECODE_IN_THREAD_ABOVE:
            return await off_loop(self.scope, tytx.decode, body, transport,
                                  limits=self.number_limits)
        return tytx.decode(body, transport, limits=self.number_limits)

    async def body_params(self) -> dict[str, Any]:
        """Handler parameters carried by the body: a TYTX, JSON or form object (400 otherwise).

        In a multipart body a name given more than once maps to the list of its values.
        """
        if self.content_type == "multipart/form-data" and self._body is None:
            params: dict[str, Any] = {}
            for name, item in await self.multipart():
                if name not in params:
                    params[name] = item
                elif isinstance(params[name], MultipartValues):
                    params[name].append(item)
                else:
                    params[name] = MultipartValues([params[name], item])
            return params
        body = await self.body()
        if not body:
            return {}
        transport = self.tytx_transport
        content_type = self.content_type
        if transport is not None:
            value = await self._decode_tytx(body, transport)
        elif content_type in ("application/json", "") or content_type.endswith("+json"):
            value = await self.json()
        elif content_type == "application/x-www-form-urlencoded":
            return dict((await self.form()).items())
        else:
            raise UnsupportedMediaType(
                detail=f"cannot read parameters from a {content_type!r} body; "
                "send JSON, TYTX or a urlencoded form"
            )
        if not isinstance(value, dict):
            raise BadRequest(detail="the request body must be an object of named parameters")
        return value


class MultipartValues(list[Any]):
    """The values of a multipart name given more than once (a list a client cannot forge)."""
