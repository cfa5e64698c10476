"""Task stores: where task records are persisted. The TaskManager keeps the live records in
memory and tells its store about every state change; a store that persists (SQLite) gives the
records back at the next start, so they survive a restart.

Results are written as TYTX text (JSON with typed values), never pickled: a result that TYTX
cannot encode is recorded with ``result_error`` instead. TYTX decodes every string ending in
``::<CODE>`` (``"v1::N"`` would come back a Decimal, ``"x::D"`` would not decode) and its encoder
does not escape them, so such strings are written with the ``::T`` (str) suffix.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from pathlib import Path
from typing import Any

from genro_tytx import to_tytx

from .records import FAILED, FINISHED, TaskRecord

logger = logging.getLogger("genro_asgi_executor.store")

INTERRUPTED = "interrupted: the server stopped before the task finished"


class TaskStore:
    """The interface, and the memory store: records live only in the TaskManager."""

    name = "memory"

    def load(self) -> list[TaskRecord]:
        """The records of previous runs, oldest first."""
        return []

    def save(self, record: TaskRecord) -> None:
        """Persist the record as it is now (it must not block the event loop)."""

    def delete(self, task_ids: list[str]) -> None:
        """Forget records (retention)."""

    def close(self) -> None:
        """Write what is pending and release resources."""


_COLUMNS = ("task_id", "name", "pool", "state", "created_at", "started_at", "finished_at",
            "progress", "message", "timeout", "error", "traceback", "result", "result_error",
            "owner")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY, name TEXT NOT NULL, pool TEXT NOT NULL, state TEXT NOT NULL,
    created_at REAL NOT NULL, started_at REAL, finished_at REAL, progress REAL, message TEXT,
    timeout REAL, error TEXT, traceback TEXT, result TEXT, result_error TEXT, owner TEXT
);
CREATE INDEX IF NOT EXISTS tasks_created ON tasks (created_at);
"""

_UPSERT = (f"INSERT OR REPLACE INTO tasks ({', '.join(_COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in _COLUMNS)})")


class SqliteTaskStore(TaskStore):
    """SQLite (stdlib ``sqlite3``). Writes go through one writer thread, in order, so the
    event loop never waits for the disk; ``close`` waits until they are all written."""

    name = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise ValueError(f"the directory of the task store {self.path} does not exist")
        self._queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        with self._connect() as db:
            db.executescript(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(tasks)")}
            if "owner" not in columns:  # a store written before tasks had owners
                db.execute("ALTER TABLE tasks ADD COLUMN owner TEXT")
        db.close()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def load(self) -> list[TaskRecord]:
        db = self._connect()
        try:
            rows = db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM tasks ORDER BY created_at").fetchall()
        finally:
            db.close()
        records = []
        for row in rows:
            data = dict(zip(_COLUMNS, row, strict=True))
            stored = data.pop("result")
            record = TaskRecord(**data)
            record.stored_result = stored
            if not record.finished:  # the previous run ended without finishing it
                record.state = FAILED
                record.error = INTERRUPTED
                record.finished_at = record.finished_at or record.started_at \
                    or record.created_at
                self.save(record)
            records.append(record)
        return records

    def save(self, record: TaskRecord) -> None:
        self._start()
        self._queue.put(("save", record.snapshot()))

    def delete(self, task_ids: list[str]) -> None:
        if task_ids:
            self._start()
            self._queue.put(("delete", list(task_ids)))

    def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(("stop", None))
            thread.join()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._write_forever, daemon=True,
                                            name=f"task-store-{self.path.name}")
            self._thread.start()

    def _write_forever(self) -> None:
        db = self._connect()
        try:
            while True:
                op, arg = self._queue.get()
                if op == "stop":
                    return
                try:
                    if op == "save":
                        db.execute(_UPSERT, _row(arg))
                    else:
                        db.executemany("DELETE FROM tasks WHERE task_id = ?",
                                       [(task_id,) for task_id in arg])
                    if self._queue.empty():
                        db.commit()
                except sqlite3.Error:
                    logger.exception("task store %s: cannot %s", self.path, op)
        finally:
            db.commit()
            db.close()


def _row(record: TaskRecord) -> tuple[Any, ...]:
    result_text = record.stored_result
    result_error = record.result_error
    if record.state == "done" and result_text is None and result_error is None:
        try:
            encoded = to_tytx(_escape(record.result))  # text, in its default JSON form
            result_text = encoded if isinstance(encoded, str) else encoded.decode()
        except Exception as exc:
            result_error = f"not stored: the result is not JSON/TYTX-serialisable: {exc}"[:500]
    values = {name: getattr(record, name) for name in _COLUMNS if name != "result"}
    values["result"] = result_text
    values["result_error"] = result_error
    return tuple(values[name] for name in _COLUMNS)


def _escape(value: Any) -> Any:
    """``value`` with every string that contains ``::`` suffixed ``::T``, so that it decodes
    as the same string (dict keys are never decoded: they stay as they are)."""
    if isinstance(value, str):
        return value + "::T" if "::" in value else value
    if isinstance(value, dict):
        return {key: _escape(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_escape(item) for item in value]
    return value


__all__ = ["FINISHED", "INTERRUPTED", "SqliteTaskStore", "TaskStore"]
