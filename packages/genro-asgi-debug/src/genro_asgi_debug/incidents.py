"""Parked failing requests ("incidents") and the board that caps and finds them.

An incident holds the exception's traceback (the frames a debugger inspects), a redacted
summary of its request, and a future the parked request awaits: resolving it (a debugger's
``c``/``q``, a disconnect, the park timeout, shutdown) lets the request get its normal 500.
Everything here runs on the event loop; the pdb thread only reads the traceback.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import traceback
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

MAX_MESSAGE = 1000
TRACEBACK_FRAMES = 30
MAX_TRACEBACK_TEXT = 20_000


@dataclass(eq=False)
class Incident:
    """One parked request: its id, what failed, and whether a debugger holds it."""

    id: str
    request: dict[str, Any]
    exc_type: str
    message: str
    traceback_text: str
    tb: TracebackType | None
    released: asyncio.Future[str]
    created_at: float = field(default_factory=time.time)
    attached_by: str | None = None

    def describe(self) -> dict[str, Any]:
        """The JSON-safe view listed by ``incidents``."""
        return {
            "id": self.id,
            "request": self.request,
            "exception": {"type": self.exc_type, "message": self.message,
                          "traceback": self.traceback_text},
            "parked_at": round(self.created_at, 3),
            "age": round(time.time() - self.created_at, 3),
            "attached_by": self.attached_by,
        }

    def release(self, reason: str) -> None:
        if not self.released.done():
            self.released.set_result(reason)


class IncidentBoard:
    """At most ``max_parked`` incidents at once, found by id."""

    def __init__(self, max_parked: int) -> None:
        self.max_parked = max_parked
        self._parked: dict[str, Incident] = {}

    def __len__(self) -> int:
        return len(self._parked)

    def list(self) -> list[Incident]:
        return sorted(self._parked.values(), key=lambda incident: incident.created_at)

    def park(self, exc: BaseException, request: dict[str, Any]) -> Incident | None:
        """A new incident for ``exc``, or None when the board is full."""
        if len(self._parked) >= self.max_parked:
            return None
        incident_id = secrets.token_hex(4)
        while incident_id in self._parked:
            incident_id = secrets.token_hex(4)
        text = "".join(traceback.format_exception(exc, limit=-TRACEBACK_FRAMES))
        incident = Incident(
            id=incident_id, request=request, exc_type=type(exc).__qualname__,
            message=_clip(str(exc), MAX_MESSAGE), traceback_text=_clip(text, MAX_TRACEBACK_TEXT),
            tb=exc.__traceback__, released=asyncio.get_running_loop().create_future(),
        )
        self._parked[incident_id] = incident
        return incident

    def remove(self, incident: Incident) -> None:
        self._parked.pop(incident.id, None)
        incident.tb = None  # the frames (and their locals) are freed with the request

    def claim(self, incident_id: str | None, peer: str) -> Incident:
        """Attach ``peer`` to an incident (the oldest free one without an id).

        Raises LookupError with a message for the client when there is none to attach to.
        """
        if incident_id is None:
            free = [i for i in self.list() if i.attached_by is None and not i.released.done()]
            if not free:
                raise LookupError("no parked incident is waiting for a debugger")
            incident = free[0]
        else:
            found = self._parked.get(incident_id)
            if found is None or found.released.done():
                raise LookupError(f"no parked incident {incident_id!r}")
            incident = found
        if incident.attached_by is not None:
            raise LookupError(f"incident {incident.id} already has a debugger attached "
                              f"({incident.attached_by})")
        incident.attached_by = peer
        return incident

    def release_all(self, reason: str) -> None:
        for incident in list(self._parked.values()):
            incident.release(reason)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
