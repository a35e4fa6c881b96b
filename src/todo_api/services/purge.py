"""Forgetting what has outlived its purpose: expired idempotency keys, and tombstones older than
the retention (a client that last synced before then must start its sync over: 410)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Delete, and_, bindparam, delete

from todo_api.core.db import Database
from todo_api.models.types import UTCDateTime
from todo_api.services.idempotency import purge_expired
from todo_api.services.tasks import tasks

_OLD_TOMBSTONES: Delete = delete(tasks).where(
    and_(
        tasks.c.deleted_at.is_not(None),
        tasks.c.deleted_at < bindparam("before", type_=UTCDateTime()),
    )
)


@dataclass(frozen=True)
class Purged:
    idempotency_keys: int
    tombstones: int


async def purge_tombstones(db: Database, *, before: datetime) -> int:
    """Delete the tombstones of tasks deleted before `before`; how many there were."""
    return await db.execute(_OLD_TOMBSTONES, {"before": before})


async def purge(db: Database, *, now: datetime, tombstone_retention: timedelta) -> Purged:
    return Purged(
        idempotency_keys=await purge_expired(db, now=now),
        tombstones=await purge_tombstones(db, before=now - tombstone_retention),
    )
