"""``decode_tytx`` reads what genro-tytx writes exactly as genro-tytx's ``from_tytx`` does (in
process, against the installed genro-tytx), and differs only where ``from_tytx`` would hand
malformed text back as a string."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest
from genro_tytx import from_tytx, to_tytx

from genro_asgi_wsx.codec import decode_tytx
from genro_asgi_wsx.errors import WsxError

VALUES: list[Any] = [
    {"a": 1}, {"p": Decimal("1.5")}, [1, 2], [Decimal("1")], Decimal("3.14"),
    datetime.date(2025, 1, 2), datetime.time(9, 15),
    datetime.datetime(2025, 1, 15, 10, 30, 5, 123000, tzinfo=datetime.UTC),
    "hello", 'say "hi"', "caffè", "", 42, 1.5, True, False, None, {}, [], b"\x00\x01",
    {"nested": [{"d": datetime.date(2024, 2, 29), "n": [Decimal("-0.001"), None, "x"]}]},
    {"key::N": "keys are never hydrated"}, {"s": "a::b"}, {"s": "x::T"},
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
@pytest.mark.parametrize("transport", [None, "json"])
def test_reads_what_genro_tytx_writes_as_from_tytx_does(value: Any,
                                                        transport: str | None) -> None:
    text = to_tytx(value, transport)  # type: ignore[arg-type]
    assert isinstance(text, str)
    decoded, quoted = decode_tytx(text, 128)
    assert decoded == from_tytx(text, transport)  # type: ignore[arg-type]
    assert quoted is (transport == "json")


@pytest.mark.parametrize("value", [{"a": 1, "d": datetime.date(2025, 1, 2)},
                                   {"p": Decimal("2.5"), "ok": True}])
def test_query_string_form(value: Any) -> None:
    text = to_tytx(value, qs=True)
    assert isinstance(text, str) and text.endswith("::QS")
    assert decode_tytx(text)[0] == from_tytx(text) == value


@pytest.mark.parametrize("text", ['"{"a":', '"[1,2"', '{"a":"x::N"}', '"{"d":"2025-02-30::D"}"',
                                  '["' + "9" * 5000 + '::L"]::JS'])
def test_malformed_text_from_tytx_would_return_or_raise_is_a_parse_error(text: str) -> None:
    with pytest.raises(WsxError) as refused:
        decode_tytx(text, 128)
    assert refused.value.kind.code == "parse_error"
    assert refused.value.message.startswith("malformed TYTX: ")


def test_text_that_is_not_json_like_is_a_plain_string_as_in_genro_tytx() -> None:
    for text, transport in [("hello", None), ('"hello"', "json"), ("a::b", None), ("", None)]:
        assert decode_tytx(text)[0] == from_tytx(text, transport) == text.strip('"')  # type: ignore[arg-type]
