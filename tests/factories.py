"""Small async factories for tests: each writes through the real services and commits.

Pass the `Database` the code under test uses (`app.state.context.db` for API
tests, the `db` fixture otherwise).
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from intake import accounts
from intake.batch import ingest_batch
from intake.ingest import IntakeConfig, ingest
from intake.schemas import AttachmentIn, IdentityIn, InboundMessage, IngestResult
from storage.db import Database
from storage.models import ApiToken, Channel, ChannelKind, IdentityKind, Manager, ManagerRole

_counter = itertools.count(1)


def _next() -> int:
    return next(_counter)


async def create_channel(
    db: Database,
    *,
    key: str | None = None,
    kind: str = ChannelKind.WEBFORM,
    title: str | None = None,
    config: dict[str, Any] | None = None,
) -> Channel:
    key = key or f"{kind}-{_next()}"
    async with db.transaction() as session:
        channel = Channel(
            key=key,
            kind=str(kind),
            title=title or key,
            config=config or {},
            is_active=True,
            status="ok",
        )
        session.add(channel)
        await session.flush()
    return channel


async def create_manager(
    db: Database,
    *,
    email: str | None = None,
    name: str = "Анна Менеджер",
    role: ManagerRole | str = ManagerRole.MANAGER,
    password: str | None = "correct horse battery staple",
) -> Manager:
    async with db.transaction() as session:
        return await accounts.create_manager(
            session,
            email=email or f"manager{_next()}@example.ru",
            name=name,
            role=role,
            password=password,
        )


async def create_token(
    db: Database, *, name: str = "test token", manager_id: int | None = None
) -> tuple[str, ApiToken]:
    """A new API token (plain, row); without a manager it acts as an administrator."""
    async with db.transaction() as session:
        return await accounts.create_api_token(session, name=name, manager_id=manager_id)


async def ingest_message(
    db: Database,
    channel: Channel,
    *,
    text: str = "Здравствуйте, хочу заказать",
    email: str | None = None,
    phone: str | None = None,
    telegram: str | int | None = None,
    name: str | None = None,
    subject: str | None = None,
    external_id: str | None = None,
    thread_key: str | None = None,
    attribution: dict[str, Any] | None = None,
    form_fields: dict[str, Any] | None = None,
    attachments: list[AttachmentIn] | None = None,
    received_at: datetime | None = None,
    opens_lead: bool = True,
) -> IngestResult:
    """Ingest one inbound message in its own committed transaction."""
    identities = []
    if email is not None:
        identities.append(IdentityIn(IdentityKind.EMAIL, email))
    if phone is not None:
        identities.append(IdentityIn(IdentityKind.PHONE, phone))
    if telegram is not None:
        identities.append(IdentityIn(IdentityKind.TELEGRAM, str(telegram)))
    if not identities:
        identities.append(IdentityIn(IdentityKind.WEB, f"session-{_next()}"))
    message = InboundMessage(
        channel_id=channel.id,
        channel_kind=channel.kind,
        external_id=external_id or f"msg-{_next()}",
        identities=identities,
        text=text,
        subject=subject,
        contact_name=name,
        thread_key=thread_key,
        attachments=attachments or [],
        attribution=attribution or {},
        form_fields=form_fields or {},
        received_at=received_at,
        opens_lead=opens_lead,
    )
    async with db.transaction() as session:
        return await ingest(session, message, IntakeConfig())


async def form_conversations(db: Database, channel_id: int, count: int) -> list[int]:
    """`count` web-form requests from as many new clients, taken in as one batch; returns
    the new conversations' ids in order."""
    messages = [
        InboundMessage(
            channel_id=channel_id,
            channel_kind=ChannelKind.WEBFORM,
            external_id=f"form:{n}",
            identities=[IdentityIn("email", f"client{n}@example.ru")],
            text=f"Заявка номер {n}",
        )
        for n in range(count)
    ]
    async with db.transaction() as session:
        outcomes = await ingest_batch(session, messages, IntakeConfig())
    ids = []
    for outcome in outcomes:
        assert isinstance(outcome, IngestResult), outcome
        ids.append(outcome.conversation_id)
    return ids
