"""The IMAP poller: every active mailbox is watched, its new mail taken in exactly once.

One poller per mailbox across all processes (a lease in `email_mailbox_state`).
The UID checkpoint moves only after the messages up to it are committed; a
crash re-reads a few messages and idempotency drops the duplicates. A changed
UIDVALIDITY rescans the folder the same way. After the commit each message is
marked seen or moved (never deleted). Connection failures back off and retry;
failed logins show as the channel's status (`auth_failed`), not as a crash loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from dataclasses import dataclass
from datetime import timedelta

from channels.base import HubContext
from channels.email.config import config_of, secrets_of
from channels.email.imap import (
    ImapAuthFailed,
    ImapSession,
    ImapUnavailable,
    MailboxSettings,
    open_imap,
)
from channels.email.service import EmailIntake, Mailbox
from channels.supervision import ChannelPollers, Poller
from storage.crypto import SecretBox, SecretsUnreadable
from storage.email_repository import EmailRepository
from storage.models import Channel, ChannelKind
from storage.repositories import ChannelRepository
from storage.types import utcnow

log = logging.getLogger(__name__)

# IDLE is renewed at least this often (RFC 2177 asks for less than 29 minutes).
IDLE_SECONDS = 60.0


class ChannelStatus:
    OK = "ok"
    AUTH_FAILED = "auth_failed"
    UNREACHABLE = "unreachable"
    MISCONFIGURED = "misconfigured"


@dataclass
class PollerOptions:
    min_backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60.0
    auth_backoff_seconds: float = 300.0
    lease_seconds: float = 180.0
    idle_seconds: float = IDLE_SECONDS
    refresh_seconds: float = 30.0


class MailboxPoller:
    """Watches one mailbox until stopped."""

    def __init__(
        self,
        context: HubContext,
        intake: EmailIntake,
        channel_id: int,
        options: PollerOptions | None = None,
        name: str | None = None,
    ) -> None:
        self.context = context
        self.intake = intake
        self.channel_id = channel_id
        self.options = options or PollerOptions()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.box = SecretBox(context.secret)
        self.failures = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                delay = await self._connect_and_watch(stop)
            except Exception as exc:  # the database went away, a bug: log, back off, go on
                log.exception("poller of channel %s failed", self.channel_id)
                delay = await self._unreachable(exc)
            if delay:
                await _sleep(stop, delay)
        async with self.context.db.transaction() as session:
            await EmailRepository(session).drop_lease(self.channel_id, self.name)

    async def _connect_and_watch(self, stop: asyncio.Event) -> float:
        """One connection's life; returns how long to wait before the next."""
        loaded = await self._load()
        if loaded is None:
            return self.options.auth_backoff_seconds
        mailbox, settings = loaded
        if not await self._lease(mailbox):
            return self.options.lease_seconds / 3
        try:
            session = await open_imap(settings)
        except ImapAuthFailed as exc:
            await self._status(ChannelStatus.AUTH_FAILED, f"login refused: {exc}")
            return self.options.auth_backoff_seconds
        except ImapUnavailable as exc:
            return await self._unreachable(exc)
        try:
            self.failures = 0
            await self._status(ChannelStatus.OK, None)
            while not stop.is_set():
                await self.sync(session, mailbox)
                if not await self._lease(mailbox):
                    return 0
                await self._wait_for_mail(session, mailbox, stop)
            return 0
        except ImapUnavailable as exc:
            return await self._unreachable(exc)
        finally:
            await session.close()

    async def sync(self, session: ImapSession, mailbox: Mailbox) -> int:
        """Take in everything after the checkpoint; returns how many messages were read."""
        config = mailbox.config.imap
        async with self.context.db.read() as db_session:
            state = await EmailRepository(db_session).mailbox_state(self.channel_id)
            last_uid = 0
            if state is not None and state.uidvalidity == session.uidvalidity:
                last_uid = state.last_uid
            elif state is not None and state.uidvalidity is not None:
                log.warning(
                    "mailbox %s: UIDVALIDITY changed (%s -> %s), rescanning",
                    mailbox.key,
                    state.uidvalidity,
                    session.uidvalidity,
                )
        uids = await session.search_uids_after(last_uid)
        read = 0
        for start in range(0, len(uids), config.batch_size):
            batch = uids[start : start + config.batch_size]
            fetched = await session.fetch(batch)
            taken = await self.intake.take_batch(mailbox, fetched, session.uidvalidity)
            repeats = sum(1 for outcome in taken if outcome.outcome == "duplicate")
            done = [uid for uid, _ in fetched]
            read += len(fetched)
            now = utcnow()
            async with self.context.db.transaction() as db_session:
                await EmailRepository(db_session).save_checkpoint(
                    self.channel_id, config.folder, session.uidvalidity, max(batch), now, repeats
                )
                await ChannelRepository(db_session).set_status(
                    self.channel_id, ChannelStatus.OK, None, now
                )
            if done and config.after_fetch == "seen":
                await session.mark_seen(done)
            elif done and config.after_fetch == "move":
                await session.move(done, config.move_to)
        if not uids:
            async with self.context.db.transaction() as db_session:
                await EmailRepository(db_session).save_checkpoint(
                    self.channel_id, config.folder, session.uidvalidity, last_uid, utcnow()
                )
        return read

    async def _wait_for_mail(
        self, session: ImapSession, mailbox: Mailbox, stop: asyncio.Event
    ) -> None:
        config = mailbox.config.imap
        if config.idle and session.has_idle:
            waiter = asyncio.ensure_future(session.idle_wait(self.options.idle_seconds))
            stopper = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopper.cancel()
            if not waiter.done():
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError, ImapUnavailable):
                    await waiter
                return
            waiter.result()  # an ImapUnavailable surfaces here
        else:
            await _sleep(stop, config.poll_seconds)
            if not stop.is_set():
                await session.noop()

    async def _load(self) -> tuple[Mailbox, MailboxSettings] | None:
        async with self.context.db.read() as session:
            channel = await ChannelRepository(session).get(self.channel_id)
        if channel is None or not channel.is_active:
            return None
        try:
            config = config_of(channel)
            secrets = secrets_of(channel, self.box)
        except (SecretsUnreadable, ValueError) as exc:
            await self._status(ChannelStatus.MISCONFIGURED, str(exc))
            return None
        settings = MailboxSettings(
            host=config.imap.host,
            port=config.imap.port,
            security=config.imap.security,
            user=config.imap.user,
            password=secrets.imap_password,
            folder=config.imap.folder,
            timeout=config.imap.timeout_seconds,
        )
        return Mailbox(channel.id, channel.key, config), settings

    async def _lease(self, mailbox: Mailbox) -> bool:
        now = utcnow()
        async with self.context.db.transaction() as session:
            return await EmailRepository(session).take_lease(
                self.channel_id,
                mailbox.config.imap.folder,
                self.name,
                now,
                now + timedelta(seconds=self.options.lease_seconds),
            )

    async def _unreachable(self, exc: Exception) -> float:
        self.failures += 1
        await self._status(ChannelStatus.UNREACHABLE, str(exc) or type(exc).__name__)
        delay = self.options.min_backoff_seconds * 2 ** min(self.failures - 1, 10)
        return min(delay, self.options.max_backoff_seconds) * random.uniform(0.8, 1.2)

    async def _status(self, status: str, error: str | None) -> None:
        async with self.context.db.transaction() as session:
            await ChannelRepository(session).set_status(self.channel_id, status, error)


class EmailPollers(ChannelPollers):
    """A poller for every active mailbox, started and stopped as mailboxes change."""

    kind = ChannelKind.EMAIL

    def __init__(
        self, context: HubContext, intake: EmailIntake, options: PollerOptions | None = None
    ) -> None:
        self.options = options or PollerOptions()
        super().__init__(context, self.options.refresh_seconds)
        self.intake = intake

    def wants_poller(self, channel: Channel) -> bool:
        return channel.is_active

    def poller(self, channel_id: int) -> Poller:
        return MailboxPoller(self.context, self.intake, channel_id, self.options).run


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
