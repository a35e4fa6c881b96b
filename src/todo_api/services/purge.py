"""Forgetting what has outlived its purpose: expired idempotency keys, and tombstones older than
the retention (a client that last synced before then must start its sync over: 410)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from todo_api.data import tasks as store
from todo_api.db.database import PURGE_BATCH, Executor
from todo_api.services.idempotency import purge_expired


@dataclass(frozen=True)
class Purged:
    idempotency_keys: int
    tombstones: int


async def purge_tombstones(db: Executor, *, before: datetime, batch: int = PURGE_BATCH) -> int:
    """Delete the tombstones of tasks deleted before `before`; how many there were."""
    return await store.delete_tombstones(db, before=before, batch=batch)


async def purge(db: Executor, *, now: datetime, tombstone_retention: timedelta) -> Purged:
    return Purged(
        idempotency_keys=await purge_expired(db, now=now),
        tombstones=await purge_tombstones(db, before=now - tombstone_retention),
    )
