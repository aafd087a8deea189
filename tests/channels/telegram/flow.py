"""A hub with one bot channel on the test's Bot API stand-in, driven by raw updates.

Updates are JSON dicts as Telegram sends them, posted to the real webhook endpoint with
the channel's secret token. `Chat` writes as one client; the stand-in records what the
bot answers.
"""

from __future__ import annotations

import itertools
import secrets
import time
from typing import Any

import httpx
from sqlalchemy import func, select

from channels.base import HubContext
from channels.delivery import DeliveryOptions, DeliveryWorker
from hub.settings import Settings
from hub.worker import build_delivery, build_worker
from storage.crypto import SecretBox
from storage.models import Channel, Claim, Identity, Message, OutboxEvent
from storage.outbox import OutboxWorker
from tests.factories import create_token
from tests.telegram_api import BotApiStandIn

_update_ids = itertools.count(10_000)
_message_ids = itertools.count(500)
_user_ids = itertools.count(7_000_001)


def new_token() -> str:
    """A token of a new bot (its id keeps FSM keys of tests apart in a shared Redis)."""
    return f"{secrets.randbelow(10**9) + 10**9}:AA{secrets.token_urlsafe(30)}"


class Chat:
    """One client's private chat with the bot: builds the updates they cause."""

    def __init__(
        self, *, language: str = "ru", first_name: str = "Иван", user_id: int | None = None
    ):
        self.user_id = user_id or next(_user_ids)
        self.user = {
            "id": self.user_id,
            "is_bot": False,
            "first_name": first_name,
            "last_name": "Петров" if language == "ru" else "Smith",
            "username": f"client{self.user_id}",
            "language_code": language,
        }
        self.chat = {"id": self.user_id, "type": "private", "first_name": first_name}

    def message(self, **content: Any) -> dict[str, Any]:
        return {
            "update_id": next(_update_ids),
            "message": {
                "message_id": next(_message_ids),
                "from": self.user,
                "chat": self.chat,
                "date": int(time.time()),
                **content,
            },
        }

    def text(self, text: str) -> dict[str, Any]:
        entities = (
            [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
            if text.startswith("/")
            else []
        )
        return self.message(text=text, **({"entities": entities} if entities else {}))

    def photo(self, file_id: str, size: int, caption: str | None = None) -> dict[str, Any]:
        photo = [
            {
                "file_id": f"{file_id}-small",
                "file_unique_id": f"{file_id}-s",
                "width": 90,
                "height": 90,
            },
            {
                "file_id": file_id,
                "file_unique_id": file_id,
                "width": 800,
                "height": 600,
                "file_size": size,
            },
        ]
        return self.message(photo=photo, **({"caption": caption} if caption else {}))

    def document(self, file_id: str, name: str, mime: str, size: int) -> dict[str, Any]:
        return self.message(
            document={
                "file_id": file_id,
                "file_unique_id": file_id,
                "file_name": name,
                "mime_type": mime,
                "file_size": size,
            }
        )

    def contact(self, phone: str, *, own: bool = True) -> dict[str, Any]:
        return self.message(
            contact={
                "phone_number": phone,
                "first_name": self.user["first_name"],
                "user_id": self.user_id if own else self.user_id + 1,
            }
        )

    def press(self, data: str, message_id: int = 1) -> dict[str, Any]:
        return {
            "update_id": next(_update_ids),
            "callback_query": {
                "id": str(next(_update_ids)),
                "from": self.user,
                "chat_instance": "ci",
                "data": data,
                "message": {
                    "message_id": message_id,
                    "from": {"id": 1, "is_bot": True, "first_name": "Shop bot"},
                    "chat": self.chat,
                    "date": int(time.time()),
                    "text": "…",
                },
            },
        }


class BotHub:
    """The app's context, a bot channel made through the API, the worker and delivery."""

    def __init__(self, app: Any, client: httpx.AsyncClient, api: BotApiStandIn) -> None:
        self.app = app
        self.context: HubContext = app.state.context
        self.client = client
        self.api = api
        self.key = "shopbot"
        self.token = new_token()
        self.secret = ""
        self.headers: dict[str, str] = {}
        self.channel_id = 0

    async def setup(self, **config: Any) -> dict[str, Any]:
        api_token, _ = await create_token(self.context.db, name="admin")
        self.headers = {"Authorization": f"Bearer {api_token}"}
        response = await self.client.post(
            "/api/v1/channels/telegram",
            json={
                "key": self.key,
                "title": "Магазин",
                "token": self.token,
                "config": {"api_url": self.api.url, **config},
            },
            headers=self.headers,
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        self.channel_id = int(created["id"])
        await self.load_secret()
        return created

    async def attach(self, other: BotHub) -> None:
        """Use the channel another BotHub made (the same database, after a restart)."""
        self.key, self.token, self.channel_id = other.key, other.token, other.channel_id
        self.headers = other.headers
        await self.load_secret()

    async def load_secret(self) -> None:
        async with self.context.db.read() as session:
            channel = await session.get(Channel, self.channel_id)
            assert channel is not None
            self.secret = SecretBox(self.context.secret).open(channel.secrets)["webhook_secret"]

    async def post(
        self, update: dict[str, Any] | bytes, secret: str | None = None
    ) -> httpx.Response:
        headers = {"X-Telegram-Bot-Api-Secret-Token": self.secret if secret is None else secret}
        if isinstance(update, bytes):
            return await self.client.post(
                f"/webhooks/telegram/{self.key}",
                content=update,
                headers={**headers, "Content-Type": "application/json"},
            )
        return await self.client.post(
            f"/webhooks/telegram/{self.key}", json=update, headers=headers
        )

    async def send(self, update: dict[str, Any]) -> None:
        response = await self.post(update)
        assert response.status_code == 200, response.text

    # Workers

    def worker(self) -> OutboxWorker:
        return build_worker(self.context, Settings(), self.delivery())

    def delivery(self, **options: Any) -> DeliveryWorker:
        worker = build_delivery(self.context)
        if options:
            worker.options = DeliveryOptions(**options)
        return worker

    async def drain(self) -> None:
        """Handle the outbox, then deliver what it queued."""
        await self.worker().drain()
        await self.delivery().drain()

    # Reading

    async def count(self, model: Any, *where: Any) -> int:
        async with self.context.db.read() as session:
            return int(await session.scalar(select(func.count()).select_from(model).where(*where)))

    async def claims(self) -> list[Claim]:
        async with self.context.db.read() as session:
            return list((await session.scalars(select(Claim).order_by(Claim.id))).all())

    async def messages(self, *where: Any) -> list[Message]:
        async with self.context.db.read() as session:
            return list(
                (await session.scalars(select(Message).where(*where).order_by(Message.id))).all()
            )

    async def identities(self, contact_id: int) -> set[tuple[str, str]]:
        async with self.context.db.read() as session:
            rows = await session.execute(
                select(Identity.kind, Identity.value).where(Identity.contact_id == contact_id)
            )
            return {(str(k), str(v)) for k, v in rows}

    async def events(self, topic: str) -> list[OutboxEvent]:
        async with self.context.db.read() as session:
            return list(
                (await session.scalars(select(OutboxEvent).where(OutboxEvent.topic == topic))).all()
            )

    async def api_get(self, path: str, **params: Any) -> Any:
        response = await self.client.get(path, params=params, headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()

    async def api_post(self, path: str, body: dict[str, Any], status: int = 200) -> Any:
        response = await self.client.post(path, json=body, headers=self.headers)
        assert response.status_code == status, response.text
        return response.json()
