"""The email channel end to end: mail appended to a real dovecot, fetched by the poller,
answered through the REST API, sent through a real SMTP server (aiosmtpd), answered again.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from routing.calendar import WEEKDAYS
from storage.models import Lead, Message, MessageStatus
from tests.channels.email.flow import HUB_ADDRESS, MailHub, client_mail, dsn
from tests.mailservers import Dovecot, SmtpRecorder

pytestmark = pytest.mark.asyncio

CLIENT = "ivan.petrov@client.example"


def _ids(header: str | None) -> list[str]:
    return re.findall(r"<([^>]+)>", header or "")


async def test_conversation_by_email_reply_and_client_replies(hub: MailHub) -> None:
    raw, first_id = client_mail(CLIENT, "Заказ №1542 не доставлен", "Где мой заказ? Жду неделю.")
    hub.send(raw)
    assert await hub.poll() == 1
    [conversation] = await hub.conversations()
    [lead] = await hub.leads()
    assert lead.title == "Заказ №1542 не доставлен" and lead.source == "email"
    [inbound] = await hub.messages(conversation.id)
    assert inbound.text.strip() == "Где мой заказ? Жду неделю."
    assert inbound.meta["email"]["message_id"] == first_id

    await hub.reply(conversation.id, "Здравствуйте! Заказ передан курьеру.")
    assert await hub.delivery.drain() == 1
    [sent] = await hub.smtp.wait_for(1)
    mail: EmailMessage = sent.message
    assert sent.rcpt_tos == [CLIENT] and sent.mail_from == HUB_ADDRESS
    assert mail["From"].addresses[0].addr_spec == HUB_ADDRESS
    assert mail["From"].addresses[0].display_name == "Магазин"
    assert mail["Reply-To"] == HUB_ADDRESS
    assert mail["To"] == CLIENT
    assert mail["Subject"] == f"Re: Заказ №1542 не доставлен [#{lead.id}]"
    assert _ids(mail["In-Reply-To"]) == [first_id]
    assert _ids(mail["References"]) == [first_id]
    [our_id] = _ids(mail["Message-ID"])
    assert our_id.startswith(f"omnihub.{conversation.id}.") and our_id.endswith("@shop.example")
    assert mail.get_body(("plain",)).get_content().strip() == "Здравствуйте! Заказ передан курьеру."
    assert "курьеру" in mail.get_body(("html",)).get_content()
    outbound = [m for m in await hub.messages(conversation.id) if m.direction == "outbound"]
    assert [m.status for m in outbound] == [MessageStatus.SENT]
    assert outbound[0].sent_at is not None

    # The client answers with In-Reply-To and a changed subject: the same conversation.
    raw, second_id = client_mail(
        CLIENT,
        "другая тема совсем",
        "Спасибо, а когда будет?",
        in_reply_to=our_id,
        references=[first_id, our_id],
    )
    hub.send(raw)
    # ... and once with no In-Reply-To/References, only the tag in the subject.
    raw, _ = client_mail(CLIENT, f"Re: Заказ №1542 [#{lead.id}]", "И ещё вопрос по оплате.")
    hub.send(raw)
    assert await hub.poll() == 2
    assert len(await hub.conversations()) == 1
    assert len(await hub.leads()) == 1
    texts = [m.text.strip() for m in await hub.messages(conversation.id)]
    assert texts[-2:] == ["Спасибо, а когда будет?", "И ещё вопрос по оплате."]

    # The next reply references the whole thread, folded.
    await hub.reply(conversation.id, "Завтра до 18:00.")
    assert await hub.delivery.drain() == 1
    second = (await hub.smtp.wait_for(2))[1].message
    assert _ids(second["References"])[-1] in (second_id, _ids(second["In-Reply-To"])[0])
    assert all(len(line) <= 998 for line in bytes(second).split(b"\r\n"))


async def test_auto_reply_to_our_reply_opens_nothing(hub: MailHub) -> None:
    hub.send(client_mail(CLIENT, "Вопрос", "Сколько стоит доставка?")[0])
    await hub.poll()
    [conversation] = await hub.conversations()
    await hub.reply(conversation.id, "300 рублей.")
    await hub.delivery.drain()
    [sent] = await hub.smtp.wait_for(1)
    [our_id] = _ids(sent.message["Message-ID"])
    outbound_events = len(await hub.events("message.outbound"))

    raw, _ = client_mail(
        CLIENT,
        "Автоответ: Re: Вопрос",
        "Я в отпуске до понедельника.",
        in_reply_to=our_id,
        headers={"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"},
    )
    hub.send(raw)
    # An auto-reply from an unrelated sender, to nothing we know: kept, closed, no lead.
    raw, _ = client_mail(
        "robot@other.example",
        "Out of office",
        "I am away.",
        headers={"Auto-Submitted": "auto-replied"},
    )
    hub.send(raw)
    assert await hub.poll() == 2
    conversations = await hub.conversations()
    assert len(conversations) == 2
    assert conversations[1].status == "closed"
    assert len(await hub.leads()) == 1
    messages = await hub.messages(conversation.id)
    assert messages[-1].meta.get("automatic") and "auto" in messages[-1].meta["automatic"]
    assert len(await hub.events("message.outbound")) == outbound_events
    assert len(await hub.events("conversation.opened")) == 1
    received = await hub.events("message.received")
    assert [bool(e.payload.get("automatic")) for e in received] == [False, True, True]


async def test_bounce_marks_the_outbound_message_failed(hub: MailHub) -> None:
    hub.send(client_mail("nobody@client.example", "Вопрос", "Есть в наличии?")[0])
    await hub.poll()
    [conversation] = await hub.conversations()
    reply = await hub.reply(conversation.id, "Да, есть.")
    await hub.delivery.drain()
    [sent] = await hub.smtp.wait_for(1)
    [our_id] = _ids(sent.message["Message-ID"])

    hub.send(dsn(our_id, "nobody@client.example"))
    assert await hub.poll() == 1
    failed = await hub.message(int(reply["id"]))
    assert failed.status == MessageStatus.FAILED
    assert failed.error is not None and "5.1.1" in failed.error
    assert len(await hub.leads()) == 1
    assert [e.payload["message_id"] for e in await hub.events("message.failed")] == [failed.id]


async def test_acknowledgement_carries_the_number_and_skips_robots(
    app: Any, client: httpx.AsyncClient, dovecot: Dovecot, smtp_server: SmtpRecorder
) -> None:
    hub = MailHub(app, client, dovecot, smtp_server)
    await hub.setup(acknowledge=True, language="ru")
    hub.send(client_mail(CLIENT, "Счёт", "Пришлите счёт, пожалуйста.")[0])
    hub.send(
        client_mail(
            "list@news.example", "Новости", "Рассылка", headers={"List-Id": "<news.example>"}
        )[0]
    )
    await hub.poll()
    assert await hub.drain() == 1
    [ack] = await hub.smtp.wait_for(1)
    [lead] = await hub.leads()
    assert ack.rcpt_tos == [CLIENT]
    assert ack.message["Auto-Submitted"] == "auto-replied"
    assert f"номером {lead.id}" in ack.message.get_body(("plain",)).get_content()
    [conversation, _robot] = await hub.conversations()
    assert conversation.first_response_at is None  # a robot's answer is not a response


async def test_out_of_hours_acknowledgement_names_the_opening_time_once(
    app: Any, client: httpx.AsyncClient, dovecot: Dovecot, smtp_server: SmtpRecorder
) -> None:
    hub = MailHub(app, client, dovecot, smtp_server)
    # Open only the day after tomorrow, in the company's zone: now is out of hours.
    zone = ZoneInfo("Asia/Yekaterinburg")
    later = datetime.now(zone) + timedelta(days=2)
    hours = {"timezone": zone.key, "week": {WEEKDAYS[later.weekday()]: [["09:30", "18:00"]]}}
    await hub.setup(language="en", greeting={"enabled": True, "working_hours": hours})
    raw, first_id = client_mail(CLIENT, "Invoice", "Please send the invoice.")
    hub.send(raw)
    await hub.poll()
    assert await hub.drain() == 1
    hub.send(client_mail(CLIENT, "Re: Invoice", "Any news?", in_reply_to=first_id)[0])
    await hub.poll()
    assert await hub.drain() == 0  # the second mail continues the thread: no second greeting
    [ack] = await hub.smtp.wait_for(1)
    [lead] = await hub.leads()
    body = ack.message.get_body(("plain",)).get_content()
    assert ack.message["Auto-Submitted"] == "auto-replied"
    assert f'"Invoice" and registered it as number {lead.id}' in body
    day = later.strftime("%A")
    assert f"We are closed now: a manager will answer you on {day} from 09:30." in body


async def test_newsletter_replies_from_different_people_stay_apart(hub: MailHub) -> None:
    newsletter = "newsletter-2026-11@shop.example"
    for n, sender in enumerate(["a@client.example", "b@client.example", "c@client.example"]):
        raw, _ = client_mail(
            sender,
            "Re: Скидки недели",
            f"Ответ {n}",
            in_reply_to=newsletter,
            references=[newsletter],
        )
        hub.send(raw)
    assert await hub.poll() == 3
    conversations = await hub.conversations()
    assert len(conversations) == 3
    assert len({c.contact_id for c in conversations}) == 3


async def test_same_mail_twice_and_uidvalidity_change_store_once(hub: MailHub) -> None:
    raw, _ = client_mail(CLIENT, "Дубль", "Одно и то же письмо")
    hub.send(raw)
    hub.send(raw)  # the same message delivered twice (two UIDs)
    hub.send(client_mail(CLIENT, "Второе", "Другое письмо")[0])
    assert await hub.poll() == 3
    assert await hub.count(Message) == 2
    hub.dovecot.reset_uids("hub@example.test")
    assert await hub.poll() == 3  # a new UIDVALIDITY: everything is read again ...
    assert await hub.count(Message) == 2  # ... and nothing is stored twice
    assert await hub.count(Lead) == 2
    assert await hub.poll() == 0


async def test_temporary_smtp_failure_is_retried_permanent_one_fails(hub: MailHub) -> None:
    hub.send(client_mail(CLIENT, "Вопрос", "Текст")[0])
    await hub.poll()
    [conversation] = await hub.conversations()
    hub.delivery.options.base_backoff_seconds = 0
    hub.smtp.fail_temporarily(1)
    first = await hub.reply(conversation.id, "Ответ один")
    await hub.delivery.run_once()
    message = await hub.message(int(first["id"]))
    assert message.status == MessageStatus.QUEUED and "451" in (message.error or "")
    await hub.delivery.drain()
    assert (await hub.message(int(first["id"]))).status == MessageStatus.SENT
    assert len(await hub.smtp.wait_for(1)) == 1

    hub.smtp.fail_permanently(1)
    second = await hub.reply(conversation.id, "Ответ два")
    await hub.delivery.drain()
    failed = await hub.message(int(second["id"]))
    assert failed.status == MessageStatus.FAILED and "550" in (failed.error or "")
    assert len(hub.smtp.messages) == 1


async def test_crash_between_send_and_record_never_sends_twice(hub: MailHub) -> None:
    hub.send(client_mail(CLIENT, "Вопрос", "Текст")[0])
    await hub.poll()
    [conversation] = await hub.conversations()
    reply = await hub.reply(conversation.id, "Ответ")
    # A worker claimed the message and died before recording the outcome: its lease
    # runs out with the status still `sending`.
    hub.delivery.options.lease_seconds = -1
    from storage.delivery_repository import DeliveryRepository
    from storage.types import utcnow

    async with hub.context.db.transaction() as session:
        claimed = await DeliveryRepository(session).claim(["email"], utcnow(), utcnow(), 10)
    assert [c[0] for c in claimed] == [int(reply["id"])]
    await hub.delivery.drain()
    message = await hub.message(int(reply["id"]))
    assert message.status == MessageStatus.FAILED and "unknown" in (message.error or "")
    assert hub.smtp.messages == []


async def test_reply_with_a_file_reaches_the_client_with_it(hub: MailHub) -> None:
    import base64

    hub.send(client_mail(CLIENT, "Счёт", "Пришлите счёт")[0])
    await hub.poll()
    [conversation] = await hub.conversations()
    pdf = b"%PDF-1.4 " + bytes(range(256)) * 8
    response = await hub.client.post(
        f"/api/v1/conversations/{conversation.id}/messages",
        json={
            "text": "Счёт во вложении.",
            "attachments": [
                {
                    "filename": "Счёт 42.pdf",
                    "content_type": "application/pdf",
                    "content_base64": base64.b64encode(pdf).decode(),
                }
            ],
        },
        headers=hub.headers,
    )
    assert response.status_code == 201, response.text
    assert [a["filename"] for a in response.json()["attachments"]] == ["Счёт 42.pdf"]
    await hub.delivery.drain()
    [sent] = await hub.smtp.wait_for(1)
    [file] = list(sent.message.iter_attachments())
    assert file.get_filename() == "Счёт 42.pdf"
    assert file.get_content_type() == "application/pdf"
    assert file.get_content() == pdf
    bad = await hub.client.post(
        f"/api/v1/conversations/{conversation.id}/messages",
        json={"text": "x", "attachments": [{"filename": "a", "content_base64": "@@@"}]},
        headers=hub.headers,
    )
    assert bad.status_code == 422 and bad.json()["error"] == "bad_attachment"


async def test_reply_fetched_in_the_same_batch_as_its_original_joins_it(hub: MailHub) -> None:
    raw, first_id = client_mail(CLIENT, "Первое", "Вопрос")
    hub.send(raw)
    hub.send(client_mail(CLIENT, "Re: Первое", "Дополнение", in_reply_to=first_id)[0])
    hub.send(client_mail("other@client.example", "Другое", "Другой клиент")[0])
    assert await hub.poll() == 3
    conversations = await hub.conversations()
    assert len(conversations) == 2
    texts = [m.text.strip() for m in await hub.messages(conversations[0].id)]
    assert texts == ["Вопрос", "Дополнение"]


async def test_moved_after_fetch_and_never_deleted(
    app: Any, client: httpx.AsyncClient, dovecot: Dovecot, smtp_server: SmtpRecorder
) -> None:
    hub = MailHub(app, client, dovecot, smtp_server)
    await hub.setup(imap={"after_fetch": "move", "move_to": "Processed"})
    hub.send(client_mail(CLIENT, "Перенос", "Текст")[0])
    assert await hub.poll() == 1
    assert dovecot.messages_in("hub@example.test") == []
    assert len(dovecot.messages_in("hub@example.test", "Processed")) == 1
    assert await hub.poll() == 0
    assert await hub.count(Message) == 1


async def test_ping_pong_sender_is_limited_and_gets_no_acknowledgement(
    app: Any, client: httpx.AsyncClient, dovecot: Dovecot, smtp_server: SmtpRecorder
) -> None:
    hub = MailHub(app, client, dovecot, smtp_server)
    await hub.setup(acknowledge=True, sender_hourly_limit=2)
    for n in range(4):
        hub.send(client_mail("loop@robot.example", f"Тема {n}", "Я робот без заголовков")[0])
    assert await hub.poll() == 4
    assert len(await hub.leads()) == 2
    assert await hub.drain() == 2  # acknowledgements of the first two only
    inbound = [m for m in await hub.messages_all() if m.direction == "inbound"]
    assert [m.meta.get("automatic") for m in inbound] == [
        None,
        None,
        "sender over the hourly limit",
        "sender over the hourly limit",
    ]


async def test_claims_mailbox_files_a_claim_and_replies_join_it(
    app: Any, client: httpx.AsyncClient, dovecot: Dovecot, smtp_server: SmtpRecorder
) -> None:
    from sqlalchemy import select

    from storage.models.claims import Claim

    hub = MailHub(app, client, dovecot, smtp_server)
    await hub.setup(claims_mailbox=True)
    raw, first_id = client_mail(CLIENT, "Брак товара", "Пришёл разбитый чайник, заказ 1542.")
    hub.send(raw)
    assert await hub.poll() == 1
    async with hub.context.db.read() as session:
        [claim] = (await session.scalars(select(Claim))).all()
    assert re.fullmatch(r"CLM-\d{4}-\d{6}", claim.number)
    assert claim.email == CLIENT and "разбитый чайник" in claim.description
    [lead] = await hub.leads()
    assert lead.kind == "claim" and lead.conversation_id == claim.conversation_id
    hub.send(client_mail(CLIENT, "Re: Брак товара", "Фото прилагаю", in_reply_to=first_id)[0])
    assert await hub.poll() == 1
    async with hub.context.db.read() as session:
        assert len((await session.scalars(select(Claim))).all()) == 1
    texts = [m.text for m in await hub.messages(claim.conversation_id)]
    assert texts[-1].strip() == "Фото прилагаю"


async def test_a_reply_fetched_with_its_claim_joins_it(
    app: Any, client: httpx.AsyncClient, dovecot: Dovecot, smtp_server: SmtpRecorder
) -> None:
    from sqlalchemy import select

    from storage.models.claims import Claim

    hub = MailHub(app, client, dovecot, smtp_server)
    await hub.setup(claims_mailbox=True)
    raw, first_id = client_mail(CLIENT, "Брак товара", "Пришёл разбитый чайник, заказ 1542.")
    hub.send(raw)
    hub.send(client_mail(CLIENT, "Re: Брак товара", "Фото прилагаю", in_reply_to=first_id)[0])
    assert await hub.poll() == 2
    async with hub.context.db.read() as session:
        [claim] = (await session.scalars(select(Claim))).all()
    texts = [m.text.strip() for m in await hub.messages(claim.conversation_id)]
    assert texts[-1] == "Фото прилагаю"
