"""The hub's first answer to a new conversation: a greeting per channel, in and out of hours.

A client who writes for the first time hears at once that the request arrived and, out of
working hours, when the answer will come ("we'll answer tomorrow from 09:00"). One
mechanism serves every channel: on `conversation.opened` (which intake never emits for
automatic senders: machine mail, list mail, bots) the greeting is queued as an outbound
message of the conversation and delivered by the channel's sender like a manager's reply,
so it is stored with the conversation. Its external id `greeting:{conversation}` makes a
handler that runs again (outbox retries) find the first one instead of sending twice.
A web form has no sender: its thanks page shows the same text (`greeting_text`).
"""

from __future__ import annotations

import string
from collections.abc import Collection, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from intake.conversations import add_system_message
from intake.i18n import Catalogue, Lang, lang_of, pick_language
from intake.ingest_repository import IntakeRepository
from routing.calendar import WorkingHours, is_working, next_working_moment
from storage.events import ConversationOpened
from storage.models import Channel, ChannelKind, Contact, Conversation, Lead
from storage.outbox import BatchHandler, Handlers
from storage.types import utcnow

Variant = Literal["in_hours", "out_of_hours"]
Style = Literal["chat", "email", "form"]
PLACEHOLDERS = frozenset({"number", "subject", "opens"})
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# The hub's own texts: `greeting.{style}.{variant}`, `opens.*`.
CATALOGUE = Catalogue(Path(__file__).parent / "locale")


def _checked(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as exc:
        raise ValueError(f"not a valid text template: {exc}") from None
    unknown = names - PLACEHOLDERS
    if unknown:
        allowed = ", ".join("{" + n + "}" for n in sorted(PLACEHOLDERS))
        raise ValueError(f"unknown placeholders {sorted(unknown)}; use {allowed}")
    return value


class GreetingTexts(BaseModel):
    """A channel's own wording in one language; unset ones keep the hub's text.

    Placeholders: {number} (the request's number), {subject}, {opens} ("tomorrow from 09:00").
    """

    model_config = ConfigDict(extra="forbid")

    in_hours: str | None = Field(default=None, max_length=4000)
    out_of_hours: str | None = Field(default=None, max_length=4000)

    @field_validator("in_hours", "out_of_hours")
    @classmethod
    def _placeholders(cls, value: str | None) -> str | None:
        return _checked(value)


class GreetingConfig(BaseModel):
    """`greeting` in a channel's config: on/off, the company's working hours, own texts."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    # When somebody answers; None means around the clock (the in-hours text always).
    working_hours: WorkingHours | None = None
    ru: GreetingTexts = GreetingTexts()
    en: GreetingTexts = GreetingTexts()

    @field_validator("working_hours")
    @classmethod
    def _some_working_time(cls, hours: WorkingHours | None) -> WorkingHours | None:
        # Without any working time there is no "we'll answer from ..." to tell.
        if hours is not None and not any(hours.week.values()):
            raise ValueError("working_hours have no working time in the week")
        return hours


def opens_phrase(hours: WorkingHours, now: datetime, language: Lang) -> str:
    """When the next working time starts, in words of the company's zone ("завтра с 09:00")."""
    zone = ZoneInfo(hours.timezone)
    opens = next_working_moment(hours, now).astimezone(zone)
    days = (opens.date() - now.astimezone(zone).date()).days
    time = opens.strftime("%H:%M")
    if days == 0:
        return CATALOGUE.text(language, "opens.today", time=time)
    if days == 1:
        return CATALOGUE.text(language, "opens.tomorrow", time=time)
    if days < 7:
        day = CATALOGUE.text(language, f"opens.on_{WEEKDAYS[opens.weekday()]}")
        return CATALOGUE.text(language, "opens.day", day=day, time=time)
    return CATALOGUE.text(language, "opens.date", date=opens.strftime("%d.%m.%Y"), time=time)


def greeting_text(
    config: GreetingConfig,
    style: Style,
    language: str,
    now: datetime,
    *,
    number: int | None = None,
    subject: str | None = None,
) -> str:
    """The greeting for a moment: the out-of-hours variant names when the answer will come."""
    lang = lang_of(language)
    hours = config.working_hours
    working = hours is None or is_working(hours, now)
    variant: Variant = "in_hours" if working else "out_of_hours"
    own: GreetingTexts = getattr(config, lang)
    template = getattr(own, variant) or CATALOGUE.text(lang, f"greeting.{style}.{variant}")
    values: dict[str, Any] = {
        "number": number if number is not None else "",
        "subject": subject or CATALOGUE.text(lang, "greeting.no_subject"),
        "opens": "" if hours is None or working else opens_phrase(hours, now, lang),
    }
    return template.format(**values)


def greeting_config_of(channel: Channel) -> GreetingConfig:
    """The channel's greeting; a mailbox's older `acknowledge: true` turns it on."""
    config = channel.config or {}
    greeting = GreetingConfig.model_validate(config.get("greeting") or {})
    if config.get("acknowledge") is True and not greeting.enabled:
        greeting = greeting.model_copy(update={"enabled": True})
    return greeting


def greeting_key(conversation_id: int) -> str:
    return f"greeting:{conversation_id}"


async def greet(
    session: AsyncSession,
    conversation_id: int,
    deliverable: Collection[str],
    now: datetime,
) -> int | None:
    """Queue the greeting of a newly opened conversation; the message id, or None if none is due.

    None when the channel's greeting is off or its kind cannot send, when the conversation
    is a claim (the claim dialogue confirms it) or already answered, and when it was queued
    before (a retried event).
    """
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None or conversation.last_outbound_at is not None:
        return None
    channel = await session.get(Channel, conversation.channel_id)
    if channel is None or channel.kind not in deliverable:
        return None
    config = greeting_config_of(channel)
    if not config.enabled:
        return None
    repo = IntakeRepository(session)
    key = greeting_key(conversation_id)
    if await repo.find_message(channel.id, key) is not None:
        return None
    lead_id = await repo.lead_of_conversation(conversation_id)
    lead = await session.get(Lead, lead_id) if lead_id is not None else None
    if lead is None or lead.kind != "request":
        return None
    contact = await session.get(Contact, conversation.contact_id)
    language = pick_language(
        contact.language if contact else None, str((channel.config or {}).get("language") or "")
    )
    text = greeting_text(
        config,
        "email" if channel.kind == ChannelKind.EMAIL else "chat",
        language,
        now,
        number=lead.id,
        subject=conversation.subject,
    )
    message = await add_system_message(
        session,
        conversation_id,
        text=text,
        meta={"kind": "greeting", "automatic": True},
        external_id=key,
    )
    return message.id


def greeting_handlers(deliverable: Collection[str]) -> Handlers:
    """Outbox handlers: a new conversation gets its channel's greeting."""

    async def opened(session: AsyncSession, event: ConversationOpened, _event_id: int) -> None:
        await greet(session, event.conversation_id, deliverable, utcnow())

    async def opened_together(
        session: AsyncSession, events: Sequence[tuple[ConversationOpened, int]]
    ) -> None:
        # Most conversations come by channels that cannot send (forms, calls): one
        # statement finds those that might be greeted, and only they are looked at.
        ids = sorted({event.conversation_id for event, _id in events})
        candidates = set(
            await session.scalars(
                select(Conversation.id)
                .join(Channel, Channel.id == Conversation.channel_id)
                .where(
                    Conversation.id.in_(ids),
                    Conversation.last_outbound_at.is_(None),
                    Channel.kind.in_(sorted(deliverable)),
                )
            )
        )
        now = utcnow()
        for event, _id in events:
            if event.conversation_id in candidates:
                await greet(session, event.conversation_id, deliverable, now)

    return {ConversationOpened: [BatchHandler(opened, opened_together)]}
