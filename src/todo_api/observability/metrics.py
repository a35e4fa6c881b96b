"""Prometheus metrics: what the service counts (`GET /metrics` serves them).

Metrics are collected per process, once an app is built with them on (METRICS_ENABLED). Under
`todo-api serve --workers N` every worker writes its samples to memory-mapped files in
PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode) and a scrape, which any one
worker answers, adds them all up: counts are right whichever worker served a request.

A request costs a few dictionary lookups and four or five counter increments: the label children
are bound once per (method, route, status class) and kept. Scrapes of `/metrics` are left out of
the request metrics (the scraper has its own), and of the OpenAPI document.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, ParamSpec, TypeVar, get_args

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    multiprocess,
)

from todo_api.errors import AuthFailure

logger = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
# prometheus-client's own variable: it picks its storage from it when first imported.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "unmatched"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"
# Most requests take a millisecond or two; the upper buckets catch pool and statement timeouts.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
QUERY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15)
AUTH_FAILURE_REASONS: tuple[AuthFailure, ...] = get_args(AuthFailure)
# In multiprocess mode a worker refreshes its pool gauges this often, and on each scrape it answers.
POOL_SAMPLE_INTERVAL_S = 5.0

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class PoolUsage:
    """One connection pool at one moment."""

    pool: str
    size: int
    checked_out: int
    idle: int
    overflow: int


class Metrics:
    """Every metric of the process, built once (`enable_metrics`) and shared by its apps."""

    def __init__(self, *, multiprocess_dir: str | None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        # In multiprocess mode samples go to files; a scrape reads them through its own registry.
        registry = None if multiprocess_dir else self.registry
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.requests = Counter(
            "todo_api_http_requests",
            "HTTP requests answered, by method, route template and status class.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.request_duration = Histogram(
            "todo_api_http_request_duration_seconds",
            "Time from a request's arrival to its last response byte, in seconds.",
            ["method", "route", "status"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "todo_api_http_requests_in_flight",
            "Requests being served right now.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        query_duration = Histogram(
            "todo_api_db_query_duration_seconds",
            "Time to run one statement of a request, connection checkout included, in seconds.",
            ["operation"],
            buckets=QUERY_BUCKETS,
            registry=registry,
        )
        self.query_duration = {op: query_duration.labels(op) for op in ("fetch", "execute")}
        self.auth_failures = Counter(
            "todo_api_auth_failures",
            "Requests refused by authentication (400, 401) or the owner check (403), by reason.",
            ["reason"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "todo_api_rate_limited_requests",
            "Requests refused with 429, by whose budget was spent: a user's or an address's.",
            ["subject"],
            registry=registry,
        )
        for reason in AUTH_FAILURE_REASONS:
            self.auth_failures.labels(reason)
        for subject in ("user", "address"):
            self.rate_limited.labels(subject)
        self.pool_gauges = {
            field: Gauge(
                f"todo_api_db_pool_{field}",
                description,
                ["pool"],
                multiprocess_mode="livesum",
                registry=registry,
            )
            for field, description in (
                ("size", "Connections a pool keeps (the direct pool: the most it opens)."),
                ("checked_out", "Pooled connections in use by a request right now."),
                ("idle", "Open pooled connections waiting for a request."),
                ("overflow", "Connections open beyond the pool's size (DB_MAX_OVERFLOW)."),
            )
        }
        self.tool_calls = Counter(
            "todo_api_mcp_tool_calls",
            "MCP tool calls, by tool and outcome (ok, or the refusal's problem type).",
            ["tool", "outcome"],
            registry=registry,
        )
        self.tool_duration = Histogram(
            "todo_api_mcp_tool_duration_seconds",
            "Time to run one MCP tool call, budget check included, in seconds.",
            ["tool"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self._children: dict[tuple[str, str | None, int], tuple[Counter, Histogram]] = {}

    def observe_request(self, method: str, route: str | None, status: int, seconds: float) -> None:
        """Count one answered request; `route` is its template, None when no route matched."""
        if method not in HTTP_METHODS:
            method = OTHER_METHOD  # the label set stays bounded whatever clients send
        key = (method, route, status // 100)
        children = self._children.get(key)
        if children is None:
            labels = (method, route or UNMATCHED, f"{status // 100}xx")
            children = (self.requests.labels(*labels), self.request_duration.labels(*labels))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def sample_pools(self, pools: Iterable[PoolUsage]) -> None:
        """Set the pool gauges from `pools` (this process's, as they are now)."""
        if not self.multiprocess_dir:
            for gauge in self.pool_gauges.values():
                gauge.clear()  # another app's pools (tests build several apps per process)
        for usage in pools:
            for field, gauge in self.pool_gauges.items():
                gauge.labels(usage.pool).set(getattr(usage, field))

    def exposition_registry(self) -> CollectorRegistry:
        """What a scrape reads: this process's registry, or every worker's files."""
        if not self.multiprocess_dir:
            return self.registry
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return registry


_process_metrics: Metrics | None = None


def enable_metrics() -> Metrics:
    """The process's metrics, built on first use (by the first app with metrics on)."""
    global _process_metrics
    if _process_metrics is None:
        directory = os.environ.get(MULTIPROCESS_ENV) or None
        if directory is not None:
            _forget_dead_workers(directory)
        _process_metrics = Metrics(multiprocess_dir=directory)
    return _process_metrics


def count_auth_failure(reason: AuthFailure) -> None:
    """Count a request refused by authentication or the owner check."""
    if _process_metrics is not None:
        _process_metrics.auth_failures.labels(reason).inc()


def count_rate_limited(subject: Literal["user", "address"]) -> None:
    """Count a request refused with 429, by whose budget it spent."""
    if _process_metrics is not None:
        _process_metrics.rate_limited.labels(subject).inc()


def observe_tool_call(tool: str | None, outcome: str, seconds: float) -> None:
    """Count one MCP tool call; `tool` is None for a name no tool has (the label set stays
    bounded whatever clients send)."""
    if _process_metrics is not None:
        name = tool or UNMATCHED
        _process_metrics.tool_calls.labels(name, outcome).inc()
        _process_metrics.tool_duration.labels(name).observe(seconds)


def timed_query(
    operation: str,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Time each call of a database statement method into the query latency histogram (once
    metrics are on in this process; until then the call goes straight through)."""

    def decorate(run: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(run)
        async def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            metrics = _process_metrics
            if metrics is None:
                return await run(*args, **kwargs)
            began = time.perf_counter()
            try:
                return await run(*args, **kwargs)
            finally:
                metrics.query_duration[operation].observe(time.perf_counter() - began)

        return timed

    return decorate


class WorkerMetrics:
    """A worker's part in multiprocess mode: its pool gauges refreshed every few seconds (so a
    scrape another worker answers still sees them), and its live gauges dropped when it stops."""

    def __init__(self, metrics: Metrics, pools: Callable[[], Iterable[PoolUsage]]) -> None:
        self.metrics = metrics
        self.pools = pools
        self._task = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        while True:
            try:
                self.metrics.sample_pools(self.pools())
            except Exception:
                logger.exception("cannot read the database pools for metrics")
            await asyncio.sleep(POOL_SAMPLE_INTERVAL_S)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        multiprocess.mark_process_dead(os.getpid(), self.metrics.multiprocess_dir)  # type: ignore[no-untyped-call]


def start_worker_metrics(
    metrics: Metrics | None, pools: Callable[[], Iterable[PoolUsage]]
) -> WorkerMetrics | None:
    """In multiprocess mode, with metrics on: start this worker's part (see WorkerMetrics)."""
    if metrics is None or not metrics.multiprocess_dir:
        return None
    return WorkerMetrics(metrics, pools)


def prepare_multiprocess_metrics(*, enabled: bool, workers: int) -> None:
    """Before `todo-api serve` starts its workers: where they will share their samples.

    A PROMETHEUS_MULTIPROC_DIR set by the operator is emptied of an earlier run's files (or
    made). Without one, several workers get a fresh temporary directory, exported to them and
    removed when the server exits. One worker keeps its samples in memory.
    """
    if not enabled:
        return
    directory = os.environ.get(MULTIPROCESS_ENV)
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        return
    if workers > 1:
        directory = tempfile.mkdtemp(prefix="todo-api-metrics-")
        os.environ[MULTIPROCESS_ENV] = directory
        atexit.register(shutil.rmtree, directory, ignore_errors=True)


def _forget_dead_workers(directory: str) -> None:
    """Drop the live gauges (requests in flight, pools) of workers that died without stopping
    (uvicorn replaces a crashed worker; its counters stay, they are part of the totals)."""
    for path in Path(directory).glob("gauge_live*_*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _running(int(pid)):
            multiprocess.mark_process_dead(int(pid), directory)  # type: ignore[no-untyped-call]


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
