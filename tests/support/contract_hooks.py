"""schemathesis auth for the contract test: each request carries a token for its path's user.

Registered as an auth provider (not a plain hook), so schemathesis knows which header is the
credential and can also check that requests without it, or with a broken one, are refused.
"""

from __future__ import annotations

import os
import time
from typing import Any

import jwt
import schemathesis

SECRET_ENV = "CONTRACT_JWT_SECRET"


@schemathesis.auth(refresh_interval=None)
class PathUserToken:
    def get(self, case: Any, ctx: Any) -> str | None:  # noqa: ARG002 - protocol signature
        return os.environ.get(SECRET_ENV)

    def set(self, case: Any, data: str | None, ctx: Any) -> None:  # noqa: ARG002
        user_id = (case.path_parameters or {}).get("user_id")
        if data and isinstance(user_id, str):
            token = jwt.encode({"sub": user_id, "exp": int(time.time()) + 600}, data, "HS256")
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
