"""Scale benchmark: does a list cost the same for a user with 20 tasks and one with 200,000?

`python bench/scale.py` seeds its own PostgreSQL database (SCALE_DATABASE_URL, default
`postgresql://postgres@127.0.0.1:5432/todo_scale`, dropped and recreated unless `--reuse` finds
it seeded) with 1,000,000 tasks: one user with 200,000, one with 20, the rest spread over 10,000
users. It starts `todo-api serve` as shipped (authentication on) and times, one request at a
time over HTTP, each listing below; then prints p50/p99 per case and each p50 as a multiple of
the small user's first page.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import jwt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import RESULTS, SECRET, Server, free_port, libpq_url

TOTAL = 1_000_000
HEAVY = ("heavy", 200_000)
SMALL = ("small", 20)
SPREAD_USERS = 10_000
SEARCH_WORD = "quarterly"  # in 1 title of 100

# Server-side generation: one INSERT ... SELECT is far quicker than sending a million rows.
SEED = """
INSERT INTO tasks (id, user_id, title, description, completed, priority, due_at, tags, tag_keys,
                   completed_at, created_at, updated_at)
SELECT gen_random_uuid(), owner,
       CASE WHEN i % 100 = 0 THEN 'quarterly review ' || i ELSE 'task ' || i END,
       CASE WHEN i % 3 = 0 THEN 'details of task ' || i END,
       i % 2 = 0,
       1 + i % 3,
       CASE WHEN i % 4 = 0 THEN NULL ELSE now() + (i % 2000 - 1000) * interval '1 hour' END,
       CASE WHEN i % 5 = 0 THEN ARRAY['work', 'q4'] ELSE ARRAY['home'] END::varchar[],
       CASE WHEN i % 5 = 0 THEN ARRAY['work', 'q4'] ELSE ARRAY['home'] END::varchar[],
       CASE WHEN i % 2 = 0 THEN now() END,
       now() - i * interval '1 second',
       now() - i * interval '1 second'
FROM (
    SELECT i, CASE
        WHEN i <= $1 THEN 'heavy'
        WHEN i <= $1 + $2 THEN 'small'
        ELSE 'user' || lpad((i % $3)::text, 5, '0')
    END AS owner
    FROM generate_series(1, $4) AS i
) AS generated
"""


async def seed(url: str, reuse: bool) -> None:
    target = libpq_url(url)
    name = target.rsplit("/", 1)[1].split("?")[0]
    admin = await asyncpg.connect(target.rsplit("/", 1)[0] + "/postgres")
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists and reuse:
            conn = await asyncpg.connect(target)
            try:
                if await conn.fetchval("SELECT count(*) FROM tasks") == TOTAL:
                    print(f"reusing {name}: {TOTAL:,} tasks", file=sys.stderr)
                    return
            except asyncpg.UndefinedTableError:
                pass
            finally:
                await conn.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    todo_api = Path(sys.executable).with_name("todo-api")
    env = {**os.environ, "DATABASE_URL": url}
    proc = await asyncio.create_subprocess_exec(str(todo_api), "migrate", env=env)
    if await proc.wait():
        raise SystemExit("migrations failed")
    began = time.monotonic()
    conn = await asyncpg.connect(target)
    try:
        await conn.execute(SEED, HEAVY[1], SMALL[1], SPREAD_USERS, TOTAL)
        await conn.execute("VACUUM ANALYZE tasks")
    finally:
        await conn.close()
    print(f"seeded {TOTAL:,} tasks in {time.monotonic() - began:.0f} s", file=sys.stderr)


async def deep_cursor(client: httpx.AsyncClient, user: str, depth: int) -> str:
    """The cursor of the page starting `depth` rows in, reached by walking the Link headers
    with the largest pages (as a client scrolling that far would)."""
    url = f"/api/{user}/tasks?limit=500"
    walked = 0
    while walked < depth:
        response = await client.get(url)
        response.raise_for_status()
        walked += len(response.json())
        url = response.headers["link"].split(">", 1)[0].lstrip("<")
    return url.split("cursor=", 1)[1]


async def measure(client: httpx.AsyncClient, url: str, requests: int) -> tuple[float, float, int]:
    for _ in range(10):
        (await client.get(url)).raise_for_status()
    timings = []
    rows = 0
    for _ in range(requests):
        began = time.perf_counter()
        response = await client.get(url)
        timings.append((time.perf_counter() - began) * 1000)
        response.raise_for_status()
        rows = len(response.json())
    timings.sort()
    p99 = timings[min(len(timings) - 1, round(len(timings) * 0.99))]
    return statistics.median(timings), p99, rows


async def run(base_url: str, requests: int) -> list[tuple[str, float, float, int]]:
    heavy, small = HEAVY[0], SMALL[0]
    cases: list[tuple[str, str]] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        client.headers["Authorization"] = "Bearer " + jwt.encode(
            {"sub": heavy, "exp": int(time.time()) + 3600}, SECRET, "HS256"
        )
        cursor = await deep_cursor(client, heavy, 100_000)
        cases = [
            ("heavy: first page", f"/api/{heavy}/tasks"),
            ("heavy: page 100,000 rows deep", f"/api/{heavy}/tasks?cursor={cursor}"),
            (
                "heavy: completed=false&priority=high",
                f"/api/{heavy}/tasks?completed=false&priority=high",
            ),
            ("heavy: sort=due_at", f"/api/{heavy}/tasks?sort=due_at"),
            (f"heavy: q={SEARCH_WORD} (1% of titles)", f"/api/{heavy}/tasks?q={SEARCH_WORD}"),
        ]
        results = []
        small_token = jwt.encode({"sub": small, "exp": int(time.time()) + 3600}, SECRET, "HS256")
        small_headers = {"Authorization": f"Bearer {small_token}"}
        async with httpx.AsyncClient(base_url=base_url, timeout=30, headers=small_headers) as mine:
            results.append(
                (
                    "small (20 tasks): first page",
                    *await measure(mine, f"/api/{small}/tasks", requests),
                )
            )
        for label, url in cases:
            results.append((label, *await measure(client, url, requests)))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--reuse", action="store_true", help="keep an already seeded database")
    args = parser.parse_args()
    url = os.environ.get(
        "SCALE_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/todo_scale"
    )
    asyncio.run(seed(url, args.reuse))
    RESULTS.mkdir(exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "AUTH_JWT_SECRET": SECRET,
        "ENVIRONMENT": "production",
        "RATE_LIMIT": "0",
        "LOG_LEVEL": "WARNING",
    }
    todo_api = str(Path(sys.executable).with_name("todo-api"))
    server = Server("scale", [todo_api, "serve", "--port", str(port), "--workers", "1"], env, port)
    try:
        results = asyncio.run(run(f"http://127.0.0.1:{port}", args.requests))
    finally:
        server.stop()
    base = results[0][1]
    print(f"{'case':<44} {'p50 ms':>7} {'p99 ms':>7} {'rows':>5} {'p50 / small':>11}")
    print("-" * 78)
    for label, p50, p99, rows in results:
        print(f"{label:<44} {p50:>7.2f} {p99:>7.2f} {rows:>5} {p50 / base:>11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
