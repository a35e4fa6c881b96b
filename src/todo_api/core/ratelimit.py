"""Per-user (or per-address) request budgets, in memory or shared through Redis.

Responses carry the IETF `RateLimit-Policy` and `RateLimit` headers
(draft-ietf-httpapi-ratelimit-headers); a request over budget gets 429 with `Retry-After`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string
from redis.asyncio import ConnectionPool

from todo_api.core.errors import AppError

logger = logging.getLogger(__name__)

POLICY = "default"
KEY_PREFIX = "todo-api"


class RateLimited(AppError):
    status = 429
    type = "/problems/rate-limited"
    title = "Too Many Requests"

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__(
            "The request budget is spent; retry after the time given.", headers=headers
        )


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
            headers["Retry-After"] = str(self.reset_after)
        return headers


class RateLimiter:
    def __init__(self, spec: str, *, redis_url: str | None = None) -> None:
        self.item: RateLimitItem = parse(spec)
        storage: Storage
        self._redis_pool: ConnectionPool | None = None
        if redis_url:
            # Our own pool, so shutting down can close its connections.
            self._redis_pool = ConnectionPool.from_url(redis_url)
            storage = storage_from_string(  # type: ignore[assignment]
                f"async+{redis_url}",
                implementation="redispy",
                key_prefix=KEY_PREFIX,
                connection_pool=self._redis_pool,  # type: ignore[arg-type]
            )
        else:
            storage = MemoryStorage()
        self.storage = storage
        self._limiter = FixedWindowRateLimiter(storage)

    async def spend(self, key: str) -> Budget | None:
        """Spend one request of `key`'s budget; None if the store is unreachable (fail open)."""
        try:
            allowed = await self._limiter.hit(self.item, key)
            stats = await self._limiter.get_window_stats(self.item, key)
        except Exception as exc:  # any storage failure: serving beats refusing everyone
            logger.warning("rate limit store unavailable: %s", type(exc).__name__)
            return None
        return Budget(
            allowed=allowed,
            limit=self.item.amount,
            window=self.item.get_expiry(),
            remaining=max(stats.remaining, 0),
            reset_after=max(math.ceil(stats.reset_time - time.time()), 0),
        )

    async def reset(self) -> None:
        await self.storage.reset()

    async def close(self) -> None:
        if self._redis_pool is not None:
            await self._redis_pool.aclose()


def create_rate_limiter(spec: str, redis_url: str | None) -> RateLimiter | None:
    return None if spec == "0" else RateLimiter(spec, redis_url=redis_url)
