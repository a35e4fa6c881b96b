"""The `idempotency_keys` table: the first outcome of each request sent with an Idempotency-Key."""

from __future__ import annotations

from sqlalchemy import Column, Index, SmallInteger, String, Table, Text

from todo_api.models.base import metadata
from todo_api.models.types import UTCDateTime
from todo_api.users import USER_ID_MAX_LENGTH

KEY_MAX_LENGTH = 255
FINGERPRINT_LENGTH = 64  # a SHA-256, in hex


# A key a user sent, what the request was (its fingerprint) and the response it got. Keys belong
# to users: two users may send the same key without ever meeting. A row is written in the same
# transaction as the change it records, so it exists exactly when the change does.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_id", String(USER_ID_MAX_LENGTH), primary_key=True),
    Column("key", String(KEY_MAX_LENGTH), primary_key=True),
    Column("fingerprint", String(FINGERPRINT_LENGTH), nullable=False),
    Column("status_code", SmallInteger(), nullable=False),
    # The response's headers worth repeating (a JSON object) and its body, as sent.
    Column("headers", Text(), nullable=False),
    Column("body", Text(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    # Purging expired keys reads them in expiry order.
    Index("ix_idempotency_keys_expires_at", "expires_at"),
)
