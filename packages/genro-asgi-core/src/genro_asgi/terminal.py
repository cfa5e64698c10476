"""Text for an operator's terminal: the tables the ``genro-asgi`` commands print (the core's
and plugins' alike) and the escaping of what came from elsewhere. A value in a listing may come
from a client (a request path, a page title), and must not send escape sequences to the
terminal, so every cell goes through ``printable``."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any, TextIO

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(value: object) -> str:
    """``str(value)`` with control characters (C0, DEL, C1) shown as ``\\xNN``."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", str(value))


def cell(value: Any) -> str:
    """One table cell: ``-`` for None or an empty list, a list joined by commas."""
    if isinstance(value, list):
        return printable(",".join(map(str, value))) if value else "-"
    return "-" if value is None else printable(value)


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str],
                out: TextIO | None = None) -> None:
    """``columns`` as upper-case headers over left-aligned cells (stdout unless ``out``)."""
    out = out if out is not None else sys.stdout
    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(),
          file=out)
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip(), file=out)
