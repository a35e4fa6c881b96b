"""The `idempotency_keys` table's statements: a key's recorded response, its lock across
processes, recording one, and forgetting expired ones."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, bindparam, delete, func, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from todo_api.db.database import PURGE_BATCH, Executor, delete_in_batches
from todo_api.models.idempotency import idempotency_keys as keys
from todo_api.models.types import UTCDateTime

_THE_KEY = (keys.c.user_id == bindparam("owner")) & (keys.c.key == bindparam("key"))
_NOW = bindparam("now", type_=UTCDateTime())
_LOOKUP = select(keys.c.fingerprint, keys.c.status_code, keys.c.headers, keys.c.body).where(
    _THE_KEY, keys.c.expires_at > _NOW
)
# Across processes, "still being processed" is a transaction-scoped advisory lock on the key:
# released at commit or rollback, and by the server when a connection dies.
_TRY_LOCK = select(
    func.pg_try_advisory_xact_lock(bindparam("lock", type_=BigInteger)).label("locked")
)
_PURGE = delete(keys).where(
    tuple_(keys.c.user_id, keys.c.key).in_(
        select(keys.c.user_id, keys.c.key)
        .where(keys.c.expires_at <= _NOW)
        .limit(bindparam("batch"))
    )
)
_RECORDED = ("fingerprint", "status_code", "headers", "body", "created_at", "expires_at")


def _save_statement(dialect: Any) -> Any:
    """Record a key's outcome, taking over an expired record of the same key; no row comes back
    when an unexpired record exists (another process recorded it first)."""
    values = {column: bindparam(column, type_=keys.c[column].type) for column in _RECORDED}
    stmt = dialect.insert(keys).values(user_id=bindparam("owner"), key=bindparam("key"), **values)
    return stmt.on_conflict_do_update(
        index_elements=[keys.c.user_id, keys.c.key],
        set_={column: stmt.excluded[column] for column in values},
        where=keys.c.expires_at <= stmt.excluded.created_at,
    ).returning(keys.c.key)


_SAVE = {"postgresql": _save_statement(postgresql), "sqlite": _save_statement(sqlite)}


def _lock_id(owner: str, key: str) -> int:
    digest = hashlib.sha256(f"{owner}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def try_lock(tx: Executor, *, owner: str, key: str) -> bool:
    """Take the key's lock until the transaction ends (PostgreSQL); False if another holds it."""
    [row] = await tx.fetch(_TRY_LOCK, {"lock": _lock_id(owner, key)})
    return bool(row["locked"])


async def find_recorded(
    tx: Executor, *, owner: str, key: str, now: datetime
) -> Mapping[str, Any] | None:
    """The unexpired record of the owner's key: its fingerprint, status, headers and body."""
    rows = await tx.fetch(_LOOKUP, {"owner": owner, "key": key, "now": now})
    return rows[0] if rows else None


async def record(
    tx: Executor, backend: str, *, owner: str, key: str, outcome: Mapping[str, Any]
) -> bool:
    """Record a key's outcome (every column of `_RECORDED`); False when an unexpired record of
    the key exists already."""
    saved = await tx.fetch(_SAVE[backend], {**outcome, "owner": owner, "key": key})
    return bool(saved)


async def delete_expired(db: Executor, *, now: datetime, batch: int = PURGE_BATCH) -> int:
    """Delete the keys expired at `now`, a batch at a time; how many there were."""
    return await delete_in_batches(db, _PURGE, {"now": now}, batch)
