"""The ``genro-asgi-debug`` command (also ``genro-asgi debug`` when the plugin is enabled).

``incidents`` lists parked failing requests of every worker, ``requests`` the in-flight ones,
``attach [ID]`` opens the post-mortem pdb of an incident: the terminal's lines go to the
server's pdb and its output comes back, until ``c``/``q``, end of input or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from genro_asgi.terminal import print_table, printable

from .client import DebugClient, DebugClientError, worker_addresses
from .config import DebugConfig
from .sockets import default_socket_dir

DEFAULT_SECRET_ENV = "GENRO_ASGI_DEBUG_SECRET"
POLL = 0.2  # seconds between looks for an incident with attach --wait
PDB_PROMPT = "(Pdb) "  # what pdb prints when it waits for the next command


class CliError(Exception):
    """Reported as ``genro-asgi-debug: error: ...`` with status 1."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("where the server listens (default: every worker socket)")
    where.add_argument("--socket", help="one listener: a socket path, unix:PATH or tcp:HOST:PORT")
    where.add_argument("--socket-dir", help="directory of the worker sockets")
    where.add_argument("--port", type=int, help="a TCP listener on --host (default 127.0.0.1)")
    where.add_argument("--host", default="127.0.0.1")
    secret = parser.add_argument_group("the shared secret (never on the command line)")
    secret.add_argument("--secret-env", metavar="VAR",
                        help=f"read it from this environment variable "
                             f"(default {DEFAULT_SECRET_ENV})")
    secret.add_argument("--secret-file", metavar="PATH", help="read it from this file")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for each server answer (default 10)")
    parser.add_argument("action", choices=("incidents", "requests", "attach"),
                        help="incidents: list parked failing requests; requests: list in-flight "
                             "requests; attach [ID]: open the pdb of a parked request")
    parser.add_argument("id", nargs="?", help="attach: the incident id (default: the oldest "
                                              "one without a debugger)")
    parser.add_argument("--json", action="store_true", help="incidents, requests: print JSON")
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="attach: wait up to SECONDS for an incident to appear")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genro-asgi-debug",
        description="Debug failing requests of a genro-asgi server with the debug plugin on.")
    add_arguments(parser)
    return parser


def read_secret(args: argparse.Namespace, config: DebugConfig | None) -> bytes:
    """The secret, read as the core reads the server's ``{$env}`` / ``{$file}`` references
    (a file stripped of surrounding whitespace, a variable taken as it is), so the same
    source gives both sides the same bytes."""
    if args.secret_file:
        try:
            return Path(args.secret_file).read_text(encoding="utf-8").strip().encode()
        except OSError as exc:
            raise CliError(f"cannot read the secret file {args.secret_file}: {exc.strerror}") \
                from None
    name = args.secret_env or DEFAULT_SECRET_ENV
    if name in os.environ:
        return os.environ[name].encode()
    if args.secret_env is None and config is not None and config.secret is not None:
        return config.secret.get_secret_value().encode()
    raise CliError(f"no secret: set {name} or pass --secret-file PATH")


def addresses(args: argparse.Namespace, config: DebugConfig | None,
              server_dir: Path | None) -> list[str]:
    if args.socket:
        return [args.socket if args.socket.startswith(("unix:", "tcp:"))
                else f"unix:{args.socket}"]
    if args.port is not None:
        return [f"tcp:{args.host}:{args.port}"]
    if args.socket_dir is None and config is not None and config.port is not None:
        return [f"tcp:{config.host}:{config.port}"]
    if args.socket_dir:
        directory = Path(args.socket_dir)
    elif config is not None and config.socket_dir:
        directory = Path(config.socket_dir)
        if not directory.is_absolute() and server_dir is not None:
            directory = server_dir / directory
    else:
        directory = default_socket_dir()
    found = worker_addresses(directory)
    if not found:
        raise CliError(f"no debug socket in {directory}: is the server running with the debug "
                       "plugin enabled? (or pass --socket / --socket-dir / --port)")
    return found


def each_worker(targets: Sequence[str], secret: bytes, timeout: float,
                action: Callable[[DebugClient], Any], err: TextIO) -> list[tuple[str, Any]]:
    """``action`` on every reachable worker; unreachable ones are reported and skipped."""
    results = []
    for address in targets:
        try:
            with DebugClient(address, secret, timeout=timeout) as client:
                results.append((str(client.info.get("pid", address)), action(client)))
        except (OSError, DebugClientError) as exc:
            print(f"genro-asgi-debug: warning: {address}: {exc}", file=err)
    return results




def cmd_list(args: argparse.Namespace, targets: list[str], secret: bytes, out: TextIO,
             err: TextIO) -> int:
    if args.action == "incidents":
        found = each_worker(targets, secret, args.timeout, DebugClient.incidents, err)
        rows = [{"pid": pid, **incident} for pid, items in found for incident in items]
        if args.json:
            print(json.dumps(rows, indent=2), file=out)
            return 0
        table = [{"pid": r["pid"], "id": r["id"], "age": f"{r['age']:.1f}s",
                  "method": r["request"]["method"], "path": r["request"]["path"],
                  "exception": f"{r['exception']['type']}: {r['exception']['message']}"[:80],
                  "attached": r["attached_by"]} for r in rows]
        print_table(table, ("pid", "id", "age", "method", "path", "exception", "attached"), out)
    else:
        found = each_worker(targets, secret, args.timeout, DebugClient.requests, err)
        rows = [{"pid": pid, **request} for pid, items in found for request in items]
        if args.json:
            print(json.dumps(rows, indent=2), file=out)
            return 0
        for row in rows:
            row["age"] = f"{row['age']:.1f}s"
        print_table(rows, ("pid", "id", "method", "path", "age", "client", "incident"), out)
    return 0 if found or not targets else 1


def find_incident(targets: list[str], secret: bytes, args: argparse.Namespace,
                  err: TextIO) -> str:
    """The address of the worker holding incident ``args.id`` (or the oldest free one)."""
    deadline = time.monotonic() + max(args.wait, 0.0)
    while True:
        candidates = []
        for address in targets:
            try:
                with DebugClient(address, secret, timeout=args.timeout) as client:
                    for incident in client.incidents():
                        wanted = (incident["attached_by"] is None if args.id is None
                                  else incident["id"] == args.id)
                        if wanted:
                            candidates.append((incident["parked_at"], address))
            except (OSError, DebugClientError) as exc:
                print(f"genro-asgi-debug: warning: {address}: {exc}", file=err)
        if candidates:
            return min(candidates)[1]
        if time.monotonic() >= deadline:
            what = f"incident {args.id!r}" if args.id else "parked incident waiting for a debugger"
            raise CliError(f"no {what}")
        time.sleep(POLL)


def _line_reader(stdin: TextIO) -> Callable[[], str]:
    if stdin.isatty():
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())

        def read() -> str:
            try:
                return input() + "\n"
            except EOFError:
                return ""

        return read
    return stdin.readline


def interact(client: DebugClient, stdin: TextIO, out: TextIO, err: TextIO) -> int:
    """Bridge the terminal to the attached pdb until the server says it is over.

    Ctrl-C while pdb runs a command (a line sent, no prompt back yet) interrupts that command,
    as in a local pdb; at the prompt it detaches, releasing the request.
    """
    read_line = _line_reader(stdin)
    # pdb prompts once on attach and once after each line: fewer prompts than lines + 1 means
    # it is still working on one (lines can be sent ahead of the prompts, e.g. pasted)
    lines_sent = [0]

    def pump() -> None:
        try:
            while line := read_line():
                lines_sent[0] += 1
                client.send_input(line)
            client.send_input("", eof=True)  # end of input: pdb reads EOF and quits
        except (OSError, DebugClientError):
            pass

    threading.Thread(target=pump, name="genro-asgi-debug-stdin", daemon=True).start()
    interrupted = False
    prompts = 0
    tail = ""  # the end of the output so far: a prompt may be split across two frames
    while True:
        try:
            message = client.receive()
        except TimeoutError:
            continue
        except KeyboardInterrupt:
            if prompts <= lines_sent[0]:
                client.interrupt()
            else:
                interrupted = True
                client.detach()
            continue
        if message is None:
            print("\ngenro-asgi-debug: the server closed the connection", file=err)
            return 1
        if message["type"] == "output":
            data = str(message.get("data", ""))
            tail = (tail + data)[-len(PDB_PROMPT):]
            if data and tail == PDB_PROMPT:
                prompts += 1
            out.write(data)
            out.flush()
        elif message["type"] == "detached":
            print(f"\n[detached from {printable(message.get('incident'))}: "
                  f"{printable(message.get('reason'))}]", file=err)
            return 130 if interrupted else 0
        elif message["type"] == "error":
            print(f"genro-asgi-debug: {printable(message.get('error'))}", file=err)


def cmd_attach(args: argparse.Namespace, targets: list[str], secret: bytes, stdin: TextIO,
               out: TextIO, err: TextIO) -> int:
    address = find_incident(targets, secret, args, err)
    with DebugClient(address, secret, timeout=args.timeout) as client:
        incident = client.attach(args.id)
        request, exception = incident["request"], incident["exception"]
        print(printable(f"[attached to incident {incident['id']} on pid {client.info.get('pid')}: "
                        f"{request['method']} {request['path']} -> {exception['type']}: "
                        f"{exception['message']}]"), file=err)
        print("[c or q releases the request with its normal error response]", file=err)
        return interact(client, stdin, out, err)


def run_command(args: argparse.Namespace, config: DebugConfig | None = None, *,
                stdin: TextIO | None = None, out: TextIO | None = None,
                err: TextIO | None = None) -> int:
    stdin, out, err = stdin or sys.stdin, out or sys.stdout, err or sys.stderr
    server = getattr(args, "server", None)
    try:
        if args.id is not None and args.action != "attach":
            raise CliError(f"{args.action} takes no incident id")
        secret = read_secret(args, config)
        targets = addresses(args, config, server.server_dir if server is not None else None)
        if args.action == "attach":
            return cmd_attach(args, targets, secret, stdin, out, err)
        return cmd_list(args, targets, secret, out, err)
    except (CliError, DebugClientError) as exc:
        print(f"genro-asgi-debug: error: {exc}", file=err)
        return 1
    except OSError as exc:
        print(f"genro-asgi-debug: error: {exc}", file=err)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run_command(args)
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
