"""Small async factories for tests: each writes through the real services and commits.

Pass the `Database` the code under test uses (`app.state.context.db` for API
tests, the `db` fixture otherwise). The helpers after them drive the real app: through
its HTTP API (the `client` fixture), asserting each call succeeded, or by draining its
outbox with the hub's own worker handlers.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import httpx

from hub.settings import Settings
from hub.worker import handlers
from intake import accounts
from intake.batch import ingest_batch
from intake.claims.service import ClaimIn, file_claim
from intake.ingest import IntakeConfig, ingest
from intake.schemas import AttachmentIn, IdentityIn, InboundMessage, IngestResult
from storage.db import Database
from storage.models import (
    ApiToken,
    Channel,
    ChannelKind,
    Claim,
    IdentityKind,
    Manager,
    ManagerRole,
)
from storage.outbox import OutboxWorker
from storage.types import utcnow

_counter = itertools.count(1)
# Numbers the web-form clients and queues made through the API.
_clients = itertools.count(1)


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


async def create_claim(
    db: Database,
    channel: Channel,
    *,
    description: str = "Коробка пришла смятой, внутри разбит экран",
    reason: str = "quality",
    email: str | None = None,
    name: str | None = None,
    now: datetime | None = None,
    due_days: int = 10,
) -> Claim:
    """A claim filed through the claims service (its conversation, lead and number), committed."""
    n = _next()
    claim = ClaimIn(
        channel_id=channel.id,
        channel_kind=channel.kind,
        external_id=f"claim-{n}",
        reason=reason,
        description=description,
        email=email or f"client{n}@example.ru",
        contact_name=name,
        due_days=due_days,
    )
    async with db.transaction() as session:
        return (await file_claim(session, claim, now=now)).claim


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


async def set_language(db: Database, manager_id: int, language: str, **changes: Any) -> None:
    """Set a manager's language (and any other column given) directly on the row."""
    async with db.transaction() as session:
        manager = await session.get(Manager, manager_id)
        assert manager is not None
        manager.language = language
        for name, value in changes.items():
            setattr(manager, name, value)


async def manager_with_headers(
    db: Database, *, role: str = ManagerRole.MANAGER, name: str = "Анна"
) -> tuple[Manager, dict[str, str]]:
    """A new manager and the Authorization header of a token of theirs."""
    manager = await create_manager(db, role=role, name=name)
    token, _row = await create_token(db, manager_id=manager.id)
    return manager, {"Authorization": f"Bearer {token}"}


async def drain(
    app: Any, *, ahead: timedelta = timedelta(0), settings: Settings | None = None
) -> int:
    """Run the hub's worker handlers over every due event (`ahead` moves its clock on)."""
    context = app.state.context
    worker = OutboxWorker(context.db, handlers(context, settings), clock=lambda: utcnow() + ahead)
    return await worker.drain()


async def post_form(client: httpx.AsyncClient, message: str = "Хочу заказать доставку") -> int:
    """A web-form request from a new person; returns its conversation id."""
    number = next(_clients)
    response = await client.post(
        "/forms/default",
        json={
            "name": f"Клиент {number}",
            "email": f"client{number}@example.ru",
            "message": message,
            "consent": True,  # the built-in form asks for it (152-FZ)
        },
    )
    assert response.status_code == 201, response.text
    return int(response.json()["conversation_id"])


async def make_queue(
    client: httpx.AsyncClient, headers: dict[str, str], member_ids: list[int], **settings: Any
) -> dict[str, Any]:
    body = {"key": f"q{next(_clients)}", "name": "Продажи", **settings}
    response = await client.post("/api/v1/queues", json=body, headers=headers)
    assert response.status_code == 201, response.text
    queue: dict[str, Any] = response.json()
    if member_ids:
        response = await client.put(
            f"/api/v1/queues/{queue['id']}/members", json=member_ids, headers=headers
        )
        assert response.status_code == 200, response.text
    return queue


async def default_queue(
    client: httpx.AsyncClient, headers: dict[str, str], members: list[int], **settings: Any
) -> dict[str, Any]:
    """A new queue made the default web form's default queue."""
    queue = await make_queue(client, headers, members, **settings)
    response = await client.put(
        "/api/v1/channels/default/default-queue", json={"queue_id": queue["id"]}, headers=headers
    )
    assert response.status_code == 200, response.text
    return queue


async def go_online(client: httpx.AsyncClient, headers: dict[str, str], ttl: int = 3600) -> None:
    response = await client.put(
        "/api/v1/me/presence", json={"presence": "online", "ttl_seconds": ttl}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["presence"] == "online"


async def routing_of(
    client: httpx.AsyncClient, headers: dict[str, str], conversation_id: int
) -> dict[str, Any]:
    response = await client.get(f"/api/v1/conversations/{conversation_id}/routing", headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    """The response is the hub's error body with that status (and code, if given)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"}
    if code is not None:
        assert body["error"] == code, body
