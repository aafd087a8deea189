"""Notifications to managers: new assignments, offers, forwards and SLA breaches.

Outbox handlers turn routing's events into `Notification`s (texts in Russian and
English; the manager's `language` picks) and hand them to every `Notifier`:

- `BusNotifier` publishes to `manager.{id}` on the event bus (the inbox UI listens);
- `EmailNotifier` mails managers who have `notify_by_email` (aiosmtplib);
- `TelegramNotifier` (channels.telegram.notifier) writes by the managers' bot to managers
  who linked their Telegram; `hub.worker` puts it in the list.

A notifier that fails does not hold the others back: its notification is written
as a `notification.retry` event for that notifier alone, which the outbox retries
with backoff (and parks when it keeps failing).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from email.header import Header
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, Protocol

import aiosmtplib
from sqlalchemy.ext.asyncio import AsyncSession

from intake.i18n import Catalogue, Lang, lang_of
from storage.bus import EventBus
from storage.models import Assignment, Contact, Conversation, Manager, OutboxEvent, Queue
from storage.outbox import Handler, emit
from storage.types import utcnow

log = logging.getLogger(__name__)

RETRY_TOPIC = "notification.retry"
RETRY_DELAY_SECONDS = 60


@dataclass(frozen=True)
class Notification:
    manager_id: int
    kind: str  # assigned, forwarded, offered, sla_breached
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
        for key in ("contact", "subject", "queue", "explanation", "due_at"):
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


class EmailNotifier:
    """A short plain-text mail to managers who have `notify_by_email`."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int = 25,
        sender: str = "omnihub@localhost",
        use_tls: bool = False,
        username: str | None = None,
        password: str | None = None,
        *,
        timeout: float = 15.0,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.use_tls = use_tls
        self.username = username
        self.password = password
        self.timeout = timeout

    def message(self, manager: Manager, notification: Notification) -> MIMEText:
        # compat32 with an explicit Header: the default policy's folding of a long
        # non-ASCII subject drops the space between two encoded words (CPython's email).
        mail = MIMEText(notification.body(manager.language), "plain", "utf-8")
        mail["From"] = self.sender
        mail["To"] = manager.email
        subject = Header(notification.title(manager.language), "utf-8")
        mail["Subject"] = subject  # type: ignore[assignment]  # compat32 takes a Header
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        mail["Auto-Submitted"] = "auto-generated"
        mail["X-Omnihub-Notification"] = notification.kind
        return mail

    async def send(self, manager: Manager, notification: Notification) -> None:
        if not manager.notify_by_email or not manager.email:
            return
        await aiosmtplib.send(
            self.message(manager, notification),
            hostname=self.host,
            port=self.port,
            use_tls=self.use_tls,
            username=self.username,
            password=self.password,
            timeout=self.timeout,
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


# -- handlers ----------------------------------------------------------------------------


async def _about(
    session: AsyncSession, conversation_id: int, queue_id: int | None
) -> dict[str, Any]:
    """What the texts say of the conversation: contact, subject, queue."""
    data: dict[str, Any] = {}
    conversation = await session.get(Conversation, conversation_id)
    if conversation is not None:
        data["subject"] = conversation.subject
        contact = await session.get(Contact, conversation.contact_id)
        if contact is not None:
            data["contact"] = contact.name or contact.company
        queue_id = queue_id if queue_id is not None else conversation.queue_id
    if queue_id is not None:
        queue = await session.get(Queue, queue_id)
        if queue is not None:
            data["queue"] = queue.name
            data["queue_id"] = queue.id
    return {key: value for key, value in data.items() if value is not None}


async def deliver(
    session: AsyncSession, notifiers: Sequence[Notifier], notification: Notification
) -> None:
    """Hand the notification to every notifier; a failure is retried for that one alone."""
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
                RETRY_TOPIC,
                {"notifier": notifier_name(notifier), "notification": asdict(notification)},
                due_at=utcnow() + timedelta(seconds=RETRY_DELAY_SECONDS),
            )


def notification_handlers(notifiers: Sequence[Notifier]) -> dict[str, list[Handler]]:
    """Outbox handlers that notify managers of routing's events."""
    by_name = {notifier_name(n): n for n in notifiers}

    async def on_assigned(session: AsyncSession, event: OutboxEvent) -> None:
        payload = event.payload
        manager_id = payload.get("manager_id")
        if manager_id is None:
            return
        conversation_id = int(payload["conversation_id"])
        reason = str(payload.get("reason") or "")
        if reason == "take":
            return  # they took it themselves
        assignment_id = payload.get("assignment_id")
        if assignment_id is not None:
            assignment = await session.get(Assignment, int(assignment_id))
            if assignment is not None and assignment.actor_manager_id == int(manager_id):
                return  # assigned to themselves
        data = await _about(session, conversation_id, payload.get("queue_id"))
        data.update(reason=reason, explanation=payload.get("explanation"))
        await deliver(session, notifiers, assigned(int(manager_id), conversation_id, reason, data))

    async def on_offered(session: AsyncSession, event: OutboxEvent) -> None:
        payload = event.payload
        conversation_id = int(payload["conversation_id"])
        data = await _about(session, conversation_id, payload.get("queue_id"))
        for manager_id in payload.get("manager_ids") or []:
            await deliver(session, notifiers, offered(int(manager_id), conversation_id, data))

    async def on_breached(session: AsyncSession, event: OutboxEvent) -> None:
        payload = event.payload
        conversation_id = int(payload["conversation_id"])
        kind = str(payload.get("kind") or "first_response")
        data = await _about(session, conversation_id, payload.get("queue_id"))
        data.update(sla=kind, due_at=payload.get("due_at"), assignee_id=payload.get("manager_id"))
        targets: list[int] = []
        for key in ("supervisor_id", "manager_id"):
            value = payload.get(key)
            if value is not None and int(value) not in targets:
                targets.append(int(value))
        for manager_id in targets:
            await deliver(session, notifiers, breached(manager_id, conversation_id, kind, data))

    async def on_retry(session: AsyncSession, event: OutboxEvent) -> None:
        notifier = by_name.get(str(event.payload.get("notifier")))
        if notifier is None:
            return  # no longer configured
        notification = Notification(**event.payload["notification"])
        manager = await session.get(Manager, notification.manager_id)
        if manager is None or not manager.is_active:
            return
        await notifier.send(manager, notification)  # raising: the outbox retries it

    return {
        "conversation.assigned": [on_assigned],
        "conversation.offered": [on_offered],
        "sla.breached": [on_breached],
        RETRY_TOPIC: [on_retry],
    }
