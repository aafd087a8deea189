"""Poller supervision: one task per channel that needs polling (a mailbox, a bot in polling
mode), in every worker process, following the channels as they are added and changed.

A channel's change is a `channel.changed` outbox event written with the change (see
`storage.repositories.ChannelRepository`); the outbox worker publishes it on the bus
after the commit, so every process's supervisors hear it: in-process when embedded,
through Redis pub/sub across processes. A supervisor then stops the channel's poller
and starts it again if the channel still wants one, at once. The channels are also
listed every `refresh_seconds`, a safety net for a change the bus lost (it delivers at
most once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from typing import Any

from channels.base import HubContext
from storage.bus import BusClosedError, event_of
from storage.events import ChannelChanged
from storage.models import Channel
from storage.repositories import ChannelRepository

log = logging.getLogger(__name__)

Poller = Callable[[asyncio.Event], Coroutine[Any, Any, None]]

# How long a supervisor waits to be subscribed before it lists the channels anyway.
SUBSCRIBE_WAIT_SECONDS = 5.0
RESUBSCRIBE_SECONDS = 1.0
MAX_RESUBSCRIBE_SECONDS = 30.0


class ChannelPollers(ABC):
    """Runs `poller(channel_id)` for each channel of `kind` that `wants_poller`, until stopped."""

    kind: str

    def __init__(self, context: HubContext, refresh_seconds: float) -> None:
        self.context = context
        self.refresh_seconds = refresh_seconds
        self.listening = asyncio.Event()  # set once changes are heard (tests wait on it)
        self._tasks: dict[int, tuple[asyncio.Task[None], asyncio.Event]] = {}

    @abstractmethod
    def wants_poller(self, channel: Channel) -> bool:
        """Whether this channel, as configured now, is to be polled."""

    @abstractmethod
    def poller(self, channel_id: int) -> Poller:
        """A new poller of the channel; it runs until its event is set."""

    async def run(self, stop: asyncio.Event) -> None:
        changed: asyncio.Queue[int] = asyncio.Queue()
        listener = asyncio.create_task(self._listen(changed), name=f"{self.kind}-changes")
        try:
            # Subscribed before the first listing, so no change falls between the two.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.listening.wait(), SUBSCRIBE_WAIT_SECONDS)
            while not stop.is_set():
                try:
                    await self.refresh()
                except Exception:
                    log.exception("listing %s channels failed", self.kind)
                restart = await _next_changes(changed, stop, self.refresh_seconds)
                for channel_id in sorted(restart):
                    log.info("%s channel %s changed; its poller follows", self.kind, channel_id)
                    if channel_id in self._tasks:
                        await self._stop(channel_id)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await self.close()

    async def refresh(self) -> None:
        """Start the pollers of channels that want one and stop the others."""
        async with self.context.db.read() as session:
            channels = await ChannelRepository(session).list(self.kind)
        wanted = set()
        for channel in channels:
            try:
                if self.wants_poller(channel):
                    wanted.add(channel.id)
            except ValueError:
                log.warning("%s channel %s has an unreadable configuration", self.kind, channel.key)
        for channel_id in wanted - self._tasks.keys():
            stop = asyncio.Event()
            task = asyncio.create_task(
                self.poller(channel_id)(stop), name=f"{self.kind}-poller-{channel_id}"
            )
            self._tasks[channel_id] = (task, stop)
        for channel_id in self._tasks.keys() - wanted:
            await self._stop(channel_id)

    @property
    def polled(self) -> frozenset[int]:
        """The channels polled now."""
        return frozenset(self._tasks)

    async def close(self) -> None:
        for channel_id in list(self._tasks):
            await self._stop(channel_id)

    async def _stop(self, channel_id: int) -> None:
        task, stop = self._tasks.pop(channel_id)
        stop.set()
        try:
            await asyncio.wait_for(task, timeout=10)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
        except Exception:
            log.exception("poller of %s channel %s ended with an error", self.kind, channel_id)

    async def _listen(self, changed: asyncio.Queue[int]) -> None:
        delay = RESUBSCRIBE_SECONDS
        while True:
            try:
                async with self.context.bus.subscribe(ChannelChanged.topic) as subscription:
                    self.listening.set()
                    delay = RESUBSCRIBE_SECONDS
                    log.info("%s pollers follow channel changes", self.kind)
                    async for message in subscription:
                        event = event_of(message)
                        if isinstance(event, ChannelChanged) and event.kind == self.kind:
                            changed.put_nowait(event.channel_id)
            except BusClosedError:
                return
            except Exception:
                log.warning("listening for %s channel changes failed", self.kind, exc_info=True)
            self.listening.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RESUBSCRIBE_SECONDS)  # Redis away: the timer still works


async def _next_changes(changed: asyncio.Queue[int], stop: asyncio.Event, wait: float) -> set[int]:
    """The channels changed within `wait` seconds (empty on time-out or stop)."""
    getter = asyncio.ensure_future(changed.get())
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({getter, stopper}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        getter.cancel()
    found = set()
    if getter.done() and not getter.cancelled():
        found.add(getter.result())
    while not changed.empty():
        found.add(changed.get_nowait())
    return found
