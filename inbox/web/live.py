"""The machinery under the workspace's live streams (`/inbox/stream`, `/claims/stream`).

One `Dispatcher` per app and event bus holds ONE bus subscription for every stream topic.
Each open stream is a `Tab`: its viewer, its sequence counter, a bounded buffer of frames
waiting to be written and a wake-up. The feeds (the inbox's in stream.py, the claims' in
claims.py) decide per bus message, once for all tabs, who hears what: a message is decoded
once, the conversation (or claim) it is about is read once, the answer per kind of viewer is
computed once and its JSON shared by the tabs that see the same, so only `seq` and `id:`
are written per tab.

A tab's response (`LiveResponse`, a lean ASGI response) writes everything its buffer holds
in one chunk per wake-up, so under load many frames go out in one socket write. A tab that
falls too far behind (its buffer full) loses its oldest frames and its `seq` jumps: the page
sees the gap and reloads, as it does after a reconnect. A message the dispatcher's own
subscription dropped is a gap for every tab. Keep-alive comments go to a tab after
`KEEPALIVE_SECONDS` of silence; when the bus closes (the hub stops) every stream ends once
its buffer is written; a client that goes away is noticed and its tab unregistered.

A page is read before its stream connects: a change committed in between would reach
neither. The page carries when its request began reading (`?since=` on the stream), and the
hello says `fresh` only when this process has heard the bus since before that moment and
heard no change for that feed since (within `CLOCK_MARGIN`, for processes whose clocks
differ a little); otherwise the page reloads what it shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from channels.base import HubContext
from intake.visibility import Viewer
from storage.bus import DEFAULT_MAX_QUEUE, BusMessage, EventBus
from storage.db import Database

logger = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0
RETRY_MS = 2000
MAX_PENDING: Final = DEFAULT_MAX_QUEUE
"""Frames buffered per tab before the oldest are dropped (and its `seq` jumps)."""
IDLE_SECONDS: Final = 60.0
"""How long a dispatcher without tabs keeps its bus subscription before it stops."""
KEEPALIVE_FRAME: Final = ": keep-alive\n\n"
BATCH: Final = 100
"""Bus messages taken at once when they queue up (their reads run together)."""
CLOCK_MARGIN: Final = 1.0
"""Seconds by which the clocks of the hub's processes may disagree (a page read in one,
its stream served by another): a change heard this close to the page's read counts as
possibly missed by it."""


def sse(event: str, data: dict[str, Any], event_id: int | None = None) -> str:
    """One Server-Sent Events frame."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def tail_of(data: dict[str, Any]) -> str:
    """`data`'s JSON without its opening brace: what follows `{"seq":N,` in a numbered frame,
    shared by every tab that hears the same."""
    return json.dumps(data, separators=(",", ":"))[1:]


ViewerKey = tuple[bool, int | None, frozenset[int]]


class Tab:
    """One open live stream: who looks, its sequence number, the frames not yet written."""

    __slots__ = (
        "_frames",
        "_limit",
        "_waiter",
        "closed",
        "dropped",
        "extra",
        "feed",
        "fresh",
        "key",
        "last_write",
        "queue_ids",
        "seq",
        "since",
        "viewer",
    )

    def __init__(
        self,
        feed: str,
        viewer: Viewer,
        queue_ids: frozenset[int] = frozenset(),
        *,
        limit: int = MAX_PENDING,
        since: float | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.feed = feed
        self.viewer = viewer
        self.queue_ids = queue_ids
        # Tabs with the same key hear the same (views are decided per key).
        self.key: ViewerKey = (viewer.is_admin, viewer.manager_id, queue_ids)
        self.seq = 0
        self.dropped = 0
        self.closed = False
        self.last_write = time.monotonic()
        self.extra: Any = None  # the feed's own per-tab state
        # When the page this stream serves read the database (wall clock, seconds), and
        # whether every change since then reaches the tab (decided when it registers).
        self.since = since
        self.fresh = False
        self._frames: deque[str] = deque()
        self._limit = limit
        self._waiter: asyncio.Future[None] | None = None

    def _room(self) -> None:
        if len(self._frames) >= self._limit:
            self._frames.popleft()
            self.dropped += 1
            if self.dropped == 1:
                logger.warning("a live stream is not keeping up; dropping its oldest frames")
            self.seq += 1  # a gap even when the frame dropped had no number

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def push(self, frame: str) -> None:
        """Buffer a frame without a sequence number."""
        if self.closed:
            return
        self._room()
        self._frames.append(frame)
        self._wake()

    def numbered(self, event: str, tail: str) -> None:
        """Buffer the next numbered frame: `{"seq":N,` + `tail` (see `tail_of`)."""
        if self.closed:
            return
        self._room()
        self.seq += 1
        seq = self.seq
        self._frames.append(f'id: {seq}\nevent: {event}\ndata: {{"seq":{seq},{tail}\n\n')
        self._wake()

    def skip(self, count: int) -> None:
        """Messages lost before the feeds saw them: the next number jumps."""
        self.seq += count

    def close(self) -> None:
        """No more frames: the stream ends once what is buffered is written."""
        self.closed = True
        self._wake()

    @property
    def pending(self) -> int:
        return len(self._frames)

    async def take(self) -> str | None:
        """Everything buffered, as one text, once there is some; None when closed and empty."""
        while not self._frames:
            if self.closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        text = self._frames[0] if len(self._frames) == 1 else "".join(self._frames)
        self._frames.clear()
        self.last_write = time.monotonic()
        return text


class Feed(Protocol):
    """What one kind of stream hears: its topics, its tabs and its decisions."""

    name: str
    topics: tuple[str, ...]
    tabs: set[Tab]

    def wants(self, topic: str) -> bool: ...

    def changes(self, topic: str) -> bool:
        """Whether a message of `topic` may change what this feed's pages show (not a
        moment's news such as presence)."""
        ...

    def hello(self, tab: Tab) -> str:
        """The first frame of a new stream (after `retry:`); it says whether the page may
        have missed a change (`tab.fresh`)."""
        ...

    def prefetch(self, message: BusMessage) -> None:
        """Start reading what `deliver` will need for `message` (it is delivered soon after,
        in order)."""
        ...

    async def deliver(self, message: BusMessage) -> None:
        """Buffer what `message` means to each of this feed's tabs."""
        ...


FeedFactory = Callable[[Database], Feed]
_FEEDS: dict[str, FeedFactory] = {}


def feed(name: str) -> Callable[[FeedFactory], FeedFactory]:
    """Register a kind of stream (at import, before the first dispatcher starts)."""

    def register(factory: FeedFactory) -> FeedFactory:
        _FEEDS[name] = factory
        return factory

    return register


class DispatcherClosedError(RuntimeError):
    """The dispatcher stopped (its bus closed, or it was idle): ask for a new one."""


class Dispatcher:
    """One bus subscription for every live stream of this process (see the module's text)."""

    def __init__(
        self,
        bus: EventBus,
        db: Database,
        feeds: Iterable[Feed] | None = None,
        *,
        limit: int = MAX_PENDING,
        idle_seconds: float = IDLE_SECONDS,
        clock_margin: float = CLOCK_MARGIN,
    ) -> None:
        self.bus = bus
        self.db = db
        made = list(feeds) if feeds is not None else [make(db) for make in _FEEDS.values()]
        self.feeds: dict[str, Feed] = {f.name: f for f in made}
        self.limit = limit
        self.idle_seconds = idle_seconds
        self.clock_margin = clock_margin
        self.closed = False
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._idle: asyncio.TimerHandle | None = None
        self.heard_from = float("inf")  # when the subscription began (wall clock)
        # Per feed, when this process last heard a change for its pages (wall clock; set
        # when heard, before it is passed on: a tab registered meanwhile still hears it).
        self.changed_at: dict[str, float] = dict.fromkeys(self.feeds, 0.0)

    @property
    def tabs(self) -> int:
        """How many streams are registered."""
        return sum(len(f.tabs) for f in self.feeds.values())

    def tab(
        self,
        feed: str,
        viewer: Viewer,
        queue_ids: frozenset[int] = frozenset(),
        since: float | None = None,
    ) -> Tab:
        """A tab for a page that read the database at `since` (None: unknown)."""
        return Tab(feed, viewer, queue_ids, limit=self.limit, since=since)

    async def register(self, tab: Tab) -> None:
        """Start hearing for `tab` (its `retry:` and hello first). Messages published after
        this returns reach it."""
        owner = self.feeds[tab.feed]
        if self._task is None and not self.closed:
            self._ready = asyncio.get_running_loop().create_future()
            self._task = asyncio.create_task(self._run(self._ready), name="live-dispatcher")
        if self._ready is not None:
            await asyncio.shield(self._ready)
        if self.closed:
            raise DispatcherClosedError("the live dispatcher stopped")
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        # Fresh: this process has heard the bus since before the page's read and heard no
        # change since (a change between the page's read and now would be lost to it: the
        # page reloads what it shows instead).
        since = tab.since
        tab.fresh = since is not None and since - self.clock_margin > max(
            self.heard_from, self.changed_at[owner.name]
        )
        tab.push(f"retry: {RETRY_MS}\n" + owner.hello(tab))
        owner.tabs.add(tab)

    def unregister(self, tab: Tab) -> None:
        """The stream ended (the client left, or the hub stops)."""
        tab.close()
        owner = self.feeds.get(tab.feed)
        if owner is not None:
            owner.tabs.discard(tab)
        if not self.closed and self._task is not None and self.tabs == 0 and self._idle is None:
            self._idle = asyncio.get_running_loop().call_later(self.idle_seconds, self._stop_idle)

    def _stop_idle(self) -> None:
        self._idle = None
        if self.tabs == 0 and self._task is not None:
            self.closed = True
            self._task.cancel()

    async def close(self) -> None:
        """Stop hearing; every stream ends."""
        self.closed = True
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._end_all()

    def _end_all(self) -> None:
        for owner in self.feeds.values():
            for tab in list(owner.tabs):
                tab.close()

    async def _run(self, ready: asyncio.Future[None]) -> None:
        topics = sorted({t for f in self.feeds.values() for t in f.topics})
        try:
            async with self.bus.subscribe(*topics) as subscription:
                self.heard_from = time.time()
                ready.set_result(None)
                await self._hear(subscription)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            else:
                logger.exception("the live dispatcher failed")
        finally:
            self.closed = True
            if not ready.done():
                ready.set_exception(DispatcherClosedError("the live dispatcher stopped"))
            self._end_all()

    async def _hear(self, subscription: Any) -> None:
        tick = KEEPALIVE_SECONDS / 3
        dropped_seen = 0
        last_tick = time.monotonic()
        feeds = list(self.feeds.values())
        while True:
            started = time.monotonic()
            message = await subscription.get(tick)
            now = time.monotonic()
            if message is None and now - started < tick / 2:
                return  # the bus closed: the hub is stopping
            dropped = int(getattr(subscription, "dropped", 0))
            if dropped > dropped_seen:
                for owner in feeds:
                    for tab in owner.tabs:
                        tab.skip(dropped - dropped_seen)
                dropped_seen = dropped
            if message is not None:
                # What else has come meanwhile: its reads start together, not one by one
                # (a slow database must not queue the events behind each other).
                batch = [message]
                while len(batch) < BATCH and (more := await subscription.get(0)) is not None:
                    batch.append(more)
                await self._deliver(batch)
            if now - last_tick >= tick:
                last_tick = now
                for owner in feeds:
                    for tab in owner.tabs:
                        if not tab.pending and now - tab.last_write >= KEEPALIVE_SECONDS:
                            tab.push(KEEPALIVE_FRAME)
                            tab.last_write = now

    async def _deliver(self, batch: list[BusMessage]) -> None:
        """Each message to the feeds that want it, in order, their reads begun first."""
        now = time.time()
        wanted: list[tuple[BusMessage, list[Feed]]] = []
        for each in batch:
            owners = []
            for owner in self.feeds.values():
                if not owner.wants(each.topic):
                    continue
                if owner.changes(each.topic):  # heard, whether or not a tab listens yet
                    self.changed_at[owner.name] = now
                if owner.tabs:
                    owners.append(owner)
            wanted.append((each, owners))
        for each, owners in wanted:
            for owner in owners:
                owner.prefetch(each)
        for each, owners in wanted:
            for owner in owners:
                try:
                    await owner.deliver(each)
                except Exception:
                    logger.exception("live %s: %s not passed on", owner.name, each.topic)


def read_at(request: Request) -> float | None:
    """When the page a stream serves read the database: its `?since=` (the page request's
    `read_at`, see inbox.deps.read_session), None when absent or not a time (the tab then
    reloads what it shows)."""
    try:
        since = float(request.query_params.get("since", ""))
    except ValueError:
        return None
    return since if math.isfinite(since) else None


def dispatcher_of(request: Request, context: HubContext) -> Dispatcher:
    """This app's dispatcher for its bus (a new one once the last stopped)."""
    found: Dispatcher | None = getattr(request.app.state, "live_dispatcher", None)
    if found is None or found.closed or found.bus is not context.bus:
        found = Dispatcher(context.bus, context.db)
        request.app.state.live_dispatcher = found
    return found


class LiveResponse(Response):
    """A live stream's answer (text/event-stream): writes the tab's buffered frames, one
    chunk per wake-up, until the dispatcher ends it or the client leaves."""

    media_type = "text/event-stream"

    def __init__(self, dispatcher: Dispatcher, tab: Tab) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        self.dispatcher = dispatcher
        self.tab = tab

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tab = self.tab
        await self.dispatcher.register(tab)
        watcher = asyncio.ensure_future(self._watch(receive))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            while (text := await tab.take()) is not None:
                await send({"type": "http.response.body", "body": text.encode(), "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client went away mid-write (servers of ASGI spec 2.4 raise)
        finally:
            watcher.cancel()
            self.dispatcher.unregister(tab)

    async def _watch(self, receive: Receive) -> None:
        """End the tab when the client disconnects."""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.tab.close()
                return
