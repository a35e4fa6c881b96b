"""Opaque page cursors: where the next page starts, for which filters and order.

A cursor is base64url of a small JSON document plus a keyed checksum. It carries nothing
secret (a position in the caller's own listing), but a cursor that was altered, truncated, or
made for other filters or another order is refused with 400 instead of returning a wrong page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from datetime import datetime
from typing import Any

import orjson

from todo_api.core.errors import InvalidParameter

_VERSION = 1
_CHECKSUM_KEY = b"todo-api page cursor v1"
_CHECKSUM_SIZE = 12


def fingerprint(filters: dict[str, Any]) -> str:
    """A short digest of the filters and order a cursor belongs to."""
    canonical = orjson.dumps(filters, option=orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z)
    return hashlib.blake2b(canonical, digest_size=8).hexdigest()


def encode(*, order: str, fingerprint: str, key: Any, task_id: uuid.UUID) -> str:
    document = {"v": _VERSION, "o": order, "f": fingerprint, "k": _dump_key(key), "i": str(task_id)}
    payload = orjson.dumps(document)
    return _text(_checksum(payload) + payload)


def _text(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(cursor: str, *, order: str, fingerprint: str) -> tuple[Any, uuid.UUID]:
    """The (sort key, task id) the next page starts after; 400 if the cursor is not valid here."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise _invalid("is not a cursor this service issued") from None
    if _text(raw) != cursor:
        # Only the exact text issued: no padding, no other alphabet, no stray characters.
        raise _invalid("is not a cursor this service issued")
    check, payload = raw[:_CHECKSUM_SIZE], raw[_CHECKSUM_SIZE:]
    if not hmac.compare_digest(check, _checksum(payload)):
        raise _invalid("is not a cursor this service issued")
    document = orjson.loads(payload)
    if document.get("v") != _VERSION:
        raise _invalid("was issued by another version of the service; start from the first page")
    if document.get("o") != order or document.get("f") != fingerprint:
        raise _invalid("belongs to a listing with other filters or another order")
    try:
        return _load_key(order, document["k"]), uuid.UUID(document["i"])
    except (KeyError, TypeError, ValueError):
        raise _invalid("is not a cursor this service issued") from None


def _checksum(payload: bytes) -> bytes:
    return hmac.digest(_CHECKSUM_KEY, payload, "sha256")[:_CHECKSUM_SIZE]


def _dump_key(key: Any) -> Any:
    return key.isoformat() if isinstance(key, datetime) else key


def _load_key(order: str, value: Any) -> Any:
    if order in {"created_at", "updated_at"} or (order == "due_at" and value is not None):
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("naive timestamp")
        return moment
    if order == "priority" and not isinstance(value, int):
        raise TypeError("priority rank")
    if order == "title" and not isinstance(value, str):
        raise TypeError("title")
    return value


def _invalid(reason: str) -> InvalidParameter:
    return InvalidParameter("cursor", f"{reason}", type_="invalid_cursor")
