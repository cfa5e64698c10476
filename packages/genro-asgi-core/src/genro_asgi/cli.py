"""The ``genro-asgi`` command: serve, plugins, routes, config, hash-password, plugin commands."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from .builtin.auth.passwords import DEFAULT_ITERATIONS, hash_password
from .exceptions import GenroAsgiError
from .plugins.manager import installed_plugins
from .server import AsgiServer

BUILTIN_COMMANDS = ("serve", "plugins", "routes", "config", "hash-password")


def _add_location(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", nargs="?", default=".", help="server directory (default: .)")
    parser.add_argument("--config", help="config file (default: DIR/config.yaml)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genro-asgi", description="genro-asgi server tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser("serve", help="serve the app in DIR with uvicorn")
    _add_location(serve)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.add_argument("--reload", action="store_true", default=None)
    for name, text in (("plugins", "list installed plugins and which are enabled"),
                       ("routes", "list the routes and mounted apps"),
                       ("config", "print the effective config (secrets redacted)")):
        command = sub.add_parser(name, help=text)
        _add_location(command)
        command.add_argument("--json", action="store_true", help="print JSON")
    hasher = sub.add_parser("hash-password",
                            help="hash a password for plugins.auth.basic (reads it, never argv)")
    hasher.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS,
                        help=f"PBKDF2 rounds (default {DEFAULT_ITERATIONS})")
    hasher.add_argument("--stdin", action="store_true",
                        help="read the password from the first line of standard input")
    parser.epilog = "Plugins may add commands: run 'genro-asgi help-plugins [DIR]' to list them."
    return parser


def importable(server_dir: str) -> str:
    """Make modules in the server directory importable by config (like uvicorn's --app-dir)."""
    path = str(Path(server_dir).resolve())
    if path not in sys.path:
        sys.path.insert(0, path)
    return path


def load_server(args: argparse.Namespace, cli: dict[str, Any] | None = None) -> AsgiServer:
    return AsgiServer(importable(args.dir), args.config, cli=cli)


def cmd_serve(args: argparse.Namespace) -> int:
    server_flags = {k: v for k in ("host", "port", "workers", "reload")
                    if (v := getattr(args, k)) is not None}
    server = load_server(args, {"server": server_flags} if server_flags else None)
    server.run()
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    try:
        rows = load_server(args).plugins.describe()
        note = None
    except GenroAsgiError as exc:
        rows = [{"name": p.name, "distribution": p.distribution, "version": p.version,
                 "source": f"entry point {p.value}", "enabled": None, "order": None, "hooks": []}
                for p in installed_plugins().values()]
        note = f"config not loaded ({exc}); showing installed plugins only"
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows, ("name", "distribution", "version", "enabled", "order", "hooks"))
    if note:
        print(f"genro-asgi: warning: {note}", file=sys.stderr)
    return 0


def route_rows(server: AsgiServer) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path, route in server.compile_route_table().items():
        kind = "route" if path == route.path else f"index of {route.path}"
        rows.append({"path": path, "methods": route.allow, "kind": kind,
                     "media_type": route.media_type})
    for prefix, app in server._asgi_mounts:
        rows.append({"path": prefix, "methods": ["*"], "kind": type(app).__name__,
                     "media_type": None})
    return sorted(rows, key=lambda r: r["path"])


def cmd_routes(args: argparse.Namespace) -> int:
    rows = route_rows(load_server(args))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows, ("path", "methods", "kind"))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    dump = load_server(args).dump_config()
    print(json.dumps(dump, indent=2) if args.json else yaml.safe_dump(dump, sort_keys=False),
          end="\n" if args.json else "")
    return 0


def cmd_hash_password(args: argparse.Namespace) -> int:
    if args.stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("genro-asgi: error: the passwords differ", file=sys.stderr)
            return 2
    if not password:
        print("genro-asgi: error: empty password", file=sys.stderr)
        return 2
    try:
        print(hash_password(password, args.iterations))
    except ValueError as exc:
        print(f"genro-asgi: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    def text(value: Any) -> str:
        if isinstance(value, list):
            return ",".join(map(str, value)) or "-"
        return "-" if value is None else str(value)

    cells = [[text(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def run_plugin_command(argv: list[str]) -> int:
    """``genro-asgi NAME [DIR] ...``: a subcommand from an enabled plugin's hook."""
    name, rest = argv[0], argv[1:]
    if rest and not rest[0].startswith("-") and Path(rest[0]).is_dir():
        rest = ["--dir", rest[0], *rest[1:]]  # DIR given positionally, as for built-ins
    locator = argparse.ArgumentParser(add_help=False)
    locator.add_argument("--dir", default=".")
    locator.add_argument("--config")
    located, remaining = locator.parse_known_args(rest)
    server = AsgiServer(importable(located.dir), located.config)
    commands = {c.name: c for batch in server.plugins.call_sync("genro_asgi_cli_commands",
                                                                  server=server) for c in batch}
    if name == "help-plugins":
        for command in commands.values():
            print(f"{command.name:<20} {command.help}")
        return 0
    if name not in commands:
        known = ", ".join([*BUILTIN_COMMANDS, *commands]) or "none"
        print(f"genro-asgi: error: unknown command {name!r} (commands: {known})", file=sys.stderr)
        return 2
    command = commands[name]
    parser = argparse.ArgumentParser(prog=f"genro-asgi {name}", description=command.help)
    parser.add_argument("--dir", default=".", help="server directory (default: .)")
    parser.add_argument("--config", help="config file (default: DIR/config.yaml)")
    command.configure(parser)
    args = parser.parse_args(remaining + ["--dir", located.dir]
                             + (["--config", located.config] if located.config else []))
    args.server = server
    return int(command.run(args) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        if args_list and not args_list[0].startswith("-") and args_list[0] not in BUILTIN_COMMANDS:
            return run_plugin_command(args_list)
        parser = build_parser()
        args = parser.parse_args(args_list)
        if args.command is None:
            parser.print_help()
            return 2
        handler = {"serve": cmd_serve, "plugins": cmd_plugins, "routes": cmd_routes,
                   "config": cmd_config, "hash-password": cmd_hash_password}[args.command]
        return handler(args)
    except GenroAsgiError as exc:
        print(f"genro-asgi: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and friends
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
