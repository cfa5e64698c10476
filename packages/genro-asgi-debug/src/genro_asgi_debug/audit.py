"""The audit trail: one JSON line per connection event and per command, with incident and peer.

Every line goes to the ``genro_asgi_debug.audit`` logger; with ``audit_file`` it is also
appended to that file (created 0600), opened per server so two servers never share a handle.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

audit_logger = logging.getLogger("genro_asgi_debug.audit")


class AuditLog:
    def __init__(self, path: Path | None, worker_pid: int) -> None:
        self.path = path
        self.worker_pid = worker_pid
        self._fd: int | None = None

    def open(self) -> None:
        if self.path is not None and self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

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
