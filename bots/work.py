"""One update, one unit of work: the bot's database writes, its FSM state (in the embedded
storage) and the record that the update was handled commit together; its replies go out
only after that commit.

A handler asks `turn.session()` for the transaction (opened on first use, after any
slow work such as downloading a file, so SQLite's one writer is not held across it)
and `turn.say(method)` to reply. The update's record is written first: a second
delivery of the same update fails there and is dropped whole, replies included.

An update whose message intake takes (bots.intake_router) gets no record: the message's
own key keeps its ingest idempotent. The two kinds of proof meet so that an update is
handled once whatever route a later delivery takes: intake, in the transaction that
would store the message, asks whether the update has a record (a dialogue consumed
it; `InboundMessage.unless_update_handled`), and a dialogue, on writing the record,
asks whether intake already stored the update's message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError, TelegramRetryAfter
from aiogram.fsm.storage.base import BaseEventIsolation
from aiogram.methods import SendMessage, TelegramMethod
from aiogram.types import (
    ForceReply,
    InlineKeyboardMarkup,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    TelegramObject,
    Update,
    User,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import HubContext
from channels.telegram.bots import BotChannel
from channels.telegram.inbound import external_id
from channels.telegram.limits import SendLimiter
from intake.contacts import resolve_contact
from intake.i18n import lang_of, pick_language
from intake.identities import IdentityValue
from intake.ingest_repository import IntakeRepository
from storage.db import Database
from storage.models import Contact, IdentityKind
from storage.telegram_repository import TelegramRepository
from storage.types import utcnow

log = logging.getLogger(__name__)

ReplyMarkup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | ForceReply
CURRENT: ContextVar[UpdateWork | None] = ContextVar("omnihub_update_work", default=None)
MAX_RETRY_AFTER = 5.0


class Duplicate(Exception):
    """The update was handled before (its record exists)."""


class UpdateWork:
    def __init__(
        self, db: Database, channel_id: int, update_id: int, message_key: str | None = None
    ) -> None:
        self.db = db
        self.channel_id = channel_id
        self.update_id = update_id
        # The external id intake stores the update's message under, if it carries one.
        self.message_key = message_key
        self.replies: list[TelegramMethod[Any]] = []
        # Set when intake took the update's message: its external id makes it idempotent.
        self.ingested = False
        self.duplicate = False
        # Run after a successful commit (the FSM storage's cache learns the new step).
        self.after_commit: list[Callable[[], None]] = []
        self._transaction: AbstractAsyncContextManager[AsyncSession] | None = None
        self._session: AsyncSession | None = None

    @property
    def opened(self) -> bool:
        return self._session is not None

    async def session(self) -> AsyncSession:
        if self._session is None:
            transaction = self.db.transaction()
            session = await transaction.__aenter__()
            self._transaction, self._session = transaction, session
            try:
                await TelegramRepository(session).record_update(self.channel_id, self.update_id)
            except IntegrityError as exc:
                self.duplicate = True
                await self._close(exc)
                raise Duplicate(f"update {self.update_id} was handled before") from exc
            if self.message_key is not None and await IntakeRepository(session).find_message(
                self.channel_id, self.message_key
            ):
                self.duplicate = True
                error = Duplicate(f"update {self.update_id} was taken in before")
                await self._close(error)
                raise error
        return self._session

    def session_if_open(self) -> AsyncSession | None:
        return self._session

    async def commit(self) -> None:
        if self._session is None and not self.ingested:
            await self.session()  # only to record the update as handled
        await self._close(None)
        for callback in self.after_commit:
            callback()
        self.after_commit = []

    async def rollback(self, exc: BaseException) -> None:
        self.after_commit = []
        await self._close(exc)

    async def _close(self, exc: BaseException | None) -> None:
        transaction, self._transaction, self._session = self._transaction, None, None
        if transaction is not None:
            if exc is None:
                await transaction.__aexit__(None, None, None)
            else:
                await transaction.__aexit__(type(exc), exc, exc.__traceback__)


def current_work() -> UpdateWork | None:
    return CURRENT.get()


@dataclass
class Turn:
    """What a handler needs of the update it handles: the hub's context, the bot channel,
    the unit of work, the client and the client's language."""

    context: HubContext
    channel: BotChannel
    work: UpdateWork
    user: User | None
    _contact: Contact | None = field(default=None, repr=False)
    _lang: str | None = field(default=None, repr=False)

    async def session(self) -> AsyncSession:
        return await self.work.session()

    def say(self, method: TelegramMethod[Any]) -> None:
        self.work.replies.append(method)

    def send(self, chat_id: int, text: str, markup: ReplyMarkup | None = None) -> None:
        self.say(SendMessage(chat_id=chat_id, text=text, reply_markup=markup))

    async def contact(self) -> Contact:
        """The client's contact (created on first contact), keyed by the Telegram user id."""
        if self._contact is None:
            assert self.user is not None
            session = await self.session()
            user = self.user
            name = " ".join(p for p in (user.first_name, user.last_name) if p) or user.username
            resolution = await resolve_contact(
                session,
                [IdentityValue(IdentityKind.TELEGRAM, str(user.id))],
                name=name,
                language=lang_of(user.language_code, self.channel.config.language),
            )
            contact = resolution.contact
            if user.username and contact.attributes.get("telegram_username") != user.username:
                contact.attributes = {**contact.attributes, "telegram_username": user.username}
            self._contact = contact
        return self._contact

    async def lang(self) -> str:
        if self._lang is None:
            contact = await self.contact() if self.user is not None else None
            self._lang = pick_language(
                contact.language if contact else None,
                self.user.language_code if self.user else None,
                default=self.channel.config.language,
            )
        return self._lang

    async def set_lang(self, lang: str) -> None:
        contact = await self.contact()
        contact.language = lang
        self._lang = lang


class DispatcherBot:
    """An UpdateProcessor over an aiogram Dispatcher: each update is fed as one unit of
    work (its middleware commits, then sends the replies)."""

    def __init__(self, db: Database, dispatcher: Dispatcher, isolation: BaseEventIsolation) -> None:
        self.db = db
        self.dispatcher = dispatcher
        self._isolation = isolation

    async def process(self, channel: BotChannel, bot: Bot, update: Update) -> None:
        message = update.message
        key = external_id(message.chat.id, message.message_id) if message is not None else None
        work = UpdateWork(self.db, channel.id, update.update_id, key)
        await self.dispatcher.feed_update(bot, update, channel=channel, work=work)

    async def close(self) -> None:
        await self.dispatcher.storage.close()
        await self._isolation.close()


class WorkMiddleware(BaseMiddleware):
    """Runs inside the FSM's per-user lock: handle, commit, then send the replies, so two
    quick updates of one user (an album of photos) are handled one after the other."""

    def __init__(self, limiter: SendLimiter | None = None) -> None:
        self.limiter = limiter

    def prepare(self, data: dict[str, Any]) -> None:
        """Add what the bot's handlers take besides the update's `work` and `channel`."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        work: UpdateWork = data["work"]
        self.prepare(data)
        token = CURRENT.set(work)
        try:
            try:
                result = await handler(event, data)
            except Duplicate:
                return None
            except BaseException as exc:
                await work.rollback(exc)
                raise
            try:
                await work.commit()
            except Duplicate:
                return None
        finally:
            CURRENT.reset(token)
        await send_replies(data["bot"], data["channel"], work, self.limiter)
        return result


class UnitOfWorkMiddleware(WorkMiddleware):
    """The client bot's: its handlers get the client's `turn`."""

    def __init__(self, context: HubContext, limiter: SendLimiter | None = None) -> None:
        super().__init__(limiter)
        self.context = context

    def prepare(self, data: dict[str, Any]) -> None:
        data["turn"] = Turn(
            context=self.context,
            channel=data["channel"],
            work=data["work"],
            user=data.get("event_from_user"),
        )


async def send_replies(
    bot: Bot, channel: BotChannel, work: UpdateWork, limiter: SendLimiter | None = None
) -> None:
    """The bot's answers to one update, in order. They are the conversation's interface,
    not records: one that cannot be sent is logged and the rest go on."""
    for method in work.replies:
        chat_id = getattr(method, "chat_id", None)
        for attempt in range(2):
            if limiter is not None and chat_id is not None:
                await limiter.wait(channel.bot_id, chat_id, per_chat=False)
            try:
                await bot(method)
            except TelegramRetryAfter as exc:
                if attempt == 0 and exc.retry_after <= MAX_RETRY_AFTER:
                    await asyncio.sleep(exc.retry_after)
                    continue
                log.warning("bot reply dropped after 429: %s", exc)
            except TelegramForbiddenError:
                if chat_id is not None:  # a private chat's id is its user's
                    async with work.db.transaction() as session:
                        await TelegramRepository(session).mark_unreachable(str(chat_id), utcnow())
                return
            except TelegramAPIError as exc:
                log.warning("bot reply to chat %s failed: %s", chat_id, exc)
            break
