"""This process's copy of the spa records kept in the JetStream KV bucket, and the keys.

Every process watches the bucket's records (``r.>``) and keeps them in a ``MemoryBackend``
(the same dicts and indexes as one process), so presence questions (``pages``, ``users``...)
are answered locally. Two writers reach the copy: the watch, in stream order, and this
process's own writes, applied as soon as NATS confirms them (read your own writes before the
watch echoes them back). Revisions keep an older value from overwriting a newer one:

- a value is applied only when its revision is newer than the key's;
- a key this process deleted stays deleted (a tombstone) until the watch shows the delete,
  so a late echo of an older put cannot bring it back;
- a write NATS did not confirm (an outage) is applied at once and remembered as *dirty*,
  with the revision the key had then: written again, in order, when NATS is back, unless
  another process changed the key meanwhile (its newer value wins).
"""

from __future__ import annotations

import base64
import hashlib
import re

from genro_asgi_spa.backend import MemoryBackend, Record, RecordKind, record_from_dict, to_dict
from genro_asgi_wsx.codec import parse_tytx, tytx_text

_SAFE = re.compile(r"[A-Za-z0-9_-]{1,128}")
RECORD_KINDS: tuple[RecordKind, ...] = ("user", "connection", "session", "page")


def key_token(value: str) -> str:
    """``value`` as one KV key token: itself when it is a plain token, else ``=`` and its
    base64url (no padding), or ``==`` and its SHA-256 when that would be long. Never
    reversed: records carry their own ids."""
    if _SAFE.fullmatch(value):
        return value
    raw = value.encode("utf-8", "surrogatepass")
    if len(raw) <= 96:
        return "=" + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
    return "==" + hashlib.sha256(raw).hexdigest()


def record_key(kind: str, key: str) -> str:
    return f"r.{kind}.{key_token(key)}"


def node_key(process_id: str) -> str:
    return f"r.node.{key_token(process_id)}"


def tree_key(level: str, owner: str) -> str:
    return f"t.{level}.{key_token(owner)}"


def encode_record(record: Record) -> bytes:
    text: str = tytx_text(to_dict(record))
    return text.encode("utf-8")


def decode_record(payload: bytes) -> Record:
    """The record; ValueError for anything that is not one."""
    try:
        data = parse_tytx(payload.decode("utf-8"))
    except Exception as exc:
        raise ValueError(f"not a record ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise ValueError("not a record (not an object)")
    return record_from_dict(data)


class Replica:
    """The records of every process, as this process last heard of them, by KV key."""

    def __init__(self) -> None:
        self.records = MemoryBackend(process_id="replica")
        self.ids: dict[str, tuple[RecordKind, str]] = {}  # KV key -> (kind, record key)
        self.revisions: dict[str, int] = {}
        self.tombstones: set[str] = set()
        self.dirty: dict[str, Record | None] = {}  # key -> record to put, None: to delete
        self.base: dict[str, int] = {}  # dirty key -> the revision it had when it became dirty
        self.position = 0  # the last stream sequence the watch brought

    async def _store(self, key: str, record: Record) -> None:
        self.ids[key] = (record.kind, record.key)
        await self.records.put(record)

    async def _forget(self, key: str) -> None:
        found = self.ids.pop(key, None)
        self.revisions.pop(key, None)
        if found is not None:
            await self.records.delete(*found)

    # -- this process's writes ----------------------------------------------------------------

    async def confirmed_put(self, key: str, record: Record, revision: int) -> None:
        self.tombstones.discard(key)
        self.dirty.pop(key, None)
        self.base.pop(key, None)
        # the watch has passed it: what the copy holds for the key is that or newer
        if revision > self.position and revision > self.revisions.get(key, 0):
            self.revisions[key] = revision
            await self._store(key, record)

    async def unconfirmed_put(self, key: str, record: Record) -> None:
        self.tombstones.discard(key)
        self.base.setdefault(key, self.revisions.get(key, 0))
        self.dirty.pop(key, None)  # re-inserted last: replayed in the order written
        self.dirty[key] = record
        await self._store(key, record)

    async def local_delete(self, key: str, confirmed: bool) -> None:
        self.tombstones.add(key)
        self.dirty.pop(key, None)
        if confirmed:
            self.base.pop(key, None)
        else:
            self.base.setdefault(key, self.revisions.get(key, 0))
            self.dirty[key] = None
        await self._forget(key)

    # -- the watch ----------------------------------------------------------------------------

    async def watched_put(self, key: str, record: Record, revision: int) -> bool:
        """Apply a value the watch brought; whether it changed the copy."""
        self.position = max(self.position, revision)
        if key in self.tombstones or key in self.dirty:
            return False
        if revision <= self.revisions.get(key, 0):
            return False
        self.revisions[key] = revision
        await self._store(key, record)
        return True

    async def watched_delete(self, key: str, revision: int) -> bool:
        self.position = max(self.position, revision)
        self.tombstones.discard(key)
        if key in self.dirty or revision <= self.revisions.get(key, 0):
            return False
        await self._forget(key)
        return True

    async def get(self, kind: RecordKind, key: str) -> Record | None:
        return await self.records.get(kind, key)


__all__ = ["RECORD_KINDS", "Replica", "decode_record", "encode_record", "key_token",
           "node_key", "record_key", "tree_key"]
