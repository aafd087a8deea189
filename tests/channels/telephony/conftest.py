"""The telephony tests' hub: phone lines added through the API, events posted to the real
webhook endpoint with each provider's own signing, the outbox drained with a clock the
test controls, and the results read back from the database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from channels.telephony.handlers import telephony_handlers
from channels.telephony.journal import CallBatcher, CallJournal
from hub.worker import merge
from routing.engine import RoutingEngine
from routing.handlers import routing_handlers
from routing.presence import set_presence
from routing.sla import SlaMonitor
from storage.db import Database
from storage.models import (
    Call,
    Channel,
    Contact,
    Conversation,
    Identity,
    Lead,
    Manager,
    Message,
    OutboxEvent,
    Presence,
    Queue,
    QueueMember,
    Task,
)
from storage.outbox import OutboxWorker
from tests.factories import create_token

BASE_URL = "http://hub.test"
CLIENT = "+79123456789"  # +7 912 345-67-89
LINE = "+74951234567"


class Clock:
    def __init__(self) -> None:
        # Ahead of the wall clock, so events written with the real time are due at once.
        self.now = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class PhoneHub:
    """The app under test with its phone lines, a drained worker and an operator's token."""

    def __init__(self, app: Any, client: httpx.AsyncClient, headers: dict[str, str]) -> None:
        self.app = app
        self.context = app.state.context
        self.db: Database = self.context.db
        self.client = client
        self.headers = headers
        self.clock = Clock()
        engine = RoutingEngine(clock=self.clock)
        self.context.routing = engine
        self.context.calls = CallBatcher(
            CallJournal(self.db, self.context.intake, engine, clock=self.clock),
            committers=1 if self.db.is_sqlite else 4,
        )
        self.worker = OutboxWorker(
            self.db,
            merge(
                routing_handlers(engine, SlaMonitor(engine, clock=self.clock)),
                telephony_handlers(self.context.bus, clock=self.clock),
            ),
            clock=self.clock,
        )
        self.secrets: dict[str, dict[str, str]] = {}

    async def drain(self) -> None:
        await self.worker.drain(max_rounds=1000)

    # Lines

    async def line(
        self, key: str, provider: str, secrets: dict[str, str] | None = None, **config: Any
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/channels/telephony",
            headers=self.headers,
            json={
                "key": key,
                "title": f"Линия {key}",
                "config": {"provider": provider, **config},
                "secrets": secrets or {},
            },
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        self.secrets[key] = {**(secrets or {}), **body["generated_secrets"]}
        return body

    # Posting events as each provider does

    async def generic(
        self, key: str, *, as_json: bool = False, token: str | None = None, **fields: Any
    ) -> httpx.Response:
        token = token if token is not None else self.secrets[key]["token"]
        url = f"/webhooks/telephony/{key}/{token}" if token else f"/webhooks/telephony/{key}"
        if as_json:
            return await self.client.post(url, json=fields)
        return await self.client.post(url, data=fields)

    async def twilio(
        self, key: str, params: dict[str, str], *, auth_token: str | None = None
    ) -> httpx.Response:
        url = f"{BASE_URL}/webhooks/telephony/{key}"
        token = auth_token or self.secrets[key]["auth_token"]
        signature = RequestValidator(token).compute_signature(url, params)
        return await self.client.post(url, data=params, headers={"X-Twilio-Signature": signature})

    async def zadarma(
        self, key: str, fields: dict[str, str], *, signed: str, secret: str | None = None
    ) -> httpx.Response:
        secret = secret or self.secrets[key]["api_secret"]
        # As Zadarma's PHP library: base64_encode(hash_hmac('sha1', $data, $secret)).
        digest = hmac.new(secret.encode(), signed.encode(), hashlib.sha1).hexdigest()
        signature = base64.b64encode(digest.encode()).decode()
        return await self.client.post(
            f"/webhooks/telephony/{key}", data=fields, headers={"Signature": signature}
        )

    async def mango(
        self, key: str, path: str, event: dict[str, Any], *, salt: str | None = None
    ) -> httpx.Response:
        api_key = self.secrets[key]["api_key"]
        body = json.dumps(event, ensure_ascii=False)
        salt = salt if salt is not None else self.secrets[key]["api_salt"]
        sign = hashlib.sha256((api_key + body + salt).encode()).hexdigest()
        return await self.client.post(
            f"/webhooks/telephony/{key}/{path}",
            data={"vpbx_api_key": api_key, "sign": sign, "json": body},
        )

    # People

    async def manager(
        self, name: str, *, extension: str | None = None, online: bool = True, **fields: Any
    ) -> int:
        async with self.db.transaction() as session:
            manager = Manager(
                email=f"{name}@example.ru", name=name, capacity=10, extension=extension, **fields
            )
            session.add(manager)
            await session.flush()
            if online:
                await set_presence(
                    session, manager.id, Presence.ONLINE, now=self.clock(), ttl_seconds=86400
                )
            return manager.id

    async def queue(self, key: str, members: list[int], *, lines: tuple[str, ...] = ()) -> int:
        """A queue that is the default of these channels."""
        async with self.db.transaction() as session:
            queue = Queue(key=key, name=key.title(), sla={})
            session.add(queue)
            await session.flush()
            session.add_all(
                QueueMember(queue_id=queue.id, manager_id=m, position=i)
                for i, m in enumerate(members)
            )
            for channel in (
                await session.scalars(select(Channel).where(Channel.key.in_(lines)))
            ).all():
                channel.default_queue_id = queue.id
            return queue.id

    async def set_owner(self, phone: str, manager_id: int) -> None:
        async with self.db.transaction() as session:
            identity = (
                await session.scalars(select(Identity).where(Identity.value == phone))
            ).one()
            contact = await session.get(Contact, identity.contact_id)
            assert contact is not None
            contact.owner_id = manager_id

    # Reading back

    async def calls(self) -> list[Call]:
        return await self._all(Call)

    async def tasks(self) -> list[Task]:
        return await self._all(Task)

    async def leads(self) -> list[Lead]:
        return await self._all(Lead)

    async def conversations(self) -> list[Conversation]:
        return await self._all(Conversation)

    async def messages(self) -> list[Message]:
        return await self._all(Message)

    async def call(self, provider_call_id: str) -> Call:
        async with self.db.read() as session:
            return (
                await session.scalars(select(Call).where(Call.provider_call_id == provider_call_id))
            ).one()

    async def contact_of(self, phone: str) -> Contact:
        async with self.db.read() as session:
            identity = (
                await session.scalars(select(Identity).where(Identity.value == phone))
            ).one()
            contact = await session.get(Contact, identity.contact_id)
            assert contact is not None
            return contact

    async def events(self, topic: str) -> list[dict[str, Any]]:
        async with self.db.read() as session:
            rows = await session.scalars(
                select(OutboxEvent).where(OutboxEvent.topic == topic).order_by(OutboxEvent.id)
            )
            return [dict(row.payload) for row in rows.all()]

    async def counts(self) -> dict[str, int]:
        result = {}
        async with self.db.read() as session:
            for name, model in (
                ("calls", Call),
                ("contacts", Contact),
                ("leads", Lead),
                ("messages", Message),
                ("tasks", Task),
            ):
                result[name] = int(
                    await session.scalar(select(func.count()).select_from(model)) or 0
                )
        return result

    async def _all(self, model: Any) -> list[Any]:
        async with self.db.read() as session:
            return list((await session.scalars(select(model).order_by(model.id))).all())


NOTHING = {"calls": 0, "contacts": 0, "leads": 0, "messages": 0, "tasks": 0}


@pytest.fixture
async def hub(app: Any, client: httpx.AsyncClient) -> PhoneHub:
    token, _row = await create_token(app.state.context.db, name="operator")
    return PhoneHub(app, client, {"Authorization": f"Bearer {token}"})


@pytest.fixture
async def pbx(hub: PhoneHub) -> PhoneHub:
    """The hub with a generic (Zammad-compatible) line "pbx"."""
    await hub.line("pbx", "generic")
    return hub
