"""Content codings: Accept-Encoding negotiation (RFC 9110 12.5.3) and the gzip/brotli codecs.

Negotiation never raises: a malformed entry is ignored, whatever the client sends.
"""

from __future__ import annotations

import importlib
import re
import zlib
from collections.abc import Callable
from typing import Any, Protocol

# Either distribution provides the same API (compress, Compressor.process/flush/finish).
BROTLI_MODULES = ("brotli", "brotlicffi")
_QVALUE = re.compile(rb"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
_GZIP_WBITS = 31  # zlib with a gzip header and trailer


def load_brotli() -> Any | None:
    """The brotli module when one is installed, else None."""
    for name in BROTLI_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def _weight(params: bytes) -> float | None:
    """The ``q`` of one entry's parameters: 1 when absent, None when malformed."""
    for param in params.split(b";"):
        key, _, value = param.partition(b"=")
        if key.strip().lower() == b"q":
            value = value.strip()
            return float(value) if _QVALUE.fullmatch(value) else None
    return 1.0


def parse_accept_encoding(header: bytes) -> dict[str, float]:
    """Coding name -> weight; ``x-gzip`` counts as ``gzip``; malformed entries are left out.

    A coding listed twice keeps its lowest weight, so a refusal (``q=0``) is never undone.
    """
    weights: dict[str, float] = {}
    for entry in header.split(b","):
        name, _, params = entry.partition(b";")
        name = name.strip().lower()
        if not name:
            continue
        weight = _weight(params)
        if weight is None:
            continue
        coding = "gzip" if name == b"x-gzip" else name.decode("latin-1")
        previous = weights.get(coding)
        weights[coding] = weight if previous is None else min(previous, weight)
    return weights


def choose_coding(header: bytes, offered: tuple[str, ...]) -> str | None:
    """The coding to use among ``offered`` (most preferred first), or None for identity.

    The highest weight wins and ties go to the earlier offer; ``*`` stands for every coding
    not listed (identity included); a weight of 0 refuses. When the client weighs identity
    above every offered coding, the body goes out as it is.
    """
    weights = parse_accept_encoding(header)
    star = weights.get("*", 0.0)
    best: str | None = None
    best_weight = 0.0
    for coding in offered:
        weight = weights.get(coding, star)
        if weight > best_weight:
            best, best_weight = coding, weight
    if best is not None and weights.get("identity", star) > best_weight:
        return None
    return best


class StreamEncoder(Protocol):
    """Incremental compression; every chunk is flushed, so the client can decode it at once."""

    def chunk(self, data: bytes) -> bytes: ...

    def finish(self, data: bytes) -> bytes: ...


class Codec:
    """One content coding: whole bodies in one call, streams through ``open_stream``."""

    def __init__(self, name: str, compress: Callable[[bytes], bytes],
                 open_stream: Callable[[], StreamEncoder]) -> None:
        self.name = name
        self.header_value = name.encode("latin-1")
        self.compress = compress
        self.open_stream = open_stream


class _GzipStream:
    def __init__(self, level: int) -> None:
        self._encoder = zlib.compressobj(level, zlib.DEFLATED, _GZIP_WBITS)

    def chunk(self, data: bytes) -> bytes:
        return self._encoder.compress(data) + self._encoder.flush(zlib.Z_SYNC_FLUSH)

    def finish(self, data: bytes) -> bytes:
        return self._encoder.compress(data) + self._encoder.flush(zlib.Z_FINISH)


class _BrotliStream:
    def __init__(self, module: Any, quality: int) -> None:
        self._encoder = module.Compressor(quality=quality)

    def chunk(self, data: bytes) -> bytes:
        return bytes(self._encoder.process(data) + self._encoder.flush())

    def finish(self, data: bytes) -> bytes:
        return bytes(self._encoder.process(data) + self._encoder.finish())


def gzip_codec(level: int) -> Codec:
    def compress(body: bytes) -> bytes:
        return zlib.compress(body, level, wbits=_GZIP_WBITS)

    return Codec("gzip", compress, lambda: _GzipStream(level))


def brotli_codec(module: Any, quality: int) -> Codec:
    def compress(body: bytes) -> bytes:
        return bytes(module.compress(body, quality=quality))

    return Codec("br", compress, lambda: _BrotliStream(module, quality))
