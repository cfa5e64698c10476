"""Error kinds and close codes of the WSX protocol (the tables of docs/wsx-protocol.md).

One table maps each kind of failure to its HTTP-like status (the ``wsx`` subprotocol) and its
JSON-RPC code, so the two subprotocols can never disagree about what went wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ErrorKind:
    code: str  # the wsx ``error.code``
    status: int
    rpc_code: int
    rpc_message: str


PARSE_ERROR = ErrorKind("parse_error", 400, -32700, "Parse error")
INVALID_REQUEST = ErrorKind("invalid_request", 400, -32600, "Invalid Request")
NOT_FOUND = ErrorKind("not_found", 404, -32601, "Method not found")
INVALID_PARAMS = ErrorKind("invalid_params", 400, -32602, "Invalid params")
INTERNAL_ERROR = ErrorKind("internal_error", 500, -32603, "Internal error")
HANDLER_ERROR = ErrorKind("handler_error", 500, -32000, "Handler error")
UNAUTHENTICATED = ErrorKind("unauthenticated", 401, -32001, "Unauthenticated")
AUTH_REQUIRED = ErrorKind("auth_required", 401, -32001, "Unauthenticated")
FORBIDDEN = ErrorKind("forbidden", 403, -32002, "Forbidden")
TOO_MANY_CALLS = ErrorKind("too_many_calls", 429, -32003, "Too many calls")
TOO_MANY_SUBSCRIPTIONS = ErrorKind("too_many_subscriptions", 429, -32004,
                                   "Too many subscriptions")
INVALID_CHANNEL = ErrorKind("invalid_channel", 400, -32005, "Invalid channel")
UNKNOWN_SUBSCRIPTION = ErrorKind("unknown_subscription", 404, -32006, "Unknown subscription")
METHOD_NOT_ALLOWED = ErrorKind("method_not_allowed", 405, -32000, "Handler error")
SHUTTING_DOWN = ErrorKind("shutting_down", 503, -32007, "Shutting down")


class WsxError(Exception):
    """A failure to report to the client: its kind, a safe message and optional extra data."""

    def __init__(self, kind: ErrorKind, message: str | None = None, *, status: int | None = None,
                 data: dict[str, Any] | None = None) -> None:
        super().__init__(message or kind.rpc_message)
        self.kind = kind
        self.message = message or kind.rpc_message
        self.status = status or kind.status
        self.data = data or {}


class CloseCode:
    """WebSocket close codes the server uses (docs/wsx-protocol.md, section 7)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    SLOW_CONSUMER = 4000
    AUTH_DEADLINE = 4001
    HEARTBEAT_TIMEOUT = 4002
