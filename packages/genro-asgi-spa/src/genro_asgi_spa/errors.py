"""The refusals of the SPA manager: an HTTP status and a stable code for each.

A handler raises ``SpaError``; over HTTP it is a JSON error with that status, over WSX a
``handler_error`` frame with the status and the message ``"<code>: <text>"``, so a client
tells a page that expired (register a new one) from a forged one (a bug or an attack).
"""

from __future__ import annotations

from genro_asgi import HTTPException

# code -> status (the table in docs/spa.md, "Errors")
CODES: dict[str, int] = {
    "spa_bad_request": 400,  # a malformed id, path, level or value
    "spa_not_websocket": 400,  # register/subscribe called over HTTP
    "spa_bad_cookie": 401,  # the connection cookie does not verify (tampered, expired)
    "spa_identity_required": 401,  # no identity and allow_anonymous is off
    "spa_no_page": 401,  # the caller holds no page (not registered yet)
    "spa_foreign": 403,  # a page/session of another connection or user
    "spa_forbidden": 403,  # presence of others without the presence_auth rule
    "spa_unknown_page": 404,  # no such page (never existed, or its grace period ended)
    "spa_unknown_session": 404,
    "spa_already_registered": 409,  # this WSX connection already holds a page
    "spa_page_in_use": 409,  # the page is live on another socket
    "spa_data_too_large": 413,  # the level's tree would pass max_data_bytes
    "spa_message_too_large": 413,  # a page's message past max_message_bytes
    "spa_too_many_pages": 429,  # max_pages_per_user / max_pages_per_connection
    "spa_too_many_connections": 429,  # max_connections_per_user
    "spa_too_many_sessions": 429,  # max_sessions_per_user
    "spa_too_many_subscriptions": 429,
    "spa_rate_limited": 429,  # the page's change rate (token bucket)
    "spa_unavailable": 503,  # the backend cannot answer now
    "spa_server_full": 503,  # the server's data of every tree passed max_total_data_bytes
    "spa_anonymous_full": 503,  # the server holds max_anonymous_users anonymous users
}


class SpaError(HTTPException):
    """A refusal with a stable ``code`` (a key of ``CODES``) and a message for people; with
    ``retry_after``, a ``Retry-After`` header (over WSX: ``retry_after`` in the error)."""

    def __init__(self, code: str, message: str, retry_after: int | None = None) -> None:
        headers = None if retry_after is None else {"Retry-After": str(retry_after)}
        super().__init__(CODES[code], f"{code}: {message}", headers)
        self.code = code
        self.message = message
