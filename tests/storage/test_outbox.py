"""The outbox on SQLite and PostgreSQL: emit with the change, claim with a lease, retry, park."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from storage.bus import BusMessage, InProcessBus
from storage.db import Database
from storage.events import ConversationOpened, Event, omitted_when_none
from storage.models import Channel, OutboxEvent, OutboxStatus
from storage.outbox import BatchHandler, Handler, Handlers, OutboxWorker, WorkerOptions, emit
from storage.types import utcnow

# Events of this module's own (the hub's catalogue is tested in test_events.py).


@dataclass(frozen=True, kw_only=True)
class Numbered(Event):
    n: int = 0
    after: int | None = omitted_when_none()


class Opened(Numbered, topic="test.outbox.opened"):
    pass


class Received(Numbered, topic="test.outbox.received"):
    pass


class Unheard(Numbered, topic="test.outbox.unheard"):
    pass


class Plain(Numbered, topic="test.outbox.plain"):
    pass


class Clock:
    """Time the test controls; `on_call` runs once, at the next reading."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.on_call: Callable[[], None] | None = None

    def __call__(self) -> datetime:
        now = self.now
        if self.on_call is not None:
            hook, self.on_call = self.on_call, None
            hook()
        return now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Recorder:
    """A handler that records what it saw and can be told to fail."""

    def __init__(self, fail_times: int = 0) -> None:
        self.seen: list[tuple[int, str, dict[str, object]]] = []
        self.kinds: list[type[Event]] = []
        self.fail_times = fail_times
        self.called = asyncio.Event()

    async def __call__(self, session: AsyncSession, event: Event, event_id: int) -> None:
        self.seen.append((event_id, event.topic, event.payload()))
        self.kinds.append(type(event))
        self.called.set()
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError(f"boom {event_id}")


@pytest.fixture
def clock() -> Clock:
    # A second ahead of real time, so events emitted "now" are due.
    return Clock(utcnow() + timedelta(seconds=1))


def make_worker(db: Database, clock: Clock, handlers: Handlers, **options: Any) -> OutboxWorker:
    return OutboxWorker(db, handlers, WorkerOptions(**options), clock=clock)


async def emit_events(
    db: Database, kind: type[Numbered], count: int = 1, *, due_at: datetime | None = None
) -> list[int]:
    async with db.transaction() as session:
        events = [emit(session, kind(n=n), due_at=due_at) for n in range(count)]
        await session.flush()
        return [e.id for e in events]


async def insert_row(db: Database, topic: str, payload: dict[str, Any]) -> int:
    """An outbox row as another version of the hub may have written it."""
    async with db.transaction() as session:
        row = OutboxEvent(
            topic=topic, payload=payload, due_at=utcnow(), status=OutboxStatus.PENDING, attempts=0
        )
        session.add(row)
        await session.flush()
        return row.id


async def outbox(db: Database) -> dict[int, OutboxEvent]:
    async with db.read() as session:
        return {e.id: e for e in (await session.scalars(select(OutboxEvent))).all()}


async def channel_count(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(Channel)))


class TestEmit:
    async def test_rolled_back_transaction_leaves_nothing(self, db: Database) -> None:
        woken: list[bool] = []
        db.on_outbox_commit(lambda: woken.append(True))

        with pytest.raises(RuntimeError):
            async with db.transaction() as session:
                emit(session, ConversationOpened(conversation_id=1, contact_id=2, channel_id=3))
                await session.flush()
                raise RuntimeError("abort")

        assert await outbox(db) == {}
        assert woken == []

    async def test_committed_event_is_pending_and_wakes_listeners(self, db: Database) -> None:
        woken: list[bool] = []
        db.on_outbox_commit(lambda: woken.append(True))

        (event_id,) = await emit_events(db, Received)

        event = (await outbox(db))[event_id]
        assert (event.topic, event.payload, event.status, event.attempts) == (
            "test.outbox.received",
            {"n": 0},
            OutboxStatus.PENDING,
            0,
        )
        assert woken == [True]

    async def test_transaction_without_events_wakes_nobody(self, db: Database) -> None:
        woken: list[bool] = []
        db.on_outbox_commit(lambda: woken.append(True))

        async with db.transaction() as session:
            session.add(Channel(key="k", kind="webform", title="t", config={}))

        assert woken == []


class TestDispatch:
    async def test_handlers_by_event_type_and_every_event(self, db: Database, clock: Clock) -> None:
        opened, received, every, unused = Recorder(), Recorder(), Recorder(), Recorder()
        worker = make_worker(
            db,
            clock,
            {Opened: [opened], Received: [received], Plain: [unused], Event: [every]},
        )
        (first,) = await emit_events(db, Opened)
        (second,) = await emit_events(db, Received)
        (third,) = await emit_events(db, Unheard)

        assert await worker.drain() == 3

        assert opened.seen == [(first, "test.outbox.opened", {"n": 0})]
        assert opened.kinds == [Opened]
        assert received.seen == [(second, "test.outbox.received", {"n": 0})]
        assert [topic for _, topic, _ in every.seen] == [
            "test.outbox.opened",
            "test.outbox.received",
            "test.outbox.unheard",
        ]
        assert every.kinds == [Opened, Received, Unheard]
        assert unused.seen == []
        events = await outbox(db)
        assert {e.status for e in events.values()} == {OutboxStatus.DONE}
        assert {e.processed_at for e in events.values()} == {clock.now}
        assert {e.locked_until for e in events.values()} == {None}
        assert third in events

    async def test_a_row_is_parsed_into_its_event_as_stored(
        self, db: Database, clock: Clock
    ) -> None:
        received = Recorder()
        worker = make_worker(db, clock, {Received: [received]})
        # Stored ints may come back as strings from older writers; unknown keys are ignored.
        event_id = await insert_row(db, "test.outbox.received", {"n": "7", "extra": True})

        assert await worker.drain() == 1

        assert received.seen == [(event_id, "test.outbox.received", {"n": 7})]
        assert (await outbox(db))[event_id].status == OutboxStatus.DONE

    @pytest.mark.parametrize(
        ("topic", "payload", "error"),
        [
            ("nobody.declares", {"n": 1}, "UnknownTopic: no event is declared for topic"),
            ("test.outbox.received", {"n": [1]}, "TypeError: [1] is not an integer"),
        ],
    )
    async def test_a_row_that_does_not_parse_fails_and_is_parked_in_the_end(
        self, db: Database, clock: Clock, topic: str, payload: dict[str, Any], error: str
    ) -> None:
        every = Recorder()
        worker = make_worker(db, clock, {Event: [every]}, max_attempts=2)
        bad = await insert_row(db, topic, payload)
        (good,) = await emit_events(db, Received)

        await worker.run_once()
        clock.advance(3600)
        await worker.run_once()

        events = await outbox(db)
        assert events[good].status == OutboxStatus.DONE
        assert events[bad].status == OutboxStatus.PARKED
        assert (events[bad].last_error or "").startswith(error)
        assert [seen[0] for seen in every.seen] == [good]

    async def test_most_overdue_events_are_claimed_first(self, db: Database, clock: Clock) -> None:
        every = Recorder()
        worker = make_worker(db, clock, {Event: [every]}, batch_size=2)
        rest = await emit_events(db, Plain, 3)
        late = await emit_events(db, Plain, due_at=clock.now - timedelta(minutes=1))
        early = await emit_events(db, Plain, due_at=clock.now - timedelta(minutes=5))

        assert await worker.run_once() == 2

        assert sorted(event_id for event_id, _, _ in every.seen) == sorted(early + late)
        assert await worker.drain() == 3
        assert sorted(event_id for event_id, _, _ in every.seen[2:]) == rest

    async def test_drain_on_an_empty_outbox_handles_nothing(
        self, db: Database, clock: Clock
    ) -> None:
        assert await make_worker(db, clock, {}).drain() == 0


class TestHandlerTransaction:
    @staticmethod
    async def add_channel(session: AsyncSession, _event: Event, event_id: int) -> None:
        session.add(Channel(key=f"from-{event_id}", kind="webform", title="t", config={}))
        await session.flush()

    async def test_writes_commit_with_the_done_mark(self, db: Database, clock: Clock) -> None:
        worker = make_worker(db, clock, {Plain: [self.add_channel]})
        (event_id,) = await emit_events(db, Plain)

        await worker.drain()

        assert await channel_count(db) == 1
        assert (await outbox(db))[event_id].status == OutboxStatus.DONE

    async def test_writes_roll_back_with_a_failure(self, db: Database, clock: Clock) -> None:
        worker = make_worker(db, clock, {Plain: [self.add_channel, Recorder(fail_times=100)]})
        (event_id,) = await emit_events(db, Plain)

        await worker.run_once()

        assert await channel_count(db) == 0
        event = (await outbox(db))[event_id]
        assert event.status == OutboxStatus.PENDING
        assert event.last_error == f"RuntimeError: boom {event_id}"

    async def test_events_emitted_by_a_handler_are_handled_next(
        self, db: Database, clock: Clock
    ) -> None:
        async def follow_up(session: AsyncSession, _event: Event, event_id: int) -> None:
            emit(session, Received(after=event_id))

        second = Recorder()
        worker = make_worker(db, clock, {Plain: [follow_up], Received: [second]})
        (first_id,) = await emit_events(db, Plain)

        assert await worker.drain() == 2

        assert [payload for _, _, payload in second.seen] == [{"n": 0, "after": first_id}]


class TestRetry:
    async def test_failure_retries_with_growing_backoff_then_parks(
        self, db: Database, clock: Clock
    ) -> None:
        failing = Recorder(fail_times=100)
        worker = make_worker(db, clock, {Plain: [failing]}, max_attempts=4, backoff_base_seconds=10)
        (event_id,) = await emit_events(db, Plain)

        delays = []
        for attempt in range(1, 4):
            assert await worker.run_once() == 1
            event = (await outbox(db))[event_id]
            assert (event.status, event.attempts) == (OutboxStatus.PENDING, attempt)
            assert event.last_error == f"RuntimeError: boom {event_id}"
            assert event.locked_until is None
            delay = (event.due_at - clock.now).total_seconds()
            delays.append(delay)
            # Not due before its backoff ends...
            clock.advance(delay - 0.5)
            assert await worker.run_once() == 0
            # ...and due right after.
            clock.advance(1)

        assert 8 <= delays[0] <= 12
        assert 16 <= delays[1] <= 24
        assert 32 <= delays[2] <= 48
        assert delays[0] < delays[1] < delays[2]

        assert await worker.run_once() == 1
        event = (await outbox(db))[event_id]
        assert (event.status, event.attempts) == (OutboxStatus.PARKED, 4)
        assert event.last_error == f"RuntimeError: boom {event_id}"
        calls = len(failing.seen)
        clock.advance(10**6)
        assert await worker.run_once() == 0
        assert len(failing.seen) == calls

    async def test_backoff_is_capped(self, db: Database, clock: Clock) -> None:
        worker = make_worker(db, clock, {}, backoff_base_seconds=10, backoff_max_seconds=60)

        assert all(worker.backoff(attempts) <= 72 for attempts in range(1, 40))
        assert worker.backoff(30) >= 48

    async def test_success_after_a_failure_clears_the_error(
        self, db: Database, clock: Clock
    ) -> None:
        calls = 0

        async def flaky(session: AsyncSession, _event: Event, _event_id: int) -> None:
            nonlocal calls
            calls += 1
            if calls <= 2:  # the first attempt: its batch, then the event on its own
                raise ConnectionError("SMTP server went away")

        worker = make_worker(db, clock, {Plain: [flaky]}, backoff_base_seconds=1)
        (event_id,) = await emit_events(db, Plain)

        await worker.run_once()
        clock.advance(5)
        await worker.run_once()

        event = (await outbox(db))[event_id]
        assert (event.status, event.attempts, event.last_error) == (OutboxStatus.DONE, 2, None)

    async def test_one_failing_event_does_not_block_the_others(
        self, db: Database, clock: Clock
    ) -> None:
        async def fail_first(session: AsyncSession, event: Plain, _event_id: int) -> None:
            if event.n == 0:
                raise ValueError("bad payload")

        worker = make_worker(db, clock, {Plain: [fail_first]})
        ids = await emit_events(db, Plain, 3)

        await worker.drain()

        events = await outbox(db)
        assert [events[i].status for i in ids] == ["pending", "done", "done"]
        assert events[ids[0]].last_error == "ValueError: bad payload"

    async def test_handler_writes_failing_at_commit_count_as_a_failure(
        self, db: Database, clock: Clock
    ) -> None:
        async def duplicate_key(session: AsyncSession, _event: Event, _event_id: int) -> None:
            # Not flushed here: the unique violation surfaces when the round commits.
            session.add(Channel(key="taken", kind="webform", title="t", config={}))

        async with db.transaction() as session:
            session.add(Channel(key="taken", kind="webform", title="t", config={}))
        worker = make_worker(db, clock, {Unheard: [duplicate_key]}, max_attempts=2)
        (bad,) = await emit_events(db, Unheard)
        (good,) = await emit_events(db, Plain)

        await worker.run_once()

        events = await outbox(db)
        assert events[good].status == OutboxStatus.DONE
        assert events[bad].status == OutboxStatus.PENDING
        assert events[bad].last_error is not None and "IntegrityError" in events[bad].last_error
        assert events[bad].locked_until is None
        clock.advance(3600)
        await worker.run_once()
        assert (await outbox(db))[bad].status == OutboxStatus.PARKED


class TestTimer:
    async def test_timer_is_handled_at_its_time_not_before(
        self, db: Database, clock: Clock
    ) -> None:
        timer = Recorder()
        worker = make_worker(db, clock, {Plain: [timer]})
        (event_id,) = await emit_events(db, Plain, due_at=clock.now + timedelta(minutes=15))

        assert await worker.drain() == 0
        clock.advance(14 * 60 + 59)
        assert await worker.drain() == 0
        assert timer.seen == []

        clock.advance(1)
        assert await worker.drain() == 1
        assert [seen[0] for seen in timer.seen] == [event_id]


class TestLease:
    async def test_claimed_event_is_not_claimed_again_while_leased(
        self, db: Database, clock: Clock
    ) -> None:
        first = make_worker(db, clock, {}, lease_seconds=60)
        second = make_worker(db, clock, {}, lease_seconds=60)
        ids = await emit_events(db, Plain, 2)

        assert sorted(await first.claim()) == ids
        clock.advance(59)

        assert await second.claim() == []

    async def test_expired_lease_makes_the_event_claimable_again(
        self, db: Database, clock: Clock
    ) -> None:
        # The first worker claims and dies before handling.
        dead = make_worker(db, clock, {}, lease_seconds=60)
        (event_id,) = await emit_events(db, Plain)
        assert await dead.claim() == [event_id]
        assert (await outbox(db))[event_id].locked_until == clock.now + timedelta(seconds=60)

        alive = Recorder()
        survivor = make_worker(db, clock, {Plain: [alive]}, lease_seconds=60)
        clock.advance(61)
        assert await survivor.drain() == 1

        assert [seen[0] for seen in alive.seen] == [event_id]
        event = (await outbox(db))[event_id]
        assert (event.status, event.attempts) == (OutboxStatus.DONE, 2)


class TestClaimCarriesTheEvents:
    async def test_a_round_handles_its_events_as_claimed_without_reading_them_again(
        self, db: Database, clock: Clock
    ) -> None:
        recorder = Recorder()
        worker = make_worker(db, clock, {Plain: [recorder]})
        ids = await emit_events(db, Plain, 5)
        statements: list[str] = []

        def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
            statements.append(" ".join(statement.split()))

        sa_event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
        try:
            assert await worker.run_once() == 5
        finally:
            sa_event.remove(db.engine.sync_engine, "before_cursor_execute", seen)

        assert [(event_id, payload["n"]) for event_id, _, payload in recorder.seen] == [
            (event_id, n) for n, event_id in enumerate(ids)
        ]
        outbox_statements = [s for s in statements if "outbox_events" in s]
        # The claim (an UPDATE returning the events; on PostgreSQL on connections of its
        # own, see test_a_claim_commits_without_waiting_for_the_disk) and the done mark;
        # no SELECT of them.
        assert len(outbox_statements) == (2 if db.is_sqlite else 1), outbox_statements
        assert all(s.startswith("UPDATE outbox_events") for s in outbox_statements)
        assert {e.status for e in (await outbox(db)).values()} == {OutboxStatus.DONE}

    async def test_an_event_parked_while_a_round_handled_it_stays_parked(
        self, db: Database, clock: Clock
    ) -> None:
        # A worker whose lease ran out handles an event that another worker parked
        # meanwhile (here: the parking written by the handler itself, in the round's
        # transaction): the round's done mark leaves it parked.
        async def parked_meanwhile(session: AsyncSession, _event: Event, event_id: int) -> None:
            await session.execute(
                text("UPDATE outbox_events SET status = :parked WHERE id = :id"),
                {"parked": OutboxStatus.PARKED.value, "id": event_id},
            )

        (parked,) = await emit_events(db, Plain)
        (other,) = await emit_events(db, Received)
        recorder = Recorder()
        worker = make_worker(db, clock, {Plain: [parked_meanwhile], Received: [recorder]})
        assert await worker.run_once() == 2

        rows = await outbox(db)
        assert rows[parked].status == OutboxStatus.PARKED
        assert rows[other].status == OutboxStatus.DONE


class TestConcurrentClaims:
    async def test_two_workers_never_claim_the_same_event(
        self, db_url: str, db: Database, clock: Clock
    ) -> None:
        ids = await emit_events(db, Plain, 200)
        other_db = Database(db_url, pool_size=5)
        try:
            workers = [
                make_worker(db, clock, {}, batch_size=7),
                make_worker(other_db, clock, {}, batch_size=7),
            ]

            async def claim_all(worker: OutboxWorker) -> list[int]:
                claimed: list[int] = []
                while batch := await worker.claim():
                    claimed.extend(batch)
                return claimed

            results = await asyncio.gather(*(claim_all(w) for w in workers * 2))
        finally:
            await other_db.dispose()

        claimed = [event_id for result in results for event_id in result]
        assert sorted(claimed) == ids
        assert all(result for result in results[:2]), "each worker should get some events"
        events = await outbox(db)
        assert {e.attempts for e in events.values()} == {1}


class TestRun:
    @pytest.fixture
    async def running(self, db: Database, clock: Clock) -> AsyncIterator[tuple]:
        recorder = Recorder()
        worker = make_worker(db, clock, {Plain: [recorder]}, poll_interval_seconds=30)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        await asyncio.sleep(0.05)  # the first round finds nothing and goes to sleep
        yield worker, recorder, stop, task
        stop.set()
        await asyncio.wait_for(task, 5)

    async def test_commit_wakes_the_sleeping_worker(
        self, db: Database, running: tuple, clock: Clock
    ) -> None:
        _, recorder, _, _ = running
        assert recorder.seen == []

        (event_id,) = await emit_events(db, Plain)

        await asyncio.wait_for(recorder.called.wait(), 2)
        assert [seen[0] for seen in recorder.seen] == [event_id]

    async def test_stop_ends_the_loop(self, running: tuple) -> None:
        _, _, stop, task = running
        loop = asyncio.get_running_loop()
        started = loop.time()

        stop.set()
        await asyncio.wait_for(task, 5)

        assert loop.time() - started < 1
        assert task.exception() is None

    async def test_wakeup_during_a_round_is_not_lost(self, db: Database, clock: Clock) -> None:
        recorder = Recorder()
        worker = make_worker(db, clock, {Plain: [recorder]}, poll_interval_seconds=30)
        await emit_events(db, Plain, due_at=clock.now + timedelta(seconds=10))

        def notification_while_claiming() -> None:
            # While the worker looks, time passes and a commit says there is work.
            clock.advance(20)
            worker.wake()

        clock.on_call = notification_while_claiming
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            await asyncio.wait_for(recorder.called.wait(), 3)
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)
        assert len(recorder.seen) == 1


class TestLanes:
    """Events named first (routing's, in the hub) have a lane of their own on PostgreSQL:
    they do not wait behind a backlog of the others."""

    async def test_first_events_are_claimed_past_a_backlog_of_others(
        self, db: Database, clock: Clock
    ) -> None:
        backlog = await emit_events(db, Plain, 30)
        (urgent,) = await emit_events(db, Opened)
        worker = make_worker(db, clock, {}, batch_size=10, first_events=frozenset({Opened}))
        lanes = [lane.name for lane in worker.lanes]
        if db.is_sqlite:
            assert lanes == ["all"]  # one writer: one lane, claimed in the order due
            assert await worker.claim() == backlog[:10]
            return
        assert lanes == ["first", "rest"]
        assert await worker.claim() == [urgent, *backlog[:10]]

    async def test_a_running_worker_handles_the_first_lane_beside_a_slow_rest(
        self, db: Database, clock: Clock
    ) -> None:
        release = asyncio.Event()
        slow_started = asyncio.Event()

        async def slow(session: AsyncSession, event: Event, event_id: int) -> None:
            slow_started.set()
            await release.wait()

        urgent = Recorder()
        worker = make_worker(
            db,
            clock,
            {Plain: [slow], Opened: [urgent]},
            first_events=frozenset({Opened}),
            poll_interval_seconds=30,
        )
        if db.is_sqlite:  # its one writer: one lane, the rest's round before the next
            assert [lane.name for lane in worker.lanes] == ["all"]
            return
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            await emit_events(db, Plain)
            await asyncio.wait_for(slow_started.wait(), 3)  # the rest's round is stuck
            (event_id,) = await emit_events(db, Opened)
            await asyncio.wait_for(urgent.called.wait(), 3)  # yet the first lane goes on
            assert [seen[0] for seen in urgent.seen] == [event_id]
        finally:
            release.set()
            stop.set()
            await asyncio.wait_for(task, 5)
        assert {e.status for e in (await outbox(db)).values()} == {OutboxStatus.DONE}


class TestPurge:
    async def test_removes_only_old_done_events(self, db: Database, clock: Clock) -> None:
        day = 24 * 3600
        worker = make_worker(
            db,
            clock,
            {Unheard: [Recorder(fail_times=100)]},
            keep_done_seconds=7 * day,
            max_attempts=1,
        )
        (old_done,) = await emit_events(db, Plain)
        (parked,) = await emit_events(db, Unheard)
        (timer,) = await emit_events(db, Plain, due_at=clock.now + timedelta(days=30))
        await worker.drain()
        clock.advance(6 * day)
        (recent_done,) = await emit_events(db, Plain)
        await worker.drain()
        clock.advance(day + 60)

        assert await worker.purge_done() == 1

        events = await outbox(db)
        assert set(events) == {parked, timer, recent_done}
        assert old_done not in events
        assert events[parked].status == OutboxStatus.PARKED


class TestSoloEvents:
    async def test_locking_events_get_a_transaction_each_where_workers_write_at_once(
        self, db: Database, clock: Clock
    ) -> None:
        await emit_events(db, Plain, 3)
        await emit_events(db, Opened, 3)
        recorder = Recorder()
        worker = OutboxWorker(
            db,
            {Plain: [recorder], Opened: [recorder]},
            WorkerOptions(solo_events=frozenset({Opened})),
            clock=clock,
        )
        commits = 0

        def count(_conn: object) -> None:
            nonlocal commits
            commits += 1

        sa_event.listen(db.engine.sync_engine, "commit", count)
        try:
            assert await worker.run_once() == 6
        finally:
            sa_event.remove(db.engine.sync_engine, "commit", count)

        assert len(recorder.seen) == 6
        assert {e.status for e in (await outbox(db)).values()} == {OutboxStatus.DONE}
        # Durable commits: the shared batch, then one per routing event on PostgreSQL
        # (the claim commits without waiting for the disk, on connections of its own);
        # SQLite has one writer, so everything shares the batch there, after the claim.
        assert commits == (2 if db.is_sqlite else 4)

    async def test_redoable_events_commit_without_waiting_for_the_disk(
        self, db: Database, clock: Clock
    ) -> None:
        await emit_events(db, Plain, 1)
        await emit_events(db, Opened, 2)
        settings: dict[str, str] = {}

        def reading(name: str) -> Handler[Event]:
            async def handler(session: AsyncSession, _event: Event, _event_id: int) -> None:
                if not db.is_sqlite:
                    settings[name] = str(await session.scalar(text("SHOW synchronous_commit")))

            return handler

        worker = OutboxWorker(
            db,
            {Plain: [reading("plain")], Opened: [reading("routing")]},
            WorkerOptions(solo_events=frozenset({Opened}), redoable_events=frozenset({Opened})),
            clock=clock,
        )
        assert await worker.run_once() == 3
        assert {e.status for e in (await outbox(db)).values()} == {OutboxStatus.DONE}
        if not db.is_sqlite:
            assert settings == {"plain": "on", "routing": "off"}

    async def test_a_claim_commits_without_waiting_for_the_disk(
        self, db: Database, clock: Clock
    ) -> None:
        # Lost in a crash, a claim leaves its events due, to be claimed again.
        await emit_events(db, Plain, 2)
        durable: list[str] = []

        def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
            durable.append(" ".join(statement.split()))

        worker = make_worker(db, clock, {Plain: [Recorder()]})
        sa_event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
        try:
            assert len(await worker.claim()) == 2
        finally:
            sa_event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
        claims = [s for s in durable if s.startswith("UPDATE outbox_events")]
        # SQLite's WAL commits every transaction so; PostgreSQL's other connections do.
        assert len(claims) == (1 if db.is_sqlite else 0)
        leased = await outbox(db)
        assert all(e.locked_until is not None and e.attempts == 1 for e in leased.values())


class TestBatchHandlers:
    async def test_a_batch_handler_takes_its_types_events_together(
        self, db: Database, clock: Clock
    ) -> None:
        calls: list[list[int]] = []
        each: list[int] = []
        star: list[int] = []

        async def one(_session: AsyncSession, event: Numbered, _event_id: int) -> None:
            each.append(event.n)

        async def many(_session: AsyncSession, events: Sequence[tuple[Numbered, int]]) -> None:
            calls.append([event.n for event, _id in events])

        async def every(_session: AsyncSession, _event: Event, event_id: int) -> None:
            star.append(event_id)

        ids = await emit_events(db, Opened, 5)
        others = await emit_events(db, Plain, 2)
        worker = make_worker(
            db, clock, {Opened: [BatchHandler(one, many)], Plain: [one], Event: [every]}
        )
        assert await worker.drain() == 7
        assert calls == [[0, 1, 2, 3, 4]]  # one call, the events in order
        assert each == [0, 1]  # only the other type's events, one by one
        assert sorted(star) == sorted(ids + others)
        assert {e.status for e in (await outbox(db)).values()} == {OutboxStatus.DONE}

    async def test_a_batch_handler_of_a_shared_type_takes_its_events_in_the_shared_round(
        self, db: Database, clock: Clock
    ) -> None:
        # A type whose handlers lock nothing (not solo) is handled together in the round's
        # one shared transaction, beside the plain events: no transaction of its own.
        calls: list[list[int]] = []
        plain: list[int] = []

        async def one(_session: AsyncSession, event: Numbered, _event_id: int) -> None:
            plain.append(event.n)

        async def many(_session: AsyncSession, events: Sequence[tuple[Numbered, int]]) -> None:
            calls.append([event.n for event, _id in events])

        await emit_events(db, Received, 4)
        await emit_events(db, Plain, 2)
        worker = OutboxWorker(
            db,
            {Received: [BatchHandler(one, many)], Plain: [one]},
            WorkerOptions(solo_events=frozenset({Opened})),
            clock=clock,
        )
        commits = 0

        def count(_conn: object) -> None:
            nonlocal commits
            commits += 1

        sa_event.listen(db.engine.sync_engine, "commit", count)
        try:
            assert await worker.run_once() == 6
        finally:
            sa_event.remove(db.engine.sync_engine, "commit", count)
        assert calls == [[0, 1, 2, 3]]
        assert plain == [0, 1]
        # The shared round (and, on SQLite, the claim; on PostgreSQL it commits without
        # waiting for the disk, on connections of its own).
        assert commits == (2 if db.is_sqlite else 1)
        assert {e.status for e in (await outbox(db)).values()} == {OutboxStatus.DONE}

    async def test_a_failing_batch_is_handled_again_event_by_event(
        self, db: Database, clock: Clock
    ) -> None:
        each: list[int] = []

        async def one(_session: AsyncSession, event: Numbered, _event_id: int) -> None:
            if event.n == 1:
                raise RuntimeError("this one fails")
            each.append(event.n)

        async def many(_session: AsyncSession, _events: Sequence[tuple[Numbered, int]]) -> None:
            raise RuntimeError("the batch fails")

        ids = await emit_events(db, Opened, 3)
        worker = make_worker(db, clock, {Opened: [BatchHandler(one, many)]})
        assert await worker.run_once() == 3
        events = await outbox(db)
        assert each == [0, 2]
        assert [events[i].status for i in ids] == [
            OutboxStatus.DONE,
            OutboxStatus.PENDING,
            OutboxStatus.DONE,
        ]
        assert events[ids[1]].last_error == "RuntimeError: this one fails"


class TestHeartbeat:
    @pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
    async def test_the_lease_is_renewed_while_the_events_are_worked_on(self, db: Database) -> None:
        """Real time: a handler that takes longer than the lease keeps its events."""
        release = asyncio.Event()
        started = asyncio.Event()

        async def slow(_session: AsyncSession, _event: Event, _event_id: int) -> None:
            started.set()
            await release.wait()

        [event_id] = await emit_events(db, Plain)
        worker = OutboxWorker(
            db, {Plain: [slow]}, WorkerOptions(lease_seconds=0.6, heartbeat_seconds=0.2)
        )
        other = OutboxWorker(db, {}, WorkerOptions(lease_seconds=0.6))
        running = asyncio.create_task(worker.run_once())
        await started.wait()
        first = (await outbox(db))[event_id].locked_until
        await asyncio.sleep(1.5)  # more than two leases
        assert await other.claim() == []  # still leased: the heartbeat renewed it
        renewed = (await outbox(db))[event_id].locked_until
        assert first is not None and renewed is not None and renewed > first
        release.set()
        assert await running == 1
        assert (await outbox(db))[event_id].status == OutboxStatus.DONE


class TestLiveUpdatesAfterCommit:
    """The worker's handlers publish live updates; they are sent once the handling
    transaction has committed, and never for handling that rolled back."""

    async def test_published_after_the_commit_and_not_for_a_failed_event(
        self, db: Database, clock: Clock
    ) -> None:
        bus = InProcessBus()
        early: list[BusMessage | None] = []
        ids = await emit_events(db, Plain, 3)
        async with bus.subscribe("test.live.*") as sub:

            async def announce(session: AsyncSession, event: Plain, event_id: int) -> None:
                await bus.publish(f"test.live.{event_id}", {"n": event.n})
                # The handling transaction is still open: nothing may have arrived.
                early.append(await sub.get(0.01))
                if event.n == 1:
                    raise RuntimeError("this one fails")

            worker = make_worker(db, clock, {Plain: [announce]})
            assert await worker.run_once() == 3
            received = []
            while (message := await sub.get(0.2)) is not None:
                received.append(message)
        assert len(early) >= 3 and early == [None] * len(early)
        assert sorted(m.topic for m in received) == sorted(
            [f"test.live.{ids[0]}", f"test.live.{ids[2]}"]
        ), "the failed event's update rolled back with it"
        rows = await outbox(db)
        assert rows[ids[1]].status == OutboxStatus.PENDING and rows[ids[1]].last_error
        assert {rows[ids[0]].status, rows[ids[2]].status} == {OutboxStatus.DONE}
        await bus.close()


class TestRoundSize:
    async def test_on_sqlite_a_round_holds_the_write_lock_about_the_budget(
        self, db: Database, clock: Clock
    ) -> None:
        """Rounds take as many events as the handlers got through in the budget before
        (SQLite, where answers wait for the worker's transactions); PostgreSQL's
        rounds stay whole batches."""

        async def slow(session: AsyncSession, event: Plain, event_id: int) -> None:
            await asyncio.sleep(0.01)  # inside the transaction: the lock is held

        worker = make_worker(
            db, clock, {Plain: [slow]}, write_lock_seconds=0.05, min_round=2, batch_size=30
        )
        await emit_events(db, Plain, 40)
        assert await worker.run_once() == 30, "no measure yet: a whole batch"
        if not db.is_sqlite:
            assert worker.round_size() == 30
            return
        assert 2 <= worker.round_size() <= 5, "about 0.05 s of 0.01 s events"
        size = worker.round_size()
        assert await worker.run_once() == size
