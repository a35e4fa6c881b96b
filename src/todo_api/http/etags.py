"""Entity tags of tasks (RFC 9110 §8.8.3): a task's version, as a strong ETag `"7"`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from todo_api.errors import entity_tag

__all__ = [
    "ANY",
    "ENTITY_TAGS_PATTERN",
    "MAX_HEADER_LENGTH",
    "EntityTag",
    "entity_tag",
    "parse_entity_tags",
]

# One entity tag (RFC 9110 §8.8.3): optionally weak (`W/`), then a quoted string of etagc. An
# unquoted value (`3`) is malformed, as the RFC has it: a 400 naming the header, not a guess.
_TAG = '(W/)?"([\\x21\\x23-\\x7e\\x80-\\xff]*)"'
# `*`, or a list of tags (RFC 9110 §5.6.1): commas with optional spaces or tabs between them,
# empty elements allowed. What the OpenAPI document publishes, and exactly what is accepted.
ENTITY_TAGS_PATTERN = f"^(?:[ \\t]*\\*[ \\t]*|[ \\t,]*{_TAG}(?:[ \\t]*,[ \\t,]*{_TAG})*[ \\t,]*)$"
_ENTITY_TAGS = re.compile(ENTITY_TAGS_PATTERN)
_ONE_TAG = re.compile(_TAG)
# Longer is no list of tags this service would have sent; it is refused before it is parsed.
MAX_HEADER_LENGTH = 1024
ANY = "*"
# Versions are a 32-bit column.
MAX_VERSION = 2**31 - 1
_MAX_VERSION_DIGITS = len(str(MAX_VERSION))


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
        if len(opaque) > _MAX_VERSION_DIGITS:
            return None
        version = int(opaque)
        return version if version <= MAX_VERSION else None


def parse_entity_tags(header: str) -> list[EntityTag] | None:
    """`If-Match`/`If-None-Match`: a list of tags, or None for `*` (any current version).
    Raises ValueError for a value that is neither, or longer than `MAX_HEADER_LENGTH`."""
    if len(header) > MAX_HEADER_LENGTH:
        raise ValueError(f"longer than {MAX_HEADER_LENGTH} characters")
    if _ENTITY_TAGS.fullmatch(header) is None:
        raise ValueError(f"not a list of entity tags: {header[:60]!r}")
    if header.strip(" \t") == ANY:
        return None
    return [
        EntityTag(weak=match.group(1) is not None, opaque=match.group(2))
        for match in _ONE_TAG.finditer(header)
    ]
