"""A flood of anonymous visitors over a real uvicorn (the ``websockets`` client, WSX): it fills
``max_anonymous_users`` and is refused (503 ``spa_anonymous_full``, ``retry_after``) while a
signed-in user registers and works; once its leftovers expire (``anonymous_ttl``, the real
sweeper on an injected clock) the places are free again."""

from __future__ import annotations

from pathlib import Path

from spa_helpers import Clock, make_server
from test_spa_e2e import LivePage, wait_for

from genro_asgi.testing import LiveServer
from genro_asgi_spa import MemoryBackend, spa_of


def test_an_anonymous_flood_fills_its_places_and_never_locks_out_a_user(
        tmp_path: Path) -> None:
    server = make_server(tmp_path, anonymous=True, spa={
        "allow_anonymous": True, "max_anonymous_users": 5, "anonymous_retry_after": 9,
        "sweep_interval": 0.02})
    clock = Clock()
    spa = spa_of(server)
    spa.clock = clock
    backend = spa.backend
    assert isinstance(backend, MemoryBackend)
    with LiveServer(server) as live:
        for _ in range(5):  # visitors that store at every level and leave
            visitor = LivePage(live)
            visitor.ok("register")
            for level in ("user", "connection", "session", "page"):
                visitor.ok("set", level=level, path="blob", value="x" * 1000)
            visitor.close()
        refusals = []
        for _ in range(20):  # the flood: each one a new anonymous user
            visitor = LivePage(live)
            frame = visitor.call("register")
            refusals.append((frame["status"], frame["error"]["message"].split(":")[0],
                             frame["error"].get("retry_after")))
            visitor.close()
        assert refusals == [(503, "spa_anonymous_full", 9)] * 20
        assert len(backend._anonymous) == 5
        # a signed-in user is not counted: it registers, stores, hears its own changes
        alice = LivePage(live, "alice")
        alice.ok("register")
        alice.ok("subscribe", level="user", path="k")
        alice.ok("set", level="user", path="k", value=1)
        assert alice.event()["value"] == 1
        # time passes for the sweeper (the real task, every 20 ms): grace, user_ttl, then
        # anonymous_ttl; every visitor's records and data go, alice's live page stays
        wait_for(lambda: (clock.advance(60), not backend._anonymous)[1])
        assert {u.user_id for u in list(backend._records["user"].values())} == {"alice"}
        alices = {"alice", *[r.key for kind in ("connection", "session", "page")
                             for r in list(backend._records[kind].values())]}
        assert {owner for _, owner in list(backend._trees)} == {"alice"} and len(alices) == 4
        newcomer = LivePage(live)
        assert newcomer.ok("register")["user_id"].startswith("anon:")
        newcomer.close()
        assert alice.ok("get", level="user", path="k") == 1
        alice.close()
