"""Versions, ETags and conditional requests (If-Match, If-None-Match) through real HTTP."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.factories import JSON, assert_problem, create_task

ITEM = "/api/{user_id}/tasks/{task_id}"
COMPLETE = "/api/{user_id}/tasks/{task_id}/complete"
PRECONDITION_FAILED = "/problems/precondition-failed"


def url(task: JSON, suffix: str = "") -> str:
    return f"/api/{task['user_id']}/tasks/{task['id']}{suffix}"


def etag(version: int) -> str:
    return f'"{version}"'


def header(name: str, value: str) -> dict[bytes, bytes]:
    """One request header, sent byte for byte (latin-1), so any value can be tried."""
    return {name.encode("ascii"): value.encode("latin-1")}


def if_match(value: str) -> dict[bytes, bytes]:
    return header("If-Match", value)


def if_none_match(value: str) -> dict[bytes, bytes]:
    return header("If-None-Match", value)


def assert_tagged(response: httpx.Response, status: int = 200) -> JSON:
    """A single-task response whose strong `ETag` is the body's version."""
    assert response.status_code == status, response.text
    body: JSON = response.json()
    assert response.headers["etag"] == etag(body["version"])
    return body


async def read(client: httpx.AsyncClient, task: JSON) -> JSON:
    return assert_tagged(await client.get(url(task)))


async def task_at_version(client: httpx.AsyncClient, version: int, **fields: Any) -> JSON:
    """A fresh task of alice's, changed until it reaches `version`."""
    task = await create_task(client, **fields)
    for n in range(2, version + 1):
        task = assert_tagged(await client.patch(url(task), json={"title": f"Revision {n}"}))
    assert task["version"] == version
    return task


def assert_precondition_failed(response: httpx.Response, current: int) -> None:
    body = assert_problem(response, 412)
    assert body["type"] == PRECONDITION_FAILED
    assert response.headers["etag"] == etag(current)


@dataclass(frozen=True)
class Write:
    """One kind of single-task write, and the status it answers with on success."""

    name: str
    method: str
    suffix: str
    body: JSON | None
    status: int

    async def send(
        self, client: httpx.AsyncClient, task: JSON, headers: dict[bytes, bytes] | None = None
    ) -> httpx.Response:
        return await client.request(
            self.method, url(task, self.suffix), json=self.body, headers=headers
        )


WRITES = [
    Write("put", "PUT", "", {"title": "Changed"}, 200),
    Write("patch", "PATCH", "", {"title": "Changed", "priority": "high"}, 200),
    Write("toggle", "PATCH", "/complete", None, 200),
    Write("complete", "PATCH", "/complete", {"completed": True}, 200),
    Write("delete", "DELETE", "", None, 204),
]
EVERY_WRITE = pytest.mark.parametrize("write", WRITES, ids=[w.name for w in WRITES])


async def assert_written(
    client: httpx.AsyncClient, write: Write, before: JSON, response: httpx.Response
) -> None:
    """`write` succeeded on `before` and changed it: version +1, or gone for a delete."""
    if write.status == 204:
        assert response.status_code == 204, response.text
        assert response.content == b""
        assert_problem(await client.get(url(before)), 404)
        return
    after = assert_tagged(response)
    assert after["version"] == before["version"] + 1
    assert after["updated_at"] > before["updated_at"]
    assert await read(client, before) == after


async def assert_unwritten(client: httpx.AsyncClient, before: JSON) -> None:
    """The task is exactly as it was: same fields, version and updated_at."""
    assert await read(client, before) == before


class TestVersion:
    async def test_new_task_is_at_version_one(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/api/alice/tasks", json={"title": "New"})

        body = assert_tagged(response, 201)
        assert body["version"] == 1
        assert response.headers["etag"] == '"1"'

    async def test_get_carries_the_etag_of_its_version(self, client: httpx.AsyncClient) -> None:
        task = await task_at_version(client, 3)

        response = await client.get(url(task))

        assert response.headers["etag"] == '"3"'
        assert assert_tagged(response) == task

    async def test_every_change_adds_one(self, client: httpx.AsyncClient) -> None:
        task = await create_task(client, title="Start")
        steps = [
            ("PUT", "", {"title": "Put"}),
            ("PATCH", "", {"description": None}),
            ("PATCH", "/complete", None),
            ("PATCH", "/complete", {"completed": False}),
            ("PATCH", "", {"tags": ["home"], "priority": "low"}),
        ]

        for expected, (method, suffix, body) in enumerate(steps, start=2):
            response = await client.request(method, url(task, suffix), json=body)
            changed = assert_tagged(response)
            assert changed["version"] == expected, (method, suffix, body)
            assert changed["updated_at"] > task["updated_at"]
            task = changed

        assert await read(client, task) == task

    @pytest.mark.parametrize(
        ("method", "suffix", "body"),
        [
            ("PATCH", "", {"title": "Same"}),
            ("PUT", "", {"title": "Same"}),
            ("PATCH", "", {}),
            ("PUT", "", {}),
            ("PATCH", "", {"completed": True}),
            ("PATCH", "", {"title": "Same", "completed": True, "priority": "medium"}),
            ("PATCH", "/complete", {"completed": True}),
        ],
    )
    async def test_an_update_that_changes_nothing_keeps_version_and_updated_at(
        self, client: httpx.AsyncClient, method: str, suffix: str, body: JSON
    ) -> None:
        task = await create_task(client, title="Same", completed=True)

        response = await client.request(method, url(task, suffix), json=body)

        assert assert_tagged(response) == task
        assert await read(client, task) == task

    async def test_toggle_always_changes_the_version(self, client: httpx.AsyncClient) -> None:
        task = await create_task(client, completed=False)

        first = assert_tagged(await client.patch(url(task, "/complete")))
        second = assert_tagged(await client.patch(url(task, "/complete")))

        assert (first["completed"], first["version"]) == (True, 2)
        assert (second["completed"], second["version"]) == (False, 3)
        assert second["updated_at"] > first["updated_at"] > task["updated_at"]

    async def test_without_if_match_the_last_write_wins(self, client: httpx.AsyncClient) -> None:
        task = await create_task(client, title="Original")

        first = await client.patch(url(task), json={"title": "First"})
        second = await client.patch(url(task), json={"title": "Second"})

        assert assert_tagged(first)["version"] == 2
        assert assert_tagged(second)["version"] == 3
        stored = await read(client, task)
        assert (stored["title"], stored["version"]) == ("Second", 3)

    async def test_lists_and_delete_are_not_tagged(self, client: httpx.AsyncClient) -> None:
        task = await create_task(client)

        listed = await client.get("/api/alice/tasks")
        deleted = await client.delete(url(task))

        assert listed.status_code == 200
        assert [row["version"] for row in listed.json()] == [1]
        assert deleted.status_code == 204


class TestIfNoneMatch:
    async def test_current_version_is_not_modified(self, client: httpx.AsyncClient) -> None:
        task = await task_at_version(client, 2)

        response = await client.get(url(task), headers=if_none_match('"2"'))

        assert response.status_code == 304
        assert response.content == b""
        assert response.headers["etag"] == '"2"'

    async def test_old_version_gets_the_task(self, client: httpx.AsyncClient) -> None:
        task = await task_at_version(client, 2)

        response = await client.get(url(task), headers=if_none_match('"1"'))

        assert assert_tagged(response) == task

    @pytest.mark.parametrize(
        "value",
        ["*", 'W/"3"', '"1", "3"', '"1",W/"3"', "3", '"3",'],
        ids=["any", "weak", "list", "weak-in-list", "bare-token", "trailing-comma"],
    )
    async def test_matching_tags_are_not_modified(
        self, client: httpx.AsyncClient, value: str
    ) -> None:
        task = await task_at_version(client, 3)

        response = await client.get(url(task), headers=if_none_match(value))

        assert response.status_code == 304, response.text
        assert response.content == b""
        assert response.headers["etag"] == '"3"'

    @pytest.mark.parametrize(
        "value",
        ['"1", "2"', '"abc"', '""', '"99999999999"'],
        ids=["other-versions", "opaque", "empty-tag", "huge"],
    )
    async def test_tags_not_naming_the_version_get_the_task(
        self, client: httpx.AsyncClient, value: str
    ) -> None:
        task = await task_at_version(client, 3)

        response = await client.get(url(task), headers=if_none_match(value))

        assert assert_tagged(response) == task

    async def test_a_change_ends_not_modified(self, client: httpx.AsyncClient) -> None:
        task = await create_task(client, title="Before")
        assert (await client.get(url(task), headers=if_none_match('"1"'))).status_code == 304

        await client.patch(url(task), json={"title": "After"})
        response = await client.get(url(task), headers=if_none_match('"1"'))

        body = assert_tagged(response)
        assert (body["title"], body["version"]) == ("After", 2)

    @pytest.mark.parametrize("value", ['"1"', "*"])
    async def test_unknown_task_is_not_found(self, client: httpx.AsyncClient, value: str) -> None:
        response = await client.get(
            f"/api/alice/tasks/{uuid.uuid4()}", headers=if_none_match(value)
        )

        assert_problem(response, 404)

    async def test_another_users_task_is_not_found(self, client: httpx.AsyncClient) -> None:
        theirs = await create_task(client, "bob")

        response = await client.get(f"/api/alice/tasks/{theirs['id']}", headers=if_none_match("*"))

        assert_problem(response, 404)

    @pytest.mark.parametrize("value", ['"1" "2"', "a b", ""])
    async def test_malformed_header_is_refused(self, client: httpx.AsyncClient, value: str) -> None:
        task = await create_task(client)

        response = await client.get(url(task), headers=if_none_match(value))

        assert_problem(response, 400, fields=["If-None-Match"])


class TestIfMatch:
    @EVERY_WRITE
    async def test_current_version_writes(self, client: httpx.AsyncClient, write: Write) -> None:
        before = await task_at_version(client, 2)

        response = await write.send(client, before, if_match('"2"'))

        await assert_written(client, write, before, response)

    @EVERY_WRITE
    async def test_stale_version_fails_and_writes_nothing(
        self, client: httpx.AsyncClient, write: Write
    ) -> None:
        before = await task_at_version(client, 2)

        response = await write.send(client, before, if_match('"1"'))

        assert_precondition_failed(response, current=2)
        await assert_unwritten(client, before)

    @pytest.mark.parametrize("stale", ['"3"', '"0"', '"2147483647"', '"1", "3", "4", "5"'])
    async def test_other_stale_versions_fail(self, client: httpx.AsyncClient, stale: str) -> None:
        before = await task_at_version(client, 2)

        response = await client.patch(url(before), json={"title": "No"}, headers=if_match(stale))

        assert_precondition_failed(response, current=2)
        await assert_unwritten(client, before)

    @EVERY_WRITE
    async def test_any_version_acts_like_no_header(
        self, client: httpx.AsyncClient, write: Write
    ) -> None:
        before = await task_at_version(client, 2)

        response = await write.send(client, before, if_match("*"))

        await assert_written(client, write, before, response)

    @EVERY_WRITE
    async def test_missing_task_is_not_found(self, client: httpx.AsyncClient, write: Write) -> None:
        missing = {"user_id": "alice", "id": str(uuid.uuid4())}

        versioned = await write.send(client, missing, if_match('"1"'))
        any_version = await write.send(client, missing, if_match("*"))

        assert_problem(versioned, 404)
        assert_problem(any_version, 404)
        assert "etag" not in versioned.headers

    @EVERY_WRITE
    async def test_another_users_task_is_not_found(
        self, client: httpx.AsyncClient, write: Write
    ) -> None:
        theirs = await create_task(client, "bob")
        aimed = {**theirs, "user_id": "alice"}

        stale = await write.send(client, aimed, if_match('"7"'))
        current = await write.send(client, aimed, if_match('"1"'))

        assert_problem(stale, 404)
        assert_problem(current, 404)
        assert "etag" not in stale.headers
        await assert_unwritten(client, theirs)

    @EVERY_WRITE
    async def test_weak_tag_never_matches(self, client: httpx.AsyncClient, write: Write) -> None:
        before = await task_at_version(client, 2)

        response = await write.send(client, before, if_match('W/"2"'))

        assert_precondition_failed(response, current=2)
        await assert_unwritten(client, before)

    @EVERY_WRITE
    async def test_list_naming_the_current_version_writes(
        self, client: httpx.AsyncClient, write: Write
    ) -> None:
        before = await task_at_version(client, 2)

        response = await write.send(client, before, if_match('"99", "2"'))

        await assert_written(client, write, before, response)

    @pytest.mark.parametrize(
        "value",
        ['"2", "99"', 'W/"1", "2"', '"abc", "2"', '"1","2","3","4"', '"2", "2"', ',"2",,'],
    )
    async def test_other_lists_naming_the_current_version_write(
        self, client: httpx.AsyncClient, value: str
    ) -> None:
        before = await task_at_version(client, 2)

        response = await client.patch(url(before), json={"title": "Yes"}, headers=if_match(value))

        assert (assert_tagged(response)["version"], response.json()["title"]) == (3, "Yes")

    @EVERY_WRITE
    async def test_tag_naming_no_version_fails(
        self, client: httpx.AsyncClient, write: Write
    ) -> None:
        before = await task_at_version(client, 2)

        response = await write.send(client, before, if_match('"abc"'))

        assert_precondition_failed(response, current=2)
        await assert_unwritten(client, before)

    @pytest.mark.parametrize(
        "value",
        ['""', '"v2"', '"2.0"', '"+2"', '"1", "abc"', 'W/"2", "x"'],
        ids=["empty-tag", "prefixed", "decimal", "signed", "list", "weak-and-word"],
    )
    async def test_other_tags_naming_no_version_fail(
        self, client: httpx.AsyncClient, value: str
    ) -> None:
        before = await task_at_version(client, 2)

        response = await client.patch(url(before), json={"title": "No"}, headers=if_match(value))

        assert_precondition_failed(response, current=2)
        await assert_unwritten(client, before)

    @EVERY_WRITE
    async def test_bare_token_is_read_as_the_quoted_tag(
        self, client: httpx.AsyncClient, write: Write
    ) -> None:
        before = await task_at_version(client, 2)

        stale = await write.send(client, before, if_match("1"))
        current = await write.send(client, before, if_match("2"))

        assert_precondition_failed(stale, current=2)
        await assert_written(client, write, before, current)

    @EVERY_WRITE
    async def test_malformed_header_is_refused(
        self, client: httpx.AsyncClient, write: Write
    ) -> None:
        before = await task_at_version(client, 2)

        response = await write.send(client, before, if_match('"2" "3"'))

        body = assert_problem(response, 400, fields=["If-Match"])
        assert body["errors"][0]["field"] == "If-Match"
        await assert_unwritten(client, before)

    @pytest.mark.parametrize(
        "value", ["a b", "", " ", '"2', '2"', '""2""', '"2" x', "W/ 2", '"2 3"', '"2";"3"']
    )
    async def test_other_malformed_values_are_refused(
        self, client: httpx.AsyncClient, value: str
    ) -> None:
        before = await task_at_version(client, 2)

        response = await client.patch(url(before), json={"title": "No"}, headers=if_match(value))

        body = assert_problem(response, 400, fields=["If-Match"])
        assert body["errors"][0]["field"] == "If-Match"
        await assert_unwritten(client, before)

    @EVERY_WRITE
    async def test_more_than_four_versions_are_refused(
        self, client: httpx.AsyncClient, write: Write
    ) -> None:
        before = await task_at_version(client, 2)

        response = await write.send(client, before, if_match('"1", "2", "3", "4", "5"'))

        assert_problem(response, 400, fields=["If-Match"])
        await assert_unwritten(client, before)

    async def test_repeated_and_non_version_tags_do_not_count(
        self, client: httpx.AsyncClient
    ) -> None:
        before = await task_at_version(client, 2)
        value = '"1", "2", "3", "4", "4", "2", W/"5", W/"6", "x", "y"'

        response = await client.patch(
            url(before), json={"title": "Counted"}, headers=if_match(value)
        )

        assert assert_tagged(response)["version"] == 3

    async def test_chained_writes_follow_the_etag(self, client: httpx.AsyncClient) -> None:
        task = await create_task(client, title="v1")
        tag = '"1"'
        for n in range(2, 6):
            response = await client.patch(url(task), json={"title": f"v{n}"}, headers=if_match(tag))
            assert assert_tagged(response)["version"] == n
            tag = response.headers["etag"]

        stale = await client.patch(url(task), json={"title": "late"}, headers=if_match('"4"'))

        assert_precondition_failed(stale, current=5)
        assert (await read(client, task))["title"] == "v5"

    async def test_precondition_failure_etag_allows_a_retry(
        self, client: httpx.AsyncClient
    ) -> None:
        task = await task_at_version(client, 3)

        failed = await client.put(url(task), json={"title": "Retry"}, headers=if_match('"1"'))
        retried = await client.put(
            url(task), json={"title": "Retry"}, headers=if_match(failed.headers["etag"])
        )

        assert_precondition_failed(failed, current=3)
        body = assert_tagged(retried)
        assert (body["title"], body["version"]) == ("Retry", 4)


class TestUnusualTags:
    """Tags at the edges of what names a version: they must still be 412 (or a plain 200 for
    If-None-Match), never a server error."""

    @EVERY_WRITE
    async def test_version_beyond_32_bits_is_stale(
        self, client: httpx.AsyncClient, write: Write
    ) -> None:
        before = await task_at_version(client, 2)

        # 2**31: one past the largest 32-bit integer.
        response = await write.send(client, before, if_match('"2147483648"'))

        assert_precondition_failed(response, current=2)
        await assert_unwritten(client, before)

    @EVERY_WRITE
    async def test_superscript_digit_names_no_version(
        self, client: httpx.AsyncClient, write: Write
    ) -> None:
        before = await task_at_version(client, 2)

        # "\xb2" is SUPERSCRIPT TWO: str.isdigit() says yes, int() says no.
        response = await write.send(client, before, if_match('"\xb2"'))

        assert_precondition_failed(response, current=2)
        await assert_unwritten(client, before)

    async def test_superscript_digit_in_if_none_match_gets_the_task(
        self, client: httpx.AsyncClient
    ) -> None:
        task = await task_at_version(client, 2)

        response = await client.get(url(task), headers=if_none_match('"\xb2"'))

        assert assert_tagged(response) == task

    async def test_a_leading_zero_is_another_tag(self, client: httpx.AsyncClient) -> None:
        # Strong comparison is character by character: "01" is not the ETag "1".
        before = await task_at_version(client, 1)

        write = await client.patch(url(before), json={"title": "x"}, headers=if_match('"01"'))
        read_back = await client.get(url(before), headers=if_none_match('"01"'))

        assert_precondition_failed(write, current=1)
        assert assert_tagged(read_back) == before

    async def test_repeated_header_lines_are_one_list(self, client: httpx.AsyncClient) -> None:
        before = await task_at_version(client, 2)

        response = await client.patch(
            url(before),
            json={"title": "Matched on the second line"},
            headers=[("If-Match", '"9"'), ("If-Match", '"2"')],
        )

        assert assert_tagged(response)["title"] == "Matched on the second line"


class TestConditionalNoChange:
    @pytest.mark.parametrize(
        ("suffix", "body"),
        [("", {}), ("", {"title": "Revision 2"}), ("/complete", {"completed": False})],
    )
    async def test_stale_version_fails(
        self, client: httpx.AsyncClient, suffix: str, body: JSON
    ) -> None:
        before = await task_at_version(client, 2)

        response = await client.patch(url(before, suffix), json=body, headers=if_match('"1"'))

        assert_precondition_failed(response, current=2)
        await assert_unwritten(client, before)

    @pytest.mark.parametrize(
        ("suffix", "body"),
        [("", {}), ("", {"title": "Revision 2"}), ("/complete", {"completed": False})],
    )
    async def test_current_version_succeeds_without_a_new_version(
        self, client: httpx.AsyncClient, suffix: str, body: JSON
    ) -> None:
        before = await task_at_version(client, 2)

        response = await client.patch(url(before, suffix), json=body, headers=if_match('"2"'))

        assert assert_tagged(response) == before
        assert response.headers["etag"] == '"2"'
        await assert_unwritten(client, before)

    async def test_empty_patch_on_a_missing_task_is_not_found(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.patch(
            f"/api/alice/tasks/{uuid.uuid4()}", json={}, headers=if_match('"1"')
        )

        assert_problem(response, 404)

    @pytest.mark.parametrize("value", ['W/"2"', '"abc"'])
    async def test_empty_patch_with_a_non_matching_tag_fails(
        self, client: httpx.AsyncClient, value: str
    ) -> None:
        before = await task_at_version(client, 2)

        response = await client.patch(url(before), json={}, headers=if_match(value))

        assert_precondition_failed(response, current=2)


class TestRace:
    async def test_one_of_many_conditional_patches_wins(self, client: httpx.AsyncClient) -> None:
        before = await task_at_version(client, 2)
        titles = [f"Contender {n}" for n in range(50)]

        responses = await asyncio.gather(
            *(
                client.patch(url(before), json={"title": title}, headers=if_match('"2"'))
                for title in titles
            )
        )

        statuses = [r.status_code for r in responses]
        assert sorted(set(statuses)) == [200, 412], statuses
        assert statuses.count(200) == 1
        assert statuses.count(412) == 49
        [winner] = [title for title, r in zip(titles, responses, strict=True) if r.is_success]
        for response in responses:
            if response.status_code == 412:
                assert_precondition_failed(response, current=3)
        stored = await read(client, before)
        assert (stored["title"], stored["version"]) == (winner, 3)

    async def test_one_of_many_conditional_toggles_wins(self, client: httpx.AsyncClient) -> None:
        before = await task_at_version(client, 2, completed=False)

        responses = await asyncio.gather(
            *(client.patch(url(before, "/complete"), headers=if_match('"2"')) for _ in range(20))
        )

        statuses = [r.status_code for r in responses]
        assert statuses.count(200) == 1, statuses
        assert statuses.count(412) == 19, statuses
        stored = await read(client, before)
        assert (stored["completed"], stored["version"]) == (True, 3)

    async def test_one_of_many_conditional_deletes_wins(self, client: httpx.AsyncClient) -> None:
        before = await create_task(client)

        responses = await asyncio.gather(
            *(client.delete(url(before), headers=if_match('"1"')) for _ in range(10))
        )

        statuses = sorted(r.status_code for r in responses)
        assert statuses == [204] + [404] * 9
        assert_problem(await client.get(url(before)), 404)

    async def test_unconditional_patches_all_apply(self, client: httpx.AsyncClient) -> None:
        before = await create_task(client)

        responses = await asyncio.gather(
            *(client.patch(url(before), json={"title": f"Writer {n}"}) for n in range(10))
        )

        assert [r.status_code for r in responses] == [200] * 10
        assert sorted(r.json()["version"] for r in responses) == list(range(2, 12))
        assert (await read(client, before))["version"] == 11


class TestOpenAPI:
    @pytest.fixture
    async def document(self, client: httpx.AsyncClient) -> JSON:
        response = await client.get("/openapi.json")
        assert response.status_code == 200
        body: JSON = response.json()
        return body

    @staticmethod
    def header_parameters(operation: JSON) -> set[str]:
        return {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}

    async def test_create_declares_the_etag_it_sends(self, document: JSON) -> None:
        created = document["paths"]["/api/{user_id}/tasks"]["post"]["responses"]["201"]

        assert "ETag" in created["headers"]

    async def test_get_declares_if_none_match_and_not_modified(self, document: JSON) -> None:
        operation = document["paths"][ITEM]["get"]

        assert "If-None-Match" in self.header_parameters(operation)
        assert "If-Match" not in self.header_parameters(operation)
        assert "ETag" in operation["responses"]["304"]["headers"]

    @pytest.mark.parametrize(
        ("path", "method"),
        [(ITEM, "put"), (ITEM, "patch"), (COMPLETE, "patch"), (ITEM, "delete")],
    )
    async def test_writes_declare_if_match_and_precondition_failed(
        self, document: JSON, path: str, method: str
    ) -> None:
        operation = document["paths"][path][method]

        assert "If-Match" in self.header_parameters(operation)
        failed = operation["responses"]["412"]
        assert "ETag" in failed["headers"]
        assert "application/problem+json" in failed["content"]

    @pytest.mark.parametrize(
        ("path", "method"),
        [(ITEM, "get"), (ITEM, "put"), (ITEM, "patch"), (COMPLETE, "patch")],
    )
    async def test_single_task_success_declares_etag(
        self, document: JSON, path: str, method: str
    ) -> None:
        assert "ETag" in document["paths"][path][method]["responses"]["200"]["headers"]
