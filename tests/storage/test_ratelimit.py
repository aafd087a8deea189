"""One suite for both rate limiters: in memory and in Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from storage.ratelimit import (
    MemoryRateLimiter,
    Rate,
    RateDecision,
    RateLimiter,
    RedisRateLimiter,
    create_rate_limiter,
)

LimiterFactory = Callable[[Rate], RateLimiter]


@pytest.fixture(params=["memory", "redis"])
def limiter_factory(request: pytest.FixtureRequest, unique: str) -> LimiterFactory:
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        return lambda rate: RedisRateLimiter(url, rate, prefix=unique)
    return lambda rate: MemoryRateLimiter(rate)


@pytest.fixture
async def make_limiter(limiter_factory: LimiterFactory) -> AsyncIterator[LimiterFactory]:
    created: list[RateLimiter] = []

    def make(rate: Rate) -> RateLimiter:
        limiter = limiter_factory(rate)
        created.append(limiter)
        return limiter

    yield make
    for limiter in created:
        await limiter.close()


class TestHit:
    async def test_allows_limit_then_denies(self, make_limiter: LimiterFactory) -> None:
        limiter = make_limiter(Rate(3, 60))

        decisions = [await limiter.hit("203.0.113.7") for _ in range(4)]

        assert decisions[:3] == [
            RateDecision(True, 2, 0.0),
            RateDecision(True, 1, 0.0),
            RateDecision(True, 0, 0.0),
        ]
        denied = decisions[3]
        assert not denied.allowed
        assert denied.remaining == 0
        assert 19 < denied.retry_after <= 20  # one hit every 20 s once the burst is used

    async def test_denied_hits_are_not_counted(self, make_limiter: LimiterFactory) -> None:
        limiter = make_limiter(Rate(1, 60))
        await limiter.hit("k")

        first = await limiter.hit("k")
        second = await limiter.hit("k")

        assert not first.allowed and not second.allowed
        assert second.retry_after <= first.retry_after

    async def test_keys_are_independent(self, make_limiter: LimiterFactory) -> None:
        limiter = make_limiter(Rate(2, 60))
        for _ in range(2):
            await limiter.hit("203.0.113.7")

        assert not (await limiter.hit("203.0.113.7")).allowed
        assert (await limiter.hit("198.51.100.1")).allowed
        assert (await limiter.hit("клиент@пример.рф")).allowed
        assert (await limiter.hit("x" * 1000)).allowed

    async def test_window_resets(self, make_limiter: LimiterFactory) -> None:
        limiter = make_limiter(Rate(2, 1))
        assert [(await limiter.hit("k")).allowed for _ in range(3)] == [True, True, False]

        await asyncio.sleep(1.05)

        assert [(await limiter.hit("k")).allowed for _ in range(3)] == [True, True, False]

    async def test_one_hit_comes_back_after_retry_after(self, make_limiter: LimiterFactory) -> None:
        limiter = make_limiter(Rate(4, 1))
        for _ in range(4):
            await limiter.hit("k")
        denied = await limiter.hit("k")
        assert not denied.allowed and 0 < denied.retry_after <= 0.25

        await asyncio.sleep(denied.retry_after + 0.02)

        assert (await limiter.hit("k")).allowed
        assert not (await limiter.hit("k")).allowed

    async def test_concurrent_hits_never_exceed_limit(self, make_limiter: LimiterFactory) -> None:
        limiter = make_limiter(Rate(10, 60))

        decisions = await asyncio.gather(*(limiter.hit("k") for _ in range(30)))

        assert sum(d.allowed for d in decisions) == 10


class TestRedisAcrossProcesses:
    async def test_limiters_share_counts(self, redis_url: str, unique: str) -> None:
        rate = Rate(4, 60)
        first = RedisRateLimiter(redis_url, rate, prefix=unique)
        client = aioredis.Redis.from_url(redis_url)
        second = RedisRateLimiter(client, rate, prefix=unique)
        try:
            decisions = await asyncio.gather(*(limiter.hit("k") for limiter in (first, second) * 5))

            assert sum(d.allowed for d in decisions) == 4
            assert await client.pttl(f"{unique}:k") > 0  # idle keys expire by themselves
        finally:
            await first.close()
            await second.close()  # does not close a client it was given
            assert await client.ping()
            await client.aclose()

    async def test_fails_open_when_redis_is_down(self) -> None:
        limiter = RedisRateLimiter("redis://127.0.0.1:1/0", Rate(1, 60), prefix="p")
        try:
            assert (await limiter.hit("k")).allowed
            assert (await limiter.hit("k")).allowed
        finally:
            await limiter.close()

    async def test_can_fail_closed(self) -> None:
        limiter = RedisRateLimiter(
            "redis://127.0.0.1:1/0", Rate(1, 60), prefix="p", fail_open=False
        )
        try:
            with pytest.raises(aioredis.ConnectionError):
                await limiter.hit("k")
        finally:
            await limiter.close()


class TestMemoryBounds:
    async def test_idle_keys_are_evicted(self) -> None:
        now = [1000.0]
        limiter = MemoryRateLimiter(Rate(5, 10), clock=lambda: now[0])
        for n in range(100):
            await limiter.hit(f"ip-{n}")
        assert len(limiter) == 100

        now[0] += 10
        await limiter.hit("late")

        assert len(limiter) == 1

    async def test_key_count_is_capped(self) -> None:
        limiter = MemoryRateLimiter(Rate(5, 10), max_keys=50)
        for n in range(200):
            await limiter.hit(f"ip-{n}")

        assert len(limiter) == 50


class TestParse:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("20/minute", Rate(20, 60)),
            ("1/second", Rate(1, 1)),
            ("100/hour", Rate(100, 3600)),
            ("1000/day", Rate(1000, 86400)),
            ("5/10s", Rate(5, 10)),
            ("3/2h", Rate(3, 7200)),
            ("10/5m", Rate(10, 300)),
            ("7/d", Rate(7, 86400)),
            (" 20 / Minutes ", Rate(20, 60)),
            ("2/30sec", Rate(2, 30)),
        ],
    )
    def test_valid(self, text: str, expected: Rate) -> None:
        assert Rate.parse(text) == expected

    @pytest.mark.parametrize("text", ["", "0", "  ", None])
    def test_disabled(self, text: str | None) -> None:
        assert Rate.parse(text) is None

    @pytest.mark.parametrize(
        "text",
        [
            "20",
            "20/",
            "/minute",
            "20/fortnight",
            "-1/minute",
            "1.5/minute",
            "20 per minute",
            "20/minute/extra",
            "0/minute",
            "5/0s",
            "abc",
        ],
    )
    def test_invalid(self, text: str) -> None:
        with pytest.raises(ValueError, match="invalid rate"):
            Rate.parse(text)

    def test_rate_must_be_positive(self) -> None:
        with pytest.raises(ValueError):
            Rate(0, 60)

    def test_str_round_trips(self) -> None:
        for text in ("20/minute", "5/10s", "1000/day"):
            rate = Rate.parse(text)
            assert rate is not None
            assert Rate.parse(str(rate)) == rate
        assert str(Rate(5, 10)) == "5/10s"


class TestCreateRateLimiter:
    async def test_no_rate_no_limiter(self) -> None:
        assert create_rate_limiter(None, "redis://127.0.0.1:6379/0", "p") is None

    async def test_memory_without_redis(self) -> None:
        assert isinstance(create_rate_limiter(Rate(1, 1), None, "p"), MemoryRateLimiter)

    async def test_redis_with_url(self, redis_url: str) -> None:
        limiter = create_rate_limiter(Rate(1, 1), redis_url, "p")
        assert isinstance(limiter, RedisRateLimiter)
        await limiter.close()
