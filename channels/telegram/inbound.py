"""Clients' Telegram messages into intake: text, captions, media (through getFile into blob
storage), stickers, locations and shared contacts; edits update the stored message.

A message is keyed `tg:{chat_id}:{message_id}` within its bot channel, so however often
Telegram delivers it (webhook retries, a poller restarted), it is stored once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import Message

from channels.base import HubContext, ingest_committed
from channels.telegram.bots import BotChannel
from intake.edits import record_edit
from intake.identities import normalize_phone
from intake.schemas import AttachmentIn, IdentityIn, InboundMessage, IngestResult, UpdateHandled
from storage.blobs import BlobTooLarge
from storage.errors import InvalidInput
from storage.models import ChannelKind, IdentityKind

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT = 60


@dataclass(frozen=True, slots=True)
class MediaFile:
    kind: str
    file_id: str
    size: int | None
    filename: str
    content_type: str


@dataclass(slots=True)
class Downloaded:
    attachments: list[AttachmentIn] = field(default_factory=list)
    # Files that could not be stored, with the reason (too large, not served).
    problems: list[dict[str, Any]] = field(default_factory=list)


def external_id(chat_id: int, message_id: int) -> str:
    return f"tg:{chat_id}:{message_id}"


def thread_key(chat_id: int) -> str:
    return f"tg:{chat_id}"


def kind_of(message: Message) -> str:
    for kind in (
        "text",
        "photo",
        "animation",
        "document",
        "voice",
        "video",
        "video_note",
        "audio",
        "sticker",
        "venue",
        "location",
        "contact",
    ):
        if getattr(message, kind, None):
            return kind
    return "other"


def media_of(message: Message) -> list[MediaFile]:
    """The files a message carries (the largest size of a photo)."""
    mid = message.message_id
    files: list[MediaFile] = []
    if message.photo:
        largest = message.photo[-1]
        files.append(
            MediaFile("photo", largest.file_id, largest.file_size, f"photo_{mid}.jpg", "image/jpeg")
        )
    if message.animation:
        a = message.animation
        files.append(
            MediaFile(
                "animation",
                a.file_id,
                a.file_size,
                a.file_name or f"animation_{mid}.mp4",
                a.mime_type or "video/mp4",
            )
        )
    elif message.document:
        d = message.document
        files.append(
            MediaFile(
                "document",
                d.file_id,
                d.file_size,
                d.file_name or f"document_{mid}",
                d.mime_type or "application/octet-stream",
            )
        )
    if message.voice:
        v = message.voice
        files.append(
            MediaFile(
                "voice", v.file_id, v.file_size, f"voice_{mid}.ogg", v.mime_type or "audio/ogg"
            )
        )
    if message.video:
        v2 = message.video
        files.append(
            MediaFile(
                "video",
                v2.file_id,
                v2.file_size,
                v2.file_name or f"video_{mid}.mp4",
                v2.mime_type or "video/mp4",
            )
        )
    if message.video_note:
        n = message.video_note
        files.append(
            MediaFile("video_note", n.file_id, n.file_size, f"video_note_{mid}.mp4", "video/mp4")
        )
    if message.audio:
        au = message.audio
        files.append(
            MediaFile(
                "audio",
                au.file_id,
                au.file_size,
                au.file_name or f"audio_{mid}.mp3",
                au.mime_type or "audio/mpeg",
            )
        )
    return files


async def download(
    context: HubContext, bot: Bot, files: list[MediaFile], max_bytes: int
) -> Downloaded:
    """Each file through getFile into blob storage; what cannot be had is noted, not raised."""
    result = Downloaded()
    for media in files:
        problem: dict[str, Any] = {
            "kind": media.kind,
            "file_id": media.file_id,
            "filename": media.filename,
        }
        if media.size is not None and media.size > max_bytes:
            result.problems.append({**problem, "reason": "too_large", "size": media.size})
            continue
        try:
            found = await bot.get_file(media.file_id)
            if found.file_size is not None and found.file_size > max_bytes:
                result.problems.append({**problem, "reason": "too_large", "size": found.file_size})
                continue
            if not found.file_path:
                result.problems.append({**problem, "reason": "no_file_path"})
                continue
            url = bot.session.api.file_url(bot.token, found.file_path)
            chunks = bot.session.stream_content(url=url, timeout=DOWNLOAD_TIMEOUT)
            ref = await context.blobs.put_stream(chunks, media.content_type, max_bytes)
        except BlobTooLarge:
            result.problems.append({**problem, "reason": "too_large"})
            continue
        except (TelegramAPIError, aiohttp.ClientError, TimeoutError) as exc:
            log.info("telegram file %s not downloaded: %s", media.file_id, exc)
            result.problems.append({**problem, "reason": f"{type(exc).__name__}: {exc}"[:300]})
            continue
        result.attachments.append(
            AttachmentIn(
                filename=media.filename[:255],
                content_type=ref.content_type,
                size=ref.size,
                sha256=ref.sha256,
            )
        )
    return result


def _text(message: Message) -> str:
    text = message.text or message.caption or ""
    if message.sticker and not text:
        text = message.sticker.emoji or ""
    if message.venue:
        v = message.venue
        text = f"{v.title}\n{v.address}\ngeo:{v.location.latitude},{v.location.longitude}"
    elif message.location:
        text = f"geo:{message.location.latitude},{message.location.longitude}"
    if message.contact:
        c = message.contact
        name = " ".join(part for part in (c.first_name, c.last_name) if part)
        text = f"{name}: {c.phone_number}".strip(": ")
    return text.replace("\x00", "")


def own_phone(message: Message, region: str) -> str | None:
    """The phone a client shared as their own (not somebody else's card), normalised."""
    contact = message.contact
    if contact is None or message.from_user is None or contact.user_id != message.from_user.id:
        return None
    try:
        return normalize_phone(contact.phone_number, region)
    except InvalidInput:
        return None


def build_inbound(
    channel: BotChannel,
    message: Message,
    *,
    update_id: int | None,
    downloaded: Downloaded,
    region: str,
) -> InboundMessage | None:
    """The InboundMessage of a private chat's message; None for what the hub does not take."""
    user = message.from_user
    if user is None or user.is_bot or message.chat.type != "private":
        return None
    identities = [IdentityIn(IdentityKind.TELEGRAM, str(user.id))]
    phone = own_phone(message, region)
    if phone:
        identities.append(IdentityIn(IdentityKind.PHONE, phone))
    telegram: dict[str, Any] = {
        "chat_id": message.chat.id,
        "message_id": message.message_id,
        "user_id": user.id,
        "kind": kind_of(message),
        "date": message.date.isoformat(),
    }
    if user.username:
        telegram["username"] = user.username
    if update_id is not None:
        telegram["update_id"] = update_id
    if message.reply_to_message is not None:
        telegram["reply_to"] = message.reply_to_message.message_id
    # Bot API 7 calls it forward_origin; older payloads say forward_date.
    if message.forward_origin is not None or "forward_date" in (message.model_extra or {}):
        telegram["forwarded"] = True
    if message.location is not None:
        telegram["location"] = {
            "latitude": message.location.latitude,
            "longitude": message.location.longitude,
        }
    if message.sticker is not None:
        telegram["placeholder"] = "sticker"
        telegram["sticker"] = {"emoji": message.sticker.emoji, "set_name": message.sticker.set_name}
    if message.contact is not None:
        telegram["contact"] = {
            "phone": message.contact.phone_number,
            "own": phone is not None,
        }
    if downloaded.problems:
        telegram["files_not_stored"] = downloaded.problems
    name = " ".join(part for part in (user.first_name, user.last_name) if part) or user.username
    return InboundMessage(
        channel_id=channel.id,
        channel_kind=ChannelKind.TELEGRAM,
        external_id=external_id(message.chat.id, message.message_id),
        identities=identities,
        text=_text(message),
        contact_name=name,
        contact_language=user.language_code,
        thread_key=thread_key(message.chat.id),
        attachments=downloaded.attachments,
        meta={"telegram": telegram},
        received_at=message.date,
    )


class TelegramIntake:
    """Takes clients' messages in: download, build, ingest (committed before it returns)."""

    def __init__(self, context: HubContext) -> None:
        self.context = context

    async def take(
        self,
        channel: BotChannel,
        bot: Bot,
        message: Message,
        update_id: int | None,
        *,
        unless_handled: bool = False,
    ) -> IngestResult | None:
        """The message stored (committed); None if the hub does not take it, or, with
        `unless_handled`, if a bot dialogue handled its update already."""
        inbound = await self.inbound(channel, bot, message, update_id)
        if inbound is None:
            return None
        if unless_handled:
            inbound.unless_update_handled = update_id
        try:
            return await ingest_committed(self.context, inbound)
        except UpdateHandled:
            return None

    async def inbound(
        self, channel: BotChannel, bot: Bot, message: Message, update_id: int | None
    ) -> InboundMessage | None:
        """The message with its files downloaded (no transaction is held meanwhile)."""
        if message.chat.type != "private" or message.from_user is None:
            return None
        downloaded = await download(
            self.context, bot, media_of(message), channel.config.max_file_bytes
        )
        return build_inbound(
            channel,
            message,
            update_id=update_id,
            downloaded=downloaded,
            region=self.context.intake.default_region,
        )

    async def take_edit(
        self, channel: BotChannel, bot: Bot, message: Message, update_id: int | None
    ) -> None:
        """The stored message gets the new text (its old one kept). An edit of a message the
        hub does not have (one a bot dialogue consumed, say) is left alone."""
        if message.chat.type != "private" or message.from_user is None:
            return
        edited = message.edit_date or message.date
        # aiogram parses Telegram's Unix times into aware datetimes; an int is one unparsed.
        edited_at = edited if isinstance(edited, datetime) else datetime.fromtimestamp(edited, UTC)
        async with self.context.db.transaction() as session:
            result = await record_edit(
                session,
                channel.id,
                external_id(message.chat.id, message.message_id),
                text=_text(message),
                edited_at=edited_at,
            )
        if result.message_id is None:
            log.debug("edit of unknown telegram message %s ignored", message.message_id)
