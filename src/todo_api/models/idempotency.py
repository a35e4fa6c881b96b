"""The `idempotency_keys` table: the first outcome of each request sent with an Idempotency-Key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, SmallInteger, String, Text
from sqlmodel import Field, SQLModel

from todo_api.models.task import USER_ID_MAX_LENGTH
from todo_api.models.types import UTCDateTime

KEY_MAX_LENGTH = 255
FINGERPRINT_LENGTH = 64  # a SHA-256, in hex


class IdempotencyKey(SQLModel, table=True):
    """A key a user sent, what the request was (its fingerprint) and the response it got.

    Keys belong to users: two users may send the same key without ever meeting. A row is written
    in the same transaction as the change it records, so it exists exactly when the change does.
    """

    __tablename__ = "idempotency_keys"

    user_id: str = Field(
        sa_column=Column(String(USER_ID_MAX_LENGTH), primary_key=True, nullable=False)
    )
    key: str = Field(sa_column=Column(String(KEY_MAX_LENGTH), primary_key=True, nullable=False))
    fingerprint: str = Field(sa_column=Column(String(FINGERPRINT_LENGTH), nullable=False))
    status_code: int = Field(sa_column=Column(SmallInteger, nullable=False))
    # The response's headers worth repeating (a JSON object) and its body, as sent.
    headers: str = Field(sa_column=Column(Text, nullable=False))
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


# Purging expired keys reads them in expiry order.
Index("ix_idempotency_keys_expires_at", IdempotencyKey.__table__.c.expires_at)  # type: ignore[attr-defined]
