"""The text fields' patterns the OpenAPI document publishes are exactly what the server accepts:
a client (or a contract tester) that follows a pattern is never refused, and one that breaks it
always is. Lone surrogates are left out: no JSON Schema string holds one (the server refuses
them all the same, see test_task_validation)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from todo_api.schemas.listing import TaskListQuery
from todo_api.schemas.task import Description, Tag, Title

# Characters on both sides of every refused range, whitespace that is trimmed, and plain text.
ALPHABET = [
    *"ab \t\n\r",
    *map(chr, [0x00, 0x1F, 0x7F, 0x80, 0x9B, 0x9F, 0xA0, 0xFF]),
    *map(chr, [0x200E, 0x200F, 0x2029, 0x2029, 0x202A, 0x202E, 0x202F, 0x2065, 0x2066, 0x2069]),
    *map(chr, [0x206A, 0x3000, 0xFDCF, 0xFDD0, 0xFDEF, 0xFDF0, 0xFEFF, 0xFFFD, 0xFFFE, 0xFFFF]),
    *map(chr, [0x1F600, 0x1FFFD, 0x1FFFE, 0x1FFFF, 0x20000, 0x10FFFD, 0x10FFFE, 0x10FFFF]),
]
FIELDS: dict[str, TypeAdapter[Any]] = {
    "title": TypeAdapter(Title),
    "description": TypeAdapter(Description),
    "tag": TypeAdapter(Tag),
    "q": TypeAdapter(TaskListQuery),
}


@pytest.fixture
async def published(client: httpx.AsyncClient) -> dict[str, re.Pattern[str]]:
    document = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    task = schemas["TaskCreate"]["properties"]
    parameters = document["paths"]["/api/{user_id}/tasks"]["get"]["parameters"]
    [search] = [p["schema"] for p in parameters if p["name"] == "q"]
    return {
        "title": _ecma(task["title"]["pattern"]),
        "description": _ecma(_pattern(task["description"])),
        "tag": _ecma(_pattern(_not_null(task["tags"])["items"])),
        "q": _ecma(_pattern(search)),
    }


def _ecma(pattern: str) -> re.Pattern[str]:
    """The pattern as ECMA-262 reads it: its final `$` ends the text (in Python's `re` it also
    matches before a final newline)."""
    assert pattern.endswith("$"), pattern
    return re.compile(pattern.removesuffix("$") + r"\Z")


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an optional field's schema."""
    branches: list[dict[str, Any]] = schema.get("anyOf", [schema])
    [branch] = [b for b in branches if b.get("type") != "null"]
    return branch


def _pattern(schema: dict[str, Any]) -> str:
    """An optional field's pattern, beside its `anyOf` or in its string branch."""
    pattern: str = schema.get("pattern") or _not_null(schema)["pattern"]
    return pattern


def accepted(field: str, value: str) -> bool:
    try:
        FIELDS[field].validate_python({"q": value} if field == "q" else value)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("field", sorted(FIELDS))
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(alphabet=ALPHABET, max_size=12))
@example(value="a\u009bb")
@example(value="\u202eab")
@example(value="a\U0001fffe")
@example(value=" a\u200f ")
def test_the_published_pattern_is_the_accepted_text(
    published: dict[str, re.Pattern[str]], field: str, value: str
) -> None:
    # JSON Schema patterns are searched, not matched whole.
    matches = published[field].search(value) is not None

    assert matches == accepted(field, value), ascii(value)
