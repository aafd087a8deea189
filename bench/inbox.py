"""Inbox benchmark: the managers' lists, a search and opening a conversation at 1M messages.

A fresh database (SQLite file, and PostgreSQL when it answers) is filled with Core bulk
inserts: 100,000 conversations with 1,000,000 messages (Russian and English text with a
realistic spread of words), 50,000 contacts with an email each, a lead per conversation,
50 managers in 5 queues, conversations assigned, unassigned and closed in the proportions
of a working inbox. The search indexes (migration 0010) are kept by the database as the
rows go in, as they are in production; PostgreSQL's tables are then vacuumed and analysed, as
autovacuum does after such a load. Then, server-side (the same service calls the REST
API makes, in a read session, no HTTP), each operation runs many times with random
parameters:

- baseline: a primary-key lookup of one conversation on the same database;
- list views: all conversations, unassigned, one manager's, open ones, one channel's —
  the first page and a page deep behind a cursor (`intake.journal.list_conversations`);
- search (`intake.search.search`): a common word, a rare word, a name fragment, a phone,
  as an administrator and as a manager (visibility applied);
- opening a conversation: the conversation with its contact and its first page of messages.

Each prints p50 and p95 in ms and p95 against the baseline's. The queries a page issues
are counted (SQLAlchemy's `before_cursor_execute`) for a page of 10 and of 200 rows: the
same count means no query per row.

    python -m bench.inbox [--conversations 100000] [--messages 1000000]
                          [--runs 200] [--backends sqlite,postgresql]
                          [--keep NAME]

Filling takes long on a loaded machine: with `--keep NAME` the databases are kept after the
run (an SQLite file NAME.db in the system's temporary folder, a PostgreSQL database
omnihub_bench_NAME) and a later run with the same NAME measures them again without
refilling, after upgrading them to the newest migration and analysing them afresh; a kept
database filled with other sizes is refused.

Target: p95 at most 50 ms for each list view, the search and opening a conversation.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import event, func, insert, select, text

from bench.ingest import HarnessError, postgres_database, postgres_unreachable
from intake.journal import (
    ConversationFilters,
    encode_cursor,
    get_conversation,
    list_conversations,
    list_messages,
)
from intake.search import search
from intake.visibility import Viewer
from storage.db import Database
from storage.migrate import upgrade
from storage.models import (
    Channel,
    ChannelKind,
    Contact,
    Conversation,
    Identity,
    IdentityKind,
    Lead,
    Manager,
    Message,
    Queue,
    QueueMember,
)
from storage.types import utcnow

TARGET_P95_MS = 50.0
MANAGERS = 50
QUEUES = 5
CHUNK = 5000
RUNS = 200

# Fragments of what clients and managers write; a message takes a few of them.
RU = [
    "Здравствуйте, хочу оформить заказ",
    "когда будет доставка",
    "прошу выставить счёт на оплату",
    "товар пришёл повреждённым",
    "подскажите, пожалуйста, сроки",
    "верните деньги за возврат",
    "не могу дозвониться до менеджера",
    "уточните стоимость услуги",
    "нужен договор и акт",
    "спасибо за быстрый ответ",
    "курьер не приехал вовремя",
    "можно ли изменить адрес",
    "пришлите накладную",
    "оплата не прошла",
    "хотим заключить договор поставки",
    "интересует скидка для юридических лиц",
    "отправьте коммерческое предложение",
    "номер заказа в письме",
]
EN = [
    "Hello, I would like to place an order",
    "when will the delivery arrive",
    "please send the invoice",
    "the parcel was damaged",
    "thanks for the quick reply",
    "can you change the address",
    "the payment failed",
    "we need a contract",
]
RARE_WORD = "рекламация"
NAMES = ["Анна", "Иван", "Ольга", "Пётр", "Мария", "Сергей", "Елена", "Дмитрий", "John", "Kate"]
SURNAMES = ["Иванов", "Смирнова", "Кузнецов", "Попова", "Соколов", "Лебедева", "Smith", "Brown"]
CHANNELS = (
    ("mail", ChannelKind.EMAIL),
    ("bot", ChannelKind.TELEGRAM),
    ("form", ChannelKind.WEBFORM),
    ("phone", ChannelKind.TELEPHONY),
)


def _message_text(rng: random.Random) -> str:
    pool = RU if rng.random() < 0.85 else EN
    words = ", ".join(rng.choice(pool) for _ in range(rng.randint(1, 3)))
    if rng.random() < 0.0001:
        words += f". {RARE_WORD.capitalize()} по заказу"
    return f"{words}. №{rng.randint(1000, 99999)}"


async def _insert(db: Database, model: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        async with db.transaction() as session:
            await session.execute(insert(model), rows[start : start + CHUNK])


async def fill(db: Database, conversations: int, messages: int, seed: int = 7) -> dict[str, Any]:
    """The inbox's rows; returns what the measurements pick their parameters from."""
    rng = random.Random(seed)
    now = utcnow()
    async with db.transaction() as session:
        managers = [
            Manager(email=f"m{n}@bench.example.ru", name=f"Менеджер {n}", role="manager")
            for n in range(MANAGERS)
        ]
        session.add_all(managers)
        await session.flush()
        queues = [Queue(key=f"q{n}", name=f"Очередь {n}") for n in range(QUEUES)]
        session.add_all(queues)
        await session.flush()
        session.add_all(
            QueueMember(queue_id=queues[n % QUEUES].id, manager_id=manager.id)
            for n, manager in enumerate(managers)
        )
        channels = [
            Channel(key=key, kind=kind, title=key, config={}, is_active=True, status="ok")
            for key, kind in CHANNELS
        ]
        session.add_all(channels)
        await session.flush()
        manager_ids = [m.id for m in managers]
        queue_ids = [q.id for q in queues]
        channel_ids = [c.id for c in channels]
    contacts = max(conversations // 2, 1)
    await _insert(
        db,
        Contact,
        [
            {"id": n + 1, "name": f"{rng.choice(NAMES)} {rng.choice(SURNAMES)}", "attributes": {}}
            for n in range(contacts)
        ],
    )
    await _insert(
        db,
        Identity,
        [
            {"contact_id": n + 1, "kind": IdentityKind.EMAIL, "value": f"client{n}@example.ru"}
            for n in range(contacts)
        ],
    )
    rows = []
    for n in range(conversations):
        roll = rng.random()
        assignee = rng.choice(manager_ids) if roll < 0.6 else None
        status = "closed" if roll > 0.9 else ("pending" if roll > 0.8 else "open")
        rows.append(
            {
                "id": n + 1,
                "channel_id": channel_ids[n % len(channel_ids)],
                "contact_id": n % contacts + 1,
                "thread_key": f"t{n}",
                "status": status,
                "subject": None,
                "assignee_id": assignee,
                "queue_id": rng.choice(queue_ids),
                "routing_state": "assigned" if assignee else "waiting",
                "tags": [],
                "last_message_at": now - timedelta(seconds=conversations - n),
            }
        )
    await _insert(db, Conversation, rows)
    await _insert(
        db,
        Lead,
        [
            {
                "contact_id": row["contact_id"],
                "conversation_id": row["id"],
                "channel_id": row["channel_id"],
                "source": "bench",
                "title": "",
                "summary": "",
                "attribution": {},
                "form_fields": {},
            }
            for row in rows
        ],
    )
    per_conversation = max(messages // max(conversations, 1), 1)
    batch: list[dict[str, Any]] = []
    written = 0
    for row in rows:
        for k in range(per_conversation):
            batch.append(
                {
                    "conversation_id": row["id"],
                    "channel_id": row["channel_id"],
                    "direction": "inbound" if k % 2 == 0 else "outbound",
                    "status": "received" if k % 2 == 0 else "sent",
                    "text": _message_text(rng),
                    "meta": {},
                }
            )
        if len(batch) >= CHUNK * 4:
            await _insert(db, Message, batch)
            written += len(batch)
            batch = []
    await _insert(db, Message, batch)
    written += len(batch)
    await analyse(db)
    return {
        "managers": manager_ids,
        "channels": [key for key, _kind in CHANNELS],
        "conversations": conversations,
        "messages": written,
        "contacts": contacts,
    }


async def analyse(db: Database) -> None:
    if db.engine.dialect.name == "postgresql":
        # What autovacuum does after a bulk load: statistics, and the visibility map without
        # which every index-only scan still reads the table.
        async with db.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
    else:
        async with db.transaction() as session:
            await session.execute(text("ANALYZE"))


async def filled(db: Database, conversations: int, messages: int) -> dict[str, Any] | None:
    """What `fill` returned, read back from a kept database; None when it is empty.
    HarnessError when it was filled with other sizes."""
    async with db.read() as session:
        found = await session.scalar(select(func.count()).select_from(Conversation))
        if not found:
            return None
        written = await session.scalar(select(func.count()).select_from(Message)) or 0
        contacts = await session.scalar(select(func.count()).select_from(Contact)) or 0
        manager_ids = list(await session.scalars(select(Manager.id).order_by(Manager.id)))
    per_conversation = max(messages // max(conversations, 1), 1)
    if found != conversations or written != per_conversation * conversations:
        raise HarnessError(
            f"the kept database has {found} conversations and {written} messages, not "
            f"{conversations} and {per_conversation * conversations}: drop it or pick another name"
        )
    return {
        "managers": manager_ids,
        "channels": [key for key, _kind in CHANNELS],
        "conversations": found,
        "messages": written,
        "contacts": contacts,
    }


@contextmanager
def counting(db: Database) -> Iterator[list[str]]:
    """The statements run on the database while inside."""
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engines = {id(db.engine.sync_engine): db.engine.sync_engine}
    engines[id(db.read_engine.sync_engine)] = db.read_engine.sync_engine
    for engine in engines.values():
        event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        for engine in engines.values():
            event.remove(engine, "before_cursor_execute", count)


Operation = Callable[[Any, random.Random], Awaitable[object]]


async def timed(db: Database, operation: Operation, runs: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        async with db.read() as session:
            await operation(session, rng)
        times.append(time.perf_counter() - started)
    return times


def _p(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(int(len(ordered) * q), len(ordered) - 1)] * 1000


def operations(data: dict[str, Any]) -> list[tuple[str, Operation]]:
    total = data["conversations"]
    managers = data["managers"]
    channels = data["channels"]
    admin = Viewer(manager_id=None, is_admin=True)

    async def pk(session: Any, rng: random.Random) -> object:
        return await session.scalar(
            select(Conversation).where(Conversation.id == rng.randint(1, total))
        )

    def view(filters: Callable[[random.Random], ConversationFilters], deep: bool) -> Operation:
        async def run(session: Any, rng: random.Random) -> object:
            cursor = None
            if deep:
                cursor = encode_cursor("conversation", total // 2)
            return await list_conversations(session, filters(rng), cursor, 50)

        return run

    def searching(query: Callable[[random.Random], str], as_manager: bool) -> Operation:
        async def run(session: Any, rng: random.Random) -> object:
            viewer = Viewer(manager_id=rng.choice(managers)) if as_manager else admin
            return await search(session, viewer, query(rng), None, 50)

        return run

    async def open_conversation(session: Any, rng: random.Random) -> object:
        conversation_id = rng.randint(1, total)
        await get_conversation(session, conversation_id)
        return await list_messages(session, conversation_id, None, 100)

    return [
        ("baseline: primary-key lookup", pk),
        ("list: all, first page", view(lambda rng: ConversationFilters(), False)),
        ("list: all, deep page", view(lambda rng: ConversationFilters(), True)),
        ("list: unassigned", view(lambda rng: ConversationFilters(unassigned=True), False)),
        (
            "list: one manager's",
            view(lambda rng: ConversationFilters(assignee_id=rng.choice(managers)), False),
        ),
        ("list: open", view(lambda rng: ConversationFilters(statuses=("open",)), False)),
        (
            "list: one channel's, open",
            view(
                lambda rng: ConversationFilters(channel=rng.choice(channels), statuses=("open",)),
                False,
            ),
        ),
        ("search: common word (admin)", searching(lambda rng: "доставки", False)),
        ("search: common word (manager)", searching(lambda rng: "доставки", True)),
        ("search: rare word", searching(lambda rng: RARE_WORD + "и", False)),
        ("search: two words", searching(lambda rng: "счета оплату", False)),
        ("search: name fragment", searching(lambda rng: rng.choice(SURNAMES)[:5], False)),
        (
            "search: email",
            searching(lambda rng: f"client{rng.randint(0, total // 2 - 1)}@example.ru", False),
        ),
        ("open a conversation", open_conversation),
    ]


async def queries_per_page(db: Database, data: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Statements a page issues with 10 and with 200 rows, per kind of page."""
    admin = Viewer(manager_id=None, is_admin=True)
    found: dict[str, tuple[int, int]] = {}
    kinds: dict[str, Callable[[Any, int], Awaitable[object]]] = {
        "list": lambda session, n: list_conversations(session, ConversationFilters(), None, n),
        "search": lambda session, n: search(session, admin, "доставки", None, n),
        "messages": lambda session, n: list_messages(session, 1, None, n),
    }
    for name, run in kinds.items():
        counts = []
        for size in (10, 200):
            async with db.read() as session:
                with counting(db) as statements:
                    await run(session, size)
            counts.append(len(statements))
        found[name] = (counts[0], counts[1])
    return found


async def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    await upgrade(url)
    db = Database(url, pool_size=4)
    try:
        started = time.perf_counter()
        kept = await filled(db, args.conversations, args.messages) if args.keep else None
        if kept is None:
            data = await fill(db, args.conversations, args.messages)
        else:
            await analyse(db)
            data = {**kept, "reused": True}
        data["fill_s"] = time.perf_counter() - started
        figures: dict[str, list[float]] = {}
        for n, (name, operation) in enumerate(operations(data)):
            await timed(db, operation, 5, seed=1000 + n)  # warm the caches
            figures[name] = await timed(db, operation, args.runs, seed=n)
        data["figures"] = figures
        data["queries"] = await queries_per_page(db, data)
    finally:
        await db.dispose()
    return data


def report(backend: str, data: dict[str, Any]) -> bool:
    how = "kept database reused, analysed" if data.get("reused") else "filled"
    print(
        f"inbox on {backend}: {data['conversations']} conversations, {data['messages']} messages, "
        f"{data['contacts']} contacts ({how} in {data['fill_s']:.0f} s)"
    )
    figures = data["figures"]
    base = _p(figures["baseline: primary-key lookup"], 0.95)
    print(f"  {'':34s} {'p50 ms':>8s} {'p95 ms':>8s} {'p95/base':>9s}")
    met = True
    for name, times in figures.items():
        p95 = _p(times, 0.95)
        print(f"  {name:34s} {_p(times, 0.5):8.2f} {p95:8.2f} {p95 / base:9.1f}")
        if not name.startswith("baseline"):
            met = met and p95 <= TARGET_P95_MS
    for name, (small, large) in data["queries"].items():
        fixed = "fixed" if small == large else "GROWS WITH THE PAGE"
        print(f"  queries per {name} page: {small} for 10 rows, {large} for 200 rows ({fixed})")
        met = met and small == large
    worst = max(_p(t, 0.95) for n, t in figures.items() if not n.startswith("baseline"))
    print(
        f"verdict ({backend}): worst p95 {worst:.1f} ms (<= {TARGET_P95_MS:.0f}) "
        f"{'met' if met else 'MISSED'}; mean p95 "
        f"{statistics.mean(_p(t, 0.95) for t in figures.values()):.1f} ms"
    )
    return met


def _kept_name(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9_]{1,40}", value):
        raise argparse.ArgumentTypeError("a name of lower-case letters, digits and _")
    return value


def _kept_postgres(args: argparse.Namespace) -> str:
    """The URL of the kept PostgreSQL database, created when missing."""
    import asyncpg

    name = f"omnihub_bench_{args.keep}"

    async def create() -> None:
        conn = await asyncpg.connect(args.pg_url, timeout=5)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    try:
        asyncio.run(create())
    except Exception as exc:
        raise HarnessError(f"cannot create database {name}: {exc}") from exc
    parts = urlsplit(args.pg_url)
    return urlunsplit(("postgresql+asyncpg", parts.netloc, "/" + name, parts.query, ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--keep",
        metavar="NAME",
        type=_kept_name,
        help="keep the filled databases under NAME and reuse them in later runs",
    )
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    try:
        if "sqlite" in backends:
            if args.keep:
                path = Path(tempfile.gettempdir()) / f"omnihub-bench-inbox-{args.keep}.db"
                report("sqlite", asyncio.run(measure(f"sqlite+aiosqlite:///{path}", args)))
            else:
                with tempfile.TemporaryDirectory(prefix="omnihub-bench-inbox-") as tmp:
                    url = f"sqlite+aiosqlite:///{Path(tmp) / 'inbox.db'}"
                    report("sqlite", asyncio.run(measure(url, args)))
        if "postgresql" in backends:
            why = postgres_unreachable(args.pg_url)
            if why is not None:
                print(f"inbox on postgresql skipped: PostgreSQL unreachable ({why})")
            elif args.keep:
                report("postgresql", asyncio.run(measure(_kept_postgres(args), args)))
            else:
                with postgres_database(args.pg_url) as url:
                    report("postgresql", asyncio.run(measure(url, args)))
    except HarnessError as exc:
        print(f"inbox benchmark failed: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
