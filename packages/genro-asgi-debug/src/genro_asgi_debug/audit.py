"""The audit trail: one JSON line per connection event and per command, with incident and peer.

Every line goes to the ``genro_asgi_debug.audit`` logger; with ``audit_file`` it is also
appended to that file (created 0600), opened per server so two servers never share a handle.
The file must be a regular file reached without a symbolic link as its last component: a link
planted there would otherwise send the trail (and its 0600 creation) somewhere else.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import time
from pathlib import Path
from typing import Any

audit_logger = logging.getLogger("genro_asgi_debug.audit")

# O_NONBLOCK: opening a FIFO for writing would otherwise wait for a reader (no effect on a
# regular file, which is all that is accepted)
_OPEN_FLAGS = (os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC
               | getattr(os, "O_NOFOLLOW", 0))


class UnsafeAuditFile(Exception):
    """The configured audit file cannot be trusted or opened."""


class AuditLog:
    def __init__(self, path: Path | None, worker_pid: int) -> None:
        self.path = path
        self.worker_pid = worker_pid
        self._fd: int | None = None

    def open(self) -> None:
        if self.path is not None and self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.path, _OPEN_FLAGS, 0o600)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise UnsafeAuditFile(f"{self.path} is a symbolic link") from None
                if exc.errno == errno.ENXIO:
                    raise UnsafeAuditFile(f"{self.path} is not a regular file") from None
                raise UnsafeAuditFile(f"{self.path}: {exc.strerror}") from None
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise UnsafeAuditFile(f"{self.path} is not a regular file")
            self._fd = fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def record(self, event: str, peer: str, incident: str | None = None, **fields: Any) -> None:
        entry = {"at": round(time.time(), 3), "pid": self.worker_pid, "event": event,
                 "peer": peer, "incident": incident, **fields}
        line = json.dumps(entry, ensure_ascii=False, default=str)
        level = logging.WARNING if event in ("auth_failed", "refused") else logging.INFO
        audit_logger.log(level, "%s", line)
        if self._fd is not None:
            # one small O_APPEND write per line: atomic with respect to other workers
            os.write(self._fd, (line + "\n").encode())
