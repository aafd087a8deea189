"""The workers' maintenance step: on a timer, delete rows past their retention."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from hub.settings import Settings
from storage.db import Database
from storage.retention import Retention, prune
from storage.types import utcnow

log = logging.getLogger(__name__)


def retention_of(settings: Settings) -> Retention:
    """The retention periods the settings give (OMNIHUB_RETENTION_*_DAYS)."""
    return Retention(
        telegram_updates=timedelta(days=settings.retention_telegram_updates_days),
        sessions=timedelta(days=settings.retention_sessions_days),
        outbox_done=timedelta(days=settings.retention_outbox_days),
    )


async def prune_once(db: Database, settings: Settings) -> dict[str, int]:
    """One pass over every table with a retention; the rows deleted per table."""
    counts = await prune(db, retention_of(settings), utcnow())
    if any(counts.values()):
        log.info("pruned rows past retention: %s", counts)
    return counts


class Maintenance:
    """Prunes every `prune_interval_seconds`, the first time right after start-up.

    Every worker process runs it; two passes at once only delete the same rows once.
    """

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    async def run(self, stop: asyncio.Event) -> None:
        interval = self.settings.prune_interval_seconds
        if interval <= 0:
            return
        while not stop.is_set():
            try:
                await prune_once(self.db, self.settings)
            except Exception:  # the database went away, a bug: log, try again next time
                log.exception("pruning rows past retention failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
