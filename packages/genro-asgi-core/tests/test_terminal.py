"""``genro_asgi.terminal``: the tables every ``genro-asgi`` command prints (the core's, debug's,
spa's), with whatever came from a client escaped before it reaches a terminal."""

from __future__ import annotations

import io

from genro_asgi.terminal import print_table, printable


def test_control_characters_are_shown_not_sent() -> None:
    assert printable("/x\x1b]0;pwned\x07\n\x9b") == "/x\\x1b]0;pwned\\x07\\x0a\\x9b"
    assert printable("plain é ü") == "plain é ü"


def test_a_table_of_none_lists_and_hostile_text() -> None:
    out = io.StringIO()
    print_table([{"path": "/\x1b[2J", "methods": ["GET", "HEAD"], "auth": None},
                 {"path": "/b", "methods": [], "auth": "admin"}],
                ("path", "methods", "auth"), out)
    assert out.getvalue().splitlines() == [
        "PATH      METHODS   AUTH",
        "/\\x1b[2J  GET,HEAD  -",
        "/b        -         admin",
    ]
