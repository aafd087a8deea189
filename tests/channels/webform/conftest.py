"""Helpers for the web-form channel's tests: extra forms, row counts, HTML parsing, tokens."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from itsdangerous import TimestampSigner
from sqlalchemy import func, select

from channels.webform.schemas import FormConfig, FormField, LocalizedText, default_form_config
from storage.db import Database
from storage.models import Attachment, Channel, ChannelKind, Contact, Identity, Lead, Message
from tests.conftest import REDIS_URL, missing_part
from tests.factories import create_channel

OWN_ORIGIN = "http://hub.test"
SHOP = "https://shop.example.ru"


def form_config(**changes: Any) -> FormConfig:
    """The default form's configuration with some settings changed (validated)."""
    data = default_form_config().model_dump(mode="json")
    data.update(changes)
    return FormConfig.model_validate(data)


async def add_form(
    db: Database, key: str, config: FormConfig | None = None, **changes: Any
) -> Channel:
    """A web-form channel row, as `omnihub channels add webform` would store it."""
    config = config or form_config(**changes)
    return await create_channel(
        db, key=key, kind=ChannelKind.WEBFORM, title=key, config=config.model_dump(mode="json")
    )


def custom_config(**changes: Any) -> FormConfig:
    """A form with custom fields: a required company and a topic chosen from a list."""
    fields = [f.model_dump(mode="json") for f in default_form_config().fields]
    fields += [
        FormField(
            name="company",
            label=LocalizedText(ru="Компания", en="Company"),
            required=True,
            max_length=100,
        ).model_dump(mode="json"),
        FormField(
            name="topic",
            type="select",
            label=LocalizedText(ru="Тема", en="Topic"),
            options=["Доставка", "Оплата"],
        ).model_dump(mode="json"),
    ]
    return form_config(fields=fields, **changes)


async def counts(db: Database) -> dict[str, int]:
    """Rows in the tables a submission writes to."""
    result = {}
    async with db.read() as session:
        for name, model in (
            ("leads", Lead),
            ("messages", Message),
            ("contacts", Contact),
            ("identities", Identity),
            ("attachments", Attachment),
        ):
            result[name] = int(await session.scalar(select(func.count()).select_from(model)) or 0)
    return result


NOTHING = {"leads": 0, "messages": 0, "contacts": 0, "identities": 0, "attachments": 0}


async def only_lead(db: Database) -> Lead:
    async with db.read() as session:
        leads = (await session.scalars(select(Lead))).all()
    assert len(leads) == 1, leads
    return leads[0]


def assert_json_error(response: httpx.Response, status: int, code: str | None = None) -> Any:
    """A JSON `{"error", "detail"}` answer with this status; returns the body."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert isinstance(body["error"], str) and body["error"]
    assert body["detail"] not in (None, "", [], {})
    if code is not None:
        assert body["error"] == code, body
    return body


# HTML


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    parent: Node | None = None
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return " ".join(
            " ".join((c if isinstance(c, str) else c.text()).split()) for c in self.children
        ).strip()

    def iter(self) -> list[Node]:
        found: list[Node] = []
        for child in self.children:
            if isinstance(child, Node):
                found.append(child)
                found.extend(child.iter())
        return found

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        return [
            node
            for node in self.iter()
            if (tag is None or node.tag == tag)
            and all(
                node.attrs.get(name.rstrip("_").replace("_", "-")) == value
                for name, value in attrs.items()
            )
        ]

    def find(self, tag: str | None = None, **attrs: str) -> Node:
        nodes = self.find_all(tag, **attrs)
        assert nodes, f"no <{tag} {attrs}> in the page"
        return nodes[0]

    def ancestors(self) -> list[Node]:
        result = []
        node = self.parent
        while node is not None:
            result.append(node)
            node = node.parent
        return result


VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.current = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v if v is not None else "" for k, v in attrs}, self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v if v is not None else "" for k, v in attrs}, self.current)
        self.current.children.append(node)

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.children.append(data)


def parse_html(html: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def hidden_inputs(html: str) -> dict[str, str]:
    """What a browser would send of the page's hidden inputs."""
    page = parse_html(html)
    return {
        node.attrs["name"]: node.attrs.get("value", "")
        for node in page.find_all("input", type="hidden")
    }


def field_value(html: str, name: str) -> str:
    """The value a re-rendered page shows in the field `name`."""
    node = parse_html(html).find(None, name=name)
    if node.tag == "textarea":
        return "".join(c for c in node.children if isinstance(c, str))
    return node.attrs.get("value", "")


def aged_token(secret: str, key: str, seconds: float, submission_id: str | None = None) -> str:
    """The token a page rendered `seconds` ago carries (signed with the hub's secret)."""
    import time

    class Signer(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - seconds)

    signer = Signer(secret, salt="omnihub.webform")
    return signer.sign(f"{key}:{submission_id or uuid.uuid4().hex}").decode()


# Rate-limited hubs


@pytest.fixture
def unique_ip() -> str:
    """A client address no other test (or test run sharing the Redis) uses."""
    return _random_ip()


@pytest.fixture
def other_ip() -> str:
    """A second such address."""
    return _random_ip()


def _random_ip() -> str:
    raw = uuid.uuid4().bytes
    return f"10.{raw[0]}.{raw[1]}.{raw[2] or 1}"


@pytest.fixture(params=["memory", "redis"])
async def limited_app(
    request: pytest.FixtureRequest,
    hub_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    unique_ip: str,
    other_ip: str,
) -> AsyncIterator[Any]:
    """A hub whose forms allow 3 posts a minute per client address (in memory or in Redis)."""
    from hub.app import create_app
    from hub.settings import Settings

    monkeypatch.setenv("OMNIHUB_FORMS_RATE_LIMIT", "3/minute")
    redis = None
    if request.param == "redis":
        redis = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        try:
            await redis.ping()
        except (OSError, aioredis.RedisError) as exc:
            await redis.aclose()
            missing_part(f"Redis is not reachable at {REDIS_URL}: {exc}")
        monkeypatch.setenv("OMNIHUB_REDIS_URL", REDIS_URL)
    application = create_app(Settings())
    try:
        async with application.router.lifespan_context(application):
            limiter = application.state.context.forms_rate_limiter
            expected = "RedisRateLimiter" if redis is not None else "MemoryRateLimiter"
            assert type(limiter).__name__ == expected
            yield application
    finally:
        if redis is not None:
            await redis.delete(f"forms:{unique_ip}", f"forms:{other_ip}")
            await redis.aclose()


@pytest.fixture
async def limited_client(limited_app: Any, unique_ip: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=limited_app, client=(unique_ip, 40123))
    async with httpx.AsyncClient(transport=transport, base_url=OWN_ORIGIN) as http:
        yield http
