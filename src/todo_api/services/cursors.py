"""Opaque page cursors: where the next page starts, for which listing.

A cursor is base64url of a small JSON document plus a keyed checksum. It names a position in the
caller's own listing and nothing else, and every value in it is checked as strictly as a query
parameter: a cursor that was altered, truncated, respelled, forged, or made for another user,
other filters or another order is a 400, never a wrong page or a 500.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from todo_api.data.tasks import ERASED_TITLE
from todo_api.errors import InvalidParameter
from todo_api.models.task import PRIORITY_NAMES, TITLE_MAX_LENGTH
from todo_api.schemas.task import EARLIEST, LATEST

_VERSION = 1
_CHECKSUM_KEY = b"todo-api page cursor v1"
_CHECKSUM_SIZE = 12
_TIMESTAMP_ORDERS = frozenset({"created_at", "updated_at", "due_at"})


@dataclass(frozen=True)
class Position:
    """The last task of a page: its sort key and id, and the instant `overdue` is judged at."""

    key: Any
    task_id: uuid.UUID
    now: datetime | None = None


def fingerprint(listing: dict[str, Any]) -> str:
    """A short digest of what a cursor belongs to (user, filters, order)."""
    canonical = orjson.dumps(listing, option=orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z)
    return hashlib.blake2b(canonical, digest_size=8).hexdigest()


def encode(position: Position, *, order: str, fingerprint: str) -> str:
    document = {
        "v": _VERSION,
        "o": order,
        "f": fingerprint,
        "k": _dump(position.key),
        "i": str(position.task_id),
        "n": _dump(position.now),
    }
    payload = orjson.dumps(document)
    return _text(_checksum(payload) + payload)


def decode(cursor: str, *, order: str, fingerprint: str, tombstones: bool = False) -> Position:
    """The position the next page starts after; 400 if the cursor is not valid here.
    `tombstones`: the listing includes deleted tasks, whose erased fields are keys too."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        check, payload = raw[:_CHECKSUM_SIZE], raw[_CHECKSUM_SIZE:]
        # Only the exact text issued: no padding, no other alphabet, no stray characters.
        if _text(raw) != cursor or not hmac.compare_digest(check, _checksum(payload)):
            raise ValueError("not issued here")
        document = orjson.loads(payload)
        if not isinstance(document, dict) or document.get("v") != _VERSION:
            raise ValueError("unknown version")
        if document.get("o") != order or document.get("f") != fingerprint:
            raise _invalid("belongs to a listing with other filters or another order")
        task_id = document["i"]
        if not isinstance(task_id, str):
            raise TypeError("task id")
        return Position(
            key=_load_key(order, document["k"], tombstones=tombstones),
            task_id=uuid.UUID(task_id),
            now=_load_timestamp(document["n"], optional=True),
        )
    except InvalidParameter:
        raise
    except Exception:
        # Whatever else is wrong with it, it is not a cursor this service issued.
        raise _invalid("is not a cursor this service issued") from None


def _checksum(payload: bytes) -> bytes:
    return hmac.digest(_CHECKSUM_KEY, payload, "sha256")[:_CHECKSUM_SIZE]


def _text(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _dump(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _load_key(order: str, value: Any, *, tombstones: bool) -> Any:
    if order in _TIMESTAMP_ORDERS:
        # Only a due date may be missing (such tasks sort last).
        return _load_timestamp(value, optional=order == "due_at")
    if order == "priority":
        if type(value) is not int or value not in PRIORITY_NAMES:
            raise ValueError("priority rank")
        return value
    if order == "title":
        if not isinstance(value, str) or len(value) > TITLE_MAX_LENGTH or "\0" in value:
            raise ValueError("title")
        # A live task's title is never empty; a tombstone's is (erased), and where tombstones are
        # listed a page can end on one.
        if value == ERASED_TITLE and not tombstones:
            raise ValueError("title")
        return value
    raise ValueError(f"unknown order {order!r}")


def _load_timestamp(value: Any, *, optional: bool) -> datetime | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TypeError("timestamp")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None or not EARLIEST <= moment <= LATEST:
        raise ValueError("timestamp out of range")
    return moment


def _invalid(reason: str) -> InvalidParameter:
    return InvalidParameter("cursor", reason, type_="invalid_cursor")
