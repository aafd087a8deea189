"""Per-key rate limits (per client IP for web forms, per sender for email).

Both limiters implement GCRA (the generic cell rate algorithm) and so agree
exactly: a rate of ``N/period`` allows a burst of ``N`` hits, then one more hit
every ``period / N`` seconds; after ``period`` seconds without hits the full
burst is available again. Each key costs one number of state, which expires
by itself once the key has been idle for ``period``.

``RedisRateLimiter`` runs the algorithm in a Lua script against Redis' clock,
so it is atomic and correct across any number of processes.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = [
    "MemoryRateLimiter",
    "Rate",
    "RateDecision",
    "RateLimiter",
    "RedisRateLimiter",
    "create_rate_limiter",
]

logger = logging.getLogger(__name__)

_UNITS: Final = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
}
_RATE_RE: Final = re.compile(r"(\d+)\s*/\s*(\d*)\s*([a-z]+)")
_NAMED_PERIODS: Final = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}
_US: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``limit`` hits per ``period_seconds`` for each key."""

    limit: int
    period_seconds: int

    def __post_init__(self) -> None:
        if self.limit < 1 or self.period_seconds < 1:
            raise ValueError(
                f"a rate needs a positive limit and period, got {self.limit}/{self.period_seconds}s"
            )

    @classmethod
    def parse(cls, text: str | None) -> Rate | None:
        """Parse ``"20/minute"``, ``"5/10s"``, ``"100/hour"``, ``"1000/day"``, ``"3/2h"``.

        Units: s, sec, second(s), m, min, minute(s), h, hour(s), d, day(s).
        ``None``, ``""`` and ``"0"`` mean no limit and return None; anything
        else that does not parse raises ValueError saying what is expected.
        """
        cleaned = (text or "").strip().lower()
        if cleaned in ("", "0"):
            return None
        match = _RATE_RE.fullmatch(cleaned)
        if match is None or match.group(3) not in _UNITS:
            raise ValueError(
                f"invalid rate {text!r}: expected N/unit or N/<count><unit> such as "
                "'20/minute' or '5/10s' (units: second, minute, hour, day or s, m, h, d), "
                "or '0' to disable"
            )
        limit = int(match.group(1))
        count = int(match.group(2) or 1)
        if limit == 0 or count == 0:
            raise ValueError(
                f"invalid rate {text!r}: limit and period must be positive; use '0' to disable"
            )
        return cls(limit, count * _UNITS[match.group(3)])

    def __str__(self) -> str:
        unit = _NAMED_PERIODS.get(self.period_seconds)
        return f"{self.limit}/{unit}" if unit else f"{self.limit}/{self.period_seconds}s"

    @property
    def interval_us(self) -> int:
        """Microseconds between hits at the sustained rate.

        Rounded down, so that ``limit`` hits always fit into the period.
        """
        return max(1, self.period_seconds * _US // self.limit)

    @property
    def period_us(self) -> int:
        """The period in microseconds."""
        return self.period_seconds * _US


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The answer to one hit.

    ``remaining`` is how many more hits would be allowed right now;
    ``retry_after`` is 0 when allowed, else the seconds until the next allowed hit.
    """

    allowed: bool
    remaining: int
    retry_after: float


class RateLimiter(Protocol):
    """Counts hits per key against one ``Rate``."""

    async def hit(self, key: str) -> RateDecision:
        """Record a hit for ``key`` if it is allowed; a denied hit is not counted."""
        ...

    async def close(self) -> None:
        """Release connections the limiter owns."""
        ...


def create_rate_limiter(
    rate: Rate | None, redis_url: str | None, prefix: str
) -> RateLimiter | None:
    """Return None when ``rate`` is None (no limit), else a Redis or in-memory limiter."""
    if rate is None:
        return None
    if redis_url:
        return RedisRateLimiter(redis_url, rate, prefix)
    return MemoryRateLimiter(rate)


def _decide(rate: Rate, tat: int, now: int) -> tuple[RateDecision, int | None]:
    """One GCRA step in microseconds: the decision and the new theoretical
    arrival time (None if denied). Mirrors the Lua script below exactly."""
    new_tat = max(tat, now) + rate.interval_us
    allow_at = new_tat - rate.period_us
    if allow_at > now:
        return RateDecision(False, 0, (allow_at - now) / _US), None
    remaining = (rate.period_us - (new_tat - now)) // rate.interval_us
    return RateDecision(True, remaining, 0.0), new_tat


class MemoryRateLimiter:
    """GCRA in this process only; for the embedded mode and tests.

    Memory is bounded: idle keys are evicted as soon as their state has
    expired, and beyond ``max_keys`` the least recently allowed keys are
    forgotten (which only ever makes the limiter more lenient).
    """

    def __init__(
        self,
        rate: Rate,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.rate = rate
        self._max_keys = max_keys
        self._clock = clock
        # key -> theoretical arrival time (µs), least recently allowed first
        self._tat: OrderedDict[str, int] = OrderedDict()

    async def hit(self, key: str) -> RateDecision:
        """Record a hit for ``key`` if it is allowed."""
        now = int(self._clock() * _US)
        self._evict(now)
        decision, new_tat = _decide(self.rate, self._tat.get(key, now), now)
        if new_tat is not None:
            self._tat[key] = new_tat
            self._tat.move_to_end(key)
            if len(self._tat) > self._max_keys:
                self._tat.popitem(last=False)
        return decision

    def _evict(self, now: int) -> None:
        # A key's state is fresh again once its arrival time has passed; keys
        # at the front were allowed longest ago, so stop at the first live one.
        while self._tat:
            key, tat = next(iter(self._tat.items()))
            if tat > now:
                break
            del self._tat[key]

    def __len__(self) -> int:
        """How many keys currently hold state."""
        return len(self._tat)

    async def close(self) -> None:
        """Nothing to release."""


# KEYS[1]: the key; ARGV[1]: interval, ARGV[2]: period, both in microseconds.
# Returns {allowed (0/1), remaining, retry_after in microseconds}.
_GCRA_LUA: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - period
if allow_at > now then
  return {0, 0, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor((period - (new_tat - now)) / interval), 0}
"""

_MAX_KEY_LENGTH: Final = 128


class RedisRateLimiter:
    """GCRA in Redis: one atomic Lua script per hit, shared by all processes.

    If Redis cannot be reached the hit is allowed and a warning logged
    (``fail_open=True``, the default): a rate limit guards against abuse and
    must not take the web forms down with it. With ``fail_open=False`` the
    Redis error propagates.
    """

    def __init__(
        self,
        redis_url_or_client: str | aioredis.Redis,
        rate: Rate,
        prefix: str,
        *,
        fail_open: bool = True,
    ) -> None:
        if isinstance(redis_url_or_client, str):
            self._client = aioredis.Redis.from_url(redis_url_or_client)
            self._owns_client = True
        else:
            self._client = redis_url_or_client
            self._owns_client = False
        self.rate = rate
        self._prefix = prefix
        self._fail_open = fail_open
        self._script = self._client.register_script(_GCRA_LUA)

    def _redis_key(self, key: str) -> str:
        # Keys come from outside (addresses, headers): bound their length.
        if len(key) > _MAX_KEY_LENGTH:
            key = "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{self._prefix}:{key}"

    async def hit(self, key: str) -> RateDecision:
        """Record a hit for ``key`` if it is allowed, atomically in Redis."""
        try:
            result = await self._script(
                keys=[self._redis_key(key)], args=[self.rate.interval_us, self.rate.period_us]
            )
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            if not self._fail_open:
                raise
            logger.warning("rate limit %s not checked, Redis unavailable: %s", self._prefix, exc)
            return RateDecision(True, self.rate.limit - 1, 0.0)
        allowed, remaining, retry_after_us = (int(value) for value in result)
        return RateDecision(bool(allowed), remaining, retry_after_us / _US)

    async def close(self) -> None:
        """Close the connection pool if this limiter created it."""
        if self._owns_client:
            await self._client.aclose()
