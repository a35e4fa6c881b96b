"""Load benchmark: the service as shipped against a bare Starlette + asyncpg baseline.

`make bench` (or `python bench/run.py`) creates and seeds its own PostgreSQL database from
BENCH_DATABASE_URL, starts both servers, and drives each with wrk, alternating between them
scenario by scenario, with 1 and with 2 workers. It prints one table: req/s, p50, p99, errors,
server CPU per request and peak RSS per worker, and the service/baseline ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import asyncpg
import httpx
import jwt
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
SCENARIOS = ("list", "get", "create", "toggle", "patch")
USERS = 1000
TASKS_PER_USER = 20
SECRET = "bench-secret-that-is-at-least-32-bytes-long"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    scenario: str
    workers: int
    target: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us_per_request: float
    peak_rss_mb: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def prepare_database(url: str) -> dict[str, list[str]]:
    """Drop, create, migrate and seed the benchmark database; returns each user's task ids."""
    target = make_url(url)
    maintenance = target.set(database="postgres").render_as_string(hide_password=False)
    admin = await asyncpg.connect(libpq_url(maintenance))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{target.database}"')
    finally:
        await admin.close()
    env = {**os.environ, "DATABASE_URL": url}
    todo_api = Path(sys.executable).with_name("todo-api")
    subprocess.run([str(todo_api), "migrate"], check=True, env=env, cwd=ROOT)
    now = dt.datetime.now(dt.UTC)
    rows, ids = [], {}
    for u in range(USERS):
        user = f"user{u:04d}"
        ids[user] = []
        for t in range(TASKS_PER_USER):
            task_id = uuid.uuid4()
            ids[user].append(str(task_id))
            created = now - dt.timedelta(minutes=u * TASKS_PER_USER + t)
            done = t % 3 == 0
            tags = ["home"] if t % 2 else ["work", "q4"]
            rows.append(
                (
                    task_id,
                    user,
                    f"task {t}",
                    "seeded",
                    done,
                    1 + t % 3,
                    created + dt.timedelta(days=7) if t % 4 else None,
                    tags,
                    tags,
                    created if done else None,
                    created,
                    created,
                )
            )
    conn = await asyncpg.connect(libpq_url(url))
    try:
        await conn.copy_records_to_table(
            "tasks",
            records=rows,
            columns=[
                "id",
                "user_id",
                "title",
                "description",
                "completed",
                "priority",
                "due_at",
                "tags",
                "tag_keys",
                "completed_at",
                "created_at",
                "updated_at",
            ],
        )
        await conn.execute("ANALYZE tasks")
    finally:
        await conn.close()
    return ids


def write_lua_data(path: Path, ids: dict[str, list[str]]) -> None:
    expires = int(time.time()) + 86400
    users = list(ids)
    tokens = [jwt.encode({"sub": u, "exp": expires}, SECRET, "HS256") for u in users]

    def lua_list(items: list[str]) -> str:
        return "{" + ",".join(f'"{item}"' for item in items) + "}"

    path.write_text(
        "return {users="
        + lua_list(users)
        + ", tokens="
        + lua_list(tokens)
        + ", tasks={"
        + ",".join(lua_list(ids[u]) for u in users)
        + "}}\n"
    )


class Server:
    def __init__(self, name: str, command: list[str], env: dict[str, str], port: int) -> None:
        self.name = name
        self.port = port
        self.log = (RESULTS / f"{name}.log").open("w")
        started = time.monotonic()
        self.process = subprocess.Popen(
            command,
            env=env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.startup_s = self._wait_ready(started)

    def _wait_ready(self, started: float) -> float:
        url = f"http://127.0.0.1:{self.port}/api/user0000/tasks"
        headers = {
            "Authorization": "Bearer "
            + jwt.encode({"sub": "user0000", "exp": int(time.time()) + 60}, SECRET, "HS256")
        }
        while time.monotonic() - started < 60:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log.name}")
            try:
                if httpx.get(url, headers=headers, timeout=1).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start")

    def pids(self) -> list[int]:
        """The server process and all its descendants."""
        parents = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        tree, frontier = [self.process.pid], [self.process.pid]
        while frontier:
            children = [pid for pid, ppid in parents.items() if ppid in frontier]
            tree.extend(children)
            frontier = children
        return tree

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime + stime
        return total / CLOCK_TICKS

    def peak_rss_mb(self) -> float:
        """The largest peak RSS among the processes that serve requests."""
        pids = self.pids()
        serving = pids[1:] or pids
        peaks = []
        for pid in serving:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peaks.append(int(line.split()[1]) / 1024)
            except OSError:
                continue
        return max(peaks, default=0.0)

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


def run_wrk(
    server: Server, scenario: str, seconds: int, data: Path, connections: int
) -> dict[str, float]:
    env = {**os.environ, "SCENARIO": scenario, "BENCH_DATA": str(data)}
    command = [
        "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(BENCH / "scenario.lua"),
        f"http://127.0.0.1:{server.port}",
    ]
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    result: dict[str, float] = json.loads(line.removeprefix("RESULT "))
    return result


def measure(
    server: Server, scenario: str, workers: int, args: argparse.Namespace, data: Path
) -> Result:
    run_wrk(server, scenario, args.warmup, data, args.connections)
    cpu_before = server.cpu_seconds()
    stats = run_wrk(server, scenario, args.duration, data, args.connections)
    cpu = server.cpu_seconds() - cpu_before
    requests = max(stats["requests"], 1)
    return Result(
        scenario=scenario,
        workers=workers,
        target=server.name,
        rps=stats["requests"] / stats["seconds"],
        p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000,
        errors=int(stats["non2xx"] + stats["socket_errors"]),
        cpu_us_per_request=cpu / requests * 1e6,
        peak_rss_mb=server.peak_rss_mb(),
    )


def start_servers(url: str, workers: int) -> tuple[Server, Server]:
    bin_dir = Path(sys.executable).parent
    service_port, baseline_port = free_port(), free_port()
    service_env = {
        **os.environ,
        "DATABASE_URL": url,
        "AUTH_JWT_SECRET": SECRET,
        "ENVIRONMENT": "production",
    }
    service = Server(
        "service",
        [
            str(bin_dir / "todo-api"),
            "serve",
            "--port",
            str(service_port),
            "--workers",
            str(workers),
        ],
        service_env,
        service_port,
    )
    baseline_env = {**os.environ, "BASELINE_DATABASE_URL": libpq_url(url), "PYTHONPATH": str(ROOT)}
    baseline = Server(
        "baseline",
        [
            str(bin_dir / "uvicorn"),
            "bench.baseline:app",
            "--port",
            str(baseline_port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        baseline_env,
        baseline_port,
    )
    return service, baseline


def print_table(results: list[Result], startups: dict[str, float]) -> None:
    header = (
        f"{'scenario':<8} {'w':>1} {'target':<8} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'errors':>6} {'CPU us/req':>10} {'RSS MB':>7}"
    )
    print(header)
    print("-" * len(header))
    by_key = {(r.scenario, r.workers, r.target): r for r in results}
    for r in results:
        print(
            f"{r.scenario:<8} {r.workers:>1} {r.target:<8} {r.rps:>8.0f} {r.p50_ms:>7.2f} "
            f"{r.p99_ms:>7.2f} {r.errors:>6} {r.cpu_us_per_request:>10.0f} {r.peak_rss_mb:>7.1f}"
        )
    print()
    print(f"{'scenario':<8} {'w':>1} {'req/s ratio':>11} {'p99 ratio':>9} {'CPU ratio':>9}")
    for (scenario, workers, target), r in by_key.items():
        if target != "service":
            continue
        base = by_key[(scenario, workers, "baseline")]
        print(
            f"{scenario:<8} {workers:>1} {r.rps / base.rps:>11.2f} {r.p99_ms / base.p99_ms:>9.2f} "
            f"{r.cpu_us_per_request / base.cpu_us_per_request:>9.2f}"
        )
    print()
    for name, seconds in startups.items():
        print(f"startup to first answered request, {name}: {seconds:.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=int(os.environ.get("BENCH_DURATION", 10)))
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    url = os.environ.get(
        "BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/todo_bench"
    )
    RESULTS.mkdir(exist_ok=True)
    ids = asyncio.run(prepare_database(url))
    results: list[Result] = []
    startups: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.lua"
        write_lua_data(data, ids)
        for workers in (int(w) for w in args.workers.split(",")):
            service, baseline = start_servers(url, workers)
            startups[f"service, {workers} worker(s)"] = service.startup_s
            try:
                for index, scenario in enumerate(args.scenarios.split(",")):
                    order = (service, baseline) if index % 2 == 0 else (baseline, service)
                    measured = {s.name: measure(s, scenario, workers, args, data) for s in order}
                    results.extend([measured["service"], measured["baseline"]])
                    print(
                        f"  {scenario} w={workers}: service {measured['service'].rps:.0f} req/s, "
                        f"baseline {measured['baseline'].rps:.0f} req/s",
                        file=sys.stderr,
                    )
            finally:
                service.stop()
                baseline.stop()
    print_table(results, startups)
    (RESULTS / "latest.json").write_text(
        json.dumps({"results": [asdict(r) for r in results], "startup_s": startups}, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
