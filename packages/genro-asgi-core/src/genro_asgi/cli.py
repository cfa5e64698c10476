"""The ``genro-asgi`` command: serve, plugins, routes, config, hash-password, new-plugin, plugin
commands."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

from .builtin.auth.passwords import DEFAULT_ITERATIONS, hash_password
from .config import load_yaml
from .exceptions import ConfigError, GenroAsgiError
from .plugins.manager import installed_plugins
from .server import AsgiServer
from .terminal import print_table

BUILTIN_COMMANDS = ("serve", "plugins", "routes", "config", "hash-password", "new-plugin")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
PLACEHOLDER_SECRET = "genro-asgi-routes-placeholder-secret-not-read-0123456789abcdef"


def versions() -> list[tuple[str, str]]:
    """(distribution, version) of the core and of every distribution with a plugin entry point."""
    found = {"genro-asgi-core": _version_of("genro-asgi-core")}
    for plugin in installed_plugins().values():
        if plugin.distribution:
            found.setdefault(plugin.distribution, plugin.version or "unknown")
    return sorted(found.items())


def _version_of(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def version_text() -> str:
    return "\n".join(f"{name} {ver}" for name, ver in versions())


class VersionAction(argparse.Action):
    """``--version``: reads the installed distributions only when asked (not on every run)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        print(version_text())
        parser.exit()


def _add_location(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", nargs="?", default=".", help="server directory (default: .)")
    parser.add_argument("--config", help="config file (default: DIR/config.yaml)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genro-asgi", description="genro-asgi server tools",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=VersionAction,
                        help="print the version of genro-asgi-core and of every installed "
                             "plugin distribution, then exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser("serve", help="serve the app in DIR with uvicorn")
    _add_location(serve)
    serve.add_argument("--host", help="bind to this address (server.host; default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="bind to this TCP port (server.port; default 8000)")
    serve.add_argument("--workers", type=int,
                       help="number of worker processes (server.workers; default 1)")
    serve.add_argument("--reload", action="store_true", default=None,
                       help="restart when files in DIR change (server.reload; default off)")
    serve.add_argument("--log-level", choices=LOG_LEVELS, type=str.lower,
                       help="log level (logging.level; default info)")
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
    new_plugin = sub.add_parser("new-plugin", help="create a plugin package to start from")
    new_plugin.add_argument("name", help="the plugin's name (its config key), e.g. audit")
    new_plugin.add_argument("--into", default=".",
                            help="directory to create genro-asgi-NAME in (default: .)")
    parser.epilog = "Run 'genro-asgi help-plugins [DIR]' to list the commands plugins add."
    return parser


def plugin_commands_epilog(server_dir: str = ".") -> str:
    """The help's closing lines: the commands the plugins enabled in ``server_dir`` add."""
    tail = "Run 'genro-asgi help-plugins [DIR]' to list the commands of another server."
    try:
        commands = plugin_commands(AsgiServer(importable(server_dir)))
    except Exception as exc:  # a help page must not fail for a broken config
        return (f"plugin commands: not listed (config of {server_dir!r} not loaded: "
                f"{str(exc)[:200]})\n{tail}")
    if not commands:
        return (f"plugin commands: none (no plugin enabled in {server_dir!r} adds commands)"
                f"\n{tail}")
    lines = "\n".join(f"  {c.name:<20} {c.help}" for c in commands.values())
    return f"plugin commands (from the config in {server_dir!r}):\n{lines}\n{tail}"


def plugin_commands(server: AsgiServer) -> dict[str, Any]:
    return {c.name: c for batch in server.plugins.call_sync("genro_asgi_cli_commands",
                                                            server=server) for c in batch}


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
    cli: dict[str, Any] = {"server": server_flags} if server_flags else {}
    if args.log_level:
        cli["logging"] = {"level": args.log_level.upper()}
    server = load_server(args, cli or None)
    server.run()
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    try:  # nothing secret is read: a missing secret file must not hide what is enabled
        rows = load_server_without_secrets(args).plugins.describe()
        note = None
    except GenroAsgiError as exc:
        rows = [{"name": p.name, "distribution": p.distribution, "version": p.version,
                 "source": f"entry point {p.value}", "enabled": None, "order": None, "hooks": []}
                for p in installed_plugins().values()]
        note = f"config not loaded ({exc}); showing installed plugins only"
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(rows, ("name", "distribution", "version", "enabled", "order", "hooks"))
    if note:
        print(f"genro-asgi: warning: {note}", file=sys.stderr)
    return 0


def route_rows(server: AsgiServer) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path, route in server.compile_route_table().items():
        index = path != route.path
        kind = f"index of {route.path}" if index else "route"
        params = [] if index or path == "/" else path_parameters(route)
        if route.subpaths:  # the handler serves these trailing paths, each its own methods
            for template, methods in route.subpaths.items():
                url = f"{path.rstrip('/')}/{template}" if template else path
                rows.append({"path": url, "methods": methods, "kind": kind,
                             "auth": route.auth_rule, "media_type": route.media_type,
                             "path_params": re.findall(r"\{(\w+)\}", template)})
            continue
        url = path + "".join(f"/{{{name}}}" for name in params)
        rows.append({"path": url, "methods": route.allow, "kind": kind,
                     "auth": route.auth_rule, "media_type": route.media_type,
                     "path_params": params})
    for prefix, app in server._asgi_mounts:
        rows.append({"path": prefix, "methods": ["*"], "kind": type(app).__name__,
                     "auth": None, "media_type": None, "path_params": []})
    return sorted(rows, key=lambda r: r["path"])


def path_parameters(route: Any) -> list[str]:
    """Leading required, single-valued positional parameters: the trailing segments the route
    takes (``/shop/product/{pid}``), as the OpenAPI document shows them."""
    names: list[str] = []
    for param in route.binder.positional:
        if not param.required or param.multi or param.upload is not None:  # files: the body
            break
        names.append(param.name)
    return names


def without_secrets(tree: Any, environ: dict[str, str], path: tuple[str, ...] = ()) -> Any:
    """A copy of a config tree where every ``{$env}`` / ``{$file}`` reference points to a
    placeholder variable set in ``environ``: nothing secret is read."""
    if isinstance(tree, Mapping):
        if len(tree) == 1 and next(iter(tree)) in ("$env", "$file"):
            name = "GENRO_CLI_SECRET_PLACEHOLDER_" + "_".join(path).upper().replace("-", "_")
            environ[name] = PLACEHOLDER_SECRET
            return {"$env": name}
        return {k: without_secrets(v, environ, (*path, str(k))) for k, v in tree.items()}
    if isinstance(tree, list):
        return [without_secrets(v, environ, (*path, str(i))) for i, v in enumerate(tree)]
    return tree


def load_server_without_secrets(args: argparse.Namespace) -> AsgiServer:
    """The server with placeholders for its secrets; if a plugin refuses a placeholder (a
    password hash must be one), the server as configured."""
    server_dir = importable(args.dir)
    path = Path(args.config) if args.config else Path(server_dir) / "config.yaml"
    if not path.is_absolute():
        path = Path(server_dir) / path
    if args.config and not path.exists():
        raise ConfigError(f"{path}: config file not found")
    environ = dict(os.environ)
    tree = without_secrets(load_yaml(path), environ)
    try:
        return AsgiServer(server_dir, tree, environ=environ)
    except GenroAsgiError:
        return load_server(args)


def cmd_routes(args: argparse.Namespace) -> int:
    rows = route_rows(load_server_without_secrets(args))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(rows, ("path", "methods", "auth", "kind"))
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


def cmd_new_plugin(args: argparse.Namespace) -> int:
    from .scaffold import create_plugin

    target = create_plugin(args.name, Path(args.into))
    print(f"created {target}")
    print(f"next: pip install -e {target} && python -m pytest {target / 'tests'}")
    return 0


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
    commands = plugin_commands(server)
    if name == "help-plugins":
        if not commands:
            print(f"no plugin enabled in {located.dir!r} adds commands "
                  f"(enabled: {', '.join(server.plugins.loaded) or 'none'})")
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
    try:
        return int(command.run(args) or 0)
    except GenroAsgiError as exc:
        print(f"genro-asgi {name}: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:  # a plugin's own failure, said without a traceback
        print(f"genro-asgi {name}: error: {exc}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        if args_list and not args_list[0].startswith("-") and args_list[0] not in BUILTIN_COMMANDS:
            return run_plugin_command(args_list)
        parser = build_parser()
        if not args_list or args_list[0] in ("-h", "--help"):
            parser.epilog = plugin_commands_epilog()  # only then: it builds the server in .
        args = parser.parse_args(args_list)
        if args.command is None:
            parser.print_help()
            return 2
        handler = {"serve": cmd_serve, "plugins": cmd_plugins, "routes": cmd_routes,
                   "config": cmd_config, "hash-password": cmd_hash_password,
                   "new-plugin": cmd_new_plugin}[args.command]
        return handler(args)
    except GenroAsgiError as exc:
        print(f"genro-asgi: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and friends
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
