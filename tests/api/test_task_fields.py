"""The task fields added beside title and description: `priority`, `due_at`, `tags` and the
server-set `completed_at`, through HTTP on every write (POST, PUT, PATCH, the completion toggle),
and how each of them moves `updated_at`.

Tables of values are checked in one test per write method, all values collected before asserting,
so a failure shows every value that misbehaves at once (and the file stays fast)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.support.factories import JSON, RFC3339_UTC, TASK_FIELDS, assert_problem, create_task

WRITES = ["POST", "PUT", "PATCH"]
UPDATES = ["PUT", "PATCH"]
DUE = "2026-12-01T16:00:00Z"
# Every way a task becomes completed, and every way it is reopened.
COMPLETE_WAYS = ["PATCH", "PUT", "toggle", "complete"]

BAD_PRIORITIES: list[Any] = ["urgent", "HIGH", "High", " high", "", 3, 2.0, True, None, ["high"]]

# (sent, the instant it names)
GOOD_DUE_DATES = [
    ("2026-12-01T17:00:00+01:00", "2026-12-01T16:00:00+00:00"),
    ("2026-12-01T11:00:00-05:00", "2026-12-01T16:00:00+00:00"),
    ("2026-12-02T01:30:00+09:30", "2026-12-01T16:00:00+00:00"),
    ("2026-12-01T16:00:00Z", "2026-12-01T16:00:00+00:00"),
    ("2026-12-01T16:00:00.123456+00:00", "2026-12-01T16:00:00.123456+00:00"),
    ("2026-12-01T00:30:00+01:00", "2026-11-30T23:30:00+00:00"),
    ("2026-12-01", "2026-12-01T00:00:00+00:00"),
    ("2027-02-28", "2027-02-28T00:00:00+00:00"),
]
BAD_DUE_DATES: list[Any] = [
    "2026-12-01T10:00:00",  # no offset
    "2026-12-01T10:00",
    1764604800,
    0.5,
    "0.5",
    "1764604800",
    "tomorrow",
    "2026-02-30",
    "2026-13-01",
    "2026-12-01T25:00:00Z",
    "",
    True,
    ["2026-12-01"],
]

# (sent, stored)
GOOD_TAGS: list[tuple[list[str], list[str]]] = [
    ([], []),
    (["zeta", "Alpha", "mid"], ["zeta", "Alpha", "mid"]),
    (["  errands ", "\u3000home\u00a0"], ["errands", "home"]),
    (["x" * 50, " " + "y" * 50 + " "], ["x" * 50, "y" * 50]),
    (["😀" * 50, "é" * 50, "日本"], ["😀" * 50, "é" * 50, "日本"]),
    (["two words", "a-b_c.d"], ["two words", "a-b_c.d"]),
    ([f"tag {n}" for n in range(20)], [f"tag {n}" for n in range(20)]),
    # Repeats, compared case-insensitively after trimming, are dropped: the first spelling stays.
    (["Work", "work"], ["Work"]),
    (["home", "x", "HOME"], ["home", "x"]),
    (["a", " a "], ["a"]),
    (["Straße", "STRASSE"], ["Straße"]),
]
# (sent, the fields the 400 names)
BAD_TAGS: list[tuple[Any, list[str]]] = [
    ([f"tag {n}" for n in range(21)], ["tags"]),
    ([""], ["tags.0"]),
    (["ok", "   "], ["tags.1"]),
    (["ok", "\u3000"], ["tags.1"]),
    (["x" * 51], ["tags.0"]),
    (["ok", " " + "x" * 51 + " "], ["tags.1"]),
    (["a\x00b"], ["tags.0"]),
    (["ok", "a\nb"], ["tags.1"]),
    (["\t"], ["tags.0"]),
    (["", "x" * 51], ["tags.0", "tags.1"]),
    ([1], ["tags.0"]),
    (["ok", None], ["tags.1"]),
    ("work", ["tags"]),
    ({"work": True}, ["tags"]),
]

# Updates of the `task` fixture that change nothing.
NO_CHANGES: list[JSON] = [
    {},
    {"priority": "high"},
    {"tags": ["Work", "home"]},
    {"tags": [" Work ", "home\u00a0"]},
    {"due_at": DUE},
    {"due_at": "2026-12-01T17:00:00+01:00"},
    {"due_at": "2026-12-01T16:00:00.000000Z"},
    {"completed": False},
    {"completed_at": "2000-01-01T00:00:00Z", "created_at": "2000-01-01T00:00:00Z"},
    {"priority": "high", "tags": ["Work", "home"], "due_at": DUE, "title": "Plan"},
]
# Updates of the `task` fixture that change one field: (sent, field, its new value).
REAL_CHANGES: list[tuple[JSON, str, Any]] = [
    ({"priority": "low"}, "priority", "low"),
    ({"priority": "medium"}, "priority", "medium"),
    ({"tags": ["home", "Work"]}, "tags", ["home", "Work"]),
    ({"tags": ["work", "home"]}, "tags", ["work", "home"]),
    ({"tags": ["Work", "home", "garden"]}, "tags", ["Work", "home", "garden"]),
    ({"tags": ["Work"]}, "tags", ["Work"]),
    ({"tags": None}, "tags", []),
    ({"due_at": "2026-12-01T16:00:00.000001Z"}, "due_at", "2026-12-01T16:00:00.000001Z"),
    ({"due_at": "2026-12-02"}, "due_at", "2026-12-02T00:00:00Z"),
    ({"due_at": None}, "due_at", None),
]


def parse_ts(value: str) -> datetime:
    """An RFC 3339 timestamp in UTC with a `Z` suffix, as an aware datetime."""
    assert isinstance(value, str), value
    assert RFC3339_UTC.match(value), value
    return datetime.fromisoformat(value)


def without(task: JSON, *fields: str) -> JSON:
    return {key: value for key, value in task.items() if key not in fields}


def task_url(task: JSON) -> str:
    return f"/api/{task['user_id']}/tasks/{task['id']}"


def new_task_body(title: str = "Plan") -> JSON:
    return {"title": title, "priority": "high", "tags": ["Work", "home"], "due_at": DUE}


@pytest.fixture
async def task(client: httpx.AsyncClient) -> JSON:
    """Alice's open task with every new field set: POST adds beside it, PUT and PATCH change it."""
    return await create_task(client, **new_task_body())


async def write(client: httpx.AsyncClient, method: str, task: JSON, body: JSON) -> httpx.Response:
    """POST `body` as a new task (with a title), or PUT/PATCH it onto `task`."""
    if method == "POST":
        return await client.post("/api/alice/tasks", json={"title": "New", **body})
    return await client.request(method, task_url(task), json=body)


async def accepted(client: httpx.AsyncClient, method: str, response: httpx.Response) -> JSON:
    """The write succeeded, and reading the task back returns exactly what it answered."""
    assert response.status_code == (201 if method == "POST" else 200), response.text
    body: JSON = response.json()
    read = await client.get(task_url(body))
    assert read.status_code == 200
    assert read.json() == body
    return body


def refused_fields(response: httpx.Response) -> list[str] | str:
    """The fields a 400 problem names; for any other answer, what came back instead."""
    if response.status_code != 400:
        return f"{response.status_code}: {response.text[:200]}"
    problem = assert_problem(response, 400)
    return sorted(error["field"] for error in problem["errors"])


async def assert_unchanged(client: httpx.AsyncClient, task: JSON) -> None:
    """No task was added and `task` is exactly as it was."""
    assert (await client.get("/api/alice/tasks")).json() == [task]


async def complete(client: httpx.AsyncClient, task: JSON, way: str) -> httpx.Response:
    url = task_url(task)
    if way == "toggle":
        return await client.patch(f"{url}/complete")
    if way == "complete":
        return await client.patch(f"{url}/complete", json={"completed": True})
    return await client.request(way, url, json={"completed": True})


async def reopen(client: httpx.AsyncClient, task: JSON, way: str) -> httpx.Response:
    url = task_url(task)
    if way == "toggle":
        return await client.patch(f"{url}/complete")
    if way == "complete":
        return await client.patch(f"{url}/complete", json={"completed": False})
    return await client.request(way, url, json={"completed": False})


class TestPriority:
    async def test_defaults_to_medium(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/api/alice/tasks", json={"title": "No priority"})

        body = await accepted(client, "POST", response)
        assert body["priority"] == "medium"

    @pytest.mark.parametrize("method", WRITES)
    async def test_each_priority_is_stored(
        self, client: httpx.AsyncClient, task: JSON, method: str
    ) -> None:
        stored = {}
        for priority in ["low", "medium", "high"]:
            response = await write(client, method, task, {"priority": priority})
            stored[priority] = (await accepted(client, method, response))["priority"]

        assert stored == {"low": "low", "medium": "medium", "high": "high"}

    @pytest.mark.parametrize("method", WRITES)
    async def test_anything_else_is_refused(
        self, client: httpx.AsyncClient, task: JSON, method: str
    ) -> None:
        refused = {}
        for priority in BAD_PRIORITIES:
            response = await write(client, method, task, {"priority": priority})
            refused[repr(priority)] = refused_fields(response)

        assert refused == {repr(priority): ["priority"] for priority in BAD_PRIORITIES}
        await assert_unchanged(client, task)

    async def test_null_is_named_as_not_allowed(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/api/alice/tasks", json={"title": "T", "priority": None})

        problem = assert_problem(response, 400, fields=["priority"])
        assert problem["errors"][0]["type"] == "null_not_allowed"

    @pytest.mark.parametrize("method", UPDATES)
    async def test_changing_it_keeps_every_other_field(
        self, client: httpx.AsyncClient, task: JSON, method: str
    ) -> None:
        response = await write(client, method, task, {"priority": "low"})

        body = await accepted(client, method, response)
        assert body["priority"] == "low"
        assert parse_ts(body["updated_at"]) > parse_ts(task["updated_at"])
        assert without(body, "priority", "updated_at", "version") == without(
            task, "priority", "updated_at", "version"
        )


class TestDueAt:
    @pytest.mark.parametrize("body", [{}, {"due_at": None}], ids=["omitted", "null"])
    async def test_defaults_to_null(self, client: httpx.AsyncClient, body: JSON) -> None:
        response = await client.post("/api/alice/tasks", json={"title": "Whenever", **body})

        created = await accepted(client, "POST", response)
        assert created["due_at"] is None

    @pytest.mark.parametrize("method", WRITES)
    async def test_is_returned_in_utc(
        self, client: httpx.AsyncClient, task: JSON, method: str
    ) -> None:
        returned = {}
        for sent, _ in GOOD_DUE_DATES:
            response = await write(client, method, task, {"due_at": sent})
            returned[sent] = parse_ts((await accepted(client, method, response))["due_at"])

        assert returned == {sent: datetime.fromisoformat(utc) for sent, utc in GOOD_DUE_DATES}

    async def test_whole_seconds_are_written_without_a_fraction(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await create_task(client, due_at="2026-12-01T17:00:00+01:00")

        assert created["due_at"] == "2026-12-01T16:00:00Z"

    @pytest.mark.parametrize(
        ("sent", "returned"),
        [
            ("0001-01-02T00:00:00Z", "0001-01-02T00:00:00Z"),
            ("0001-01-02", "0001-01-02T00:00:00Z"),
            ("9999-12-30T23:59:59.999999Z", "9999-12-30T23:59:59.999999Z"),
            ("9999-12-31T04:59:59.999999+05:00", "9999-12-30T23:59:59.999999Z"),
        ],
    )
    async def test_the_ends_of_the_range_round_trip(
        self, client: httpx.AsyncClient, sent: str, returned: str
    ) -> None:
        response = await client.post("/api/alice/tasks", json={"title": "Far", "due_at": sent})

        body = await accepted(client, "POST", response)
        assert body["due_at"] == returned

    @pytest.mark.parametrize("method", WRITES)
    async def test_anything_but_a_timestamp_with_offset_or_a_date_is_refused(
        self, client: httpx.AsyncClient, task: JSON, method: str
    ) -> None:
        refused = {}
        for due_at in BAD_DUE_DATES:
            response = await write(client, method, task, {"due_at": due_at})
            refused[repr(due_at)] = refused_fields(response)

        assert refused == {repr(due_at): ["due_at"] for due_at in BAD_DUE_DATES}
        await assert_unchanged(client, task)

    @pytest.mark.parametrize(
        "due_at",
        [
            "9999-12-31T23:00:00-05:00",
            "0001-01-01T00:30:00+01:00",
            # The extremes of the types themselves: PostgreSQL's driver maps them to infinity.
            "0001-01-01T00:00:00Z",
            "0001-01-01",
            "9999-12-31T23:59:59.999999Z",
            "9999-12-31",
        ],
    )
    async def test_an_instant_outside_the_range_is_refused(
        self, client: httpx.AsyncClient, task: JSON, due_at: str
    ) -> None:
        refused = {}
        for method in WRITES:
            refused[method] = refused_fields(await write(client, method, task, {"due_at": due_at}))

        assert refused == {method: ["due_at"] for method in WRITES}
        await assert_unchanged(client, task)

    @pytest.mark.parametrize("method", UPDATES)
    async def test_null_clears_it(self, client: httpx.AsyncClient, task: JSON, method: str) -> None:
        response = await write(client, method, task, {"due_at": None})

        body = await accepted(client, method, response)
        assert body["due_at"] is None
        assert body["tags"] == task["tags"]
        assert body["priority"] == task["priority"]

    @pytest.mark.parametrize("method", UPDATES)
    async def test_omitted_keeps_it(
        self, client: httpx.AsyncClient, task: JSON, method: str
    ) -> None:
        response = await write(client, method, task, {"title": "Renamed"})

        body = await accepted(client, method, response)
        assert body["title"] == "Renamed"
        assert body["due_at"] == task["due_at"] == DUE


class TestTags:
    @pytest.mark.parametrize("body", [{}, {"tags": None}], ids=["omitted", "null"])
    async def test_default_to_none(self, client: httpx.AsyncClient, body: JSON) -> None:
        response = await client.post("/api/alice/tasks", json={"title": "Untagged", **body})

        created = await accepted(client, "POST", response)
        assert created["tags"] == []

    async def test_a_tag_that_folding_lengthens_is_kept_and_found(
        self, client: httpx.AsyncClient
    ) -> None:
        # 50 characters as sent; case-folded ("ß" is "ss") it is 100, longer than a tag may be.
        long_tag = "ß" * 50
        created = await create_task(client, tags=[long_tag, "Straße"])

        # The capital sharp s folds to "ss" too: the same tag, compared case-insensitively.
        found = await client.get("/api/alice/tasks", params=[("tag", "\u1e9e" * 50)])

        assert created["tags"] == [long_tag, "Straße"]
        assert [task["id"] for task in found.json()] == [created["id"]]

    @pytest.mark.parametrize("method", WRITES)
    async def test_are_stored_trimmed_in_the_order_given(
        self, client: httpx.AsyncClient, task: JSON, method: str
    ) -> None:
        stored = []
        for sent, _ in GOOD_TAGS:
            response = await write(client, method, task, {"tags": sent})
            stored.append((await accepted(client, method, response))["tags"])

        assert stored == [tags for _, tags in GOOD_TAGS]

    @pytest.mark.parametrize("method", WRITES)
    async def test_invalid_tags_are_refused(
        self, client: httpx.AsyncClient, task: JSON, method: str
    ) -> None:
        refused = {}
        for tags, _ in BAD_TAGS:
            response = await write(client, method, task, {"tags": tags})
            refused[repr(tags)] = refused_fields(response)

        assert refused == {repr(tags): fields for tags, fields in BAD_TAGS}
        await assert_unchanged(client, task)

    async def test_more_than_twenty_are_refused_even_with_repeats(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post("/api/alice/tasks", json={"title": "T", "tags": ["a"] * 21})

        assert_problem(response, 400, fields=["tags"])

    @pytest.mark.parametrize("method", UPDATES)
    async def test_null_or_empty_clears_them(self, client: httpx.AsyncClient, method: str) -> None:
        cleared = []
        cleared_by: list[list[str] | None] = [None, []]
        for tags in cleared_by:
            task = await create_task(client, **new_task_body())
            response = await write(client, method, task, {"tags": tags})
            body = await accepted(client, method, response)
            assert without(body, "tags", "updated_at", "version") == without(
                task, "tags", "updated_at", "version"
            )
            cleared.append(body["tags"])

        assert cleared == [[], []]

    @pytest.mark.parametrize("method", UPDATES)
    async def test_omitted_keeps_them(
        self, client: httpx.AsyncClient, task: JSON, method: str
    ) -> None:
        response = await write(client, method, task, {"priority": "low", "due_at": None})

        body = await accepted(client, method, response)
        assert body["tags"] == ["Work", "home"]

    @pytest.mark.parametrize("method", UPDATES)
    async def test_new_tags_replace_the_whole_list(
        self, client: httpx.AsyncClient, task: JSON, method: str
    ) -> None:
        response = await write(client, method, task, {"tags": ["garden"]})

        body = await accepted(client, method, response)
        assert body["tags"] == ["garden"]


class TestCompletedAt:
    async def test_is_null_while_open(self, client: httpx.AsyncClient, task: JSON) -> None:
        assert task["completed"] is False
        assert task["completed_at"] is None
        assert (await client.get(task_url(task))).json()["completed_at"] is None

    async def test_is_set_when_created_completed(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/api/alice/tasks", json={"title": "Done", "completed": True})

        body = await accepted(client, "POST", response)
        assert body["completed"] is True
        completed_at = parse_ts(body["completed_at"])
        assert completed_at == parse_ts(body["updated_at"]) == parse_ts(body["created_at"])

    @pytest.mark.parametrize("way", COMPLETE_WAYS)
    async def test_is_the_update_time_whenever_the_task_becomes_completed(
        self, client: httpx.AsyncClient, task: JSON, way: str
    ) -> None:
        # Several rounds: a stamp taken apart from updated_at's may differ only now and then.
        previous = task
        for _ in range(10):
            body = await accepted(client, "PATCH", await complete(client, previous, way))
            assert body["completed"] is True
            assert parse_ts(body["updated_at"]) > parse_ts(previous["updated_at"])
            assert parse_ts(body["completed_at"]) == parse_ts(body["updated_at"])

            previous = await accepted(client, "PATCH", await reopen(client, body, "PATCH"))
            assert previous["completed_at"] is None

    @pytest.mark.parametrize("way", COMPLETE_WAYS)
    async def test_is_cleared_when_the_task_is_reopened(
        self, client: httpx.AsyncClient, way: str
    ) -> None:
        done = await create_task(client, title="Done", completed=True)

        body = await accepted(client, "PATCH", await reopen(client, done, way))

        assert body["completed"] is False
        assert body["completed_at"] is None
        assert parse_ts(body["updated_at"]) > parse_ts(done["updated_at"])

    async def test_completing_a_completed_task_changes_nothing(
        self, client: httpx.AsyncClient
    ) -> None:
        done = await create_task(client, title="Done", completed=True)

        answers = [
            (await accepted(client, "PATCH", await complete(client, done, way)))
            for way in ["PATCH", "PUT", "complete"]
        ]

        assert answers == [done, done, done]

    async def test_completing_a_reopened_task_stamps_it_anew(
        self, client: httpx.AsyncClient
    ) -> None:
        done = await create_task(client, title="Done", completed=True)
        await accepted(client, "PATCH", await reopen(client, done, "toggle"))

        body = await accepted(client, "PATCH", await complete(client, done, "toggle"))

        assert body["completed"] is True
        assert parse_ts(body["completed_at"]) > parse_ts(done["completed_at"])

    @pytest.mark.parametrize("method", UPDATES)
    async def test_editing_a_completed_task_keeps_it(
        self, client: httpx.AsyncClient, method: str
    ) -> None:
        done = await create_task(client, title="Done", completed=True)

        response = await write(client, method, done, {"priority": "low", "tags": ["x"]})

        body = await accepted(client, method, response)
        assert body["completed_at"] == done["completed_at"]
        assert parse_ts(body["updated_at"]) > parse_ts(done["updated_at"])

    @pytest.mark.parametrize("completed", [False, True])
    async def test_sent_read_only_fields_are_ignored_on_create(
        self, client: httpx.AsyncClient, completed: bool
    ) -> None:
        response = await client.post(
            "/api/alice/tasks",
            json={
                "title": "Forged",
                "completed": completed,
                "completed_at": "2000-01-01T00:00:00Z",
                "created_at": "2000-01-01T00:00:00Z",
            },
        )

        body = await accepted(client, "POST", response)
        created_at = parse_ts(body["created_at"])
        assert created_at.year > 2000
        if completed:
            assert parse_ts(body["completed_at"]) == created_at
        else:
            assert body["completed_at"] is None

    @pytest.mark.parametrize("method", UPDATES)
    async def test_sent_read_only_fields_are_ignored_when_completing(
        self, client: httpx.AsyncClient, task: JSON, method: str
    ) -> None:
        forged = {"completed": True, "completed_at": "2000-01-01T00:00:00Z"}

        body = await accepted(client, method, await write(client, method, task, forged))

        assert parse_ts(body["completed_at"]) > parse_ts(task["created_at"])


class TestUpdatedAt:
    @pytest.mark.parametrize("method", UPDATES)
    async def test_an_update_that_changes_nothing_keeps_it(
        self, client: httpx.AsyncClient, task: JSON, method: str
    ) -> None:
        differences = {}
        for same in NO_CHANGES:
            body = await accepted(client, method, await write(client, method, task, same))
            differences[repr(same)] = {key: body[key] for key in task if body[key] != task[key]}

        assert differences == {repr(same): {} for same in NO_CHANGES}

    async def test_a_date_equal_to_the_midnight_due_changes_nothing(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await create_task(client, due_at="2026-12-01T00:00:00Z")

        body = await accepted(
            client, "PATCH", await client.patch(task_url(created), json={"due_at": "2026-12-01"})
        )

        assert body == created

    async def test_clearing_what_is_already_empty_changes_nothing(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await create_task(client)

        no_tags = await accepted(
            client, "PATCH", await client.patch(task_url(created), json={"tags": None})
        )
        no_due = await accepted(
            client, "PATCH", await client.patch(task_url(created), json={"due_at": None})
        )

        assert no_tags == no_due == created

    @pytest.mark.parametrize("method", UPDATES)
    async def test_a_real_change_moves_it_forward(
        self, client: httpx.AsyncClient, method: str
    ) -> None:
        outcomes = {}
        for change, field, _ in REAL_CHANGES:
            task = await create_task(client, **new_task_body())
            body = await accepted(client, method, await write(client, method, task, change))
            assert without(body, field, "updated_at", "version") == without(
                task, field, "updated_at", "version"
            )
            moved = parse_ts(body["updated_at"]) > parse_ts(task["updated_at"])
            outcomes[repr(change)] = (body[field], moved)

        assert outcomes == {repr(change): (value, True) for change, _, value in REAL_CHANGES}


class TestReadBack:
    async def test_every_field_is_returned(self, client: httpx.AsyncClient, task: JSON) -> None:
        read = await client.get(task_url(task))

        assert read.json() == task
        assert set(task) == TASK_FIELDS
        assert task["priority"] == "high"
        assert task["tags"] == ["Work", "home"]
        assert task["due_at"] == DUE
        assert task["completed_at"] is None

    async def test_get_and_list_return_what_the_writes_answered(
        self, client: httpx.AsyncClient, task: JSON
    ) -> None:
        patched = await accepted(
            client,
            "PATCH",
            await client.patch(
                task_url(task),
                json={"priority": "low", "tags": [" b ", "A"], "due_at": "2027-01-01"},
            ),
        )
        done = await accepted(client, "PATCH", await complete(client, patched, "toggle"))

        assert (await client.get("/api/alice/tasks")).json() == [done]
        assert done["priority"] == "low"
        assert done["tags"] == ["b", "A"]
        assert done["due_at"] == "2027-01-01T00:00:00Z"
        assert parse_ts(done["completed_at"]) > parse_ts(task["created_at"])
