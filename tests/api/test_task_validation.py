"""Every validation boundary of DESIGN.md §3 through HTTP: what a write accepts, what it refuses
with 400, and that a refused write changes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.support.factories import JSON, assert_problem, create_task
from todo_api.models.task import tasks as tasks_table

WRITES = ["POST", "PUT", "PATCH"]
JSON_HEADERS = {"Content-Type": "application/json"}
TITLE_MESSAGE = "must be 1-200 characters after trimming"


@pytest.fixture
async def existing(client: httpx.AsyncClient) -> JSON:
    """Alice's one task: POST adds beside it, PUT and PATCH change it."""
    return await create_task(client, title="Original", description="untouched", completed=False)


def write_url(method: str, existing: JSON) -> str:
    return "/api/alice/tasks" if method == "POST" else f"/api/alice/tasks/{existing['id']}"


async def write(
    client: httpx.AsyncClient, method: str, existing: JSON, body: Any = None, *, raw: bytes = b""
) -> httpx.Response:
    """Send `body` as JSON, or `raw` bytes declared as JSON, to the write endpoint for `method`."""
    url = write_url(method, existing)
    if raw:
        return await client.request(method, url, content=raw, headers=JSON_HEADERS)
    return await client.request(method, url, json=body)


async def assert_accepted(client: httpx.AsyncClient, method: str, response: httpx.Response) -> JSON:
    """The write succeeded, and a later read returns exactly what it answered."""
    assert response.status_code == (201 if method == "POST" else 200), response.text
    body: JSON = response.json()
    assert (await client.get(f"/api/alice/tasks/{body['id']}")).json() == body
    return body


async def assert_nothing_written(client: httpx.AsyncClient, existing: JSON) -> None:
    """No task was added and the existing one is unchanged."""
    assert (await client.get("/api/alice/tasks")).json() == [existing]


async def count_tasks(conn: AsyncConnection) -> int:
    count = await conn.scalar(select(func.count()).select_from(tasks_table))
    assert count is not None
    return count


class TestTitleLength:
    @pytest.mark.parametrize("method", WRITES)
    @pytest.mark.parametrize(
        "title",
        ["x" * 200, "é" * 200, "😀" * 200, "日本" * 100, "e\u0301" * 100],
        ids=["ascii", "latin", "emoji", "cjk", "combining"],
    )
    async def test_two_hundred_characters_are_stored_intact(
        self, client: httpx.AsyncClient, existing: JSON, method: str, title: str
    ) -> None:
        response = await write(client, method, existing, {"title": title})

        body = await assert_accepted(client, method, response)
        assert body["title"] == title

    @pytest.mark.parametrize("method", WRITES)
    @pytest.mark.parametrize(
        "title",
        ["x" * 201, "é" * 201, "😀" * 201, "x" * 5000],
        ids=["ascii", "latin", "emoji", "5000"],
    )
    async def test_more_than_two_hundred_characters_are_refused(
        self, client: httpx.AsyncClient, existing: JSON, method: str, title: str
    ) -> None:
        response = await write(client, method, existing, {"title": title})

        problem = assert_problem(response, 400, fields=["title"])
        assert problem["errors"] == [
            {"field": "title", "message": TITLE_MESSAGE, "type": "string_too_long"}
        ]
        await assert_nothing_written(client, existing)

    @pytest.mark.parametrize("method", WRITES)
    async def test_escaped_surrogate_pairs_count_as_one_character(
        self, client: httpx.AsyncClient, existing: JSON, method: str
    ) -> None:
        raw = b'{"title": "' + b"\\ud83d\\ude00" * 200 + b'"}'

        response = await write(client, method, existing, raw=raw)

        body = await assert_accepted(client, method, response)
        assert body["title"] == "😀" * 200

    @pytest.mark.parametrize("method", WRITES)
    async def test_two_hundred_and_one_escaped_surrogate_pairs_are_refused(
        self, client: httpx.AsyncClient, existing: JSON, method: str
    ) -> None:
        raw = b'{"title": "' + b"\\ud83d\\ude00" * 201 + b'"}'

        response = await write(client, method, existing, raw=raw)

        assert_problem(response, 400, fields=["title"])
        await assert_nothing_written(client, existing)


class TestTitleTrimming:
    @pytest.mark.parametrize("method", WRITES)
    @pytest.mark.parametrize(
        ("sent", "stored"),
        [
            ("  Buy milk  ", "Buy milk"),
            ("\u00a0\u3000Buy milk\u2003\u00a0", "Buy milk"),
            ("Buy  milk", "Buy  milk"),
            (" Buy milk", "Buy milk"),
        ],
        ids=["spaces", "unicode-spaces", "inner-spaces-kept", "leading-only"],
    )
    async def test_surrounding_whitespace_is_stripped(
        self, client: httpx.AsyncClient, existing: JSON, method: str, sent: str, stored: str
    ) -> None:
        response = await write(client, method, existing, {"title": sent})

        body = await assert_accepted(client, method, response)
        assert body["title"] == stored

    @pytest.mark.parametrize("method", WRITES)
    async def test_limit_applies_after_trimming(
        self, client: httpx.AsyncClient, existing: JSON, method: str
    ) -> None:
        response = await write(client, method, existing, {"title": "   " + "x" * 200 + "   "})

        body = await assert_accepted(client, method, response)
        assert body["title"] == "x" * 200

    @pytest.mark.parametrize("method", WRITES)
    @pytest.mark.parametrize(
        "title", ["", " ", "      ", "\u00a0\u3000"], ids=["empty", "space", "spaces", "unicode"]
    )
    async def test_empty_or_whitespace_only_title_is_refused(
        self, client: httpx.AsyncClient, existing: JSON, method: str, title: str
    ) -> None:
        response = await write(client, method, existing, {"title": title})

        problem = assert_problem(response, 400, fields=["title"])
        assert problem["errors"] == [
            {"field": "title", "message": TITLE_MESSAGE, "type": "string_too_short"}
        ]
        await assert_nothing_written(client, existing)


class TestTitleCharacters:
    @pytest.mark.parametrize("method", WRITES)
    @pytest.mark.parametrize(
        "title",
        [
            "Buy\u0000milk",
            "Buy milk\u0000",
            "Buy\u0007milk",
            "Buy\u001b[31mmilk",
            "Buy\u001fmilk",
            "Buy\tmilk",
            "Buy\nmilk",
            "Buy\r\nmilk",
            "\tBuy milk",
            "Buy milk\n",
        ],
        ids=[
            "nul",
            "trailing-nul",
            "bel",
            "esc",
            "us",
            "tab",
            "newline",
            "crlf",
            "edge-tab",
            "edge-lf",
        ],
    )
    async def test_control_characters_are_refused(
        self, client: httpx.AsyncClient, existing: JSON, method: str, title: str
    ) -> None:
        response = await write(client, method, existing, {"title": title})

        problem = assert_problem(response, 400, fields=["title"])
        assert problem["errors"][0]["type"] == "control_character"
        await assert_nothing_written(client, existing)

    @pytest.mark.parametrize("method", WRITES)
    @pytest.mark.parametrize(
        "escaped", [b"\\ud800", b"a\\udfffb", b"\\ude00\\ud83d"], ids=["high", "low", "reversed"]
    )
    async def test_lone_surrogate_is_refused_not_a_server_error(
        self, client: httpx.AsyncClient, existing: JSON, method: str, escaped: bytes
    ) -> None:
        response = await write(client, method, existing, raw=b'{"title": "' + escaped + b'"}')

        assert_problem(response, 400, fields=["title"])
        await assert_nothing_written(client, existing)


class TestDescription:
    @pytest.mark.parametrize("method", WRITES)
    @pytest.mark.parametrize("description", ["x" * 1000, "é" * 1000, "😀" * 1000, "", "\n" * 1000])
    async def test_up_to_a_thousand_characters_are_stored_intact(
        self, client: httpx.AsyncClient, existing: JSON, method: str, description: str
    ) -> None:
        response = await write(client, method, existing, {"title": "T", "description": description})

        body = await assert_accepted(client, method, response)
        assert body["description"] == description

    @pytest.mark.parametrize("method", WRITES)
    @pytest.mark.parametrize("description", ["x" * 1001, "😀" * 1001, "x" * 20_000])
    async def test_more_than_a_thousand_characters_are_refused(
        self, client: httpx.AsyncClient, existing: JSON, method: str, description: str
    ) -> None:
        response = await write(client, method, existing, {"title": "T", "description": description})

        problem = assert_problem(response, 400, fields=["description"])
        assert problem["errors"] == [
            {
                "field": "description",
                "message": "must be at most 1000 characters",
                "type": "string_too_long",
            }
        ]
        await assert_nothing_written(client, existing)

    @pytest.mark.parametrize("method", WRITES)
    async def test_tabs_and_newlines_are_kept_verbatim(
        self, client: httpx.AsyncClient, existing: JSON, method: str
    ) -> None:
        description = "\n  line 1\n\tindented\r\nline 3\n\n"

        response = await write(client, method, existing, {"title": "T", "description": description})

        body = await assert_accepted(client, method, response)
        assert body["description"] == description

    @pytest.mark.parametrize("method", WRITES)
    @pytest.mark.parametrize(
        "description",
        ["a\u0000b", "\u0000", "a\u0007b", "a\u001b[0mb", "a\u000bb", "a\u000cb", "a\u001fb"],
        ids=["nul", "only-nul", "bel", "esc", "vt", "ff", "us"],
    )
    async def test_other_control_characters_are_refused(
        self, client: httpx.AsyncClient, existing: JSON, method: str, description: str
    ) -> None:
        response = await write(client, method, existing, {"title": "T", "description": description})

        problem = assert_problem(response, 400, fields=["description"])
        assert problem["errors"][0]["type"] == "control_character"
        await assert_nothing_written(client, existing)

    @pytest.mark.parametrize("method", WRITES)
    @pytest.mark.parametrize(
        ("description", "at"), [("a\rb", 2), ("line\r", 5), ("\r\n\r", 3)], ids=str
    )
    async def test_a_carriage_return_that_is_not_a_newline_is_refused(
        self, client: httpx.AsyncClient, existing: JSON, method: str, description: str, at: int
    ) -> None:
        """A lone CR makes a terminal write over the line; as CR LF it is a newline."""
        response = await write(client, method, existing, {"title": "T", "description": description})

        problem = assert_problem(response, 400, fields=["description"])
        assert problem["errors"][0]["type"] == "control_character"
        assert f"found U+000D at character {at}" in problem["errors"][0]["message"]
        assert "LF or CR LF, are allowed" in problem["errors"][0]["message"]
        await assert_nothing_written(client, existing)

    @pytest.mark.parametrize("method", WRITES)
    async def test_lone_surrogate_is_refused_not_a_server_error(
        self, client: httpx.AsyncClient, existing: JSON, method: str
    ) -> None:
        raw = b'{"title": "T", "description": "a\\udc00b"}'

        response = await write(client, method, existing, raw=raw)

        assert_problem(response, 400, fields=["description"])
        await assert_nothing_written(client, existing)

    async def test_null_description_is_accepted_on_create(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/api/alice/tasks", json={"title": "T", "description": None})

        body = await assert_accepted(client, "POST", response)
        assert body["description"] is None


class TestFieldTypes:
    @pytest.mark.parametrize("method", WRITES)
    @pytest.mark.parametrize(
        ("field", "value", "error_type"),
        [
            ("title", 123, "string_type"),
            ("title", [], "string_type"),
            ("title", {"text": "x"}, "string_type"),
            ("title", True, "string_type"),
            ("completed", "true", "bool_type"),
            ("completed", 1, "bool_type"),
            ("completed", 0, "bool_type"),
            ("completed", [], "bool_type"),
            ("description", 5, "string_type"),
            ("description", False, "string_type"),
            ("description", ["x"], "string_type"),
        ],
    )
    async def test_wrong_json_type_is_refused_naming_the_field(
        self,
        client: httpx.AsyncClient,
        existing: JSON,
        method: str,
        field: str,
        value: object,
        error_type: str,
    ) -> None:
        response = await write(client, method, existing, {"title": "T", field: value})

        problem = assert_problem(response, 400, fields=[field])
        assert problem["errors"][0]["type"] == error_type
        assert problem["detail"] == "1 field is invalid"
        await assert_nothing_written(client, existing)


class TestRequiredFieldsOnCreate:
    @pytest.mark.parametrize("body", [{}, {"description": "no title"}, {"completed": True}])
    async def test_missing_title_is_refused(
        self, client: httpx.AsyncClient, existing: JSON, body: JSON
    ) -> None:
        response = await client.post("/api/alice/tasks", json=body)

        problem = assert_problem(response, 400, fields=["title"])
        assert problem["errors"][0]["type"] == "missing"
        await assert_nothing_written(client, existing)

    @pytest.mark.parametrize("field", ["title", "completed"])
    async def test_null_title_or_completed_is_refused(
        self, client: httpx.AsyncClient, existing: JSON, field: str
    ) -> None:
        response = await client.post("/api/alice/tasks", json={"title": "T", field: None})

        assert_problem(response, 400, fields=[field])
        await assert_nothing_written(client, existing)


class TestRequestBody:
    @pytest.mark.parametrize("method", WRITES)
    @pytest.mark.parametrize(
        "raw",
        [b"{", b'{"title": "x",}', b"{'title': 'x'}", b'{"title": "x"', b"title=x", b"\xff\xfe"],
        ids=["open-brace", "trailing-comma", "single-quotes", "unclosed", "form", "not-utf8"],
    )
    async def test_malformed_json_is_refused_as_body_error(
        self, client: httpx.AsyncClient, existing: JSON, method: str, raw: bytes
    ) -> None:
        response = await write(client, method, existing, raw=raw)

        problem = assert_problem(response, 400, fields=["body"])
        assert problem["errors"][0]["type"] == "json_invalid"
        await assert_nothing_written(client, existing)

    @pytest.mark.parametrize("method", WRITES)
    @pytest.mark.parametrize("raw", [b"[]", b'[{"title": "x"}]', b'"x"', b"3", b"true", b"null"])
    async def test_non_object_body_is_refused(
        self, client: httpx.AsyncClient, existing: JSON, method: str, raw: bytes
    ) -> None:
        response = await write(client, method, existing, raw=raw)

        assert_problem(response, 400, fields=["body"])
        await assert_nothing_written(client, existing)

    @pytest.mark.parametrize("method", WRITES)
    @pytest.mark.parametrize("headers", [{}, JSON_HEADERS], ids=["no-content-type", "json"])
    async def test_empty_body_is_refused(
        self, client: httpx.AsyncClient, existing: JSON, method: str, headers: dict[str, str]
    ) -> None:
        response = await client.request(method, write_url(method, existing), headers=headers)

        assert_problem(response, 400, fields=["body"])
        await assert_nothing_written(client, existing)


class TestSeveralInvalidFields:
    @pytest.mark.parametrize("method", WRITES)
    async def test_two_invalid_fields_are_both_listed(
        self, client: httpx.AsyncClient, existing: JSON, method: str
    ) -> None:
        response = await write(client, method, existing, {"title": 123, "completed": "true"})

        problem = assert_problem(response, 400, fields=["title", "completed"])
        assert problem["detail"] == "2 fields are invalid"
        await assert_nothing_written(client, existing)

    @pytest.mark.parametrize("method", WRITES)
    async def test_every_invalid_field_is_listed(
        self, client: httpx.AsyncClient, existing: JSON, method: str
    ) -> None:
        body = {"title": " ", "description": "x" * 1001, "completed": "yes"}

        response = await write(client, method, existing, body)

        problem = assert_problem(response, 400, fields=["title", "description", "completed"])
        assert problem["detail"] == "3 fields are invalid"
        assert {(e["field"], e["type"]) for e in problem["errors"]} == {
            ("title", "string_too_short"),
            ("description", "string_too_long"),
            ("completed", "bool_type"),
        }
        await assert_nothing_written(client, existing)

    async def test_invalid_user_id_and_body_are_listed_together(
        self, client: httpx.AsyncClient, conn: AsyncConnection
    ) -> None:
        response = await client.post("/api/a%20b/tasks", json={"title": ""})

        problem = assert_problem(response, 400, fields=["user_id", "title"])
        assert problem["detail"] == "2 fields are invalid"
        assert await count_tasks(conn) == 0


INVALID_USER_IDS = [
    "%20",
    "a%20b",
    "x" * 256,
    "%C3%A9",
    "caf%C3%A9",
    "%00",
    "a%09b",
    "%7F",
    "alice%0A",
    "x" * 255 + "%0A",
]
INVALID_USER_ID_NAMES = [
    "space",
    "inner-space",
    "256-chars",
    "e-acute",
    "cafe",
    "nul",
    "tab",
    "del",
    "trailing-newline",
    "255-chars-and-newline",
]


class TestUserIdInPath:
    @pytest.mark.parametrize(
        "user_id",
        ["a", "x" * 255, "alice@example.com", "user_1.2-3~", "A!$&'()*+,;=:"],
        ids=["one-char", "255-chars", "email", "punctuation", "sub-delims"],
    )
    async def test_printable_ascii_user_id_up_to_255_characters_is_accepted(
        self, client: httpx.AsyncClient, user_id: str
    ) -> None:
        response = await client.post(f"/api/{user_id}/tasks", json={"title": "Mine"})

        assert response.status_code == 201, response.text
        body = response.json()
        assert body["user_id"] == user_id
        assert response.headers["location"] == f"/api/{user_id}/tasks/{body['id']}"
        assert (await client.get(f"/api/{user_id}/tasks")).json() == [body]

    @pytest.mark.parametrize("user_id", INVALID_USER_IDS, ids=INVALID_USER_ID_NAMES)
    async def test_invalid_user_id_on_list_is_refused(
        self, client: httpx.AsyncClient, user_id: str
    ) -> None:
        response = await client.get(f"/api/{user_id}/tasks")

        problem = assert_problem(response, 400, fields=["user_id"])
        assert problem["detail"] == "1 field is invalid"

    @pytest.mark.parametrize("user_id", INVALID_USER_IDS, ids=INVALID_USER_ID_NAMES)
    async def test_invalid_user_id_on_create_is_refused_and_writes_nothing(
        self, client: httpx.AsyncClient, conn: AsyncConnection, user_id: str
    ) -> None:
        response = await client.post(f"/api/{user_id}/tasks", json={"title": "Mine"})

        assert_problem(response, 400, fields=["user_id"])
        assert await count_tasks(conn) == 0

    @pytest.mark.parametrize(
        ("method", "suffix", "body"),
        [
            ("GET", "", None),
            ("PUT", "", {"title": "x"}),
            ("PATCH", "", {"title": "x"}),
            ("PATCH", "/complete", None),
            ("DELETE", "", None),
        ],
    )
    async def test_invalid_user_id_is_refused_on_every_task_operation(
        self,
        client: httpx.AsyncClient,
        existing: JSON,
        method: str,
        suffix: str,
        body: JSON | None,
    ) -> None:
        url = f"/api/alice%20/tasks/{existing['id']}{suffix}"

        response = await client.request(method, url, json=body)

        assert_problem(response, 400, fields=["user_id"])
        await assert_nothing_written(client, existing)


# One rule for every text field: what is refused, the error type, and the code point named.
REFUSED_CHARACTERS = [
    ("\u0080", "control_character", "U+0080"),
    ("\u009b", "control_character", "U+009B"),
    ("\u009f", "control_character", "U+009F"),
    ("\u007f", "control_character", "U+007F"),
    ("\u202a", "bidi_control", "U+202A"),
    ("\u202e", "bidi_control", "U+202E"),
    ("\u2066", "bidi_control", "U+2066"),
    ("\u2069", "bidi_control", "U+2069"),
    ("\ufffe", "noncharacter", "U+FFFE"),
    ("\uffff", "noncharacter", "U+FFFF"),
    ("\ufdd0", "noncharacter", "U+FDD0"),
    ("\ufdef", "noncharacter", "U+FDEF"),
    ("\U0001fffe", "noncharacter", "U+1FFFE"),
    ("\U0010ffff", "noncharacter", "U+10FFFF"),
]
# Kept: the invisible direction marks right-to-left text needs, and ordinary text around them.
ACCEPTED_TEXT = [
    "\u200f\u05e9\u05dc\u05d5\u05dd\u200e ok",
    "\u061c\u0645\u0631\u062d\u0628\u0627",
    "👩\u200d💻 review",
    "\ufffd replaced",
    "a\u00a0b",
    "\u00a1\u00ff",
    "\ufdcf\ufdf0",
    "\U0001fffd",
]


def _text_body(field: str, text: str) -> dict[str, Any]:
    if field == "tags":
        return {"title": "T", "tags": [f"x{text}"]}
    if field == "description":
        return {"title": "T", "description": f"x{text}"}
    return {"title": f"x{text}"}


class TestTextCharacters:
    @pytest.mark.parametrize("method", WRITES)
    @pytest.mark.parametrize("field", ["title", "description", "tags"])
    @pytest.mark.parametrize(("character", "kind", "named"), REFUSED_CHARACTERS)
    async def test_refused_everywhere_naming_what_was_found(
        self,
        client: httpx.AsyncClient,
        existing: JSON,
        method: str,
        field: str,
        character: str,
        kind: str,
        named: str,
    ) -> None:
        response = await write(client, method, existing, _text_body(field, character))

        problem = assert_problem(response, 400)
        [error] = problem["errors"]
        assert error["field"] == (field if field != "tags" else "tags.0")
        assert error["type"] == kind
        assert f"found {named} at character 2" in error["message"]
        await assert_nothing_written(client, existing)

    @pytest.mark.parametrize(("character", "kind", "named"), REFUSED_CHARACTERS)
    async def test_refused_in_the_search_text(
        self, client: httpx.AsyncClient, character: str, kind: str, named: str
    ) -> None:
        response = await client.get("/api/alice/tasks", params={"q": f"x{character}"})

        problem = assert_problem(response, 400, fields=["q"])
        assert problem["errors"][0]["type"] == kind
        assert named in problem["errors"][0]["message"]

    @pytest.mark.parametrize("method", WRITES)
    @pytest.mark.parametrize("field", ["title", "description", "tags"])
    async def test_a_lone_surrogate_is_named_as_one(
        self, client: httpx.AsyncClient, existing: JSON, method: str, field: str
    ) -> None:
        raw = {
            "title": b'{"title": "a\\udfffb"}',
            "description": b'{"title": "T", "description": "a\\ud800"}',
            "tags": b'{"title": "T", "tags": ["a\\udbffb"]}',
        }[field]

        response = await write(client, method, existing, raw=raw)

        problem = assert_problem(response, 400)
        [error] = problem["errors"]
        assert error["type"] == "lone_surrogate"
        assert "a lone surrogate: found U+D" in error["message"]
        await assert_nothing_written(client, existing)

    @pytest.mark.parametrize("method", WRITES)
    @pytest.mark.parametrize("text", ACCEPTED_TEXT)
    async def test_other_text_is_stored_intact(
        self, client: httpx.AsyncClient, existing: JSON, method: str, text: str
    ) -> None:
        body = {"title": text, "description": text, "tags": [text]}

        response = await write(client, method, existing, body)

        stored = await assert_accepted(client, method, response)
        assert (stored["title"], stored["description"], stored["tags"]) == (text, text, [text])
