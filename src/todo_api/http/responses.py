"""JSON responses encoded once with orjson: UTC timestamps with a `Z` suffix, UUIDs as text."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from starlette.responses import JSONResponse as StarletteJSONResponse
from starlette.responses import Response

# Column names from SQLAlchemy are `str` subclasses (quoted names), which orjson serialises as
# keys only when told to; plain `str` keys keep its fast path.
_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS


def _fallback(value: Any) -> str:
    # asyncpg returns its own subclass of uuid.UUID, which orjson does not serialise itself.
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_bytes(content: Any) -> bytes:
    return orjson.dumps(content, default=_fallback, option=_OPTIONS)


class JSONResponse(StarletteJSONResponse):
    def render(self, content: Any) -> bytes:
        return json_bytes(content)


def row_response(
    row: Mapping[Any, Any], *, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        json_bytes(dict(row.items())),
        status_code=status_code,
        headers=dict(headers or {}),
        media_type="application/json",
    )


def rows_response(
    rows: Sequence[Mapping[Any, Any]], *, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        # `items()` is the fast way to copy a row (asyncpg's Record iterates keys in Python).
        json_bytes([dict(row.items()) for row in rows]),
        headers=dict(headers or {}),
        media_type="application/json",
    )
