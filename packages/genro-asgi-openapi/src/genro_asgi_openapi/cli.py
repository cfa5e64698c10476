"""``genro-asgi openapi [DIR] [-o FILE]``: the document without starting the server."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from genro_asgi import CliCommand

if TYPE_CHECKING:
    from .plugin import OpenApiPlugin


def openapi_command(plugin: OpenApiPlugin) -> CliCommand:
    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-o", "--output", help="write the document to this file "
                            "(default: print it)")
        parser.add_argument("--indent", type=int, default=2,
                            help="JSON indentation (default 2; 0 for one line)")

    def run(args: argparse.Namespace) -> int:
        from .plugin import encode

        if args.indent < 0:
            print("genro-asgi openapi: error: --indent must be 0 or more", file=sys.stderr)
            return 2
        text = encode(plugin.document(), args.indent or None).decode("utf-8") + "\n"
        if args.output is None:
            sys.stdout.write(text)
            return 0
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"genro-asgi openapi: error: cannot write {args.output}: {exc.strerror}",
                  file=sys.stderr)
            return 2
        print(f"wrote {args.output} ({len(plugin.document()['paths'])} paths)", file=sys.stderr)
        return 0

    return CliCommand("openapi", "print or write the OpenAPI document (no server started)",
                      run, configure)
