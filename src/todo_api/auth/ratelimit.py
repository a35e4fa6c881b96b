"""Per-user (or per-address) request budgets, in memory or shared through Redis.

Responses carry the IETF `RateLimit-Policy` and `RateLimit` headers
(draft-ietf-httpapi-ratelimit-headers); a request over budget gets 429 with `Retry-After`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string

if TYPE_CHECKING:
    from redis.asyncio import ConnectionPool

logger = logging.getLogger(__name__)

POLICY = "default"
# The longest `Retry-After` a 429 says: below the server's 75 s idle keep-alive (todo_api.cli),
# so a client that waits it out on its connection finds it open. A longer window's reset is in
# the `RateLimit` header's `t=`; a client that retries before it is told again.
RETRY_AFTER_MAX_S = 60
KEY_PREFIX = "todo-api"


@dataclass(frozen=True)
class Budget:
    """The outcome of spending one request against a key's budget."""

    allowed: bool
    limit: int
    window: int
    remaining: int
    reset_after: int

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Policy": f'"{POLICY}";q={self.limit};w={self.window}',
            "RateLimit": f'"{POLICY}";r={self.remaining};t={self.reset_after}',
        }
        if not self.allowed:
            headers["Retry-After"] = str(min(self.reset_after, RETRY_AFTER_MAX_S))
        return headers


class _MemoryWindows:
    """Fixed windows counted in this process: a dictionary, no locks, no background task.

    (The `limits` library's memory storage costs far more per request; it is kept for Redis.)
    """

    def __init__(self, amount: int, window: int) -> None:
        self.amount = amount
        self.window = window
        self._counts: dict[str, tuple[int, int]] = {}  # key -> (window index, hits)

    def hit(self, key: str) -> tuple[bool, int, float]:
        """(allowed, remaining, reset time) after spending one request of `key`."""
        now = time.time()
        index = int(now // self.window)
        current, hits = self._counts.get(key, (index, 0))
        if current != index:
            hits = 0
            if len(self._counts) > MEMORY_KEYS_BEFORE_SWEEP:
                self._sweep(index)
        hits += 1
        self._counts[key] = (index, hits)
        return hits <= self.amount, max(self.amount - hits, 0), (index + 1) * self.window

    def _sweep(self, index: int) -> None:
        self._counts = {k: v for k, v in self._counts.items() if v[0] == index}

    def forget(self, key: str) -> None:
        self._counts.pop(key, None)


MEMORY_KEYS_BEFORE_SWEEP = 100_000
# A Redis that does not answer within this long counts as down, and is left alone for a while.
REDIS_TIMEOUT_S = 0.25
REDIS_RETRY_AFTER_S = 5.0


class RateLimiter:
    def __init__(self, spec: str, *, redis_url: str | None = None) -> None:
        self.item: RateLimitItem = parse(spec)
        self._memory = _MemoryWindows(self.item.amount, self.item.get_expiry())
        self._redis_pool: ConnectionPool | None = None
        self._redis: FixedWindowRateLimiter | None = None
        self._redis_down_until = 0.0
        if redis_url:
            # Imported only when configured: redis is an optional extra (`todo-api[redis]`).
            from redis.asyncio import ConnectionPool

            # Our own pool, so shutting down can close its connections.
            self._redis_pool = ConnectionPool.from_url(
                redis_url,
                socket_connect_timeout=REDIS_TIMEOUT_S,
                socket_timeout=REDIS_TIMEOUT_S,
            )
            self.storage: Storage = storage_from_string(  # type: ignore[assignment]
                f"async+{redis_url}",
                implementation="redispy",
                key_prefix=KEY_PREFIX,
                connection_pool=self._redis_pool,  # type: ignore[arg-type]
            )
            self._redis = FixedWindowRateLimiter(self.storage)

    async def spend(self, key: str) -> Budget | None:
        """Spend one request of `key`'s budget; None if the store is unreachable (fail open)."""
        if self._redis is None:
            allowed, remaining, reset_time = self._memory.hit(key)
        else:
            if time.monotonic() < self._redis_down_until:
                return None  # Redis failed moments ago: do not make every request wait on it
            try:
                allowed, remaining, reset_time = await self._spend_shared(self._redis, key)
            except Exception as exc:  # any storage failure: serving beats refusing everyone
                logger.warning("rate limit store unavailable: %s", type(exc).__name__)
                self._redis_down_until = time.monotonic() + REDIS_RETRY_AFTER_S
                return None
        return Budget(
            allowed=allowed,
            limit=self.item.amount,
            window=self.item.get_expiry(),
            remaining=remaining,
            reset_after=max(math.ceil(reset_time - time.time()), 0),
        )

    async def _spend_shared(
        self, limiter: FixedWindowRateLimiter, key: str
    ) -> tuple[bool, int, float]:
        allowed = await limiter.hit(self.item, key)
        stats = await limiter.get_window_stats(self.item, key)
        return allowed, max(stats.remaining, 0), stats.reset_time

    async def forget(self, key: str) -> None:
        """Drop `key`'s spent budget (tests, and an operator lifting a block)."""
        if self._redis is None:
            self._memory.forget(key)
        else:
            await self.storage.clear(self.item.key_for(key))

    async def close(self) -> None:
        if self._redis_pool is not None:
            await self._redis_pool.aclose()


def create_rate_limiter(spec: str, redis_url: str | None) -> RateLimiter | None:
    return None if spec == "0" else RateLimiter(spec, redis_url=redis_url)
