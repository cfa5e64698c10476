"""Units: the data tree and its byte count, the memory backend, records, backend selection."""

from __future__ import annotations

import datetime
import random
import sys
import types
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from spa_helpers import make_server

from genro_asgi import AsgiServer, PluginError
from genro_asgi_spa import (
    DataLimitExceeded,
    MemoryBackend,
    PageRecord,
    SessionRecord,
    UserRecord,
    record_from_dict,
    spa_of,
)
from genro_asgi_spa.backend import ConnectionRecord, Delivery, to_dict
from genro_asgi_spa.tree import DataTree, check_path, covers, measure


def test_paths() -> None:
    assert check_path("") is None and check_path("a.b-c.d_9") is None
    assert check_path("a" * 201) == "is longer than 200 characters"
    assert check_path(".".join("a" * 17)) == "is deeper than 16 levels"
    for bad in ("a..b", ".a", "a.", "a b", "é", "a.*", "a.>"):
        assert check_path(bad) is not None, bad
    assert check_path(3) == "must be a string"
    assert covers("", "a.b") and covers("a", "a.b") and covers("a.b", "a")
    assert covers("a.b", "a.b") and not covers("a.b", "a.c") and not covers("a", "ab")


def test_tree_get_set_delete() -> None:
    tree = DataTree()
    tree.set("prefs.theme", "dark", 1000)
    tree.set("prefs.day", datetime.date(2025, 1, 15), 1000)
    tree.set("price", Decimal("1.50"), 1000)
    assert tree.get("prefs") == {"theme": "dark", "day": datetime.date(2025, 1, 15)}
    assert tree.get("prefs.nope", "dflt") == "dflt" and tree.get("price.x") is None
    copy = tree.get("prefs")
    copy["theme"] = "changed"  # a copy: the tree is not changed through it
    assert tree.get("prefs.theme") == "dark"
    with pytest.raises(ValueError, match="holds a value"):
        tree.set("price.cents", 150, 1000)
    assert tree.delete("prefs.theme") and not tree.delete("prefs.theme")
    assert tree.delete("prefs.day") and tree.get("prefs") is None  # empty branches go
    assert tree.delete("") and tree.size == 0 and tree.get("") == {}
    tree.set("", {"a": {"b": 1}}, 1000)
    assert tree.get("a.b") == 1 and tree.size == measure(0, {"a": {"b": 1}})
    with pytest.raises(ValueError):
        tree.set("", [1], 1000)


def test_tree_size_is_exact_whatever_the_order_of_changes() -> None:
    rng = random.Random(17)
    tree = DataTree()
    paths = ["a", "a.b", "a.c", "a.b.x", "d", "d.e.f", "a.c.z"]
    values: list[Any] = [1, "xx", {}, {"k": 2}, {"k": {}}, [1, 2], None, Decimal("2.5")]
    for _ in range(3000):
        path = rng.choice(paths)
        try:
            if rng.random() < 0.6:
                tree.set(path, rng.choice(values), 10**9)
            else:
                tree.delete(path)
        except ValueError:
            pass
        assert tree.size == (measure(0, tree.root) if tree.root else 0)


def test_tree_limit_changes_nothing_when_passed() -> None:
    tree = DataTree()
    tree.set("a", "x" * 50, 100)
    with pytest.raises(DataLimitExceeded) as info:
        tree.set("b", "y" * 50, 100)
    assert info.value.limit == 100 and tree.get("b") is None
    assert tree.size == 1 + 52
    tree.set("a", "z" * 90, 100)  # replacing counts the old value out
    with pytest.raises(DataLimitExceeded):
        tree.set("a", "z" * 100, 100)
    assert tree.get("a") == "z" * 90


@pytest.mark.parametrize("value", [float("nan"), float("inf"), object(), {1: 2}, b"x",
                                   {"s": "\ud800"}])
def test_tree_refuses_values_it_cannot_store(value: Any) -> None:
    tree = DataTree()
    with pytest.raises(ValueError):
        tree.set("v", value, 10**6)
    assert tree.size == 0 and tree.get("") == {}


def test_records_round_trip_through_dicts() -> None:
    records = [UserRecord("alice", "p1", created_at=1.0),
               ConnectionRecord("c1", "alice", "p1"),
               SessionRecord("s1", "c1", "alice", "p1", "pg1"),
               PageRecord("pg1", "s1", "c1", "alice", "p1", info={"t": "x"})]
    for record in records:
        data = to_dict(record)
        assert data["kind"] == record.kind and data["process_id"] == "p1"
        assert record_from_dict(data) == record
    with pytest.raises(ValueError):
        record_from_dict({"kind": "nope"})
    with pytest.raises(ValueError):
        record_from_dict({"kind": "page", "page_id": "x"})


async def test_memory_backend_records_indexes_and_put_if() -> None:
    backend = MemoryBackend(process_id="me")
    other = PageRecord("p2", "s2", "c2", "bob", "elsewhere")
    page = PageRecord("p1", "s1", "c1", "alice", "me")
    for record in (page, other, SessionRecord("s1", "c1", "alice", "me", "p1"),
                   UserRecord("alice", "me"), UserRecord("bob", "elsewhere", online=False)):
        await backend.put(record)
    assert [p.page_id for p in await backend.pages(user_id="alice")] == ["p1"]
    assert await backend.pages(user_id="alice", session_id="s2") == []
    assert len(await backend.pages()) == 2
    assert [s.session_id for s in await backend.sessions(connection_id="c1")] == ["s1"]
    assert [u.user_id for u in await backend.users(online=True)] == ["alice"]
    assert [r.key for r in await backend.own("page")] == ["p1"]
    moved = PageRecord("p1", "s9", "c1", "alice", "me")
    assert await backend.put_if(moved, page)
    assert not await backend.put_if(page, page)  # the stored one changed meanwhile
    assert [p.page_id for p in await backend.pages(session_id="s9")] == ["p1"]
    assert await backend.pages(session_id="s1") == []
    await backend.delete("page", "p1")
    await backend.delete("page", "p1")  # unknown: no-op
    assert await backend.pages(user_id="alice") == []
    assert await backend.put_if(page, None)


async def test_memory_backend_data_and_delivery() -> None:
    backend = MemoryBackend()
    got: list[Delivery] = []
    await backend.start(got.append)
    assert await backend.data_set("user", "alice", "a.b", 1, 100) == len("a.b") + 1
    with pytest.raises(DataLimitExceeded):
        await backend.data_set("user", "bob", "x", "y" * 200, 100)
    assert await backend.data_size("user", "bob") == 0  # no empty tree kept
    assert await backend.data_get("user", "alice", "") == {"a": {"b": 1}}
    assert await backend.data_delete("user", "alice", "a.b")
    assert await backend.data_size("user", "alice") == 0
    await backend.publish(Delivery("all", None, "spa.message", 1))
    assert len(got) == 1 and got[0].id
    await backend.close()
    await backend.publish(Delivery("all", None, "spa.message", 2))
    assert len(got) == 1


class OptionBackend(MemoryBackend):
    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label
        self.bound: Any = None

    def bind(self, server: AsgiServer) -> None:
        self.bound = server


@pytest.fixture
def backend_module(monkeypatch: pytest.MonkeyPatch) -> str:
    module = types.ModuleType("spa_backend_mod")
    module.OptionBackend = OptionBackend  # type: ignore[attr-defined]
    module.NotABackend = dict  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "spa_backend_mod", module)
    return "spa_backend_mod"


def test_backend_from_config(tmp_path: Path, backend_module: str) -> None:
    server = make_server(tmp_path, {"backend": f"{backend_module}:OptionBackend",
                                    "backend_options": {"label": "x"}})
    backend = spa_of(server).backend
    assert isinstance(backend, OptionBackend) and backend.label == "x"
    assert backend.bound is server
    for spec, options, message in (
            (f"{backend_module}:NotABackend", {}, "not a genro_asgi_spa.SpaBackend"),
            (f"{backend_module}:Missing", {}, "cannot import"),
            ("nocolon", {}, "must be 'memory'"),
            (f"{backend_module}:OptionBackend", {"nope": 1}, "plugins.spa.backend_options"),
            ("memory", {"nope": 1}, "plugins.spa.backend_options")):
        with pytest.raises((PluginError, ValueError, Exception)) as info:
            make_server(tmp_path, {"backend": spec, "backend_options": options})
        assert message in str(info.value), (spec, str(info.value))


def test_config_is_checked(tmp_path: Path) -> None:
    for bad in ({"path": "/"}, {"grace_period": -1}, {"unknown": 1},
                {"cookie_name": "a b"}, {"max_pages_per_user": 0}):
        with pytest.raises(Exception) as info:
            make_server(tmp_path, bad)
        assert "plugins.spa" in str(info.value) or "spa" in str(info.value)
    with pytest.raises(Exception, match="needs the wsx plugin"):
        AsgiServer(tmp_path, environ={}, config={"plugins": {"spa": {}}})


def test_a_huge_value_is_measured_only_up_to_the_limit() -> None:
    """Measuring stops once the limit is passed: what comes after is never looked at (here a
    value that could not be stored at all), so a huge value costs what the limit allows."""
    huge: dict[str, Any] = {f"k{i}": i for i in range(100_000)}
    huge["zz"] = object()  # last: reached only by a measure that reads everything
    tree = DataTree()
    with pytest.raises(DataLimitExceeded) as info:
        tree.set("a", huge, 4096)
    assert info.value.partial and tree.size == 0 and tree.get("") == {}
    with pytest.raises(ValueError, match="cannot be stored"):
        tree.set("a", huge, 10**9)


def test_the_cost_of_values() -> None:
    assert measure(1, None) == 5 and measure(1, True) == 5 and measure(1, False) == 6
    assert measure(0, "é") == 4 and measure(0, 12) == 2 and measure(0, 1.5) == 3
    assert measure(0, [1, [2]]) == len("[1,[2]]") and measure(0, []) == 2
    assert measure(0, [{}]) == len("[{}]")
    assert measure(0, [{"k": "v"}]) == len('[{"k":"v"}]')
    assert measure(0, {"a": {"b": 1, "c": []}}) == len("a.b") + 1 + len("a.c") + 2
    assert measure(0, Decimal("1.50")) == len("1.50::N")
    with pytest.raises(ValueError, match="surrogate"):
        measure(0, ["\ud800"])
