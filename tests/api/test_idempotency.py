"""Idempotency-Key on POST /tasks and on /complete, through real HTTP on both databases."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, insert, select

from tests.support.databases import libpq_dsn, postgres_url
from tests.support.factories import JSON, assert_problem, create_task, stored_tasks, task_payload
from todo_api.db.database import Database, Executor
from todo_api.models.idempotency import idempotency_keys as keys_table
from todo_api.schemas.task import TaskCreate
from todo_api.services import idempotency
from todo_api.services import tasks as service
from todo_api.services.idempotency import IdempotencyKeys, purge_expired

TASKS = "/api/alice/tasks"


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def new_key() -> str:
    return f'"{uuid.uuid4()}"'


async def key_count(db: Database) -> int:
    [row] = await db.fetch(select(func.count().label("n")).select_from(keys_table), {})
    count: int = row["n"]
    return count


async def test_a_retried_create_makes_one_task_and_replays_the_first_response(
    client: httpx.AsyncClient, db: Database
) -> None:
    key = new_key()
    first = await client.post(TASKS, json=task_payload(title="Once"), headers=keyed(key))
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers

    again = await client.post(TASKS, json=task_payload(title="Once"), headers=keyed(key))
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["content-type"] == "application/json"

    rows = await stored_tasks(db, "alice")
    assert [str(row["id"]) for row in rows] == [first.json()["id"]]


async def test_a_replay_repeats_the_original_even_after_the_task_changed(
    client: httpx.AsyncClient,
) -> None:
    key = new_key()
    first = await client.post(TASKS, json=task_payload(title="Original"), headers=keyed(key))
    task = first.json()
    changed = await client.patch(f"{TASKS}/{task['id']}", json={"title": "Renamed"})
    assert changed.status_code == 200

    again = await client.post(TASKS, json=task_payload(title="Original"), headers=keyed(key))
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == task


async def test_the_same_body_in_another_key_order_is_the_same_request(
    client: httpx.AsyncClient,
) -> None:
    key = new_key()
    first = await client.post(
        TASKS,
        content=b'{"title": "Tidy", "priority": "high"}',
        headers={**keyed(key), "Content-Type": "application/json"},
    )
    assert first.status_code == 201, first.text
    again = await client.post(
        TASKS,
        content=b'{"priority":"high","title":"Tidy"}',
        headers={**keyed(key), "Content-Type": "application/json"},
    )
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"


async def test_a_key_reused_with_another_body_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, db: Database
) -> None:
    key = new_key()
    first = await client.post(TASKS, json=task_payload(title="First"), headers=keyed(key))
    assert first.status_code == 201

    other = await client.post(TASKS, json=task_payload(title="Second"), headers=keyed(key))
    body = assert_problem(other, 422)
    assert body["type"] == "/problems/idempotency-key-reused"
    assert "idempotent-replayed" not in other.headers
    assert len(await stored_tasks(db, "alice")) == 1


async def test_a_key_reused_on_another_endpoint_is_refused(client: httpx.AsyncClient) -> None:
    key = new_key()
    created = await client.post(TASKS, json=task_payload(), headers=keyed(key))
    task = created.json()

    toggled = await client.patch(f"{TASKS}/{task['id']}/complete", headers=keyed(key))
    assert_problem(toggled, 422)
    unchanged = await client.get(f"{TASKS}/{task['id']}")
    assert unchanged.json()["completed"] is False


async def test_keys_belong_to_their_user(client: httpx.AsyncClient, db: Database) -> None:
    key = new_key()
    alice = await client.post(TASKS, json=task_payload(), headers=keyed(key))
    bob = await client.post("/api/bob/tasks", json=task_payload(), headers=keyed(key))
    assert alice.status_code == bob.status_code == 201
    assert "idempotent-replayed" not in bob.headers
    assert bob.json()["user_id"] == "bob"
    assert len(await stored_tasks(db, "alice")) == len(await stored_tasks(db, "bob")) == 1


async def test_a_quoted_key_and_the_same_key_bare_are_one_key(client: httpx.AsyncClient) -> None:
    first = await client.post(TASKS, json=task_payload(), headers=keyed('"order-17"'))
    again = await client.post(TASKS, json=task_payload(), headers=keyed("order-17"))
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]


@pytest.mark.parametrize(
    "value",
    ["", '""', "x" * 256, '"' + "x" * 256 + '"', "caf\u00e9", "tab\there"],
    ids=["empty", "empty-quoted", "too-long", "too-long-quoted", "not-ascii", "control"],
)
async def test_a_malformed_key_is_a_400_naming_the_header(
    client: httpx.AsyncClient, db: Database, value: str
) -> None:
    response = await client.post(
        TASKS, json=task_payload(), headers={b"Idempotency-Key": value.encode("latin-1")}
    )
    assert_problem(response, 400, fields=["Idempotency-Key"])
    assert await stored_tasks(db, "alice") == []


async def test_a_retried_toggle_flips_exactly_once(client: httpx.AsyncClient) -> None:
    task = await create_task(client)
    key = new_key()
    responses = [
        await client.patch(f"{TASKS}/{task['id']}/complete", headers=keyed(key)) for _ in range(3)
    ]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert [r.headers.get("idempotent-replayed") for r in responses] == [None, "true", "true"]
    assert all(r.json()["completed"] is True for r in responses)

    stored = (await client.get(f"{TASKS}/{task['id']}")).json()
    assert stored["completed"] is True
    assert stored["version"] == task["version"] + 1

    # A new key is a new flip.
    again = await client.patch(f"{TASKS}/{task['id']}/complete", headers=keyed(new_key()))
    assert again.json()["completed"] is False


async def test_a_retried_completion_with_a_body_replays(client: httpx.AsyncClient) -> None:
    task = await create_task(client)
    key = new_key()
    url = f"{TASKS}/{task['id']}/complete"
    first = await client.patch(url, json={"completed": True}, headers=keyed(key))
    again = await client.patch(url, json={"completed": True}, headers=keyed(key))
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    other = await client.patch(url, json={"completed": False}, headers=keyed(key))
    assert_problem(other, 422)


async def test_a_failed_request_records_nothing(client: httpx.AsyncClient, db: Database) -> None:
    key = new_key()
    missing = f"{TASKS}/{uuid.uuid4()}/complete"
    assert_problem(await client.patch(missing, headers=keyed(key)), 404)
    task = await create_task(client, title="Versioned")
    refused = await client.patch(
        f"{TASKS}/{task['id']}/complete", headers={**keyed(key), "If-Match": '"9"'}
    )
    assert_problem(refused, 412)
    assert await key_count(db) == 0

    # The key is still free: its first successful request is the one recorded.
    created = await client.post(TASKS, json=task_payload(), headers=keyed(key))
    assert created.status_code == 201
    assert "idempotent-replayed" not in created.headers


async def test_concurrent_attempts_with_one_key_run_once(
    client: httpx.AsyncClient, db: Database
) -> None:
    key = new_key()
    attempts = await asyncio.gather(
        *(client.post(TASKS, json=task_payload(), headers=keyed(key)) for _ in range(8))
    )
    statuses = sorted(r.status_code for r in attempts)
    assert set(statuses) <= {201, 409}
    fresh = [r for r in attempts if r.status_code == 201 and "idempotent-replayed" not in r.headers]
    assert len(fresh) == 1
    for refused in (r for r in attempts if r.status_code == 409):
        assert assert_problem(refused, 409)["type"] == "/problems/idempotency-key-in-use"
        assert refused.headers["retry-after"] == "1"
    assert len(await stored_tasks(db, "alice")) == 1

    retried = await client.post(TASKS, json=task_payload(), headers=keyed(key))
    assert retried.headers["idempotent-replayed"] == "true"
    assert retried.json()["id"] == fresh[0].json()["id"]


def _lock_id(user_id: str, key: str) -> int:
    digest = hashlib.sha256(f"{user_id}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@pytest.mark.postgres_only
async def test_a_key_held_by_another_process_is_a_409(
    client: httpx.AsyncClient, db: Database, backend: str
) -> None:
    """Another server process working on the key holds its advisory lock until it commits."""
    if backend != "postgresql":
        pytest.skip("cross-process locking of keys is PostgreSQL's")
    url = postgres_url()
    assert url is not None
    other = await asyncpg.connect(
        libpq_dsn(db.engine.url.render_as_string(hide_password=False)), statement_cache_size=0
    )
    try:
        async with other.transaction():
            await other.execute("SELECT pg_advisory_xact_lock($1)", _lock_id("alice", "busy"))
            held = await client.post(TASKS, json=task_payload(), headers=keyed("busy"))
            assert assert_problem(held, 409)["type"] == "/problems/idempotency-key-in-use"
        released = await client.post(TASKS, json=task_payload(), headers=keyed("busy"))
        assert released.status_code == 201
    finally:
        await other.close()
    assert len(await stored_tasks(db, "alice")) == 1


async def test_an_expired_key_runs_again(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    app.state.idempotency = IdempotencyKeys(ttl=timedelta(milliseconds=50))
    key = new_key()
    first = await client.post(TASKS, json=task_payload(title="First"), headers=keyed(key))
    await asyncio.sleep(0.1)
    # Expired: even another body may use the key now, and it is recorded afresh.
    second = await client.post(TASKS, json=task_payload(title="Second"), headers=keyed(key))
    assert first.status_code == second.status_code == 201
    assert "idempotent-replayed" not in second.headers
    assert second.json()["id"] != first.json()["id"]
    assert await key_count(db) == 1
    app.state.idempotency = IdempotencyKeys(ttl=timedelta(hours=1))
    again = await client.post(TASKS, json=task_payload(title="Second"), headers=keyed(key))
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == second.json()["id"]


async def test_the_change_and_its_key_commit_together(db: Database) -> None:
    """An operation that fails after writing leaves neither its change nor its key behind."""
    keys = IdempotencyKeys(ttl=timedelta(hours=1))

    async def create_then_fail(executor: Executor) -> Any:
        await service.create_task(executor, user_id="alice", data=TaskCreate(title="Half done"))
        raise RuntimeError("the response could not be built")

    with pytest.raises(RuntimeError):
        await keys.run(
            db,
            user_id="alice",
            key="k",
            request_fingerprint="f" * 64,
            operation=create_then_fail,
        )
    assert await stored_tasks(db, "alice") == []
    assert await key_count(db) == 0


async def test_purge_deletes_only_expired_keys(db: Database) -> None:
    now = datetime.now(UTC)
    rows: list[JSON] = [
        {
            "user_id": "alice",
            "key": f"k{n}",
            "fingerprint": "0" * 64,
            "status_code": 201,
            "headers": "{}",
            "body": "{}",
            "created_at": now - timedelta(days=2),
            "expires_at": now + timedelta(hours=offset),
        }
        for n, offset in enumerate([-2, -1, 1, 2])
    ]
    for row in rows:
        await db.execute(insert(keys_table).values(**row), {})
    assert await purge_expired(db, now=now) == 2
    assert await key_count(db) == 2
    assert await purge_expired(db, now=now) == 0


def test_fingerprints_name_method_path_and_body() -> None:
    base = idempotency.fingerprint("POST", "/api/a/tasks", {"title": "x", "tags": ["a"]})
    assert base == idempotency.fingerprint("POST", "/api/a/tasks", {"tags": ["a"], "title": "x"})
    assert base != idempotency.fingerprint("POST", "/api/b/tasks", {"title": "x", "tags": ["a"]})
    assert base != idempotency.fingerprint("PUT", "/api/a/tasks", {"title": "x", "tags": ["a"]})
    assert base != idempotency.fingerprint("POST", "/api/a/tasks", {"title": "y", "tags": ["a"]})
    assert len(base) == 64


async def test_a_retry_naming_the_task_id_in_capitals_is_the_same_request(
    client: httpx.AsyncClient,
) -> None:
    task = await create_task(client)
    key = new_key()
    first = await client.patch(f"{TASKS}/{task['id']}/complete", headers=keyed(key))
    again = await client.patch(f"{TASKS}/{task['id'].upper()}/complete", headers=keyed(key))
    assert first.status_code == again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["completed"] is True
