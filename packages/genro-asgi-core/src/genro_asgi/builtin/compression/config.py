"""The ``compression`` plugin's options, validated and normalised once at startup."""

from __future__ import annotations

import re

from pydantic import BaseModel, ByteSize, ConfigDict, Field, field_validator

# Formats that are compressed already (or binary of unknown kind): compressing them again costs
# CPU and gains nothing. SVG, BMP and icons are images that do compress, so they are not here.
DEFAULT_EXCLUDE_TYPES = (
    "image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/heic",
    "image/heif", "image/jxl", "image/jp2",
    "video/", "audio/",
    "font/woff", "font/woff2", "application/font-woff",
    "application/zip", "application/gzip", "application/x-gzip", "application/x-bzip2",
    "application/x-xz", "application/zstd", "application/x-7z-compressed",
    "application/vnd.rar", "application/x-rar-compressed", "application/x-tar",
    "application/pdf", "application/octet-stream",
)
# Server-sent events must reach the client event by event: never buffered, never compressed.
ALWAYS_EXCLUDED = ("text/event-stream",)

_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+\-]*/(?:[a-z0-9][a-z0-9!#$&^_.+\-]*)?")


class CompressionConfig(BaseModel):
    """Options of ``plugins.compression`` (see docs/compression.md)."""

    model_config = ConfigDict(extra="forbid")

    minimum_size: ByteSize = Field(default=ByteSize(500), ge=0)
    gzip_level: int = Field(default=6, ge=1, le=9)
    brotli: bool = True
    brotli_quality: int = Field(default=4, ge=0, le=11)
    exclude_types: list[str] = Field(default_factory=lambda: list(DEFAULT_EXCLUDE_TYPES))

    @field_validator("exclude_types")
    @classmethod
    def _media_types(cls, values: list[str]) -> list[str]:
        cleaned = []
        for value in values:
            text = value.strip().lower()
            if not _MEDIA_TYPE.fullmatch(text):
                raise ValueError(f"{value!r} is not a media type ('image/png') or a top-level "
                                 "type ending in '/' ('video/')")
            cleaned.append(text)
        return cleaned
