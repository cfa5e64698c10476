"""What the fuzz suite shares: the liveness guard, a target app with every kind of parameter,
and Hypothesis strategies for hostile values, query strings, paths and bodies.

Time per input is bounded by a liveness guard, not asserted as a speed: each example calls
``arm()``, which (re)arms ``faulthandler.dump_traceback_later``. It kills the whole run, with
every thread's stack, if one input keeps the process busy for ``HANG_SECONDS``: a frozen event
loop, or an endless conversion in C that no Python-level timeout could interrupt.
"""

from __future__ import annotations

import datetime
import faulthandler
import json
import sys
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from genro_tytx import to_tytx
from hypothesis import strategies as st

from genro_asgi import AsgiApplication, Request, route

HANG_SECONDS = 60.0


def arm() -> None:
    """Start (or restart) the liveness guard for one input."""
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True, file=sys.stderr)


class Target(AsgiApplication):
    """One handler per parameter kind, each answering what it was given (so the encoders see
    whatever the decoders let through)."""

    @route()
    def scalars(self, i: int = 0, f: float = 0.0, d: Decimal = Decimal(0), flag: bool = False,
                s: str = "", day: datetime.date | None = None,
                at: datetime.datetime | None = None) -> dict[str, Any]:
        return {"i": i, "f": f, "d": d, "flag": flag, "s": s, "day": day, "at": at}

    @route()
    def lists(self, ids: list[int] | None = None, prices: list[Decimal] | None = None,
              tags: list[str] | None = None) -> dict[str, Any]:
        return {"ids": ids, "prices": prices, "tags": tags}

    @route()
    def anything(self, v: Any = None, data: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"v": v, "data": data}

    @route()
    def loose(self, **values: Any) -> dict[str, Any]:
        return values

    @route(name="item")
    def item(self, pid: int, day: datetime.date | None = None) -> dict[str, Any]:
        return {"pid": pid, "day": day}

    @route(methods=["POST", "PUT"])
    def order(self, qty: int, price: Decimal, note: str = "") -> dict[str, Any]:
        return {"total": price * qty, "note": note}

    @route(methods=["POST"])
    async def raw(self, request: Request) -> dict[str, Any]:
        kind = request.content_type
        if kind == "application/x-www-form-urlencoded":
            return {"form": dict((await request.form()).items())}
        if request.tytx_transport is not None:
            return {"tytx": await request.tytx()}
        return {"json": await request.json()}


PARAM_NAMES = ("i", "f", "d", "flag", "s", "day", "at", "ids", "prices", "tags", "v", "data",
               "pid", "qty", "price", "note")
SUFFIXES = ("N", "L", "R", "D", "DH", "DHZ", "H", "B", "T", "NN", "QS", "JS", "RAW", "X", "")

# numbers as text, the way an attacker writes them
number_text = st.one_of(
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.builds(lambda m, e: f"{m}E{e:+d}", st.integers(-99, 99), st.integers(-10**10, 10**10)),
    st.integers(1, 6000).map(lambda n: "9" * n),
    st.sampled_from(["inf", "-inf", "nan", "NaN", "Infinity", "1e999", "-0", "0x10", "1_000",
                     "", " 1", "1 ", "+1", "١٢٣", "1E+999999999", "sNaN"]),
)
# a TYTX-typed scalar: any text with any suffix, numbers favoured
typed_text = st.builds(lambda text, suffix: f"{text}::{suffix}" if suffix else text,
                       st.one_of(number_text, st.text(max_size=30)), st.sampled_from(SUFFIXES))
scalar_text = st.one_of(number_text, typed_text, st.text(max_size=40),
                        st.sampled_from(["2025-01-02", "2025-13-45", "true", "false", "null",
                                         "[]", "{}", "\\ud800", '{"a": 1}::JS']))


def query_string(values: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='', errors='surrogatepass')}"
                    for k, v in values)


# each route with the parameters it takes: most inputs aim at a real parameter
ROUTES = {
    "/f/scalars": ("i", "f", "d", "flag", "s", "day", "at"),
    "/f/lists": ("ids", "prices", "tags"),
    "/f/anything": ("v", "data"),
    "/f/loose": ("v", "x", "i"),
    "/f/item": ("pid", "day"),
    "/f/order": ("qty", "price", "note"),
    "/f/raw": (),
}


def _items_for(names: tuple[str, ...]) -> st.SearchStrategy[list[tuple[str, str]]]:
    name = st.one_of(st.sampled_from(names), st.text(max_size=10)) if names \
        else st.text(max_size=10)
    return st.lists(st.tuples(name, scalar_text), max_size=5)


query_items = st.sampled_from(sorted(ROUTES)).flatmap(lambda route: _items_for(ROUTES[route]))
routed_queries = st.sampled_from(sorted(ROUTES)).flatmap(
    lambda route: st.tuples(st.just(route), _items_for(ROUTES[route]).map(query_string)))
raw_query = st.one_of(query_items.map(query_string),
                      st.binary(max_size=200).map(lambda b: quote(b, safe="=&%")))

paths = st.one_of(
    st.sampled_from([*ROUTES, "/f", "/", "/nope"]),
    st.builds(lambda seg: "/f/item/" + quote(seg, safe="", errors="surrogatepass"),
              scalar_text),
    st.lists(st.text(max_size=12), min_size=1, max_size=5).map(
        lambda parts: "/" + "/".join(quote(p, safe="", errors="surrogatepass") for p in parts)),
)

# decoded values with hostile leaves, the way JSON and TYTX can carry them
leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-10**4000, 10**4000),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20), scalar_text,
    st.decimals(allow_nan=False, allow_infinity=False),
    st.builds(lambda m, e: Decimal(f"{m}E{e}"), st.integers(-99, 99), st.integers(-10**9, 10**9)),
    st.dates(), st.datetimes(timezones=st.just(datetime.UTC)), st.times(),
)
values = st.recursive(leaf, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=8), kids, max_size=4)),
    max_leaves=20)
param_objects = st.dictionaries(st.one_of(st.sampled_from(PARAM_NAMES), st.text(max_size=8)),
                                values, max_size=5)


def _json_text(value: Any) -> str:
    return json.dumps(value, default=str)


def _tytx_text(value: Any) -> str:
    try:
        return str(to_tytx(value))
    except (TypeError, ValueError):
        return _json_text(value)


BODY_HEADERS = {
    "json": {"content-type": "application/json"},
    "tytx": {"X-TYTX-Transport": "json"},
    "tytx-xml": {"X-TYTX-Transport": "xml"},
    "tytx-msgpack": {"X-TYTX-Transport": "msgpack"},
    "vnd": {"content-type": "application/vnd.tytx+json"},
    "form": {"content-type": "application/x-www-form-urlencoded"},
    "text": {"content-type": "text/plain"},
    "none": {},
}

bodies = st.tuples(
    st.sampled_from(sorted(BODY_HEADERS)),
    st.one_of(
        param_objects.map(_json_text).map(str.encode),
        param_objects.map(_tytx_text).map(lambda t: t.encode("utf-8", "surrogatepass")),
        query_items.map(query_string).map(str.encode),
        st.binary(max_size=300),
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.recursive(st.just("1"), lambda kid: kid.map(lambda t: f"[{t}]"), max_leaves=3000)
        .map(str.encode),  # deep nesting
        st.sampled_from([b'{"qty": 1e999, "price": 1}', b'{"qty": NaN}', b'{"\\ud800": 1}',
                         b'{"qty":"1E+999999999::N","price":"1::N"}::JS', b"", b"null",
                         b'"{\\"qty\\":1}::JS"', b"<tytx_root>1</tytx_root>",
                         b'{"qty": ' + b"9" * 5000 + b"}"]),
    ),
)
