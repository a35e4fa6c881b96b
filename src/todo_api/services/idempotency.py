"""Idempotency keys (IETF draft "The Idempotency-Key HTTP Header Field").

A client that may retry a request sends the same `Idempotency-Key` with each attempt. The first
attempt runs, and its response is recorded in the same transaction as the change it made, so the
record exists exactly when the change does. A later attempt gets that response again (with
`Idempotent-Replayed: true`) instead of making the change twice; an attempt while the first is
still running gets 409; the same key with a different request gets 422. Keys belong to a user
and are remembered for `IDEMPOTENCY_KEY_TTL_HOURS`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from starlette.responses import Response

from todo_api.data import idempotency_keys as store
from todo_api.db.database import Database, Executor
from todo_api.errors import IdempotencyKeyInUse, IdempotencyKeyReused, InvalidParameter
from todo_api.models.idempotency import KEY_MAX_LENGTH

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# The response headers a replay repeats (its content type is always JSON).
KEPT_HEADERS = ("location", "etag")
# Expired keys are deleted in passing at most this often per process (and by `todo-api purge`).
PURGE_INTERVAL_S = 600.0

Operation = Callable[[Executor], Awaitable[Response]]


def parse_key(value: str) -> str:
    """The key a header names: between double quotes (a Structured Field string, as the
    draft has it), or, as many clients send it, bare; 1-255 printable ASCII characters. The
    text is taken as it is, so `"k"` and `k` are one key."""
    key = value.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not 1 <= len(key) <= KEY_MAX_LENGTH or not all(" " <= c <= "~" for c in key):
        raise InvalidParameter(
            HEADER,
            f"must be 1-{KEY_MAX_LENGTH} printable ASCII characters, such as a UUID",
            type_="invalid_header",
        )
    return key


def fingerprint(method: str, path: str, payload: Any) -> str:
    """What a request asks for: its method, its path and its parsed body (so a retry that only
    reorders or respaces the JSON is still the same request)."""
    body = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(f"{method} {path}\n".encode())
    digest.update(body)
    return digest.hexdigest()


class IdempotencyKeys:
    """Runs requests that carry a key; one per application."""

    def __init__(self, *, ttl: timedelta) -> None:
        self.ttl = ttl
        # Keys being processed in this process: a second attempt is refused without a query.
        self._in_flight: set[tuple[str, str]] = set()
        self._purged_at = time.monotonic()
        self._purging: asyncio.Task[None] | None = None

    async def run(
        self,
        db: Database,
        *,
        user_id: str,
        key: str,
        request_fingerprint: str,
        operation: Operation,
    ) -> Response:
        """The recorded response for this key, or `operation`'s, recorded with its change."""
        slot = (user_id, key)
        if slot in self._in_flight:
            raise IdempotencyKeyInUse()
        self._in_flight.add(slot)
        try:
            response = await self._run_once(db, user_id, key, request_fingerprint, operation)
        finally:
            self._in_flight.discard(slot)
        self._purge_now_and_then(db)
        return response

    async def _run_once(
        self, db: Database, user_id: str, key: str, request_fingerprint: str, operation: Operation
    ) -> Response:
        now = datetime.now(UTC)
        async with db.transaction() as tx:
            if db.backend == "postgresql" and not await store.try_lock(tx, owner=user_id, key=key):
                raise IdempotencyKeyInUse()
            recorded = await store.find_recorded(tx, owner=user_id, key=key, now=now)
            if recorded is not None:
                return _replay(recorded, request_fingerprint)
            response = await operation(tx)
            headers = {
                name: value for name, value in response.headers.items() if name in KEPT_HEADERS
            }
            outcome = {
                "fingerprint": request_fingerprint,
                "status_code": response.status_code,
                "headers": orjson.dumps(headers).decode(),
                "body": bytes(response.body).decode(),
                "created_at": now,
                "expires_at": now + self.ttl,
            }
            if not await store.record(tx, db.backend, owner=user_id, key=key, outcome=outcome):
                # Another process recorded this key after our lookup (possible only where no
                # lock guards keys across processes: SQLite). Undo ours; a retry replays theirs.
                raise IdempotencyKeyInUse()
            return response

    def _purge_now_and_then(self, db: Database) -> None:
        if time.monotonic() - self._purged_at < PURGE_INTERVAL_S or self._purging is not None:
            return
        self._purged_at = time.monotonic()
        self._purging = asyncio.create_task(self._purge_in_background(db))

    async def _purge_in_background(self, db: Database) -> None:
        try:
            deleted = await purge_expired(db, now=datetime.now(UTC))
            if deleted:
                logger.info("expired idempotency keys deleted", extra={"deleted": deleted})
        except Exception as exc:  # a purge that fails is retried on a later request
            logger.warning("could not delete expired idempotency keys: %s", type(exc).__name__)
        finally:
            self._purging = None

    async def close(self) -> None:
        """Wait for a purge under way, so the database is not closed beneath it."""
        if self._purging is not None:
            await asyncio.gather(self._purging, return_exceptions=True)


def _replay(recorded: Mapping[str, Any], request_fingerprint: str) -> Response:
    if recorded["fingerprint"] != request_fingerprint:
        raise IdempotencyKeyReused()
    headers = dict(orjson.loads(recorded["headers"]))
    headers[REPLAYED_HEADER] = "true"
    return Response(
        recorded["body"].encode(),
        status_code=recorded["status_code"],
        headers=headers,
        media_type="application/json",
    )


async def purge_expired(db: Executor, *, now: datetime) -> int:
    """Delete the keys expired at `now`; how many there were."""
    return await store.delete_expired(db, now=now)
