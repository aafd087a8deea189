"""The event bus: best-effort fan-out of live updates to open inbox pages.

Two implementations share one contract:

- ``InProcessBus`` for the embedded mode (one process, no Redis);
- ``RedisBus`` for production, where any number of ``omnihub serve`` and
  ``omnihub worker`` processes publish and subscribe through Redis pub/sub.

Payloads are JSON objects. Both implementations encode them with ``json`` on
publish and decode a fresh copy per subscriber, so what works in the embedded
mode works across processes, and one subscriber cannot mutate another's payload.

A topic ending in ``*`` subscribes to every topic that starts with the part
before the ``*`` (``manager.*`` matches ``manager.7`` and ``manager.7.presence``).
A ``*`` anywhere else is an ordinary character.

Delivery is at most once and only to subscriptions that exist when the message
is published: the bus is for pushing changes to screens, the outbox is what
makes side effects durable. Each subscription has a bounded queue; a subscriber
that does not keep up loses its oldest messages instead of slowing publishers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final, Protocol

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from storage.events import Event, UnknownTopic, parse

__all__ = [
    "DEFAULT_MAX_QUEUE",
    "BusClosedError",
    "BusMessage",
    "EventBus",
    "HeldMessages",
    "InProcessBus",
    "RedisBus",
    "Subscription",
    "create_bus",
    "event_of",
    "publish_event",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE: Final = 1000
"""Messages buffered per subscription before the oldest are dropped."""

_SUBSCRIBE_TIMEOUT: Final = 5.0
_READER_BACKOFF_MAX: Final = 30.0
_GLOB_SPECIAL: Final = frozenset("\\*?[]")


class BusClosedError(RuntimeError):
    """Raised when publishing to or subscribing on a closed bus."""


@dataclass(frozen=True, slots=True)
class BusMessage:
    """One message as a subscriber receives it."""

    topic: str
    payload: dict[str, Any]


class Subscription(Protocol):
    """The receiving end of ``EventBus.subscribe``.

    Iterating yields messages until the subscription is closed (its context
    exits or the bus closes); messages still buffered at that moment are
    delivered first.
    """

    def __aiter__(self) -> Subscription: ...

    async def __anext__(self) -> BusMessage: ...

    # The timeout parameter is part of the contract: an SSE loop waits for a
    # message or sends a keep-alive, without building a cancel scope per call.
    async def get(self, timeout: float) -> BusMessage | None:  # noqa: ASYNC109
        """Wait up to ``timeout`` seconds for the next message; None on timeout or when closed."""
        ...


class EventBus(Protocol):
    """Publish JSON payloads to topics; subscribe to topics and ``prefix*`` patterns."""

    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        """Send ``payload`` to the current subscribers of ``topic``.

        Raises TypeError or ValueError if the payload is not a JSON object.
        """
        ...

    def subscribe(self, *topics: str) -> AbstractAsyncContextManager[Subscription]:
        """Subscribe to ``topics`` while the context is open.

        The subscription is active when the context is entered: a message
        published after that is received. Leaving the context unsubscribes.
        """
        ...

    async def close(self) -> None:
        """Close every subscription and release connections. Idempotent."""
        ...


def create_bus(redis_url: str | None) -> EventBus:
    """Return a ``RedisBus`` when a Redis URL is configured, else an ``InProcessBus``."""
    if redis_url:
        return RedisBus(redis_url)
    return InProcessBus()


# --- shared parts -----------------------------------------------------------


async def publish_event(bus: EventBus, event: Event, *, event_id: int) -> None:
    """Publish an outbox event on its topic: its stored JSON with the outbox row's id
    (`event_id`), which tells a live-update stream the order and any gap."""
    await bus.publish(event.topic, {"event_id": event_id, **event.payload()})


def event_of(message: BusMessage) -> Event | None:
    """The catalogue event a message from `publish_event` carries; None for a message
    that is not one (a manager's own topic, presence) or does not parse."""
    try:
        return parse(message.topic, message.payload)
    except (UnknownTopic, KeyError, TypeError, ValueError):
        logger.debug("not an event on the bus: %s", message.topic)
        return None


def _encode(topic: str, payload: dict[str, Any]) -> str:
    if not isinstance(topic, str) or not topic:
        raise ValueError("topic must be a non-empty string")
    if not isinstance(payload, dict):
        raise TypeError(f"payload must be a dict, not {type(payload).__name__}")
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True, slots=True)
class _TopicSet:
    """A subscription's topics with overlaps removed, so each message arrives once."""

    exact: frozenset[str]
    prefixes: frozenset[str]

    @classmethod
    def parse(cls, topics: Iterable[str]) -> _TopicSet:
        topics = list(topics)
        if not topics:
            raise ValueError("subscribe() needs at least one topic")
        for topic in topics:
            if not isinstance(topic, str) or not topic:
                raise ValueError("topics must be non-empty strings")
        # A shorter prefix covers every longer one that starts with it.
        prefixes: set[str] = set()
        for prefix in sorted({t[:-1] for t in topics if t.endswith("*")}, key=len):
            if not any(prefix.startswith(p) for p in prefixes):
                prefixes.add(prefix)
        exact = {
            t for t in topics if not t.endswith("*") and not any(t.startswith(p) for p in prefixes)
        }
        return cls(frozenset(exact), frozenset(prefixes))

    def matches(self, topic: str) -> bool:
        return topic in self.exact or any(topic.startswith(p) for p in self.prefixes)


class _Closed:
    """Queue sentinel: the subscription is closed."""


_CLOSED: Final = _Closed()


class _QueueSubscription:
    """A subscription backed by a bounded queue of (topic, JSON text) items."""

    def __init__(self, topics: _TopicSet, max_queue: int) -> None:
        self.topics = topics
        self._queue: asyncio.Queue[tuple[str, str] | _Closed] = asyncio.Queue(max_queue)
        self._closed = False
        self._dropped = 0

    def feed(self, topic: str, raw: str) -> None:
        """Buffer a message without blocking; drop the oldest one if full."""
        if self._closed:
            return
        if self._queue.full():
            self._queue.get_nowait()
            self._dropped += 1
            if self._dropped == 1:
                logger.warning(
                    "bus subscriber to %s is not keeping up; dropping oldest messages "
                    "(queue size %d; warning once per subscription)",
                    sorted(self.topics.exact | {p + "*" for p in self.topics.prefixes}),
                    self._queue.maxsize,
                )
        self._queue.put_nowait((topic, raw))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(_CLOSED)

    @property
    def dropped(self) -> int:
        """How many messages were dropped because the subscriber was slow."""
        return self._dropped

    async def _next(self, wait: float | None) -> BusMessage | None:
        if self._closed and self._queue.empty():
            return None
        try:
            async with asyncio.timeout(wait):
                item = await self._queue.get()
        except TimeoutError:
            return None
        if isinstance(item, _Closed):
            # Put the sentinel back so that every other waiter also wakes up.
            self._queue.put_nowait(item)
            return None
        topic, raw = item
        payload: dict[str, Any] = json.loads(raw)
        return BusMessage(topic, payload)

    async def get(self, timeout: float) -> BusMessage | None:  # noqa: ASYNC109
        return await self._next(max(timeout, 0.0))

    def __aiter__(self) -> _QueueSubscription:
        return self

    async def __anext__(self) -> BusMessage:
        message = await self._next(None)
        if message is None:
            raise StopAsyncIteration
        return message


# --- held until commit -------------------------------------------------------


class _Sender(Protocol):
    async def _send(self, messages: list[tuple[str, str]]) -> None: ...


_HELD: ContextVar[HeldMessages | None] = ContextVar("omnihub_bus_held", default=None)


class HeldMessages:
    """Messages published by work in a transaction, sent once the transaction commits.

    While `collecting()` is open in a task, `publish` on any bus of this module only
    records the message; `release()` then sends them, in order, in one round trip per
    bus. A transaction therefore never waits for Redis (SQLite's one write lock,
    PostgreSQL's row locks are not held across network round trips), and work that
    rolls back (`drop_from`, `clear`) announces nothing.
    """

    def __init__(self) -> None:
        self._messages: list[tuple[_Sender, str, str]] = []

    @contextlib.contextmanager
    def collecting(self) -> Iterator[HeldMessages]:
        token = _HELD.set(self)
        try:
            yield self
        finally:
            _HELD.reset(token)

    def mark(self) -> int:
        """A point to drop back to (`drop_from`) when the work after it rolls back."""
        return len(self._messages)

    def drop_from(self, mark: int) -> None:
        del self._messages[mark:]

    def clear(self) -> None:
        self._messages.clear()

    def __len__(self) -> int:
        return len(self._messages)

    async def release(self) -> None:
        """Send what was held (after the commit); a bus that fails loses its messages,
        as live updates are lost when Redis is away, and is logged."""
        messages, self._messages = self._messages, []
        by_bus: dict[int, tuple[_Sender, list[tuple[str, str]]]] = {}
        for bus, topic, raw in messages:
            by_bus.setdefault(id(bus), (bus, []))[1].append((topic, raw))
        for bus, batch in by_bus.values():
            try:
                await bus._send(batch)
            except (RedisError, OSError, BusClosedError) as exc:
                logger.warning("%s live update(s) not published: %s", len(batch), exc)


def _held(bus: _Sender, topic: str, raw: str) -> bool:
    held = _HELD.get()
    if held is None:
        return False
    held._messages.append((bus, topic, raw))
    return True


# --- in-process ---------------------------------------------------------------


class InProcessBus:
    """An event bus inside one process: a bounded asyncio queue per subscription."""

    def __init__(self, *, max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self._max_queue = max_queue
        self._subscriptions: set[_QueueSubscription] = set()
        self._closed = False

    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        """Deliver to every matching subscription without waiting for any of them (once
        the transaction commits, inside `HeldMessages.collecting`)."""
        raw = _encode(topic, payload)
        if self._closed:
            raise BusClosedError("the event bus is closed")
        if not _held(self, topic, raw):
            await self._send([(topic, raw)])

    async def _send(self, messages: list[tuple[str, str]]) -> None:
        if self._closed:
            raise BusClosedError("the event bus is closed")
        for subscription in list(self._subscriptions):
            for topic, raw in messages:
                if subscription.topics.matches(topic):
                    subscription.feed(topic, raw)

    def subscribe(self, *topics: str) -> AbstractAsyncContextManager[Subscription]:
        """Subscribe to ``topics`` (``prefix*`` allowed) for the life of the context."""
        return self._subscribe(_TopicSet.parse(topics))

    @contextlib.asynccontextmanager
    async def _subscribe(self, topics: _TopicSet) -> AsyncIterator[Subscription]:
        if self._closed:
            raise BusClosedError("the event bus is closed")
        subscription = _QueueSubscription(topics, self._max_queue)
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)
            subscription.close()

    async def close(self) -> None:
        """Close all subscriptions; later publishes raise ``BusClosedError``."""
        self._closed = True
        for subscription in list(self._subscriptions):
            subscription.close()
        self._subscriptions.clear()


# --- Redis --------------------------------------------------------------------


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in _GLOB_SPECIAL else c for c in text)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


class RedisBus:
    """An event bus over Redis pub/sub, shared by every process using the same Redis.

    One client (one connection pool) publishes; one pub/sub connection per
    ``RedisBus`` carries all of its subscriptions, reference-counted per Redis
    channel (``SUBSCRIBE``) and pattern (``PSUBSCRIBE``), and a reader task fans
    incoming messages out to the local subscriptions' queues. If the connection
    drops, redis-py reconnects and resubscribes; messages published meanwhile
    are lost.
    """

    def __init__(self, url: str, *, max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self._client = aioredis.Redis.from_url(url)
        self._max_queue = max_queue
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        # Serialises changes to the Redis-side subscriptions.
        self._lock = asyncio.Lock()
        self._by_channel: dict[str, set[_QueueSubscription]] = {}
        self._by_pattern: dict[str, set[_QueueSubscription]] = {}
        # Per channel/pattern, one future per SUBSCRIBE sent, resolved in order
        # by the server's confirmations.
        self._pending: dict[tuple[str, str], deque[asyncio.Future[None]]] = {}
        self._subscriptions: set[_QueueSubscription] = set()
        self._closed = False

    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        """PUBLISH the payload as JSON; raises ``redis`` errors if Redis is unreachable."""
        raw = _encode(topic, payload)
        if self._closed:
            raise BusClosedError("the event bus is closed")
        if not _held(self, topic, raw):
            await self._client.publish(topic, raw)

    async def _send(self, messages: list[tuple[str, str]]) -> None:
        """PUBLISH many messages in one round trip."""
        if self._closed:
            raise BusClosedError("the event bus is closed")
        if len(messages) == 1:
            await self._client.publish(*messages[0])
            return
        pipeline = self._client.pipeline(transaction=False)
        for topic, raw in messages:
            pipeline.publish(topic, raw)
        await pipeline.execute()

    async def ping(self) -> None:
        """Raise if Redis does not answer (readiness checks)."""
        await self._client.ping()

    def subscribe(self, *topics: str) -> AbstractAsyncContextManager[Subscription]:
        """Subscribe to ``topics`` (``prefix*`` allowed) for the life of the context.

        Entering waits until Redis has confirmed the subscription.
        """
        return self._subscribe(_TopicSet.parse(topics))

    @contextlib.asynccontextmanager
    async def _subscribe(self, topics: _TopicSet) -> AsyncIterator[Subscription]:
        if self._closed:
            raise BusClosedError("the event bus is closed")
        subscription = _QueueSubscription(topics, self._max_queue)
        try:
            waiters = await self._attach(subscription)
            if waiters:
                async with asyncio.timeout(_SUBSCRIBE_TIMEOUT):
                    await asyncio.gather(*waiters)
            yield subscription
        finally:
            subscription.close()
            await self._detach(subscription)

    async def _attach(self, subscription: _QueueSubscription) -> list[asyncio.Future[None]]:
        """Register the subscription and send the SUBSCRIBEs it newly needs."""
        patterns = [_glob_escape(p) + "*" for p in subscription.topics.prefixes]
        channels = list(subscription.topics.exact)
        async with self._lock:
            if self._closed:
                raise BusClosedError("the event bus is closed")
            pubsub = await self._ensure_reader()
            self._subscriptions.add(subscription)
            new_channels = self._register(self._by_channel, channels, subscription)
            new_patterns = self._register(self._by_pattern, patterns, subscription)
            loop = asyncio.get_running_loop()
            waiters: dict[tuple[str, str], asyncio.Future[None]] = {}
            for kind, names in (("subscribe", new_channels), ("psubscribe", new_patterns)):
                for name in names:
                    waiter: asyncio.Future[None] = loop.create_future()
                    self._pending.setdefault((kind, name), deque()).append(waiter)
                    waiters[kind, name] = waiter
            try:
                if new_channels:
                    await pubsub.subscribe(*new_channels)
                if new_patterns:
                    await pubsub.psubscribe(*new_patterns)
            except BaseException:
                # No confirmation will come for these: keep the queues in step.
                for key, waiter in waiters.items():
                    self._forget_waiter(key, waiter)
                raise
            return list(waiters.values())

    def _forget_waiter(self, key: tuple[str, str], waiter: asyncio.Future[None]) -> None:
        waiters = self._pending.get(key)
        if waiters is None:
            return
        with contextlib.suppress(ValueError):
            waiters.remove(waiter)
        if not waiters:
            del self._pending[key]

    @staticmethod
    def _register(
        index: dict[str, set[_QueueSubscription]],
        names: list[str],
        subscription: _QueueSubscription,
    ) -> list[str]:
        new = [name for name in names if not index.get(name)]
        for name in names:
            index.setdefault(name, set()).add(subscription)
        return new

    async def _detach(self, subscription: _QueueSubscription) -> None:
        """Forget the subscription and UNSUBSCRIBE what nobody else needs."""
        async with self._lock:
            self._subscriptions.discard(subscription)
            unused: dict[str, list[str]] = {"channel": [], "pattern": []}
            for kind, index in (("channel", self._by_channel), ("pattern", self._by_pattern)):
                for name in [n for n, subs in index.items() if subscription in subs]:
                    index[name].discard(subscription)
                    if not index[name]:
                        del index[name]
                        unused[kind].append(name)
            if self._closed or self._pubsub is None:
                return
            try:
                if unused["channel"]:
                    await self._pubsub.unsubscribe(*unused["channel"])
                if unused["pattern"]:
                    await self._pubsub.punsubscribe(*unused["pattern"])
            except (RedisError, OSError) as exc:
                # The server drops a lost connection's subscriptions by itself.
                logger.warning("bus: could not unsubscribe from Redis: %s", exc)

    async def _ensure_reader(self) -> PubSub:
        if self._pubsub is None:
            pubsub = self._client.pubsub()
            await pubsub.connect()
            self._pubsub = pubsub
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read(self._pubsub), name="redis-bus-reader")
        return self._pubsub

    async def _read(self, pubsub: PubSub) -> None:
        """Fan messages out to local subscriptions until cancelled by ``close``."""
        backoff = 0.0
        while True:
            try:
                message = await pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                backoff = min(max(backoff * 2, 0.5), _READER_BACKOFF_MAX)
                logger.warning("bus: Redis pub/sub failed (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                continue
            backoff = 0.0
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = _text(message["type"])
        if kind in ("subscribe", "psubscribe"):
            # Confirmations come in the order the SUBSCRIBEs were sent; one
            # without a waiter is redis-py resubscribing after a reconnect.
            key = (kind, _text(message["channel"]))
            waiters = self._pending.get(key)
            if waiters:
                waiter = waiters.popleft()
                if not waiters:
                    del self._pending[key]
                if not waiter.done():
                    waiter.set_result(None)
            return
        if kind == "message":
            targets = self._by_channel.get(_text(message["channel"]))
        elif kind == "pmessage":
            targets = self._by_pattern.get(_text(message["pattern"]))
        else:
            return
        if not targets:
            return
        topic = _text(message["channel"])
        try:
            raw = _text(message["data"])
            if not isinstance(json.loads(raw), dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            logger.warning("bus: dropping a malformed message on %r: %s", topic, exc)
            return
        for subscription in list(targets):
            subscription.feed(topic, raw)

    async def close(self) -> None:
        """Stop the reader, close every subscription and the connection pool."""
        if self._closed:
            return
        self._closed = True
        async with self._lock:
            if self._reader is not None:
                self._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._reader
                self._reader = None
            for subscription in list(self._subscriptions):
                subscription.close()
            self._subscriptions.clear()
            self._by_channel.clear()
            self._by_pattern.clear()
            # Subscribers still entering get their (already closed) subscription.
            for waiters in self._pending.values():
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)
            self._pending.clear()
            if self._pubsub is not None:
                await self._pubsub.aclose()
                self._pubsub = None
            await self._client.aclose()
