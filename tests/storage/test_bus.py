"""One suite for both event buses: in-process and Redis pub/sub."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from storage.bus import (
    BusClosedError,
    BusMessage,
    EventBus,
    HeldMessages,
    InProcessBus,
    RedisBus,
    Subscription,
    create_bus,
)

WAIT = 5.0  # generous: only reached when a test is about to fail
QUIET = 0.2  # how long "nothing arrives" is watched for

BusFactory = Callable[..., EventBus]


@pytest.fixture(params=["inprocess", "redis"])
def bus_factory(request: pytest.FixtureRequest) -> BusFactory:
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        return lambda **options: RedisBus(url, **options)
    return lambda **options: InProcessBus(**options)


@pytest.fixture
async def make_bus(bus_factory: BusFactory) -> AsyncIterator[BusFactory]:
    created: list[EventBus] = []

    def make(**options: Any) -> EventBus:
        bus = bus_factory(**options)
        created.append(bus)
        return bus

    yield make
    for bus in created:
        await bus.close()


@pytest.fixture
def bus(make_bus: BusFactory) -> EventBus:
    return make_bus()


@pytest.fixture
def topic(unique: str) -> str:
    """A topic prefix unique to this test."""
    return unique + "."


async def receive(subscription: Subscription) -> BusMessage:
    message = await subscription.get(WAIT)
    assert message is not None, "expected a message, got none"
    return message


class TestPublish:
    async def test_subscriber_receives_message(self, bus: EventBus, topic: str) -> None:
        async with bus.subscribe(topic + "conversation.1") as sub:
            await bus.publish(topic + "conversation.1", {"id": 1, "status": "open"})

            message = await receive(sub)

        assert message == BusMessage(topic + "conversation.1", {"id": 1, "status": "open"})

    async def test_other_topics_are_not_received(self, bus: EventBus, topic: str) -> None:
        async with bus.subscribe(topic + "a") as sub:
            await bus.publish(topic + "b", {"n": 1})
            await bus.publish(topic + "a.b", {"n": 2})
            await bus.publish(topic + "a", {"n": 3})

            assert (await receive(sub)).payload == {"n": 3}
            assert await sub.get(QUIET) is None

    async def test_cyrillic_payload_and_topic(self, bus: EventBus, topic: str) -> None:
        payload = {"text": "Здравствуйте! Заказ №42 не пришёл 😞", "имя": "Ёлкина"}
        async with bus.subscribe(topic + "заявки") as sub:
            await bus.publish(topic + "заявки", payload)

            message = await receive(sub)

        assert message.topic == topic + "заявки"
        assert message.payload == payload

    async def test_messages_arrive_in_publish_order(self, bus: EventBus, topic: str) -> None:
        async with bus.subscribe(topic + "seq") as sub:
            for n in range(50):
                await bus.publish(topic + "seq", {"n": n})

            received = [(await receive(sub)).payload["n"] for _ in range(50)]

        assert received == list(range(50))

    async def test_each_subscriber_gets_its_own_copy(self, bus: EventBus, topic: str) -> None:
        async with bus.subscribe(topic + "x") as first, bus.subscribe(topic + "x") as second:
            await bus.publish(topic + "x", {"tags": ["a"]})

            (await receive(first)).payload["tags"].append("changed")

            assert (await receive(second)).payload == {"tags": ["a"]}

    async def test_payload_must_be_a_json_object(self, bus: EventBus, topic: str) -> None:
        with pytest.raises(TypeError):
            await bus.publish(topic + "x", {"when": object()})
        with pytest.raises(TypeError):
            await bus.publish(topic + "x", ["not", "a", "dict"])  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await bus.publish("", {})

    async def test_publish_without_subscribers(self, bus: EventBus, topic: str) -> None:
        await bus.publish(topic + "nobody", {"n": 1})


class TestSubscribe:
    async def test_pattern_matches_topics_with_the_prefix(self, bus: EventBus, topic: str) -> None:
        async with bus.subscribe(topic + "manager.*") as sub:
            await bus.publish(topic + "manager.7", {"n": 1})
            await bus.publish(topic + "managers", {"n": 2})
            await bus.publish(topic + "manager.7.presence", {"n": 3})
            await bus.publish(topic + "conversation.7", {"n": 4})

            first, second = await receive(sub), await receive(sub)
            assert await sub.get(QUIET) is None

        assert (first.topic, first.payload) == (topic + "manager.7", {"n": 1})
        assert (second.topic, second.payload) == (topic + "manager.7.presence", {"n": 3})

    async def test_glob_characters_in_prefix_are_literal(self, bus: EventBus, topic: str) -> None:
        async with bus.subscribe(topic + "a?[b]*") as sub:
            await bus.publish(topic + "ax[b]1", {"n": 1})
            await bus.publish(topic + "a?b1", {"n": 2})
            await bus.publish(topic + "a?[b]1", {"n": 3})

            assert (await receive(sub)).payload == {"n": 3}
            assert await sub.get(QUIET) is None

    async def test_several_topics_in_one_subscription(self, bus: EventBus, topic: str) -> None:
        async with bus.subscribe(topic + "a", topic + "b.*") as sub:
            await bus.publish(topic + "a", {"n": 1})
            await bus.publish(topic + "b.1", {"n": 2})

            assert [(await receive(sub)).payload["n"] for _ in range(2)] == [1, 2]

    async def test_overlapping_topics_deliver_once(self, bus: EventBus, topic: str) -> None:
        async with bus.subscribe(topic + "m.1", topic + "m.*", topic + "*") as sub:
            await bus.publish(topic + "m.1", {"n": 1})

            assert (await receive(sub)).payload == {"n": 1}
            assert await sub.get(QUIET) is None

    async def test_every_subscriber_receives(self, bus: EventBus, topic: str) -> None:
        async with (
            bus.subscribe(topic + "inbox") as exact,
            bus.subscribe(topic + "inbox") as same,
            bus.subscribe(topic + "*") as pattern,
        ):
            await bus.publish(topic + "inbox", {"n": 1})

            for sub in (exact, same, pattern):
                assert (await receive(sub)).payload == {"n": 1}

    async def test_leaving_the_context_unsubscribes(self, bus: EventBus, topic: str) -> None:
        async with bus.subscribe(topic + "x", topic + "y.*") as sub:
            pass

        await bus.publish(topic + "x", {"n": 1})
        await bus.publish(topic + "y.1", {"n": 2})

        assert await sub.get(QUIET) is None
        assert [message async for message in sub] == []

    async def test_others_stay_subscribed_when_one_leaves(self, bus: EventBus, topic: str) -> None:
        async with bus.subscribe(topic + "x", topic + "y.*") as staying:
            async with bus.subscribe(topic + "x", topic + "y.*"):
                pass

            await bus.publish(topic + "x", {"n": 1})
            await bus.publish(topic + "y.1", {"n": 2})

            assert [(await receive(staying)).payload["n"] for _ in range(2)] == [1, 2]

    async def test_subscribe_again_after_leaving(self, bus: EventBus, topic: str) -> None:
        for n in range(3):
            async with bus.subscribe(topic + "again") as sub:
                await bus.publish(topic + "again", {"n": n})

                assert (await receive(sub)).payload == {"n": n}

    async def test_async_iteration(self, bus: EventBus, topic: str) -> None:
        async with bus.subscribe(topic + "it") as sub:
            for n in range(3):
                await bus.publish(topic + "it", {"n": n})

            received = []
            async with asyncio.timeout(WAIT):
                async for message in sub:
                    received.append(message.payload["n"])
                    if len(received) == 3:
                        break

        assert received == [0, 1, 2]

    async def test_get_times_out_with_none(self, bus: EventBus, topic: str) -> None:
        async with bus.subscribe(topic + "quiet") as sub:
            assert await sub.get(0) is None
            assert await sub.get(0.05) is None

    async def test_needs_a_topic(self, bus: EventBus) -> None:
        with pytest.raises(ValueError):
            async with bus.subscribe():
                pass
        with pytest.raises(ValueError):
            async with bus.subscribe(""):
                pass


class TestSlowSubscriber:
    async def test_oldest_messages_are_dropped_with_one_warning(
        self, make_bus: BusFactory, topic: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        bus = make_bus(max_queue=5)
        caplog.set_level(logging.WARNING, logger="storage.bus")
        async with bus.subscribe(topic + "flood") as slow, bus.subscribe(topic + "*") as fast:
            for n in range(20):
                await bus.publish(topic + "flood", {"n": n})
                assert (await receive(fast)).payload == {"n": n}

            received = []
            while (message := await slow.get(QUIET)) is not None:
                received.append(message.payload["n"])

        assert received == [15, 16, 17, 18, 19]
        warnings = [r for r in caplog.records if "not keeping up" in r.getMessage()]
        assert len(warnings) == 1


class TestClose:
    async def test_close_ends_active_subscriptions(self, make_bus: BusFactory, topic: str) -> None:
        bus = make_bus()
        async with bus.subscribe(topic + "x") as sub:
            await bus.publish(topic + "x", {"n": 1})
            assert (await receive(sub)).payload == {"n": 1}

            async def drain() -> list[BusMessage]:
                return [message async for message in sub]

            reader = asyncio.create_task(drain())
            await asyncio.sleep(0.05)
            await bus.close()

            assert await asyncio.wait_for(reader, WAIT) == []

    async def test_closed_bus_refuses_work(self, make_bus: BusFactory, topic: str) -> None:
        bus = make_bus()
        await bus.close()
        await bus.close()  # idempotent

        with pytest.raises(BusClosedError):
            await bus.publish(topic + "x", {"n": 1})
        with pytest.raises(BusClosedError):
            async with bus.subscribe(topic + "x"):
                pass


class TestRedisAcrossProcesses:
    async def test_two_buses_see_each_others_messages(self, redis_url: str, topic: str) -> None:
        first, second = RedisBus(redis_url), RedisBus(redis_url)
        try:
            async with (
                first.subscribe(topic + "*") as on_first,
                second.subscribe(topic + "conversation.9") as on_second,
            ):
                await first.publish(topic + "conversation.9", {"from": "первый"})
                await second.publish(topic + "conversation.9", {"from": "второй"})

                for sub in (on_first, on_second):
                    received = [(await receive(sub)).payload["from"] for _ in range(2)]
                    assert received == ["первый", "второй"]
        finally:
            await first.close()
            await second.close()

    async def test_redis_subscriptions_are_released(self, redis_url: str, topic: str) -> None:
        bus = RedisBus(redis_url)
        probe = aioredis.Redis.from_url(redis_url)
        try:
            async with bus.subscribe(topic + "x", topic + "y.*"), bus.subscribe(topic + "x"):
                assert await probe.pubsub_numsub(topic + "x") == [(topic.encode() + b"x", 1)]

            # UNSUBSCRIBE is sent without waiting for its confirmation: poll.
            for _ in range(int(WAIT / 0.01)):
                if await probe.pubsub_numsub(topic + "x") == [(topic.encode() + b"x", 0)]:
                    break
                await asyncio.sleep(0.01)
            else:
                pytest.fail("the Redis subscription was not released")
        finally:
            await bus.close()
            await probe.aclose()

    async def test_resubscribes_after_the_connection_drops(
        self, redis_url: str, topic: str
    ) -> None:
        bus = RedisBus(redis_url)
        probe = aioredis.Redis.from_url(redis_url)
        try:
            async with bus.subscribe(topic + "x") as sub, bus.subscribe(topic + "y.*") as psub:
                # Reaching into the bus is the only way to find its own connection.
                assert bus._pubsub is not None and bus._pubsub.connection is not None
                connection = bus._pubsub.connection
                host, port = connection._writer.get_extra_info("sockname")[:2]
                assert await probe.client_kill(f"{host}:{port}")

                # Messages published while it reconnects are lost: keep publishing.
                async with asyncio.timeout(WAIT):
                    for target, subscription in ((topic + "x", sub), (topic + "y.1", psub)):
                        while True:
                            await probe.publish(target, '{"n": 1}')
                            if (message := await subscription.get(0.05)) is not None:
                                break
                        assert message.payload == {"n": 1}
        finally:
            await bus.close()
            await probe.aclose()

    async def test_foreign_non_json_messages_are_skipped(self, redis_url: str, topic: str) -> None:
        bus = RedisBus(redis_url)
        probe = aioredis.Redis.from_url(redis_url)
        try:
            async with bus.subscribe(topic + "x") as sub:
                await probe.publish(topic + "x", b"\xff not json")
                await probe.publish(topic + "x", "[1, 2]")
                await bus.publish(topic + "x", {"ok": True})

                assert (await receive(sub)).payload == {"ok": True}
        finally:
            await bus.close()
            await probe.aclose()


class TestCreateBus:
    async def test_without_redis_url_in_process(self) -> None:
        bus = create_bus(None)
        assert isinstance(bus, InProcessBus)
        await bus.close()

    async def test_with_redis_url_redis(self, redis_url: str) -> None:
        bus = create_bus(redis_url)
        assert isinstance(bus, RedisBus)
        await bus.close()


class TestHeldUntilCommit:
    """What a transaction's work publishes is sent after it, together (HeldMessages)."""

    async def test_held_messages_are_sent_on_release_in_order(
        self, bus: EventBus, topic: str
    ) -> None:
        held = HeldMessages()
        async with bus.subscribe(topic) as sub:
            with held.collecting():
                for n in range(3):
                    await bus.publish(topic, {"n": n, "слово": "привет"})
            assert await sub.get(QUIET) is None, "nothing is sent before the release"
            assert len(held) == 3
            await held.release()
            received = [(await receive(sub)).payload for _ in range(3)]
            assert await sub.get(QUIET) is None
        assert received == [{"n": n, "слово": "привет"} for n in range(3)]
        assert len(held) == 0

    async def test_dropped_messages_are_never_sent(self, bus: EventBus, topic: str) -> None:
        held = HeldMessages()
        async with bus.subscribe(topic) as sub:
            with held.collecting():
                await bus.publish(topic, {"n": 1})
                mark = held.mark()
                await bus.publish(topic, {"n": 2})  # work that rolled back
                held.drop_from(mark)
                await bus.publish(topic, {"n": 3})
            await bus.publish(topic, {"n": 4})  # outside: sent at once
            assert (await receive(sub)).payload == {"n": 4}
            await held.release()
            assert [(await receive(sub)).payload["n"] for _ in range(2)] == [1, 3]
            assert await sub.get(QUIET) is None

    async def test_a_bad_payload_is_refused_at_publish_even_when_held(
        self, bus: EventBus, topic: str
    ) -> None:
        held = HeldMessages()
        with held.collecting(), pytest.raises(TypeError):
            await bus.publish(topic, ["not", "an", "object"])  # type: ignore[arg-type]
        assert len(held) == 0
