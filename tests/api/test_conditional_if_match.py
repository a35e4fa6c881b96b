"""Conditional writes through real HTTP: `If-Match` on every single-task write, 412 with the
current ETag when the version is stale, unusual tags, writes that change nothing, and races."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from tests.support.conditional import (
    EVERY_WRITE,
    Write,
    assert_precondition_failed,
    assert_tagged,
    assert_unwritten,
    assert_written,
    if_match,
    if_none_match,
    read,
    task_at_version,
    url,
)
from tests.support.factories import JSON, assert_problem, create_task


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
    async def test_an_unquoted_tag_is_malformed_even_when_it_names_the_version(
        self, client: httpx.AsyncClient, write: Write
    ) -> None:
        before = await task_at_version(client, 2)

        response = await write.send(client, before, if_match("2"))

        assert_problem(response, 400, fields=["If-Match"])
        await assert_unwritten(client, before)

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
        "value",
        [
            "a b",
            "",
            " ",
            '"2',
            '2"',
            '""2""',
            '"2" x',
            "W/ 2",
            '"2 3"',
            '"2";"3"',
            "2",
            "}*6,",
            "W/2",
        ],
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

    @EVERY_WRITE
    @pytest.mark.parametrize(
        "tag", [f'"{"9" * 1020}"', f'W/"{"9" * 1020}"', f'"1", "{"9" * 1000}"']
    )
    async def test_a_version_of_a_thousand_digits_is_stale(
        self, client: httpx.AsyncClient, write: Write, tag: str
    ) -> None:
        # A well-formed tag within the header's limit, naming no version however long it is.
        before = await task_at_version(client, 2)

        response = await write.send(client, before, if_match(tag))

        assert_precondition_failed(response, current=2)
        await assert_unwritten(client, before)

    async def test_a_thousand_digits_in_if_none_match_get_the_task(
        self, client: httpx.AsyncClient
    ) -> None:
        task = await task_at_version(client, 2)

        response = await client.get(url(task), headers=if_none_match(f'"{"9" * 1020}"'))

        assert assert_tagged(response) == task

    @pytest.mark.parametrize("header", ["If-Match", "If-None-Match"])
    @pytest.mark.parametrize(
        "value",
        [", ".join(['"2"'] * 300), f'"{"9" * 4301}"'],
        ids=["a-long-list", "more-digits-than-int-takes"],
    )
    async def test_a_header_over_1_kib_is_refused_naming_it(
        self, client: httpx.AsyncClient, header: str, value: str
    ) -> None:
        before = await task_at_version(client, 2)

        if header == "If-Match":
            response = await client.patch(
                url(before), json={"title": "No"}, headers={header: value}
            )
        else:
            response = await client.get(url(before), headers={header: value})

        body = assert_problem(response, 400, fields=[header])
        assert "1024" in body["errors"][0]["message"]
        await assert_unwritten(client, before)

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
