"""Who a user is to this service: an id, named by a token's claim and by the path of every
`/api` request. The rule for one is written here, once."""

from __future__ import annotations

import re
from typing import TypeGuard

USER_ID_MAX_LENGTH = 255
# 1-255 printable ASCII characters, no space or `/`.
USER_ID_PATTERN = f"^[!-.0-~]{{1,{USER_ID_MAX_LENGTH}}}$"
_USER_ID = re.compile(USER_ID_PATTERN)


def is_valid_user_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _USER_ID.fullmatch(value) is not None
