"""Notifications to managers: new assignments, offers, forwards, SLA breaches, mentions
in colleagues' notes and snoozed conversations back.

Outbox handlers turn routing's events into `Notification`s (texts in Russian and
English; the manager's `language` picks) and hand them to every `Notifier`:

- `BusNotifier` publishes to `manager.{id}` on the event bus (the inbox UI listens);
- `EmailNotifier` (channels.email.notifier) mails managers who have `notify_by_email`
  (aiosmtplib) when the notifications' SMTP server is configured;
- `TelegramNotifier` (channels.telegram.notifier) writes by the managers' bot to managers
  who linked their Telegram.

`hub.worker` puts the channels' notifiers in the list.

A notifier that fails does not hold the others back: its notification is written
as a `notification.retry` event for that notifier alone, which the outbox retries
with backoff (and parks when it keeps failing).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from intake.i18n import Catalogue, Lang, lang_of
from storage.bus import EventBus
from storage.events import (
    ConversationAssigned,
    ConversationOffered,
    NoteMentioned,
    NotificationRetry,
    SlaBreached,
    SnoozeEnded,
)
from storage.models import Assignment, Contact, Conversation, Manager, Message, Queue
from storage.outbox import BatchHandler, Handlers, emit
from storage.types import utcnow

log = logging.getLogger(__name__)

RETRY_DELAY_SECONDS = 60


@dataclass(frozen=True)
class Notification:
    manager_id: int
    kind: str  # assigned, forwarded, offered, sla_breached, mentioned, snooze_ended
    conversation_id: int
    title_ru: str
    title_en: str
    data: dict[str, Any] = field(default_factory=dict)

    def title(self, language: str | None) -> str:
        return self.title_ru if _lang(language) == "ru" else self.title_en

    def body(self, language: str | None) -> str:
        """A short plain text: the title, and what routing knows of the conversation."""
        lang = _lang(language)
        lines = [self.title(language), ""]
        for key in ("contact", "subject", "queue", "explanation", "due_at", "note"):
            value = self.data.get(key)
            if value:
                lines.append(f"{CATALOGUE.text(lang, f'label.{key}')}: {value}")
        lines.append(f"{CATALOGUE.text(lang, 'label.conversation')}: #{self.conversation_id}")
        return "\n".join(lines) + "\n"


# Titles and labels of the notifications: `routing/locale/<lang>.po`.
CATALOGUE = Catalogue(Path(__file__).parent / "locale")


def _lang(language: str | None) -> Lang:
    # A manager without a language reads Russian; one of a language we lack, English.
    return lang_of(language or "ru", default="en")


def _titled(
    manager_id: int, kind: str, conversation_id: int, code: str, data: dict[str, Any]
) -> Notification:
    """A notification whose title is the message `code` in both languages."""
    values = {"conversation": conversation_id, "queue": data.get("queue") or ""}
    ru, en = (CATALOGUE.text(lang, code, **values) for lang in ("ru", "en"))
    return Notification(manager_id, kind, conversation_id, ru, en, data)


class Notifier(Protocol):
    async def send(self, manager: Manager, notification: Notification) -> None: ...


def notifier_name(notifier: Notifier) -> str:
    return str(getattr(notifier, "name", type(notifier).__name__))


class BusNotifier:
    """Publishes to `manager.{id}` for the manager's open inbox pages."""

    name = "bus"

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    async def send(self, manager: Manager, notification: Notification) -> None:
        await self.bus.publish(
            f"manager.{manager.id}",
            {
                "type": "notification",
                "kind": notification.kind,
                "conversation_id": notification.conversation_id,
                "title": notification.title(manager.language),
                "title_ru": notification.title_ru,
                "title_en": notification.title_en,
                "data": notification.data,
            },
        )


# -- texts -------------------------------------------------------------------------------


def assigned(
    manager_id: int, conversation_id: int, reason: str, data: dict[str, Any]
) -> Notification:
    if reason in ("forward", "sla"):
        return _titled(manager_id, "forwarded", conversation_id, "forwarded", data)
    if reason == "transfer":
        return _titled(manager_id, "assigned", conversation_id, "transferred", data)
    return _titled(manager_id, "assigned", conversation_id, "assigned", data)


def offered(manager_id: int, conversation_id: int, data: dict[str, Any]) -> Notification:
    return _titled(manager_id, "offered", conversation_id, "offered", data)


def breached(
    manager_id: int, conversation_id: int, kind: str, data: dict[str, Any]
) -> Notification:
    code = "breached.first_response" if kind == "first_response" else "breached.reply"
    return _titled(manager_id, "sla_breached", conversation_id, code, data)


def mentioned(
    manager_id: int, conversation_id: int, author: str, data: dict[str, Any]
) -> Notification:
    ru, en = (
        CATALOGUE.text(lang, "mentioned", author=author, conversation=conversation_id)
        for lang in ("ru", "en")
    )
    return Notification(manager_id, "mentioned", conversation_id, ru, en, data)


def snooze_ended(manager_id: int, conversation_id: int, data: dict[str, Any]) -> Notification:
    return _titled(manager_id, "snooze_ended", conversation_id, "snooze_ended", data)


NOTE_EXCERPT = 300


# -- handlers ----------------------------------------------------------------------------


async def _about(
    session: AsyncSession, conversation_id: int, queue_id: int | None
) -> dict[str, Any]:
    """What the texts say of the conversation: contact, subject, queue."""
    return (await _about_many(session, [(conversation_id, queue_id)]))[0]


async def _about_many(
    session: AsyncSession, wanted: Sequence[tuple[int, int | None]]
) -> list[dict[str, Any]]:
    """`_about` of each (conversation, queue or None for the conversation's own) in a
    query for the conversations and their contacts and one for the queues."""
    ids = sorted({conversation_id for conversation_id, _queue in wanted})
    rows = await session.execute(
        select(
            Conversation.id,
            Conversation.subject,
            Conversation.queue_id,
            Contact.id.is_not(None),
            Contact.name,
            Contact.company,
        )
        .outerjoin(Contact, Contact.id == Conversation.contact_id)
        .where(Conversation.id.in_(ids))
    )
    found = {row[0]: row for row in rows}
    abouts: list[dict[str, Any]] = []
    queue_of: list[int | None] = []
    for conversation_id, queue_id in wanted:
        data: dict[str, Any] = {}
        row = found.get(conversation_id)
        if row is not None:
            data["subject"] = row.subject
            if row[3]:
                data["contact"] = row.name or row.company
            queue_id = queue_id if queue_id is not None else row.queue_id
        abouts.append(data)
        queue_of.append(queue_id)
    queue_ids = sorted({q for q in queue_of if q is not None})
    names: dict[int, str] = {}
    if queue_ids:
        names = {
            int(q): str(name)
            for q, name in await session.execute(
                select(Queue.id, Queue.name).where(Queue.id.in_(queue_ids))
            )
        }
    for data, queue_id in zip(abouts, queue_of, strict=True):
        if queue_id is not None and queue_id in names:
            data["queue"] = names[queue_id]
            data["queue_id"] = queue_id
    return [{key: value for key, value in data.items() if value is not None} for data in abouts]


async def deliver(
    session: AsyncSession,
    notifiers: Sequence[Notifier],
    notification: Notification,
    *,
    managers: Mapping[int, Manager] | None = None,
) -> None:
    """Hand the notification to every notifier; a failure is retried for that one alone.

    `managers`: the managers already read (by id), where the caller has many to notify.
    """
    if managers is not None:
        manager = managers.get(notification.manager_id)
    else:
        manager = await session.get(Manager, notification.manager_id)
    if manager is None or not manager.is_active:
        return
    for notifier in notifiers:
        try:
            await notifier.send(manager, notification)
        except Exception as exc:
            log.warning(
                "notifier %s failed for manager %s: %s; retrying later",
                notifier_name(notifier),
                manager.id,
                exc,
            )
            emit(
                session,
                NotificationRetry(
                    notifier=notifier_name(notifier), notification=asdict(notification)
                ),
                due_at=utcnow() + timedelta(seconds=RETRY_DELAY_SECONDS),
            )


def notification_handlers(notifiers: Sequence[Notifier]) -> Handlers:
    """Outbox handlers that notify managers of routing's events."""
    by_name = {notifier_name(n): n for n in notifiers}

    async def on_assigned(
        session: AsyncSession, event: ConversationAssigned, event_id: int
    ) -> None:
        await on_assigned_together(session, [(event, event_id)])

    async def on_assigned_together(
        session: AsyncSession, events: Sequence[tuple[ConversationAssigned, int]]
    ) -> None:
        """Each assignment's manager notified, in event order; what the texts say of the
        conversations, the assignments and the managers read once for all of them."""
        wanted = [event for event, _id in events if event.reason != "take"]  # took it themselves
        if not wanted:
            return
        assignment_ids = sorted({e.assignment_id for e in wanted if e.assignment_id is not None})
        actors: dict[int, int | None] = {}
        if assignment_ids:
            actors = {
                int(a): actor
                for a, actor in await session.execute(
                    select(Assignment.id, Assignment.actor_manager_id).where(
                        Assignment.id.in_(assignment_ids)
                    )
                )
            }
        # Not those assigned to themselves.
        wanted = [
            e
            for e in wanted
            if e.assignment_id is None
            or e.assignment_id not in actors
            or actors[e.assignment_id] != e.manager_id
        ]
        if not wanted:
            return
        abouts = await _about_many(session, [(e.conversation_id, e.queue_id) for e in wanted])
        managers = {
            m.id: m
            for m in await session.scalars(
                select(Manager).where(Manager.id.in_(sorted({e.manager_id for e in wanted})))
            )
        }
        for event, data in zip(wanted, abouts, strict=True):
            data.update(reason=event.reason, explanation=event.explanation)
            notification = assigned(event.manager_id, event.conversation_id, event.reason, data)
            await deliver(session, notifiers, notification, managers=managers)

    async def on_offered(session: AsyncSession, event: ConversationOffered, _event_id: int) -> None:
        conversation_id = event.conversation_id
        data = await _about(session, conversation_id, event.queue_id)
        for manager_id in event.manager_ids:
            await deliver(session, notifiers, offered(manager_id, conversation_id, data))

    async def on_breached(session: AsyncSession, event: SlaBreached, _event_id: int) -> None:
        conversation_id = event.conversation_id
        kind = event.kind or "first_response"
        data = await _about(session, conversation_id, event.queue_id)
        data.update(sla=kind, due_at=event.due_at, assignee_id=event.manager_id)
        targets: list[int] = []
        for value in (event.supervisor_id, event.manager_id):
            if value is not None and value not in targets:
                targets.append(value)
        for manager_id in targets:
            await deliver(session, notifiers, breached(manager_id, conversation_id, kind, data))

    async def on_mentioned(session: AsyncSession, event: NoteMentioned, _event_id: int) -> None:
        conversation_id = event.conversation_id
        data = await _about(session, conversation_id, None)
        note = await session.get(Message, event.message_id)
        if note is not None:
            text = note.text or ""
            data["note"] = text if len(text) <= NOTE_EXCERPT else text[: NOTE_EXCERPT - 1] + "…"
        data["message_id"] = event.message_id
        author = await session.get(Manager, event.author_id) if event.author_id else None
        name = author.name if author is not None else "omnihub"
        await deliver(session, notifiers, mentioned(event.manager_id, conversation_id, name, data))

    async def on_snooze_ended(session: AsyncSession, event: SnoozeEnded, _event_id: int) -> None:
        conversation_id = event.conversation_id
        data = await _about(session, conversation_id, None)
        await deliver(session, notifiers, snooze_ended(event.manager_id, conversation_id, data))

    async def on_retry(session: AsyncSession, event: NotificationRetry, _event_id: int) -> None:
        notifier = by_name.get(event.notifier)
        if notifier is None:
            return  # no longer configured
        notification = Notification(**event.notification)
        manager = await session.get(Manager, notification.manager_id)
        if manager is None or not manager.is_active:
            return
        await notifier.send(manager, notification)  # raising: the outbox retries it

    return {
        ConversationAssigned: [BatchHandler(on_assigned, on_assigned_together)],
        ConversationOffered: [on_offered],
        SlaBreached: [on_breached],
        NoteMentioned: [on_mentioned],
        SnoozeEnded: [on_snooze_ended],
        NotificationRetry: [on_retry],
    }
