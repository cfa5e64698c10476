"""The inspection routes (``/_spa/inspect/users|pages|tree``) in process: the auth rule, the
token, bounded answers and bad input."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from spa_helpers import TOKENS, Page, headers, make_server

from genro_asgi import AsgiServer
from genro_asgi.testing import AsyncTestClient

INSPECT_TOKEN = "inspect-secret-0123456789"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def open_pages(stack: AsyncExitStack, client: AsyncTestClient,
                     users: list[str], *, token: bool = True) -> list[Page]:
    """One registered page per name in ``users`` (a second one of a user shares its cookie)."""
    pages: list[Page] = []
    cookies: dict[str, str] = {}
    for user in users:
        ws = await stack.enter_async_context(client.websocket_connect(
            "/_wsx", headers=headers(user if token else None, cookies.get(user))))
        page = Page(ws)
        info = await page.register(info={"title": f"{user} page"})
        cookies.setdefault(user, info.get("connection_token", ""))
        pages.append(page)
    return pages


async def test_the_auth_rule(tmp_path: Path) -> None:
    server = make_server(tmp_path, {"inspect_auth": "admin"})
    async with AsyncTestClient(server) as client, AsyncExitStack() as stack:
        await open_pages(stack, client, ["alice", "alice", "bob"])
        anonymous = await client.get("/_spa/inspect/users")
        assert anonymous.status_code == 401  # the auth plugin: no credential
        for what in ("users", "pages", "tree"):
            forbidden = await client.get(f"/_spa/inspect/{what}",
                                         headers=bearer(TOKENS["alice"]))
            assert forbidden.status_code == 403, what
            assert "inspect_auth" in forbidden.json()["error"]["message"]
        answer = (await client.get("/_spa/inspect/users", headers=bearer(TOKENS["root"]))).json()
        assert [(u["user_id"], u["pages"], u["online"]) for u in answer["users"]] == [
            ("alice", 2, True), ("bob", 1, True)]
        assert answer["total"] == 2 and answer["truncated"] is False
        assert {u["process_id"] for u in answer["users"]} == {
            server.plugins.get("spa").manager.process_id}
        pages = (await client.get("/_spa/inspect/pages?user=alice",
                                  headers=bearer(TOKENS["root"]))).json()
        assert [p["user_id"] for p in pages["pages"]] == ["alice", "alice"]
        assert {p["state"] for p in pages["pages"]} == {"live"}
        assert pages["pages"][0]["info"] == {"title": "alice page"}


async def test_off_unless_configured(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    async with AsyncTestClient(server) as client:
        answer = await client.get("/_spa/inspect/users", headers=bearer(TOKENS["root"]))
        assert answer.status_code == 404
        assert "inspection is off" in answer.json()["error"]["message"]


async def test_a_token_without_the_auth_plugin(tmp_path: Path) -> None:
    server = make_server(tmp_path, {"inspect_token": INSPECT_TOKEN, "allow_anonymous": True},
                         auth=False)
    async with AsyncTestClient(server) as client, AsyncExitStack() as stack:
        await open_pages(stack, client, ["alice"], token=False)
        assert (await client.get("/_spa/inspect/users")).status_code == 401
        wrong = await client.get("/_spa/inspect/users", headers=bearer(INSPECT_TOKEN + "x"))
        assert wrong.status_code == 401
        assert wrong.headers["www-authenticate"] == 'Bearer realm="spa-inspect"'
        right = await client.get("/_spa/inspect/users", headers=bearer(INSPECT_TOKEN))
        assert right.status_code == 200
        [user] = right.json()["users"]
        assert user["user_id"].startswith("anon:") and user["anonymous"] is True


async def test_bad_input_is_a_400(tmp_path: Path) -> None:
    server = make_server(tmp_path, {"inspect_auth": "admin"})
    async with AsyncTestClient(server) as client:
        root = bearer(TOKENS["root"])
        for url in ("/_spa/inspect/pages?user=", "/_spa/inspect/tree?user=" + "u" * 257,
                    "/_spa/inspect/users?online=maybe", "/_spa/inspect/tree?data=perhaps"):
            answer = await client.get(url, headers=root)
            assert answer.status_code == 400, (url, answer.text)
        assert (await client.post("/_spa/inspect/users", headers=root)).status_code == 405
        assert (await client.get("/_spa/inspect/nope", headers=root)).status_code == 404


async def test_the_tree_and_its_bounds(tmp_path: Path) -> None:
    server = make_server(tmp_path, {"inspect_auth": "admin", "inspect_max_rows": 5,
                                    "inspect_max_bytes": 1024})
    async with AsyncTestClient(server) as client, AsyncExitStack() as stack:
        alice, _alice2, bob = await open_pages(stack, client, ["alice", "alice", "bob"])
        await alice.ok("set", level="user", path="prefs.theme", value="dark")
        await alice.ok("set", level="page", path="draft", value="x" * 2000)
        await bob.ok("set", level="session", path="cart", value=[1, 2])
        root = bearer(TOKENS["root"])
        tree = (await client.get("/_spa/inspect/tree?user=alice&data=true",
                                 headers=root)).json()
        [user] = tree["users"]
        assert user["user_id"] == "alice" and user["data"] == {"prefs": {"theme": "dark"}}
        assert user["data_bytes"] > 0
        [connection] = user["connections"]  # the second page came with the first's cookie
        sessions = connection["sessions"]
        assert len(sessions) == 2
        first_page = sessions[0]["pages"][0]
        assert first_page["page_id"] == alice.info["page_id"]
        # the page's 2000-byte draft is past inspect_max_bytes: said, not sent
        assert first_page["data"] is None and first_page["data_omitted"] is True
        assert first_page["data_bytes"] > 2000 and tree["data_omitted"] is True
        # 5 rows: user, connection, session, page, session; the second page is cut
        assert tree["truncated"] is True and sessions[1]["pages"] == []
        everyone = (await client.get("/_spa/inspect/tree", headers=root)).json()
        assert [u["user_id"] for u in everyone["users"]] == ["alice"]
        assert everyone["truncated"] is True
        assert "data" not in everyone["users"][0]
        pages = (await client.get("/_spa/inspect/pages", headers=root)).json()
        assert pages["total"] == 3 and len(pages["pages"]) == 3 and not pages["truncated"]


@pytest.mark.parametrize("rows", [1, 2])
async def test_lists_are_cut_at_max_rows(tmp_path: Path, rows: int) -> None:
    server: AsgiServer = make_server(tmp_path, {"inspect_auth": "admin",
                                                "inspect_max_rows": rows})
    async with AsyncTestClient(server) as client, AsyncExitStack() as stack:
        await open_pages(stack, client, ["alice", "bob", "root"])
        root = bearer(TOKENS["root"])
        users: dict[str, Any] = (await client.get("/_spa/inspect/users", headers=root)).json()
        assert len(users["users"]) == rows and users["total"] == 3 and users["truncated"]
        pages: dict[str, Any] = (await client.get("/_spa/inspect/pages", headers=root)).json()
        assert len(pages["pages"]) == rows and pages["total"] == 3 and pages["truncated"]
