"""The task HTTP API, mounted at the plugin's ``path`` (default ``/_tasks``).

``GET /_tasks`` lists (filters ``state``, ``name``, ``pool``, ``limit``; results and
tracebacks only with ``results=true``, so a list of large results stays small),
``GET /_tasks/<id>`` shows one task, ``POST /_tasks/<id>/cancel`` cancels it. Answers are
JSON, or TYTX when the client sends ``X-TYTX-Transport``; errors go through the server's
error rendering (404 unknown task, 400 bad filter, 409 cancelling a finished task). It never
starts work: tasks are submitted by the application's own routes.

``auth_rule`` is declared on the route itself (genro-routes' auth plugin, configured per
instance), so the core checks it before it binds or coerces a single parameter: an anonymous
caller gets its 401 whatever it sent. Over WSX (or JSON-RPC) the same paths answer with the
data itself; a call's ``method``, when given, must be the one the path takes, and a call
without one (``CALL``) does what the path says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from genro_toolbox import tags_match

from genro_asgi import (
    AsgiApplication,
    BadRequest,
    Forbidden,
    HTTPException,
    JSONResponse,
    MethodNotAllowed,
    NotFound,
    Request,
    Response,
    TytxResponse,
    route,
)

from .errors import ExecutorClosed, UnknownTask
from .records import STATES, TaskRecord
from .tasks import owner_key

if TYPE_CHECKING:
    from genro_asgi.tytx import Transport

    from .plugin import ExecutorPlugin

MAX_LIMIT = 1000
# what encoders raise for a value they cannot represent; RecursionError: deep or circular
UNENCODABLE = (TypeError, ValueError, OverflowError, RecursionError)


class Conflict(HTTPException):
    status_code = 409


class TasksApp(AsgiApplication):
    """Routes of the task API; one per server, bound to its executor plugin."""

    def __init__(self, plugin: ExecutorPlugin) -> None:
        super().__init__()
        self.plugin = plugin
        self.auth_rule = plugin.config.auth_rule
        self.tracebacks = plugin.config.expose_tracebacks
        if self.auth_rule is not None:
            # a rule of the route, not of the handler: checked before any parameter is bound
            self.route.plug("auth")
            self.routing.configure("auth/_all_", rule=self.auth_rule)

    # every standard method reaches the handler, which answers 405 with the Allow of the path
    # asked (GET on the list and on a task, POST on cancel), not the union of them all; the
    # route says so (subpaths) for `genro-asgi routes` and documents
    @route(methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"],
           subpaths={"": ["GET"], "{task_id}": ["GET"], "{task_id}/cancel": ["POST"]})
    async def index(self, *path: str, request: Request, state: str | None = None,
                    name: str | None = None, pool: str | None = None,
                    limit: int = 100, results: bool = False) -> Response | dict[str, Any]:
        tasks = self.plugin.tasks
        if tasks is None:
            raise ExecutorClosed("the executor is not running")
        filters = (state is not None or name is not None or pool is not None or limit != 100
                   or results)
        admin, caller = self._caller(request)
        if not path:
            _allow(request, "GET")
            records = tasks.list(state=_state_filter(state), name=name,
                                 pool=self._pool_filter(pool), limit=_limit(limit),
                                 owners=None if admin else {caller} if caller else ())
            return self._answer(request, {"tasks": [self._view(r, summary=not results)
                                                    for r in records],
                                          "count": len(records)})
        if filters:
            raise BadRequest(detail="filters apply to the task list only")
        try:
            if len(path) == 1:
                _allow(request, "GET")
                return self._answer(request, self._view(self._visible(path[0], admin, caller)))
            if len(path) == 2 and path[1] == "cancel":
                _allow(request, "POST")
                record = self._visible(path[0], admin, caller)
                if not admin and record.owner is None:
                    raise Forbidden(detail=f"task {path[0]} has no owner: only an admin "
                                           "may cancel it")
                if not tasks.cancel(path[0]):
                    record = tasks.status(path[0])
                    raise Conflict(detail=f"task {path[0]} already finished ({record.state})")
                return self._answer(request, self._view(tasks.status(path[0])))
        except UnknownTask:
            raise NotFound(detail=f"no task {path[0][:64]!r}") from None
        raise NotFound(detail="no such task API path")

    def _caller(self, request: Any) -> tuple[bool, str | None]:
        """(whether the caller sees every task, its owner key)."""
        identity = getattr(request, "identity", None) if isinstance(request, Request) else None
        if self.plugin.config.access == "open":
            return True, owner_key(identity)
        rule = self.plugin.config.admin_rule
        admin = identity is not None and rule is not None and tags_match(rule,
                                                                         set(identity.tags))
        return admin, owner_key(identity)

    def _visible(self, task_id: str, admin: bool, caller: str | None) -> TaskRecord:
        """The task's record if the caller may see it: admins every task, others their own
        and the ones without an owner (whose id is the only key). Someone else's task is
        unknown (404), so its id cannot be probed."""
        record = self.plugin.tasks.status(task_id)  # type: ignore[union-attr]
        if admin or record.owner is None or record.owner == caller:
            return record
        raise UnknownTask(task_id)

    def _pool_filter(self, pool: str | None) -> str | None:
        if pool is not None and pool not in self.plugin.config.pools:
            raise BadRequest(detail=f"unknown pool {pool[:64]!r} "
                                    f"(pools: {', '.join(self.plugin.config.pools)})")
        return pool

    def _view(self, record: TaskRecord, *, summary: bool = False) -> dict[str, Any]:
        return record.view(tracebacks=self.tracebacks, summary=summary)

    @staticmethod
    def _answer(request: Request, data: dict[str, Any]) -> Response | dict[str, Any]:
        http = _is_http(request)
        # not HTTP (WSX, JSON-RPC): the data itself, which that transport encodes as TYTX
        transport = request.tytx_transport if http else "json"
        try:
            response = _encode(data, transport)
            return response if http else data
        except UNENCODABLE:
            pass
        # a result the encoder cannot represent: answer without it, saying why; in a list only
        # the tasks whose result is at fault lose it
        for view in data.get("tasks", [data]):
            if "result" not in view:
                continue
            try:
                _encode({"result": view["result"]}, transport)
            except UNENCODABLE:
                view["result"] = None
                view.setdefault("result_error", "the result cannot be encoded as JSON/TYTX")
        return _encode(data, transport) if http else data


def _encode(data: dict[str, Any], transport: Transport | None) -> Response:
    return TytxResponse(data, transport=transport) if transport else JSONResponse(data)


def _is_http(request: Any) -> bool:
    return isinstance(request, Request) and request.scope.get("type") == "http"


def _allow(request: Any, allowed: str) -> None:
    """405 unless the call's method is ``allowed`` (GET: or HEAD). A WSX or JSON-RPC call
    without a method (``CALL``) does what the path says; one with a method is held to it."""
    methods = ["GET", "HEAD"] if allowed == "GET" else [allowed]
    scope = getattr(request, "scope", None) or {}
    method = scope.get("method") if isinstance(request, Request) else None
    if method is None or (method == "CALL" and scope.get("type") != "http"):
        return
    if method not in methods:
        raise MethodNotAllowed(methods, detail=f"{method[:20]} is not allowed on "
                                               f"{str(scope.get('path'))[:200]!r}")


def _state_filter(state: str | None) -> list[str] | None:
    if state is None:
        return None
    wanted = [s.strip() for s in state.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STATES]
    if unknown or not wanted:
        raise BadRequest(detail=f"state must be among {', '.join(STATES)} "
                                f"(comma-separated), got {state[:64]!r}")
    return wanted


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(detail=f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit
