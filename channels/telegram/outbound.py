"""Managers' replies (and the hub's notices) out through the Bot API.

Text goes by sendMessage, split at 4096 characters on paragraph, line or word
boundaries; files by sendPhoto (pictures Telegram can show) or sendDocument. Each
part waits for the per-chat and per-bot limits. A message in several parts records
how many went out before a failure, so a retry sends only the rest. Telegram's 429
is a temporary failure retried after its retry_after; 403 (the user blocked the
bot) fails the message and marks the user's identity unreachable.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.methods import SendDocument, SendMessage, SendPhoto, TelegramMethod
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import HubContext
from channels.delivery import Delivered, PermanentFailure, TemporaryFailure
from channels.telegram.bots import ChannelMisconfigured, bot_channel
from storage.db import Database
from storage.models import Message
from storage.repositories import ChannelRepository, attachments_of
from storage.telegram_repository import TelegramRepository
from storage.types import utcnow

log = logging.getLogger(__name__)

MAX_TEXT = 4096
MAX_PHOTO_BYTES = 10 * 1024 * 1024
PHOTO_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
RATE_PREFIX = "rate"


def rating_keyboard(claim_id: int) -> InlineKeyboardMarkup:
    """Five buttons, 1 to 5; the client bot takes `rate:{claim_id}:{n}`."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text=str(n), callback_data=f"{RATE_PREFIX}:{claim_id}:{n}")
                for n in range(1, 6)
            ]
        ]
    )


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Parts of at most `limit` characters, cut after a paragraph, a line or a word."""
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = -1
        for separator in ("\n\n", "\n", " "):
            at = window.rfind(separator)
            if at > limit // 2:
                cut = at + len(separator)
                break
        if cut <= 0:
            cut = limit
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n ")
    if rest.strip() or not parts:
        parts.append(rest)
    return parts


class TelegramSender:
    def __init__(self, context: HubContext) -> None:
        self.context = context
        self.registry = context.bots

    async def send(self, db: Database, message_id: int) -> Delivered:
        async with db.read() as session:
            message = await session.get(Message, message_id)
            if message is None:
                raise PermanentFailure(f"message {message_id} is gone")
            channel_row = await ChannelRepository(session).get(message.channel_id)
            assert channel_row is not None
            repo = TelegramRepository(session)
            chat_id = await repo.chat_of_conversation(message.conversation_id)
            files = [
                (f.filename, f.content_type, f.size, f.sha256)
                for f in await attachments_of(session, message_id)
            ]
            text, meta = message.text, dict(message.meta)
        if chat_id is None:
            raise PermanentFailure("the client has no Telegram chat with this bot")
        try:
            channel = bot_channel(channel_row, self.registry.box)
        except ChannelMisconfigured as exc:
            raise PermanentFailure(str(exc.detail)) from exc
        bot = self.registry.bot(channel)
        progress: dict[str, Any] = dict(meta.get("telegram") or {})
        done = int(progress.get("parts_sent", 0))
        sent_ids: list[int] = list(progress.get("message_ids", []))
        markup = rating_keyboard(int(meta["claim_id"])) if meta.get("ask_rating") else None
        texts = self._parts(chat_id, text, markup)
        total = len(texts) + len(files)
        for index in range(done, total):
            # A file is read from the blob store only when its turn comes: not at all
            # when a retry finds it already sent.
            method = (
                texts[index]
                if index < len(texts)
                else await self._file(chat_id, *files[index - len(texts)])
            )
            await self.registry.limiter.wait(channel.bot_id, chat_id)
            try:
                result = await bot(method)
            except Exception as exc:
                if index > done:
                    await self._save(db, message_id, index, sent_ids)
                raise await self._failure(db, channel.id, chat_id, exc) from exc
            sent_id = getattr(result, "message_id", None)
            if isinstance(sent_id, int):
                sent_ids.append(sent_id)
        return Delivered(
            detail=f"{total} part(s)",
            meta={"chat_id": chat_id, "message_ids": sent_ids, "parts_sent": total},
        )

    async def record(self, session: AsyncSession, message: Message, delivered: Delivered) -> None:
        telegram = {**message.meta.get("telegram", {}), **delivered.meta}
        message.meta = {**message.meta, "telegram": telegram}
        # It went through: whoever had blocked the bot has unblocked it.
        await TelegramRepository(session).mark_unreachable(str(delivered.meta["chat_id"]), None)

    def _parts(
        self, chat_id: str, text: str, markup: InlineKeyboardMarkup | None
    ) -> list[TelegramMethod[Any]]:
        if not text.strip():
            return []
        chunks = split_text(text)
        return [
            SendMessage(
                chat_id=chat_id,
                text=chunk,
                reply_markup=markup if i == len(chunks) - 1 else None,
            )
            for i, chunk in enumerate(chunks)
        ]

    async def _file(
        self, chat_id: str, filename: str, content_type: str, size: int, sha256: str
    ) -> TelegramMethod[Any]:
        data = await self.context.blobs.get(sha256)
        upload = BufferedInputFile(data, filename=filename)
        if content_type in PHOTO_TYPES and size <= MAX_PHOTO_BYTES:
            return SendPhoto(chat_id=chat_id, photo=upload)
        return SendDocument(chat_id=chat_id, document=upload)

    async def _save(self, db: Database, message_id: int, sent: int, ids: list[int]) -> None:
        async with db.transaction() as session:
            await TelegramRepository(session).save_progress(
                message_id, {"parts_sent": sent, "message_ids": ids}
            )

    async def _failure(
        self, db: Database, channel_id: int, chat_id: str, exc: Exception
    ) -> Exception:
        if isinstance(exc, TelegramRetryAfter):
            return TemporaryFailure(str(exc), retry_after=float(exc.retry_after))
        if isinstance(exc, TelegramForbiddenError):
            async with db.transaction() as session:
                await TelegramRepository(session).mark_unreachable(chat_id, utcnow())
            return PermanentFailure(f"the user cannot be reached: {exc.message}")
        if isinstance(exc, TelegramUnauthorizedError):
            async with db.transaction() as session:
                await ChannelRepository(session).set_status(
                    channel_id, "auth_failed", f"the bot token was refused: {exc.message}"
                )
            return TemporaryFailure(f"the bot token was refused: {exc.message}")
        if isinstance(exc, TelegramEntityTooLarge | TelegramBadRequest | TelegramNotFound):
            return PermanentFailure(str(exc))
        if isinstance(exc, TelegramAPIError | aiohttp.ClientError | TimeoutError):
            return TemporaryFailure(f"{type(exc).__name__}: {exc}")
        return exc
