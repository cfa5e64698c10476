"""Schemathesis hooks (loaded through SCHEMATHESIS_HOOKS): TYTX answers are read with the real
TYTX decoder, as a TYTX client reads them; a JSON parser cannot (the text is quoted whole)."""

from __future__ import annotations

from typing import Any

import schemathesis
from genro_tytx import from_tytx
from schemathesis.core import deserialization

TYTX_JSON = "application/vnd.tytx+json"


@schemathesis.deserializer(TYTX_JSON)
def tytx_json(ctx: Any, response: Any) -> Any:
    return from_tytx(response.content.decode("utf-8"), "json")


# Schemathesis tries its deserializers in registration order and its built-in JSON one also
# claims every ``+json`` type: ours goes first.
deserialization._DESERIALIZERS = {
    TYTX_JSON: tytx_json,
    **{k: v for k, v in deserialization._DESERIALIZERS.items() if k != TYTX_JSON},
}
