"""``genro-asgi spa users|pages|tree`` as a real process against a real uvicorn serving the
same directory's config: the listings, the credential (an environment variable or a file,
never printed), and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml
from spa_helpers import TOKENS
from websockets.sync.client import ClientConnection, connect

from genro_asgi import AsgiServer
from genro_asgi.testing import LiveServer, free_port

pytestmark = pytest.mark.e2e
TIMEOUT = 30.0  # a guard against a hang, never an assertion about speed


def write_site(directory: Path, port: int) -> None:
    config = {"server": {"host": "127.0.0.1", "port": port}, "plugins": {
        "auth": {"bearer": {user: {"token": TOKENS[user], "tags": [tag]}
                            for user, tag in (("alice", "user"), ("root", "admin"))}},
        "wsx": {"heartbeat_interval": 0},
        "spa": {"cookie_secret": "test-secret-0123456789", "inspect_auth": "admin"}}}
    (directory / "config.yaml").write_text(yaml.safe_dump(config))


def cli(directory: Path, *args: str, token: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GENRO_ASGI")}
    if token is not None:
        environ["GENRO_ASGI_SPA_TOKEN"] = token
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "genro_asgi", "spa", str(directory), *args],
                          capture_output=True, text=True, env=environ, timeout=TIMEOUT,
                          check=False)


def register(stack: ExitStack, live: LiveServer, title: str, cookie: str | None = None
             ) -> dict[str, Any]:
    headers = [("Authorization", f"Bearer {TOKENS['alice']}")]
    if cookie:
        headers.append(("Cookie", f"spa_connection_id={cookie}"))
    ws: ClientConnection = stack.enter_context(connect(
        live.ws_url + "/_wsx", subprotocols=["wsx"],  # type: ignore[list-item]
        additional_headers=headers, open_timeout=TIMEOUT))
    ws.send("WSX://" + json.dumps({"id": 1, "path": "/_spa/register",
                                   "data": {"info": {"title": title}}}))
    frame = json.loads(str(ws.recv(timeout=TIMEOUT))[6:])
    assert frame["status"] == 200, frame
    return json.loads(frame["data"])  # type: ignore[no-any-return]


def test_the_command_against_a_running_server(tmp_path: Path) -> None:
    port = free_port()
    write_site(tmp_path, port)
    server = AsgiServer(tmp_path, environ={})
    with LiveServer(server, port=port) as live, ExitStack() as stack:
        page = register(stack, live, "orders")
        other = register(stack, live, "stock\x1b[31m", page["connection_token"])
        # the URL from the config (server.host, server.port), the token from the env
        users = cli(tmp_path, "users", token=TOKENS["root"])
        assert users.returncode == 0, users.stderr
        lines = users.stdout.splitlines()
        assert lines[0].split() == ["USER", "ONLINE", "PAGES", "HOME", "SEEN"]
        assert lines[1].split()[:3] == ["alice", "yes", "2"]

        pages = cli(tmp_path, "pages", "--user", "alice", "--json", token=TOKENS["root"])
        assert pages.returncode == 0, pages.stderr
        answer = json.loads(pages.stdout)
        assert [p["page_id"] for p in answer["pages"]] == [page["page_id"],
                                                            other["page_id"]]
        table = cli(tmp_path, "pages", token=TOKENS["root"])
        # a title from the browser cannot drive the operator's terminal
        assert "stock\\x1b[31m" in table.stdout and "\x1b" not in table.stdout

        token_file = tmp_path / "token"
        token_file.write_text(TOKENS["root"] + "\n")
        tree = cli(tmp_path, "tree", "--url", live.url, "--token-file", str(token_file))
        assert tree.returncode == 0, tree.stderr
        text = tree.stdout
        assert text.startswith("user alice (online, home ")
        assert f"connection {page['connection_id']}" in text
        assert f"page {page['page_id']} (live" in text and "'orders'" in text
        assert text.count("  session ") == 2

        # refusals: no token, a token without the rule; never the token in the output
        missing = cli(tmp_path, "users")
        assert missing.returncode == 1
        assert missing.stderr.startswith("genro-asgi spa: error: ")
        assert ": 401 " in missing.stderr and "GENRO_ASGI_SPA_TOKEN" in missing.stderr
        weak = cli(tmp_path, "users", token=TOKENS["alice"])
        assert weak.returncode == 1 and ": 403 " in weak.stderr
        assert "inspect_auth" in weak.stderr
        for run in (users, pages, tree, missing, weak):
            assert TOKENS["root"] not in run.stdout + run.stderr
            assert TOKENS["alice"] not in run.stdout + run.stderr

    # the server is gone: a clear error, no traceback
    gone = cli(tmp_path, "users", token=TOKENS["root"])
    assert gone.returncode == 1 and gone.stderr.startswith("genro-asgi spa: error: cannot reach")
    assert "Traceback" not in gone.stderr


def test_bad_arguments(tmp_path: Path) -> None:
    write_site(tmp_path, free_port())
    cases = [
        (["users", "--user", "alice"], "users takes no --user"),
        (["users", "--url", "ftp://x"], "--url must be an http(s) URL"),
        (["users", "--timeout", "0"], "--timeout must be more than 0"),
        (["users", "--token-file", str(tmp_path / "nope")], "cannot read the token file"),
        (["users", "--token-env", "GENRO_TEST_NO_SUCH_VARIABLE"],
         "GENRO_TEST_NO_SUCH_VARIABLE is not set"),
    ]
    for args, message in cases:
        run = cli(tmp_path, *args)
        assert run.returncode == 1, (args, run.stderr)
        assert run.stderr.startswith("genro-asgi spa: error: ") and message in run.stderr, args
    usage = cli(tmp_path, "everything")
    assert usage.returncode == 2 and "genro-asgi spa: error: argument what" in usage.stderr
    listed = subprocess.run([sys.executable, "-m", "genro_asgi", "help-plugins", str(tmp_path)],
                            capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert listed.stdout.startswith("spa ") and "users|pages|tree" in listed.stdout


def test_refusal_messages() -> None:
    from genro_asgi_spa.cli import refusal

    off = refusal("http://h/_spa/inspect/users", 404,
                  "spa inspection is off: set plugins.spa.inspect_auth (a tag rule) or "
                  "plugins.spa.inspect_token")
    assert off.endswith("or plugins.spa.inspect_token")  # the server said why: no guess
    elsewhere = refusal("http://h/_spa/inspect/users", 404, "no route for '/_spa/inspect'")
    assert elsewhere.endswith("(is this a server with the spa plugin on, and its URL (--url)?)")
    assert refusal("http://h/x", 500, "boom\x1b[2J") == "http://h/x: 500 boom\\x1b[2J"
