"""Notifications of assignments, offers, forwards and SLA breaches: on the bus and by email.

The SMTP server is aiosmtpd on loopback, recording what it receives; the worker
is the hub's own handlers drained by the test (its clock moved on for timers).
"""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from hub.settings import Settings
from hub.worker import bus_publisher, merge
from routing.engine import RoutingConfig, RoutingEngine
from routing.handlers import routing_handlers
from routing.notify import (
    BusNotifier,
    Notification,
    notification_handlers,
)
from routing.sla import SlaMonitor
from storage.bus import Subscription
from storage.db import Database
from storage.events import ConversationAssigned, Event, NotificationRetry
from storage.models import Contact, Conversation, Manager, OutboxEvent
from storage.outbox import OutboxWorker, emit
from storage.types import utcnow
from tests.factories import (
    default_queue,
    drain,
    go_online,
    manager_with_headers,
    post_form,
    routing_of,
    set_language,
)


class Recorder:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch, hub_env: dict[str, str]) -> Iterator[Recorder]:
    recorder = Recorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("OMNIHUB_NOTIFY_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("OMNIHUB_NOTIFY_SMTP_PORT", str(port))
    monkeypatch.setenv("OMNIHUB_NOTIFY_FROM", "hub@omnihub.test")
    try:
        yield recorder
    finally:
        controller.stop()


async def drain_at(app: Any, ahead: timedelta) -> int:
    """Drain with the worker's and the routing engine's clocks both moved on by `ahead`."""
    context = app.state.context

    def clock() -> datetime:
        return utcnow() + ahead

    engine = RoutingEngine(RoutingConfig(), clock=clock)
    table = merge(
        routing_handlers(engine, SlaMonitor(engine, clock=clock)),
        notification_handlers([BusNotifier(context.bus)]),
        {Event: [bus_publisher(context)]},
    )
    return await OutboxWorker(context.db, table, clock=clock).drain()


async def received(subscription: Subscription) -> list[dict[str, Any]]:
    """Everything published to the subscription so far (the drain published synchronously)."""
    found = []
    while (message := await subscription.get(timeout=0.2)) is not None:
        found.append(message.payload)
    return found


# On the bus


async def test_assignment_is_published_to_the_manager(
    app: Any, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
):
    anna, anna_headers = await manager_with_headers(hub_db, name="Анна")
    boris, boris_headers = await manager_with_headers(hub_db, name="Борис")
    await set_language(hub_db, boris.id, "en")
    queue = await default_queue(client, admin_headers, [anna.id], name="Продажи")
    await go_online(client, anna_headers)
    bus = app.state.context.bus
    async with (
        bus.subscribe(f"manager.{anna.id}") as for_anna,
        bus.subscribe(f"manager.{boris.id}") as for_boris,
    ):
        conversation = await post_form(client, "Нужен диван")
        await drain(app)
        [note] = await received(for_anna)
        assert note["type"] == "notification"
        assert note["kind"] == "assigned"
        assert note["conversation_id"] == conversation
        assert note["title"] == f"Вам назначен разговор #{conversation}"
        assert note["title_en"] == f"Conversation #{conversation} is assigned to you"
        assert note["data"]["queue"] == "Продажи"
        assert note["data"]["queue_id"] == queue["id"]
        assert note["data"]["reason"] == "strategy"
        assert note["data"]["contact"].startswith("Клиент")
        assert await received(for_boris) == []

        # Transferred to Boris (English): he hears it in English; Anna, who did it, nothing.
        response = await client.post(
            f"/api/v1/conversations/{conversation}/transfer",
            json={"manager_id": boris.id},
            headers=anna_headers,
        )
        assert response.status_code == 200, response.text
        await drain(app)
        [note] = await received(for_boris)
        assert note["title"] == f"Conversation #{conversation} was transferred to you"
        assert await received(for_anna) == []

        # Taking it oneself or assigning oneself notifies nobody.
        await client.post(
            f"/api/v1/conversations/{conversation}/assign",
            json={"manager_id": boris.id},
            headers=boris_headers,
        )
        await drain(app)
        assert await received(for_boris) == []


async def test_assignments_handled_in_one_round_each_tell_their_own_conversation(
    app: Any, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
):
    # The worker hands a round's assignments to the notifier together: each manager
    # still hears of each of their conversations, with that conversation's contact.
    anna, anna_headers = await manager_with_headers(hub_db, name="Анна")
    boris, boris_headers = await manager_with_headers(hub_db, name="Борис")
    await set_language(hub_db, boris.id, "en")
    await default_queue(client, admin_headers, [anna.id, boris.id], name="Продажи")
    await go_online(client, anna_headers)
    await go_online(client, boris_headers)
    bus = app.state.context.bus
    async with (
        bus.subscribe(f"manager.{anna.id}") as for_anna,
        bus.subscribe(f"manager.{boris.id}") as for_boris,
    ):
        conversations = [await post_form(client, f"Вопрос {n}") for n in range(6)]
        await drain(app)
        heard = {anna.id: await received(for_anna), boris.id: await received(for_boris)}
    routed = {c: await routing_of(client, admin_headers, c) for c in conversations}
    async with hub_db.read() as session:
        contacts = {
            c.id: c.contact_id
            for c in await session.scalars(
                select(Conversation).where(Conversation.id.in_(conversations))
            )
        }
        names = {
            c.id: c.name
            for c in await session.scalars(select(Contact).where(Contact.id.in_(contacts.values())))
        }
    assert sorted(n["conversation_id"] for notes in heard.values() for n in notes) == conversations
    assert heard[anna.id] and heard[boris.id]
    for manager_id, notes in heard.items():
        for note in notes:
            conversation = note["conversation_id"]
            assert routed[conversation]["assignee_id"] == manager_id
            assert note["kind"] == "assigned"
            assert note["data"]["contact"] == names[contacts[conversation]]
            assert note["data"]["queue"] == "Продажи"
            expected = (
                "Conversation #{} is assigned to you"
                if manager_id == boris.id
                else ("Вам назначен разговор #{}")
            )
            assert note["title"] == expected.format(conversation)


async def test_an_offer_reaches_every_member(
    app: Any, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
):
    anna, anna_headers = await manager_with_headers(hub_db)
    boris, boris_headers = await manager_with_headers(hub_db)
    await default_queue(
        client, admin_headers, [anna.id, boris.id], strategy="everybody", name="Все"
    )
    await go_online(client, anna_headers)
    await go_online(client, boris_headers)
    async with app.state.context.bus.subscribe("manager.*") as subscription:
        conversation = await post_form(client)
        await drain(app)
        # manager.* also matches the bus copy of `manager.presence_changed` events.
        notes = [n for n in await received(subscription) if n.get("type") == "notification"]
    assert sorted(n["kind"] for n in notes) == ["offered", "offered"]
    assert {n["title"] for n in notes} == {
        f"Новый разговор #{conversation} в очереди «Все»: возьмите его"
    }


async def test_a_forward_after_idle_is_announced(
    app: Any, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
):
    anna, anna_headers = await manager_with_headers(hub_db)
    boris, boris_headers = await manager_with_headers(hub_db)
    await default_queue(
        client,
        admin_headers,
        [anna.id, boris.id],
        strategy="strict_order",
        forward_after_seconds=60,
    )
    await go_online(client, anna_headers)
    await go_online(client, boris_headers)
    conversation = await post_form(client)
    await drain(app)
    assert (await routing_of(client, admin_headers, conversation))["assignee_id"] == anna.id
    async with app.state.context.bus.subscribe(f"manager.{boris.id}") as for_boris:
        await drain_at(app, timedelta(seconds=90))  # Anna did not answer in time
        [note] = await received(for_boris)
    assert note["kind"] == "forwarded"
    assert note["title"] == f"Вам переадресован разговор #{conversation}"
    assert note["data"]["reason"] == "forward"
    assert (await routing_of(client, admin_headers, conversation))["assignee_id"] == boris.id


# By email


async def test_assignment_emails_in_the_managers_language(
    app: Any,
    client: httpx.AsyncClient,
    hub_db: Database,
    admin_headers: dict[str, str],
    smtp: Recorder,
):
    settings = Settings()
    assert settings.notify_smtp_host == "127.0.0.1"
    anna, anna_headers = await manager_with_headers(hub_db, name="Анна")
    boris, _ = await manager_with_headers(hub_db, name="Boris")
    vera, _ = await manager_with_headers(hub_db, name="Вера")
    await set_language(hub_db, boris.id, "en")
    await set_language(hub_db, vera.id, "ru", notify_by_email=False)
    await default_queue(client, admin_headers, [anna.id], name="Продажи")
    await go_online(client, anna_headers)
    conversation = await post_form(client, "Хочу купить шкаф")
    await drain(app, settings=settings)

    [mail] = smtp.to(anna.email)
    assert mail["Subject"] == f"Вам назначен разговор #{conversation}"
    assert mail["From"] == "hub@omnihub.test"
    assert mail["Auto-Submitted"] == "auto-generated"
    body = mail.get_content()
    assert "Очередь: Продажи" in body
    assert f"Разговор: #{conversation}" in body

    await client.post(
        f"/api/v1/conversations/{conversation}/transfer",
        json={"manager_id": boris.id},
        headers=admin_headers,
    )
    await drain(app, settings=settings)
    [mail] = smtp.to(boris.email)
    assert mail["Subject"] == f"Conversation #{conversation} was transferred to you"
    assert "Queue: Продажи" in mail.get_content()

    await client.post(
        f"/api/v1/conversations/{conversation}/assign",
        json={"manager_id": vera.id},
        headers=admin_headers,
    )
    await drain(app, settings=settings)
    assert smtp.to(vera.email) == []  # she turned email notifications off
    assert len(smtp.messages) == 2


async def test_an_sla_breach_notifies_the_supervisor_and_the_assignee(
    app: Any,
    client: httpx.AsyncClient,
    hub_db: Database,
    admin_headers: dict[str, str],
    smtp: Recorder,
):
    settings = Settings()
    chief, _ = await manager_with_headers(hub_db, name="Шеф")
    anna, anna_headers = await manager_with_headers(hub_db, name="Анна")
    await set_language(hub_db, anna.id, "en")
    await default_queue(
        client,
        admin_headers,
        [anna.id],
        supervisor_id=chief.id,
        sla={"normal": {"first_response": 60}},
    )
    await go_online(client, anna_headers)
    conversation = await post_form(client)
    await drain(app, settings=settings)
    assert len(smtp.messages) == 1  # Anna's assignment

    async with app.state.context.bus.subscribe(f"manager.{chief.id}") as for_chief:
        await drain(app, ahead=timedelta(minutes=5), settings=settings)
        [note] = await received(for_chief)
    assert note["kind"] == "sla_breached"
    assert note["data"]["sla"] == "first_response"
    assert note["data"]["assignee_id"] == anna.id

    [to_chief] = smtp.to(chief.email)
    assert to_chief["Subject"] == f"Просрочен первый ответ в разговоре #{conversation}"
    assert "Срок:" in to_chief.get_content()
    breach_to_anna = [m for m in smtp.to(anna.email) if "overdue" in m["Subject"]]
    assert [m["Subject"] for m in breach_to_anna] == [
        f"First response overdue in conversation #{conversation}"
    ]


async def test_an_answered_conversation_does_not_breach(
    app: Any,
    client: httpx.AsyncClient,
    hub_db: Database,
    admin_headers: dict[str, str],
    smtp: Recorder,
):
    settings = Settings()
    chief, _ = await manager_with_headers(hub_db)
    anna, anna_headers = await manager_with_headers(hub_db)
    await default_queue(
        client,
        admin_headers,
        [anna.id],
        supervisor_id=chief.id,
        sla={"normal": {"first_response": 60}},
    )
    await go_online(client, anna_headers)
    conversation = await post_form(client)
    await drain(app, settings=settings)
    response = await client.post(
        f"/api/v1/conversations/{conversation}/messages",
        json={"text": "Здравствуйте!"},
        headers=anna_headers,
    )
    assert response.status_code == 201
    await drain(app, ahead=timedelta(minutes=5), settings=settings)
    assert smtp.to(chief.email) == []


# Failures


class Failing:
    name = "flaky"

    def __init__(self) -> None:
        self.fail = True
        self.sent: list[tuple[int, str]] = []

    async def send(self, manager: Manager, notification: Notification) -> None:
        if self.fail:
            raise ConnectionError("the server is down")
        self.sent.append((manager.id, notification.kind))


async def test_a_failing_notifier_is_retried_alone(app: Any, hub_db: Database):
    anna, _ = await manager_with_headers(hub_db)
    flaky = Failing()
    bus = app.state.context.bus
    table = notification_handlers([flaky, BusNotifier(bus)])
    async with hub_db.transaction() as session:
        emit(
            session,
            ConversationAssigned(conversation_id=424242, manager_id=anna.id, reason="manual"),
        )
    async with bus.subscribe(f"manager.{anna.id}") as subscription:
        await OutboxWorker(hub_db, table).drain()
        [note] = await received(subscription)  # the bus got it despite the failure
    assert note["kind"] == "assigned"
    async with hub_db.read() as session:
        [retry] = (
            await session.scalars(
                select(OutboxEvent).where(OutboxEvent.topic == NotificationRetry.topic)
            )
        ).all()
    assert retry.payload["notifier"] == "flaky"
    assert retry.payload["notification"]["manager_id"] == anna.id

    # Still failing: the outbox keeps the event and backs off; then it goes through.
    later = utcnow() + timedelta(minutes=2)
    await OutboxWorker(hub_db, table, clock=lambda: later).drain()
    async with hub_db.read() as session:
        event = await session.get(OutboxEvent, retry.id)
        assert event is not None
        assert event.status == "pending" and "server is down" in (event.last_error or "")
    flaky.fail = False
    much_later = utcnow() + timedelta(hours=2)
    await OutboxWorker(hub_db, table, clock=lambda: much_later).drain()
    assert flaky.sent == [(anna.id, "assigned")]


async def test_a_conversation_back_from_a_snooze_tells_its_assignee_everywhere(
    app: Any,
    client: httpx.AsyncClient,
    hub_db: Database,
    admin_headers: dict[str, str],
    smtp: Recorder,
):
    settings = Settings()
    anna, anna_headers = await manager_with_headers(hub_db, name="Анна")
    await default_queue(client, admin_headers, [anna.id], name="Продажи")
    await go_online(client, anna_headers)
    conversation = await post_form(client, "Перезвоните в понедельник")
    await drain(app, settings=settings)
    assert len(smtp.to(anna.email)) == 1  # assigned
    until = utcnow() + timedelta(hours=1)
    response = await client.post(
        f"/api/v1/conversations/{conversation}/snooze",
        json={"until": until.isoformat()},
        headers=anna_headers,
    )
    assert response.status_code == 200, response.text
    bus = app.state.context.bus
    async with bus.subscribe(f"manager.{anna.id}") as for_anna:
        await drain(app, settings=settings)
        assert await received(for_anna) == []  # not yet
        await drain(app, ahead=timedelta(hours=2), settings=settings)
        [note] = await received(for_anna)
    assert note["type"] == "notification" and note["kind"] == "snooze_ended"
    assert note["conversation_id"] == conversation
    assert note["title_ru"] == f"Разговор #{conversation} вернулся из отложенных"
    assert note["title_en"] == f"Conversation #{conversation} is back from snooze"
    assert note["data"]["queue"] == "Продажи"
    mails = smtp.to(anna.email)
    assert len(mails) == 2
    assert mails[-1]["Subject"] == f"Разговор #{conversation} вернулся из отложенных"
    assert mails[-1]["X-Omnihub-Notification"] == "snooze_ended"
    assert f"Разговор: #{conversation}" in mails[-1].get_content()
    # The timer again (redelivered) wakes nothing and tells nobody twice.
    await drain(app, ahead=timedelta(hours=3), settings=settings)
    assert len(smtp.to(anna.email)) == 2
