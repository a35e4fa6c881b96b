"""Load benchmark: the service as deployed against a bare Starlette + asyncpg baseline.

`make bench` (or `python bench/run.py`) creates and seeds its own PostgreSQL database from
BENCH_DATABASE_URL and starts, on the same HTTP server: the service as deployed (`todo-api
serve`, production settings, HS256 auth, the access log on, `/mcp` mounted, stderr to a file),
the same service without its access log, the same service without `/mcp` (MCP_ENABLED=false),
and the baseline (its asyncpg pool without the per-release reset: the stack's real limit). wrk
drives each in turn, scenario by scenario (`--rounds N`: N times, in rotation, keeping the median
round). It prints req/s, p50, p99, errors, server CPU per request and peak RSS, the
service/baseline ratios, the share of a request's CPU that the access log and `/mcp` cost, the
time from `todo-api serve` to a first answer (1 and 2 workers, with and without `/mcp`) and the
time of `todo-api --help`, and the `get` scenario again while 300 connections flood `/health`.
`--servers uvicorn,granian` repeats the load on each server.
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

import accesslog  # bench/accesslog.py, beside this script

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
    server: str
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
    server: Server, scenario: str, server_name: str, args: argparse.Namespace, data: Path
) -> Result:
    run_wrk(server, scenario, args.warmup, data, args.connections)
    cpu_before = server.cpu_seconds()
    stats = run_wrk(server, scenario, args.duration, data, args.connections)
    cpu = server.cpu_seconds() - cpu_before
    requests = max(stats["requests"], 1)
    return Result(
        scenario=scenario,
        server=server_name,
        target=server.name,
        rps=stats["requests"] / stats["seconds"],
        p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000,
        errors=int(stats["non2xx"] + stats["socket_errors"]),
        cpu_us_per_request=cpu / requests * 1e6,
        peak_rss_mb=server.peak_rss_mb(),
    )


HEALTH_FLOOD_CONNECTIONS = 300


def measure_under_health_flood(
    server: Server, args: argparse.Namespace, data: Path
) -> dict[str, float]:
    """The `get` scenario while another wrk floods `/health` (unauthenticated, not rate
    limited) over HEALTH_FLOOD_CONNECTIONS connections: what probes cost the API's requests."""
    flood = subprocess.Popen(
        [
            "wrk",
            "-t1",
            f"-c{HEALTH_FLOOD_CONNECTIONS}",
            f"-d{args.duration + 2}s",
            "--timeout",
            "5s",
            f"http://127.0.0.1:{server.port}/health",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(1)  # the flood is under way before the measured requests start
    stats = run_wrk(server, "get", args.duration, data, args.connections)
    output, _ = flood.communicate()
    health = next(line for line in output.splitlines() if line.startswith("Requests/sec:"))
    return {
        "rps": stats["requests"] / stats["seconds"],
        "p50_ms": stats["p50_us"] / 1000,
        "p99_ms": stats["p99_us"] / 1000,
        "errors": stats["non2xx"] + stats["socket_errors"],
        "health_rps": float(health.split()[1]),
    }


SERVERS = ("uvicorn", "granian")
# How `todo-api serve` serves; the baseline is served the same way, so the ratio compares apps.
SERVICE_SERVER = "uvicorn"


def server_command(server: str, target: str, port: int, workers: int) -> list[str]:
    """`target` (module:attribute, a factory if it ends in `()`) served by `server` with the
    options `todo-api serve` uses: uvloop, no server access log, no server header."""
    bin_dir = Path(sys.executable).parent
    factory = target.endswith("()")
    target = target.removesuffix("()")
    common = ["--port", str(port), "--workers", str(workers)]
    if server == "uvicorn":
        return [
            str(bin_dir / "uvicorn"),
            target,
            *common,
            *(["--factory"] if factory else []),
            "--no-access-log",
            "--no-server-header",
            "--log-level",
            "warning",
        ]
    return [
        str(bin_dir / "granian"),
        target,
        *common,
        "--interface",
        "asgi",
        "--loop",
        "uvloop",
        *(["--factory"] if factory else []),
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def service_env(url: str, *, access_log: bool, mcp: bool) -> dict[str, str]:
    env = {
        # As deployed (compose sets it), so /mcp is mounted unless `mcp` is off.
        "MCP_PUBLIC_URL": "http://127.0.0.1:8000/mcp",
        **os.environ,
        "DATABASE_URL": url,
        "AUTH_JWT_SECRET": SECRET,
        "ENVIRONMENT": "production",
        "MCP_ENABLED": "true" if mcp else "false",
    }
    env.pop("LOG_LEVEL", None)
    if not access_log:
        # The access line is written at INFO; everything else the service logs is WARNING or up.
        env["LOG_LEVEL"] = "WARNING"
    return env


def start_service(
    name: str, server: str, url: str, workers: int, *, access_log: bool = True, mcp: bool = True
) -> Server:
    """The service as deployed: `todo-api serve` on its own server, or the same app factory
    on the other server when comparing servers."""
    port = free_port()
    if server == SERVICE_SERVER:
        command = [
            str(Path(sys.executable).with_name("todo-api")),
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]
    else:
        command = server_command(server, "todo_api.main:serve_app()", port, workers)
    return Server(name, command, service_env(url, access_log=access_log, mcp=mcp), port)


def start_baseline(server: str, url: str, workers: int) -> Server:
    port = free_port()
    env = {**os.environ, "BASELINE_DATABASE_URL": libpq_url(url), "PYTHONPATH": str(ROOT)}
    return Server(
        "baseline", server_command(server, "bench.baseline:app", port, workers), env, port
    )


def time_help(runs: int = 5) -> float:
    """The fastest of `runs` runs of `todo-api --help`, in seconds."""
    todo_api = str(Path(sys.executable).with_name("todo-api"))
    timings = []
    for _ in range(runs):
        began = time.monotonic()
        subprocess.run([todo_api, "--help"], check=True, capture_output=True)
        timings.append(time.monotonic() - began)
    return min(timings)


def time_startups(url: str) -> dict[str, float]:
    """Seconds from `todo-api serve` to its first answered API request, 1 and 2 workers, with
    `/mcp` and without it (migrations already applied: the check that finds none pending is
    included)."""
    startups = {}
    for mcp in (True, False):
        for workers in (1, 2):
            service = start_service("startup", SERVICE_SERVER, url, workers, mcp=mcp)
            without = "" if mcp else " without /mcp"
            startups[f"serve, {workers} worker(s){without}"] = service.startup_s
            service.stop()
    return startups


def median_round(rounds: list[Result]) -> Result:
    """The round with the median req/s (the lower middle one of an even count)."""
    return sorted(rounds, key=lambda r: r.rps)[(len(rounds) - 1) // 2]


def share(result: Result, without: Result | None) -> str:
    """The share of `result`'s CPU per request that the run `without` a part did not spend."""
    if without is None:
        return "-"
    saved = result.cpu_us_per_request - without.cpu_us_per_request
    return f"{saved / result.cpu_us_per_request:.1%}"


def print_table(
    results: list[Result],
    timings: dict[str, float],
    flood: dict[str, float] | None,
    access_line_us: float,
) -> None:
    header = (
        f"{'scenario':<8} {'server':<8} {'target':<14} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'errors':>6} {'CPU us/req':>10} {'RSS MB':>7}"
    )
    print(header)
    print("-" * len(header))
    by_key = {(r.scenario, r.server, r.target): r for r in results}
    for r in results:
        print(
            f"{r.scenario:<8} {r.server:<8} {r.target:<14} {r.rps:>8.0f} {r.p50_ms:>7.2f} "
            f"{r.p99_ms:>7.2f} {r.errors:>6} {r.cpu_us_per_request:>10.0f} {r.peak_rss_mb:>7.1f}"
        )
    print()
    print(
        f"{'scenario':<8} {'server':<8} {'req/s ratio':>11} {'p99 ratio':>9} {'CPU ratio':>9} "
        f"{'access log':>10} {'/mcp':>7} {'log line':>8}"
    )
    for (scenario, server, target), r in by_key.items():
        if target != "service":
            continue
        base = by_key[(scenario, server, "baseline")]
        log_share = share(r, by_key.get((scenario, server, "service-nolog")))
        mcp_share = share(r, by_key.get((scenario, server, "service-nomcp")))
        print(
            f"{scenario:<8} {server:<8} {r.rps / base.rps:>11.2f} {r.p99_ms / base.p99_ms:>9.2f} "
            f"{r.cpu_us_per_request / base.cpu_us_per_request:>9.2f} {log_share:>10} "
            f"{mcp_share:>7} {access_line_us / r.cpu_us_per_request:>8.1%}"
        )
    print()
    print(
        "access log, /mcp: the share of the service's CPU per request that goes away without it"
        " (negative: the run without it spent more); log line: the CPU of one JSON access line"
        f" ({access_line_us:.1f} us, counted over {accesslog.LINES:,} lines by bench/accesslog.py)"
        " as a share of the service's CPU per request"
    )
    for name, seconds in timings.items():
        print(f"{name}: {seconds:.2f} s")
    if flood is not None:
        print(
            f"get under a /health flood ({HEALTH_FLOOD_CONNECTIONS} connections): "
            f"{flood['rps']:.0f} req/s, p50 {flood['p50_ms']:.2f} ms, "
            f"p99 {flood['p99_ms']:.2f} ms, {flood['errors']:.0f} errors; "
            f"/health answered {flood['health_rps']:.0f} req/s"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=int(os.environ.get("BENCH_DURATION", 8)))
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument(
        "--servers",
        default=SERVICE_SERVER,
        help=f"comma-separated, of {', '.join(SERVERS)}; each serves both service and baseline",
    )
    parser.add_argument(
        "--no-quiet", action="store_true", help="skip the run without the access log"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure each scenario this many times, in rotation, and print the median round",
    )
    parser.add_argument("--no-mcp-off", action="store_true", help="skip the run without /mcp")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    servers = args.servers.split(",")
    if unknown := set(servers) - set(SERVERS):
        parser.error(f"unknown server(s): {', '.join(sorted(unknown))}")
    url = os.environ.get(
        "BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/todo_bench"
    )
    RESULTS.mkdir(exist_ok=True)
    ids = asyncio.run(prepare_database(url))
    results: list[Result] = []
    flood: dict[str, float] | None = None
    access_line_us = accesslog.cpu_per_line(json=True) - accesslog.cpu_per_line(json=None)
    timings = {"todo-api --help": time_help()}
    timings.update(time_startups(url))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.lua"
        write_lua_data(data, ids)
        for server in servers:
            targets = [
                start_service("service", server, url, args.workers, access_log=True),
                start_baseline(server, url, args.workers),
            ]
            if not args.no_quiet:
                targets.append(
                    start_service("service-nolog", server, url, args.workers, access_log=False)
                )
            if not args.no_mcp_off:
                targets.append(start_service("service-nomcp", server, url, args.workers, mcp=False))
            try:
                for index, scenario in enumerate(args.scenarios.split(",")):
                    rounds: dict[str, list[Result]] = {t.name: [] for t in targets}
                    for round_ in range(args.rounds):
                        # Rotate who goes first, so no target always meets a warmer machine.
                        shift = (index + round_) % len(targets)
                        order = targets[shift:] + targets[:shift]
                        measured = {t.name: measure(t, scenario, server, args, data) for t in order}
                        for name, result in measured.items():
                            rounds[name].append(result)
                        print(
                            f"  {scenario} {server}: "
                            + ", ".join(f"{n} {r.rps:.0f} req/s" for n, r in measured.items()),
                            file=sys.stderr,
                        )
                    results.extend(median_round(rounds[t.name]) for t in targets)
                if flood is None and "get" in args.scenarios.split(","):
                    flood = measure_under_health_flood(targets[0], args, data)
            finally:
                for target in targets:
                    target.stop()
    print_table(results, timings, flood, access_line_us)
    (RESULTS / "latest.json").write_text(
        json.dumps(
            {
                "results": [asdict(r) for r in results],
                "timings_s": timings,
                "get_under_health_flood": flood,
                "access_line_us": access_line_us,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
