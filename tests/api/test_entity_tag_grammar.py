"""The grammar of `If-Match`/`If-None-Match` the OpenAPI document publishes is exactly the one the
server accepts: a client (or a contract tester) that follows the pattern is never refused, and
one that breaks it always is."""

from __future__ import annotations

import re

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from todo_api.http.etags import parse_entity_tags

# The characters that matter to the grammar, and a few that should never pass.
ALPHABET = '"W/,* \t0129abK+}<;\x7f\x80\xb2\xff\x00'


@pytest.fixture
async def published(client: httpx.AsyncClient) -> dict[str, re.Pattern[str]]:
    document = (await client.get("/openapi.json")).json()
    patterns = {}
    for path_item in document["paths"].values():
        for operation in path_item.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] in ("If-Match", "If-None-Match"):
                    patterns[parameter["name"]] = re.compile(parameter["schema"]["pattern"])
    return patterns


def accepted(value: str) -> bool:
    try:
        parse_entity_tags(value)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("header", ["If-Match", "If-None-Match"])
@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(alphabet=ALPHABET, max_size=24))
@example(value="}*6,")
@example(value="2'K+0e<,")
@example(value='"3"\n')
@example(value=", ,")
@example(value=" * ")
@example(value='*, "3"')
@example(value='W/"1",,W/2')
def test_the_published_pattern_is_the_accepted_grammar(
    published: dict[str, re.Pattern[str]], header: str, value: str
) -> None:
    pattern = published[header]

    # JSON Schema patterns are searched, and `$` there ends the text (no trailing newline).
    matches = pattern.search(value) is not None and not value.endswith("\n")

    assert matches == accepted(value), value
