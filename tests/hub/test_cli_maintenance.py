"""`omnihub maintenance prune`: one pass of the workers' retention, counts printed."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from storage.db import Database
from storage.models import OutboxEvent, OutboxStatus, TelegramUpdate
from storage.types import utcnow
from tests.factories import create_channel
from tests.hub.console import SECRET, Cli, query

DAY = timedelta(days=1)


async def _seed(data_dir: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{data_dir / 'omnihub.db'}")
    try:
        channel = await create_channel(db, kind="telegram")
        now = utcnow()
        async with db.transaction() as session:
            for update_id, age in ((1, 9 * DAY), (2, 8 * DAY), (3, 2 * DAY)):
                session.add(
                    TelegramUpdate(channel_id=channel.id, update_id=update_id, created_at=now - age)
                )
            for ago in (20 * DAY, DAY):
                session.add(
                    OutboxEvent(
                        topic="test.retention", status=OutboxStatus.DONE, processed_at=now - ago
                    )
                )
    finally:
        await db.dispose()


async def test_prune_once_prints_what_it_deleted(cli: Cli, data_dir: Path) -> None:
    await _seed(data_dir)
    env: dict[str, str | None] = {"OMNIHUB_SECRET_KEY": SECRET}

    done = await asyncio.to_thread(cli, "maintenance", "prune", env=env)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "telegram_updates\t2",
        "manager_sessions\t0",
        "outbox_events\t1",
        "manager_telegram_codes\t0",
    ]
    assert query(data_dir, "SELECT update_id FROM telegram_updates") == [(3,)]
    assert len(query(data_dir, "SELECT id FROM outbox_events WHERE topic = 'test.retention'")) == 1

    # The periods come from the settings: a shorter one takes the update of two days ago.
    shorter = await asyncio.to_thread(
        cli, "maintenance", "prune", env={**env, "OMNIHUB_RETENTION_TELEGRAM_UPDATES_DAYS": "1"}
    )
    assert shorter.returncode == 0, shorter.stderr
    assert "telegram_updates\t1" in shorter.stdout.splitlines()
    assert query(data_dir, "SELECT update_id FROM telegram_updates") == []
