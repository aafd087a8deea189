"""Telegram's rate limits, kept by the sending side: per chat and per bot.

Telegram asks bots for no more than about one message a second in one chat (short
bursts pass) and about 30 a second overall; above that it answers 429 with
retry_after. Token buckets let a burst of a few messages out at once and then pace
them. The buckets are per process: several processes sending for one bot share
Telegram's limit, which the 429's retry_after (honoured by delivery) then enforces.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class TokenBuckets:
    def __init__(self, rate: float, burst: float, max_keys: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[object, _Bucket] = {}

    def delay(self, key: object, now: float) -> float:
        """Take one token for `key`; how long to wait before using it (0 if available)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._buckets.clear()
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        bucket.tokens -= 1
        return 0.0 if bucket.tokens >= 0 else -bucket.tokens / self.rate


class SendLimiter:
    """Wait before each Bot API send so a bot stays within Telegram's limits."""

    def __init__(
        self,
        *,
        per_chat_rate: float = 1.0,
        per_chat_burst: float = 3.0,
        per_bot_rate: float = 30.0,
        per_bot_burst: float = 30.0,
    ) -> None:
        self.chats = TokenBuckets(per_chat_rate, per_chat_burst)
        self.bots = TokenBuckets(per_bot_rate, per_bot_burst)

    async def wait(self, bot_id: int, chat_id: int | str, *, per_chat: bool = True) -> None:
        """Before a message to `chat_id`. Answers to what a client just wrote skip the
        per-chat pacing (`per_chat=False`): the client is waiting for them."""
        now = time.monotonic()
        delay = self.bots.delay(bot_id, now)
        if per_chat:
            delay = max(delay, self.chats.delay((bot_id, str(chat_id)), now))
        if delay > 0:
            await asyncio.sleep(delay)
