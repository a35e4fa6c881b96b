"""Entity tags of tasks (RFC 9110 §8.8.3): a task's version, as a strong ETag `"7"`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from todo_api.errors import entity_tag

__all__ = ["ANY", "EntityTag", "entity_tag", "parse_entity_tags"]

# One entity tag of a list: optionally weak (`W/`), then a quoted string without quotes, then a
# comma or the end (commas may also stand alone: empty list elements are allowed). A bare token
# (`3`, a common client slip) is read as the quoted tag it was meant to be.
_ENTITY_TAG = re.compile(
    r'[\s,]*(W/)?(?:"([\x21\x23-\x7e\x80-\xff]*)"|([\x21\x23-\x2b\x2d-\x7e]+))\s*(?:,|$)'
)
ANY = "*"
# Versions are a 32-bit column.
MAX_VERSION = 2**31 - 1


@dataclass(frozen=True)
class EntityTag:
    weak: bool
    opaque: str

    def version(self) -> int | None:
        """The task version this tag names, if it names one: exactly the digits the server
        writes (no sign, no leading zero, ASCII only) and within the column's range."""
        opaque = self.opaque
        if not (opaque.isascii() and opaque.isdigit()) or (opaque[0] == "0" and opaque != "0"):
            return None
        version = int(opaque)
        return version if version <= MAX_VERSION else None


def parse_entity_tags(header: str) -> list[EntityTag] | None:
    """`If-Match`/`If-None-Match`: a list of tags, or None for `*` (any current version).
    Raises ValueError for a value that is neither."""
    if header.strip() == ANY:
        return None
    tags = []
    position = 0
    rest = header.rstrip(", \t")
    while position < len(rest):
        match = _ENTITY_TAG.match(rest, position)
        if match is None:
            raise ValueError(f"not a list of entity tags: {header[:60]!r}")
        opaque = match.group(2) if match.group(2) is not None else match.group(3)
        tags.append(EntityTag(weak=match.group(1) is not None, opaque=opaque))
        position = match.end()
    if not tags:
        raise ValueError("no entity tag")
    return tags
