"""schemathesis hooks for the contract test: each request carries a token for its path's user,
and no request that breaks the published entity-tag grammar is sent as a valid one.

The token comes from an auth provider (not a plain hook), so schemathesis knows which header is
the credential and can also check that requests without it, or with a broken one, are refused.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

import jwt
import schemathesis

from todo_api.http.etags import ENTITY_TAGS_PATTERN

SECRET_ENV = "CONTRACT_JWT_SECRET"
ENTITY_TAGS = re.compile(ENTITY_TAGS_PATTERN)
CONDITIONAL_HEADERS = ("If-Match", "If-None-Match")


@schemathesis.auth(refresh_interval=None)
class PathUserToken:
    def get(self, case: Any, ctx: Any) -> str | None:  # noqa: ARG002 - protocol signature
        return os.environ.get(SECRET_ENV)

    def set(self, case: Any, data: str | None, ctx: Any) -> None:  # noqa: ARG002
        user_id = (case.path_parameters or {}).get("user_id")
        if data and isinstance(user_id, str):
            token = jwt.encode({"sub": user_id, "exp": int(time.time()) + 600}, data, "HS256")
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


@schemathesis.hook
def filter_case(ctx: Any, case: Any) -> bool:
    """Leave out a case labelled valid whose `If-Match`/`If-None-Match` breaks the published
    pattern. schemathesis's coverage phase draws header values from `[A-Za-z0-9]` alone ("for
    simplicity", its source says), which no quoted entity tag matches, and then offers one that
    breaks the pattern (`If-Match: 0`) as schema-valid. The server rightly refuses it (400);
    that case says nothing about the document. Cases meant to be invalid are all still sent."""
    meta = case.meta
    if meta is None or meta.generation.mode != schemathesis.GenerationMode.POSITIVE:
        return True
    headers = case.headers or {}
    return all(
        ENTITY_TAGS.search(str(headers[name])) is not None
        for name in CONDITIONAL_HEADERS
        if name in headers
    )
