"""Random listings walked to the end along their `next` links: every order, with and without
tombstones, filters and `updated_since`, random page sizes. Each walk must list every matching
task exactly once, in the promised order, and no link the service gave may be refused.

The data sets are small and full of ties (a few titles, priorities, instants), and a fifth of
each is tombstones, whose erased fields (an empty title, no due date, no tags) are sort keys too.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.support.listing import (
    SORTS,
    Params,
    Row,
    all_pages,
    expected_order,
    ids_of,
    insert_rows,
    task_row,
)
from todo_api.db.database import Database

WALKS = 200
DATA_SETS = 8
TAGS = ["home", "work", "q4"]
PRIORITY_NAMES = {1: "low", 2: "medium", 3: "high"}
# Recent, so a sync (`updated_since` with tombstones) is within the retention; due dates fall on
# both sides of now.
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


def walk_row(rng: random.Random, user_id: str) -> Row:
    created = BASE + timedelta(seconds=rng.randrange(12), microseconds=rng.choice([0, 1, 999]))
    updated = created + timedelta(microseconds=rng.choice([0, 0, 1, 2_000_000]))
    if rng.random() < 0.2:
        row = task_row(
            user_id,
            title="",
            priority=rng.randint(1, 3),
            completed=rng.random() < 0.3,
            created_at=created,
            updated_at=updated,
            task_id=uuid.UUID(int=rng.getrandbits(128), version=4),
        )
        return {**row, "deleted_at": updated}
    due = None
    if rng.random() < 0.7:
        due = BASE + timedelta(hours=rng.randrange(-3, 4) * 12)
    return {
        **task_row(
            user_id,
            title=f"task {rng.randrange(6)}",
            description=rng.choice([None, "note a", "note b"]),
            completed=rng.random() < 0.4,
            priority=rng.randint(1, 3),
            due_at=due,
            tags=rng.sample(TAGS, rng.randrange(3)),
            created_at=created,
            updated_at=updated,
            task_id=uuid.UUID(int=rng.getrandbits(128), version=4),
        ),
        "deleted_at": None,
    }


def random_query(rng: random.Random) -> tuple[Params, dict[str, Any]]:
    """Query parameters, and the same choices for the model below."""
    params: Params = []
    chosen: dict[str, Any] = {}

    def pick(probability: float) -> bool:
        return rng.random() < probability

    if pick(0.8):
        chosen["sort"] = rng.choice(SORTS)
        params.append(("sort", chosen["sort"]))
    if pick(0.4):
        chosen["include_deleted"] = True
        params.append(("include_deleted", "true"))
    if pick(0.25):
        since = BASE + timedelta(seconds=rng.randrange(12))
        chosen["updated_since"] = since
        params.append(("updated_since", since.isoformat()))
    if pick(0.25):
        chosen["completed"] = pick(0.5)
        params.append(("completed", str(chosen["completed"]).lower()))
    if pick(0.2):
        chosen["priority"] = set(rng.sample(sorted(PRIORITY_NAMES), rng.randint(1, 2)))
        params.extend(("priority", PRIORITY_NAMES[rank]) for rank in sorted(chosen["priority"]))
    if pick(0.15):
        chosen["tag"] = rng.choice(TAGS)
        params.append(("tag", chosen["tag"].upper()))
    if pick(0.15):
        chosen["q"] = rng.choice(["task 1", "NOTE A", "ote", "task"])
        params.append(("q", chosen["q"]))
    if pick(0.15):
        chosen["due_before"] = BASE + timedelta(hours=rng.randrange(-3, 4) * 12)
        params.append(("due_before", chosen["due_before"].isoformat()))
    if pick(0.15):
        chosen["due_after"] = BASE + timedelta(hours=rng.randrange(-3, 4) * 12)
        params.append(("due_after", chosen["due_after"].isoformat()))
    if pick(0.1):
        chosen["overdue"] = pick(0.5)
        params.append(("overdue", str(chosen["overdue"]).lower()))
    params.append(("limit", str(rng.choice([1, 2, 3, 5, 8, 13]))))
    rng.shuffle(params)
    return params, chosen


def matches(row: Row, chosen: dict[str, Any], now: datetime) -> bool:
    """Whether `row` belongs to the listing `chosen` describes (the contract, written out)."""
    since = chosen.get("updated_since")
    if since is not None and not row["updated_at"] > since:
        return False
    if row["deleted_at"] is not None:
        # Tombstones carry none of the fields the filters look at: listed only when asked for.
        return bool(chosen.get("include_deleted"))
    if "completed" in chosen and row["completed"] != chosen["completed"]:
        return False
    if "priority" in chosen and row["priority"] not in chosen["priority"]:
        return False
    if "tag" in chosen and chosen["tag"] not in row["tags"]:
        return False
    if "q" in chosen:
        needle = chosen["q"].casefold()
        if needle not in row["title"] and needle not in (row["description"] or ""):
            return False
    due = row["due_at"]
    if "due_before" in chosen and not (due is not None and due < chosen["due_before"]):
        return False
    if "due_after" in chosen and not (due is not None and due >= chosen["due_after"]):
        return False
    if "overdue" in chosen:
        overdue = due is not None and due < now and not row["completed"]
        if overdue != chosen["overdue"]:
            return False
    return True


def sort_of(chosen: dict[str, Any]) -> str:
    if "sort" in chosen:
        return str(chosen["sort"])
    changes = "updated_since" in chosen or chosen.get("include_deleted")
    return "updated_at" if changes else "-created_at"


async def test_random_listings_walk_to_the_end_without_a_refused_link(
    client: httpx.AsyncClient, db: Database
) -> None:
    rng = random.Random(20261206)
    data_sets: dict[str, list[Row]] = {}
    for n in range(DATA_SETS):
        user_id = f"walker{n}"
        data_sets[user_id] = [walk_row(rng, user_id) for _ in range(rng.randrange(10, 50))]
    await insert_rows(db, [row for rows in data_sets.values() for row in rows])
    now = datetime.now(UTC)
    walked_tombstones = 0

    for walk in range(WALKS):
        user_id = rng.choice(sorted(data_sets))
        params, chosen = random_query(rng)
        pages = await all_pages(client, params, url=f"/api/{user_id}/tasks", max_pages=60)

        expected = [row for row in data_sets[user_id] if matches(row, chosen, now)]
        listed = ids_of(pages)
        assert len(listed) == len(set(listed)), f"walk {walk} listed a task twice: {params}"
        assert listed == expected_order(expected, sort_of(chosen)), f"walk {walk}: {params}"
        walked_tombstones += sum(task.get("deleted", False) for page in pages for task in page)

    # The walks really crossed tombstones, in pages of every order.
    assert walked_tombstones > 100
