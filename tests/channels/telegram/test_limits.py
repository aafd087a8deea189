"""Telegram's limits kept by the sender: a burst passes, then messages are paced."""

from __future__ import annotations

from channels.telegram.limits import TokenBuckets
from channels.telegram.outbound import split_text


def test_a_chat_gets_a_burst_then_one_message_a_second() -> None:
    buckets = TokenBuckets(rate=1.0, burst=3.0)
    delays = [buckets.delay("chat", 100.0) for _ in range(5)]
    assert delays[:3] == [0.0, 0.0, 0.0]
    assert delays[3] == 1.0 and delays[4] == 2.0
    assert buckets.delay("other chat", 100.0) == 0.0
    assert buckets.delay("chat", 110.0) == 0.0  # refilled


def test_text_is_split_on_boundaries_within_the_limit() -> None:
    text = ("абзац " * 500).strip() + "\n\n" + "строка\n" * 300 + "x" * 5000
    parts = split_text(text)
    assert all(0 < len(p) <= 4096 for p in parts)
    assert "".join(parts).replace("\n", "").replace(" ", "") == text.replace("\n", "").replace(
        " ", ""
    )
    assert split_text("коротко") == ["коротко"]
