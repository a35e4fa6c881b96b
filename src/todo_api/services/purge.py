"""Forgetting what has outlived its purpose: expired idempotency keys, and tombstones older than
the retention (a client that last synced before then must start its sync over: 410)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Delete, bindparam, delete, select

from todo_api.db.database import PURGE_BATCH, Database, delete_in_batches
from todo_api.models.types import UTCDateTime
from todo_api.services.idempotency import purge_expired
from todo_api.services.tasks import tasks

_OLD_TOMBSTONES: Delete = delete(tasks).where(
    tasks.c.id.in_(
        select(tasks.c.id)
        .where(
            tasks.c.deleted_at.is_not(None),
            tasks.c.deleted_at < bindparam("before", type_=UTCDateTime()),
        )
        .limit(bindparam("batch"))
    )
)


@dataclass(frozen=True)
class Purged:
    idempotency_keys: int
    tombstones: int


async def purge_tombstones(db: Database, *, before: datetime, batch: int = PURGE_BATCH) -> int:
    """Delete the tombstones of tasks deleted before `before`; how many there were."""
    return await delete_in_batches(db, _OLD_TOMBSTONES, {"before": before}, batch)


async def purge(db: Database, *, now: datetime, tombstone_retention: timedelta) -> Purged:
    return Purged(
        idempotency_keys=await purge_expired(db, now=now),
        tombstones=await purge_tombstones(db, before=now - tombstone_retention),
    )
