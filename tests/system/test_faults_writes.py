"""Writes against the real server process across database faults (PostgreSQL behind a TCP proxy
whose link is cut, stalled and restored): retried with their Idempotency-Key, they take effect
exactly once; conditional writes racing on one version, exactly one wins."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Iterable
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.support.databases import libpq_dsn, postgres_url
from tests.support.factories import assert_problem
from tests.support.faults import Link, served

pytestmark = [
    pytest.mark.postgres_only,
    # The proxy stands between the service and PostgreSQL itself.
    pytest.mark.direct_postgres,
    pytest.mark.skipif(postgres_url() is None, reason="TEST_DATABASE_URL is not set"),
]

# Per phase of a request (connect, write, wait for the pool, read), on the client's side.
CLIENT_TIMEOUT_S = 10
# A burst of creates, each with its own key, sent over this many connections at once; the link
# is cut once CUT_AFTER of their responses have arrived, and restored CUT_S later.
BURST = 200
BURST_CONNECTIONS = 100
CUT_AFTER = 40
CUT_S = 1.5
# However the cut falls, the burst is over by then (a fault must not leave a request hanging).
BURST_DEADLINE_S = 30
# A write that failed is retried with its key at most this often, this far apart.
RETRY_ATTEMPTS = 40
RETRY_PAUSE_S = 0.25
# Successful answers a retried toggle must collect, all the same one.
TOGGLE_ANSWERS = 4
# How long the client waits for a toggle whose database link is stalled before giving up.
GIVE_UP_S = 0.5
# Conditional writes of one version racing each other.
RACERS = 50

Outcome = httpx.Response | httpx.TransportError


async def outcome(request: Awaitable[httpx.Response]) -> Outcome:
    """The response, or the transport error that took its place (the client gave up)."""
    try:
        return await request
    except httpx.TransportError as error:
        return error


def assert_retry_later(result: Outcome) -> None:
    """What a client may get while a write cannot run yet, and retries: its transport failed,
    the database is gone (503), or the key's first request is still running (409)."""
    if isinstance(result, httpx.TransportError):
        return
    if result.status_code == 409:
        assert_problem(result, 409)
        assert result.headers["retry-after"] == "1"
        return
    assert_problem(result, 503)
    assert int(result.headers["retry-after"]) > 0


def replayed(response: httpx.Response) -> bool:
    value = response.headers.get("idempotent-replayed")
    assert value in (None, "true"), value
    return value is not None


def tally(results: Iterable[Outcome], *, always: Iterable[int | str]) -> str:
    """`201=52 503=148 transport=0`: how many results had each status (those in `always` even
    when none did), transport errors as `transport`."""
    counts = Counter[int | str](dict.fromkeys(always, 0))
    counts.update(
        "transport" if isinstance(result, httpx.TransportError) else result.status_code
        for result in results
    )
    return " ".join(f"{status}={count}" for status, count in counts.items())


def summarize(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """One line in pytest's output even without -s: the numbers go into reports."""
    with capsys.disabled():
        sys.stdout.write(f"\n{line}\n")


class TestCreateBurstAcrossACut:
    async def test_every_acknowledged_create_is_stored_once(
        self, link: Link, database_behind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """BURST creates at once, each with a key of its own, and the link cut in the middle of
        them: every request ends with 201, a fast 503 or a transport error (never a 500, never
        a hang). Retried with their keys once the link is back, all are created, each exactly
        once, and every 201 a client got (first or replayed) is the task stored."""
        titles = {str(uuid.uuid4()): f"Burst {i:03d}" for i in range(BURST)}
        limits = httpx.Limits(
            max_connections=BURST_CONNECTIONS, max_keepalive_connections=BURST_CONNECTIONS
        )
        # What happened, printed however the test ends.
        summary = [f"create burst of {BURST} across a {CUT_S:g} s cut"]
        try:
            with served(database_behind, tmp_path) as base_url:
                async with httpx.AsyncClient(
                    base_url=base_url, timeout=CLIENT_TIMEOUT_S, limits=limits
                ) as http:

                    async def create(key: str) -> Outcome:
                        return await outcome(
                            http.post(
                                "/api/burst/tasks",
                                json={"title": titles[key]},
                                headers={"Idempotency-Key": key},
                            )
                        )

                    async def until_created(key: str) -> tuple[httpx.Response, list[Outcome]]:
                        failed: list[Outcome] = []
                        for _ in range(RETRY_ATTEMPTS):
                            result = await create(key)
                            if isinstance(result, httpx.Response) and result.status_code == 201:
                                return result, failed
                            assert_retry_later(result)
                            failed.append(result)
                            await asyncio.sleep(RETRY_PAUSE_S)
                        raise AssertionError(f"{key}: no 201 in {RETRY_ATTEMPTS} tries: {failed}")

                    # The server's pool is connected before the burst.
                    assert (await http.get("/api/burst/tasks")).json() == []

                    began = time.monotonic()
                    async with asyncio.timeout(BURST_DEADLINE_S):
                        burst = {key: asyncio.ensure_future(create(key)) for key in titles}
                        while sum(future.done() for future in burst.values()) < CUT_AFTER:
                            await asyncio.sleep(0.001)
                        link.cut()
                        answered_at_cut = sum(future.done() for future in burst.values())
                        await asyncio.sleep(CUT_S)
                        link.start()
                        first = {key: await future for key, future in burst.items()}
                    first_pass = tally(first.values(), always=(201, 503, "transport"))
                    summary.append(
                        f"cut after {answered_at_cut} answered, burst over in "
                        f"{time.monotonic() - began:.2f} s: first pass {first_pass}"
                    )

                    unexpected = [
                        (key, result.status_code, result.text)
                        for key, result in first.items()
                        if isinstance(result, httpx.Response)
                        and result.status_code not in (201, 503)
                    ]
                    assert not unexpected, unexpected
                    for result in first.values():
                        if isinstance(result, httpx.Response) and result.status_code == 503:
                            assert_retry_later(result)
                    acknowledged = {
                        key: result
                        for key, result in first.items()
                        if isinstance(result, httpx.Response) and result.status_code == 201
                    }
                    assert answered_at_cut < BURST, "the cut came after the burst was over"
                    assert len(acknowledged) < BURST, "the cut failed no request of the burst"
                    assert not any(replayed(response) for response in acknowledged.values())

                    failed_keys = [key for key in titles if key not in acknowledged]
                    retried = dict(
                        zip(
                            failed_keys,
                            await asyncio.gather(*(until_created(key) for key in failed_keys)),
                            strict=True,
                        )
                    )
                    acknowledged.update((key, response) for key, (response, _) in retried.items())
                    refused = [result for _, failed in retried.values() for result in failed]
                    replayed_on_retry = sum(replayed(response) for response, _ in retried.values())
                    summary.append(
                        f"{len(retried)} keys retried in {len(retried) + len(refused)} requests "
                        f"(refused: {tally(refused, always=(503, 409, 'transport'))}), their 201 "
                        f"fresh={len(retried) - replayed_on_retry} replayed={replayed_on_retry}"
                    )

                    # Every key once more: each is now a replay of the response its client kept.
                    replays = dict(
                        zip(
                            titles,
                            await asyncio.gather(*(create(key) for key in titles)),
                            strict=True,
                        )
                    )
                    listed = await http.get("/api/burst/tasks", params={"limit": 500})

            assert listed.status_code == 200, listed.text
            assert "link" not in listed.headers
            stored = listed.json()
            summary.append(f"rows={len(stored)}")
            assert len(stored) == BURST
            assert sorted(task["title"] for task in stored) == sorted(titles.values())
            by_id = {task["id"]: task for task in stored}
            assert len(by_id) == BURST
            for key, response in acknowledged.items():
                body = response.json()
                assert body["title"] == titles[key]
                assert body == by_id[body["id"]]
                assert response.headers["location"] == f"/api/burst/tasks/{body['id']}"
                assert response.headers["etag"] == '"1"'
            for key, result in replays.items():
                assert isinstance(result, httpx.Response), f"{key}: {result!r}"
                assert result.status_code == 201, result.text
                assert replayed(result)
                assert result.json() == acknowledged[key].json()
                for header in ("location", "etag"):
                    assert result.headers[header] == acknowledged[key].headers[header]
        finally:
            summarize(capsys, "; ".join(summary))


async def toggle_retried(
    http: httpx.AsyncClient, path: str, key: str
) -> tuple[list[httpx.Response], list[Outcome]]:
    """Send the toggle with `key` until TOGGLE_ANSWERS successful answers came back; those, and
    the failures (each one a client retries on) before them."""
    answers: list[httpx.Response] = []
    failed: list[Outcome] = []
    for _ in range(RETRY_ATTEMPTS):
        result = await outcome(http.patch(path, headers={"Idempotency-Key": key}))
        if isinstance(result, httpx.Response) and result.status_code == 200:
            answers.append(result)
            if len(answers) == TOGGLE_ANSWERS:
                return answers, failed
            continue
        assert_retry_later(result)
        failed.append(result)
        await asyncio.sleep(RETRY_PAUSE_S)
    raise AssertionError(f"{len(answers)} answers in {RETRY_ATTEMPTS} attempts: {failed}")


class TestRetriedToggle:
    @pytest.mark.parametrize("fault", ["cut", "stalled, then cut", "stalled, client gives up"])
    async def test_a_toggle_retried_with_its_key_flips_once(
        self, link: Link, database_behind: str, tmp_path: Path, fault: str
    ) -> None:
        """A flip without a body is not safe to repeat, unless its key makes it so. Its first
        attempt fails: the link was cut before it (nothing ran), it was cut while the request
        hung on a stalled link (rolled back), or the client gave up on the stalled request,
        which went on to commit once the link resumed. Retried with the same key, however it
        went, the task is flipped once and every answer is the same."""
        key = str(uuid.uuid4())
        with served(database_behind, tmp_path) as base_url:
            async with httpx.AsyncClient(base_url=base_url, timeout=CLIENT_TIMEOUT_S) as http:
                created = await http.post("/api/toggle/tasks", json={"title": "Flip me"})
                assert created.status_code == 201, created.text
                task = created.json()
                path = f"/api/toggle/tasks/{task['id']}/complete"
                headers = {"Idempotency-Key": key}

                if fault == "cut":
                    link.cut()
                    first = await outcome(http.patch(path, headers=headers))
                    link.start()
                elif fault == "stalled, then cut":
                    link.stall()
                    pending = asyncio.ensure_future(outcome(http.patch(path, headers=headers)))
                    await asyncio.sleep(0.5)
                    assert not pending.done()
                    link.cut()
                    first = await pending
                    link.start()
                else:
                    link.stall()
                    first = await outcome(http.patch(path, headers=headers, timeout=GIVE_UP_S))
                    link.resume()

                answers, failed = await toggle_retried(http, path, key)
                stored = await http.get(f"/api/toggle/tasks/{task['id']}")

        assert task["completed"] is False
        assert task["version"] == 1
        if fault == "stalled, client gives up":
            assert isinstance(first, httpx.TimeoutException), first
        else:
            assert isinstance(first, httpx.Response), first
            assert_problem(first, 503)
            assert int(first.headers["retry-after"]) > 0
        for result in failed:
            assert_retry_later(result)

        assert stored.status_code == 200, stored.text
        flipped = stored.json()
        assert flipped["completed"] is True
        assert flipped["version"] == 2
        assert flipped["completed_at"] is not None
        for answer in answers:
            assert answer.json() == flipped
            assert answer.headers["etag"] == '"2"'
        if fault == "stalled, client gives up":
            # The abandoned attempt may have committed (then every answer replays it) or not
            # (then the first retry flips it): at most one attempt flipped it fresh.
            fresh = [answer for answer in answers if not replayed(answer)]
            assert fresh in ([], answers[:1])
        else:
            # Nothing of the first attempt reached a commit: the first retry flips it, every
            # later one replays that flip.
            assert [replayed(answer) for answer in answers] == [False] + [True] * (
                TOGGLE_ANSWERS - 1
            )

    async def test_a_keyed_toggle_whose_connection_dies_mid_transaction_is_a_503(
        self, link: Link, database_behind: str, tmp_path: Path
    ) -> None:
        """The keyed toggle waits inside its transaction for a row lock held elsewhere when its
        connection dies: the answer is a retryable 503 (not a 500 from closing a transaction on
        a dead connection), nothing was written, and the retry flips the task once."""
        key = str(uuid.uuid4())
        base = postgres_url()
        assert base is not None
        # Straight to PostgreSQL, around the proxy: this connection survives the drop.
        direct = make_url(database_behind).set(port=make_url(base).port or 5432)
        with served(database_behind, tmp_path) as base_url:
            async with httpx.AsyncClient(base_url=base_url, timeout=CLIENT_TIMEOUT_S) as http:
                task = (await http.post("/api/toggle/tasks", json={"title": "Locked"})).json()
                path = f"/api/toggle/tasks/{task['id']}/complete"
                holder = await asyncpg.connect(
                    libpq_dsn(direct.render_as_string(hide_password=False))
                )
                try:
                    async with holder.transaction():
                        await holder.execute(
                            "SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", uuid.UUID(task["id"])
                        )
                        pending = asyncio.ensure_future(
                            outcome(http.patch(path, headers={"Idempotency-Key": key}))
                        )
                        await asyncio.sleep(0.5)
                        assert not pending.done()  # the UPDATE waits for the row lock
                        link.drop_connections()
                        first = await pending
                finally:
                    await holder.close()
                answers, failed = await toggle_retried(http, path, key)
                stored = (await http.get(f"/api/toggle/tasks/{task['id']}")).json()

        assert isinstance(first, httpx.Response), first
        assert_problem(first, 503)
        assert int(first.headers["retry-after"]) > 0
        for result in failed:
            assert_retry_later(result)
        assert [replayed(answer) for answer in answers] == [False] + [True] * (TOGGLE_ANSWERS - 1)
        assert (stored["completed"], stored["version"]) == (True, 2)

    async def test_a_toggle_sent_again_with_its_key_is_replayed(
        self, database_behind: str, tmp_path: Path
    ) -> None:
        """Without any fault: the first request with the key flips the task, the next ones get
        that same answer again."""
        key = str(uuid.uuid4())
        with served(database_behind, tmp_path) as base_url:
            async with httpx.AsyncClient(base_url=base_url, timeout=CLIENT_TIMEOUT_S) as http:
                task = (await http.post("/api/toggle/tasks", json={"title": "Flip me"})).json()
                path = f"/api/toggle/tasks/{task['id']}/complete"
                answers = [
                    await http.patch(path, headers={"Idempotency-Key": key})
                    for _ in range(TOGGLE_ANSWERS + 1)
                ]
                stored = (await http.get(f"/api/toggle/tasks/{task['id']}")).json()

        assert [answer.status_code for answer in answers] == [200] * (TOGGLE_ANSWERS + 1)
        assert [replayed(answer) for answer in answers] == [False] + [True] * TOGGLE_ANSWERS
        assert stored["completed"] is True
        assert stored["version"] == 2
        for answer in answers:
            assert answer.json() == stored
            assert answer.headers["etag"] == '"2"'


class TestConditionalRace:
    async def test_one_of_fifty_conditional_patches_wins(
        self, database_behind: str, tmp_path: Path
    ) -> None:
        """RACERS clients read version 1 and all write it back at once with `If-Match: "1"`:
        exactly one wins, each of the others is told (412) that the task is now at "2", and
        the task holds the winner's change."""
        limits = httpx.Limits(max_connections=RACERS, max_keepalive_connections=RACERS)
        with served(database_behind, tmp_path) as base_url:
            async with httpx.AsyncClient(
                base_url=base_url, timeout=CLIENT_TIMEOUT_S, limits=limits
            ) as http:
                task = (await http.post("/api/race/tasks", json={"title": "Original"})).json()
                path = f"/api/race/tasks/{task['id']}"
                titles = [f"Racer {i:02d}" for i in range(RACERS)]
                responses = await asyncio.gather(
                    *(
                        http.patch(path, json={"title": title}, headers={"If-Match": '"1"'})
                        for title in titles
                    )
                )
                stored = (await http.get(path)).json()

        assert task["version"] == 1
        statuses = Counter(response.status_code for response in responses)
        assert statuses == {200: 1, 412: RACERS - 1}, statuses
        [(title, winner)] = [
            (title, response)
            for title, response in zip(titles, responses, strict=True)
            if response.status_code == 200
        ]
        assert winner.headers["etag"] == '"2"'
        assert winner.json() == stored
        assert stored["version"] == 2
        assert stored["title"] == title
        for response in responses:
            if response.status_code == 412:
                problem = assert_problem(response, 412)
                assert problem["type"] == "/problems/precondition-failed"
                assert response.headers["etag"] == '"2"'
