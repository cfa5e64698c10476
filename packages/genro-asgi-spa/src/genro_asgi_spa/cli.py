"""``genro-asgi spa [DIR] users|pages|tree``: the registries of a RUNNING server.

The command reads the server's config (where it listens, the spa plugin's path) and asks the
server over HTTP (``<path>/inspect/...``, see ``inspection.py``). The credential comes from an
environment variable (``GENRO_ASGI_SPA_TOKEN`` unless ``--token-env`` names another) or a
file (``--token-file``), never from the command line (where ``ps`` shows it), and is never
printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from genro_asgi import CliCommand
from genro_asgi.terminal import print_table, printable

if TYPE_CHECKING:
    from .plugin import SpaPlugin

DEFAULT_TOKEN_ENV = "GENRO_ASGI_SPA_TOKEN"
MAX_ANSWER = 64 * 1024 * 1024  # bytes read from the server at most (a guard, not a limit)


class SpaCliError(Exception):
    """Reported as ``genro-asgi spa: error: ...`` with status 1."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=("users", "pages", "tree"),
                        help="users: who is online (and offline, kept); pages: the pages, live "
                             "or in their grace period; tree: user > connection > session > "
                             "page with the bytes of each data tree")
    parser.add_argument("--user", help="only this user (pages, tree)")
    parser.add_argument("--online", action="store_true", help="users: only those online")
    parser.add_argument("--data", action="store_true",
                        help="tree: show the data values too (bounded by "
                             "plugins.spa.inspect_max_bytes)")
    parser.add_argument("--json", action="store_true", help="print the server's JSON answer")
    parser.add_argument("--url", help="the server's base URL (default: http://server.host:"
                                      "server.port from the config)")
    secret = parser.add_argument_group("the credential (never on the command line)")
    secret.add_argument("--token-env", metavar="VAR",
                        help=f"read the Bearer token from this environment variable "
                             f"(default {DEFAULT_TOKEN_ENV})")
    secret.add_argument("--token-file", metavar="PATH", help="read it from this file")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for the server (default 10)")


def spa_command(plugin: SpaPlugin) -> CliCommand:
    def run(args: argparse.Namespace) -> int:
        return run_command(args, plugin)

    return CliCommand("spa", "list the users, pages and registry tree of a running server: "
                      "genro-asgi spa [DIR] users|pages|tree", run, configure)


def run_command(args: argparse.Namespace, plugin: SpaPlugin, *, out: TextIO | None = None,
                err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    try:
        if args.timeout <= 0:
            raise SpaCliError("--timeout must be more than 0")
        if args.user is not None and args.what == "users":
            raise SpaCliError("users takes no --user (use pages or tree)")
        answer = fetch(inspect_url(args, plugin), read_token(args), args.timeout)
        if args.json:
            print(json.dumps(answer, indent=2), file=out)
        elif args.what == "users":
            print_users(answer, out)
        elif args.what == "pages":
            print_pages(answer, out)
        else:
            print_tree(answer, out)
        return 0
    except SpaCliError as exc:
        print(f"genro-asgi spa: error: {exc}", file=err)
        return 1


def base_url(args: argparse.Namespace, plugin: SpaPlugin) -> str:
    url: str | None = args.url
    if url:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SpaCliError(f"--url must be an http(s) URL, not {url!r}")
        return url.rstrip("/")
    settings = plugin.server.settings.server
    host = settings.host
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}{settings.root_path.rstrip('/')}"


def inspect_url(args: argparse.Namespace, plugin: SpaPlugin) -> str:
    query: dict[str, str] = {}
    if args.user is not None:
        query["user"] = args.user
    if args.online and args.what == "users":
        query["online"] = "true"
    if args.data and args.what == "tree":
        query["data"] = "true"
    url = f"{base_url(args, plugin)}{plugin.config.path}/inspect/{args.what}"
    return f"{url}?{urllib.parse.urlencode(query)}" if query else url


def read_token(args: argparse.Namespace) -> str | None:
    """The token, read as the core reads ``{$env}`` / ``{$file}`` (a file stripped of
    surrounding whitespace), or None: the server then answers 401 unless it admits anyone."""
    if args.token_file:
        try:
            token = Path(args.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SpaCliError(f"cannot read the token file {args.token_file}: "
                              f"{exc.strerror}") from None
        if not token:
            raise SpaCliError(f"the token file {args.token_file} is empty")
        return token
    name = args.token_env or DEFAULT_TOKEN_ENV
    found = os.environ.get(name)
    if found is None and args.token_env:
        raise SpaCliError(f"the environment variable {name} is not set")
    return found or None


def fetch(url: str, token: str | None, timeout: float) -> Any:
    request = urllib.request.Request(url, headers={"accept": "application/json"})
    if token is not None:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(MAX_ANSWER + 1)
    except urllib.error.HTTPError as exc:
        raise SpaCliError(refusal(url, exc.code, _detail(exc))) from None
    except urllib.error.URLError as exc:
        raise SpaCliError(f"cannot reach {url}: {exc.reason} (is the server running? "
                          "--url says where)") from None
    except (TimeoutError, OSError) as exc:
        raise SpaCliError(f"cannot reach {url}: {exc}") from None
    if len(body) > MAX_ANSWER:
        raise SpaCliError(f"{url}: the answer is over {MAX_ANSWER} bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise SpaCliError(f"{url}: the answer is not JSON (is this a genro-asgi server "
                          "with the spa plugin?)") from None


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        answer = json.loads(exc.read(64 * 1024))
    except (ValueError, OSError):
        return ""
    error = answer.get("error") if isinstance(answer, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return str(message) if message else ""


def refusal(url: str, status: int, detail: str) -> str:
    hint = {
        401: f"give a token the server accepts ({DEFAULT_TOKEN_ENV}, --token-env or "
             "--token-file)",
        403: "the token's identity does not satisfy plugins.spa.inspect_auth",
        404: "is this a server with the spa plugin on, and its URL (--url)?",
    }.get(status)
    if status == 404 and "inspection is off" in detail:
        hint = None  # the server said why
    text = f"{url}: {status}"
    if detail:
        text += f" {printable(detail)}"
    return f"{text} ({hint})" if hint else text



def _age(now: Any, then: Any) -> str:
    if not isinstance(now, int | float) or not isinstance(then, int | float):
        return "-"
    return f"{max(0.0, now - then):.0f}s"



def _footer(answer: dict[str, Any], shown: int, what: str, out: TextIO) -> None:
    total = answer.get("total", shown)
    if answer.get("truncated"):
        print(f"({shown} of {total} {what} shown: plugins.spa.inspect_max_rows)", file=out)


def print_users(answer: dict[str, Any], out: TextIO) -> None:
    now = answer.get("now")
    rows = [{"user": u.get("user_id"), "online": "yes" if u.get("online") else "no",
             "pages": u.get("pages"), "home": u.get("process_id"),
             "seen": _age(now, u.get("last_seen"))} for u in answer.get("users", [])]
    print_table(rows, ("user", "online", "pages", "home", "seen"), out)
    _footer(answer, len(rows), "users", out)


def print_pages(answer: dict[str, Any], out: TextIO) -> None:
    now = answer.get("now")
    rows = []
    for page in answer.get("pages", []):
        info = page.get("info") if isinstance(page.get("info"), dict) else {}
        rows.append({"page": page.get("page_id"), "user": page.get("user_id"),
                     "state": page.get("state"), "process": page.get("process_id"),
                     "session": page.get("session_id"), "age": _age(now, page.get("created_at")),
                     "title": str(info.get("title", ""))[:40] or None})
    print_table(rows, ("page", "user", "state", "process", "session", "age", "title"), out)
    _footer(answer, len(rows), "pages", out)


def print_tree(answer: dict[str, Any], out: TextIO) -> None:
    def line(depth: int, text: str, node: dict[str, Any]) -> None:
        data = f", data {node.get('data_bytes', 0)} B"
        print(printable("  " * depth + text + data + ")"), file=out)
        if "data" in node and node.get("data") is not None:
            shown = json.dumps(node["data"], ensure_ascii=False, default=str)
            print(printable("  " * (depth + 1) + "= " + shown), file=out)
        elif node.get("data_omitted"):
            print("  " * (depth + 1) + "= (omitted: plugins.spa.inspect_max_bytes)", file=out)

    for user in answer.get("users", []):
        state = "online" if user.get("online") else "offline"
        line(0, f"user {user.get('user_id')} ({state}, home {user.get('process_id')}", user)
        for connection in user.get("connections", []):
            line(1, f"connection {connection.get('connection_id')} "
                    f"(process {connection.get('process_id')}", connection)
            for session in connection.get("sessions", []):
                line(2, f"session {session.get('session_id')} "
                        f"(master {session.get('master_page_id')}", session)
                for page in session.get("pages", []):
                    info = page.get("info") if isinstance(page.get("info"), dict) else {}
                    title = f", {str(info['title'])[:40]!r}" if info.get("title") else ""
                    line(3, f"page {page.get('page_id')} ({page.get('state')}, process "
                            f"{page.get('process_id')}{title}", page)
    if not answer.get("users"):
        print("(no users)", file=out)
    if answer.get("truncated"):
        print("(truncated: plugins.spa.inspect_max_rows)", file=out)
