"""JSON posts to /forms/{key}: what a site's own script sends (no token, CORS, idempotency)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from storage.db import Database
from storage.models import Channel, Contact, Identity, Message
from tests.channels.webform.conftest import (
    NOTHING,
    OWN_ORIGIN,
    SHOP,
    add_form,
    assert_json_error,
    counts,
    custom_config,
    only_lead,
)

SUBMISSION = {
    "name": "Иван Петров",
    "email": "Ivan.Petrov@Example.RU",
    "phone": "+7 912 345-67-89",
    "message": "Хочу заказать доставку на пятницу",
    "consent": True,  # the built-in form asks for it (152-FZ)
}


@pytest.fixture
def hub_db(app: Any) -> Database:
    database: Database = app.state.context.db
    return database


async def test_json_post_answers_201_with_the_ids(client: httpx.AsyncClient, hub_db: Database):
    response = await client.post("/forms/default", json=SUBMISSION)

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"lead_id", "conversation_id", "contact_id"}
    assert all(isinstance(value, int) for value in body.values())
    assert "idempotent-replayed" not in response.headers
    lead = await only_lead(hub_db)
    assert (lead.id, lead.conversation_id, lead.contact_id) == (
        body["lead_id"],
        body["conversation_id"],
        body["contact_id"],
    )
    assert lead.source == "webform"
    assert lead.status == "new"
    assert lead.form_fields == {
        "name": "Иван Петров",
        "email": "ivan.petrov@example.ru",
        "phone": "+79123456789",
    }
    async with hub_db.read() as session:
        contact = await session.get(Contact, body["contact_id"])
        identities = (
            await session.execute(
                select(Identity.kind, Identity.value).where(
                    Identity.contact_id == body["contact_id"]
                )
            )
        ).all()
        message = (await session.scalars(select(Message))).one()
    assert contact is not None and contact.name == "Иван Петров"
    assert sorted(identities) == [("email", "ivan.petrov@example.ru"), ("phone", "+79123456789")]
    assert message.text == SUBMISSION["message"]
    assert message.conversation_id == body["conversation_id"]
    assert await counts(hub_db) == {
        "leads": 1,
        "messages": 1,
        "contacts": 1,
        "identities": 2,
        "attachments": 0,
    }


async def test_json_post_needs_no_token_and_only_a_phone(
    client: httpx.AsyncClient, hub_db: Database
):
    response = await client.post(
        "/forms/default",
        json={"phone": "8 912 345 67 89", "message": "Перезвоните", "consent": True},
    )
    assert response.status_code == 201, response.text
    assert (await only_lead(hub_db)).form_fields == {"phone": "+79123456789"}


async def test_utm_and_referrer_come_from_the_post_urls_query(
    client: httpx.AsyncClient, hub_db: Database
):
    query = (
        "utm_source=yandex&utm_medium=cpc&utm_campaign=spring-sale&utm_term=%D0%B4%D0%BE%D1%81"
        "&utm_content=banner&yclid=123&other=ignored&referrer=https%3A%2F%2Fya.ru%2Fsearch"
    )
    response = await client.post(f"/forms/default?{query}", json=SUBMISSION)

    assert response.status_code == 201, response.text
    attribution = (await only_lead(hub_db)).attribution
    assert attribution["utm_source"] == "yandex"
    assert attribution["utm_medium"] == "cpc"
    assert attribution["utm_campaign"] == "spring-sale"
    assert attribution["utm_term"] == "дос"
    assert attribution["utm_content"] == "banner"
    assert attribution["yclid"] == "123"
    assert attribution["referrer"] == "https://ya.ru/search"
    assert "other" not in attribution
    # The POST URL is the hub's, not a page: only ?page= names the page.
    assert "page_url" not in attribution


async def test_the_page_comes_from_the_page_parameter(client: httpx.AsyncClient, hub_db: Database):
    page = "https://shop.example.ru/catalog?utm_source=vk"
    response = await client.post(
        "/forms/default", params={"page": page, "utm_source": "vk"}, json=SUBMISSION
    )
    assert response.status_code == 201, response.text
    attribution = (await only_lead(hub_db)).attribution
    assert attribution["page_url"] == page
    assert attribution["utm_source"] == "vk"


async def test_referer_header_is_the_fallback_referrer(client: httpx.AsyncClient, hub_db: Database):
    response = await client.post(
        "/forms/default?utm_source=google",
        json=SUBMISSION,
        headers={"Referer": "https://www.google.com/"},
    )
    assert response.status_code == 201, response.text
    attribution = (await only_lead(hub_db)).attribution
    assert attribution["utm_source"] == "google"
    assert attribution["referrer"] == "https://www.google.com/"


async def test_custom_fields_are_kept_in_the_lead(client: httpx.AsyncClient, hub_db: Database):
    await add_form(hub_db, "b2b", custom_config())
    response = await client.post(
        "/forms/b2b",
        json={
            "email": "buyer@example.ru",
            "message": "Нужен счёт",
            "fields": {"company": "ООО Ромашка", "topic": "Оплата"},
        },
    )

    assert response.status_code == 201, response.text
    lead = await only_lead(hub_db)
    assert lead.form_fields == {
        "email": "buyer@example.ru",
        "company": "ООО Ромашка",
        "topic": "Оплата",
    }
    async with hub_db.read() as session:
        message = (await session.scalars(select(Message))).one()
    assert "Нужен счёт" in message.text
    assert "Компания: ООО Ромашка" in message.text


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"topic": "Оплата"}, "company", "required"),
        ({"company": "ООО Ромашка", "topic": "Ремонт"}, "topic", "invalid_option"),
        ({"company": "x" * 101}, "company", "too_long"),
        ({"company": "ООО Ромашка", "color": "red"}, "color", "unknown_field"),
        ({"company": "ООО Ромашка", "email": "a@example.ru"}, "email", "unknown_field"),
    ],
)
async def test_custom_field_errors(
    client: httpx.AsyncClient, hub_db: Database, fields: dict[str, str], field: str, code: str
):
    await add_form(hub_db, "b2b", custom_config())
    response = await client.post(
        "/forms/b2b", json={"email": "buyer@example.ru", "message": "Счёт", "fields": fields}
    )
    body = assert_json_error(response, 422, "invalid_input")
    assert body["detail"][field]["code"] == code
    assert body["detail"][field]["message"]
    assert await counts(hub_db) == NOTHING


async def test_twenty_concurrent_posts_with_one_idempotency_key_store_one_lead(
    client: httpx.AsyncClient, hub_db: Database
):
    headers = {"Idempotency-Key": "order-2024-0001-attempt"}

    responses = await asyncio.gather(
        *(client.post("/forms/default", json=SUBMISSION, headers=headers) for _ in range(20))
    )

    assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses]
    answers = {json.dumps(r.json(), sort_keys=True) for r in responses}
    assert len(answers) == 1, answers
    replayed = [r.headers.get("idempotent-replayed") for r in responses]
    assert replayed.count(None) == 1, replayed
    assert replayed.count("true") == 19
    assert await counts(hub_db) == {
        "leads": 1,
        "messages": 1,
        "contacts": 1,
        "identities": 2,
        "attachments": 0,
    }
    lead = await only_lead(hub_db)
    assert lead.id == responses[0].json()["lead_id"]


async def test_idempotency_key_replays_later_and_other_keys_store_anew(
    client: httpx.AsyncClient, hub_db: Database
):
    first = await client.post("/forms/default", json=SUBMISSION, headers={"Idempotency-Key": "k-1"})
    again = await client.post("/forms/default", json=SUBMISSION, headers={"Idempotency-Key": "k-1"})
    other = await client.post("/forms/default", json=SUBMISSION, headers={"Idempotency-Key": "k-2"})
    plain = await client.post("/forms/default", json=SUBMISSION)

    assert first.status_code == again.status_code == other.status_code == plain.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert other.json()["lead_id"] != first.json()["lead_id"]
    # Same person: every lead lands on one contact.
    assert {r.json()["contact_id"] for r in (first, other, plain)} == {first.json()["contact_id"]}
    assert (await counts(hub_db))["leads"] == 3


async def test_two_spellings_of_one_phone_land_on_one_contact(
    client: httpx.AsyncClient, hub_db: Database
):
    first = await client.post(
        "/forms/default",
        json={"phone": "8 (912) 345-67-89", "message": "Первая заявка", "consent": True},
    )
    second = await client.post(
        "/forms/default",
        json={
            "name": "Мария",
            "phone": "+7 912 345 6789",
            "message": "Вторая заявка",
            "consent": True,
        },
    )

    assert first.status_code == second.status_code == 201, (first.text, second.text)
    assert first.json()["contact_id"] == second.json()["contact_id"]
    assert first.json()["lead_id"] != second.json()["lead_id"]
    assert await counts(hub_db) == {
        "leads": 2,
        "messages": 2,
        "contacts": 1,
        "identities": 1,
        "attachments": 0,
    }
    async with hub_db.read() as session:
        values = (await session.scalars(select(Identity.value))).all()
    assert values == ["+79123456789"]


TEN_MB = 10 * 1024 * 1024


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


BAD_INPUT = [
    pytest.param(
        _json({"email": "ivan@example.ru"}), 422, "invalid_input", "message", id="no-message"
    ),
    pytest.param(
        _json({"name": "Иван", "message": "Привет"}),
        422,
        "invalid_input",
        "email",
        id="neither-email-nor-phone",
    ),
    pytest.param(
        _json({"email": "   ", "phone": "", "message": "Привет"}),
        422,
        "invalid_input",
        "email",
        id="blank-contacts",
    ),
    pytest.param(
        _json({"email": "ivan@@example", "message": "Привет"}),
        422,
        "invalid_input",
        "email",
        id="bad-email",
    ),
    pytest.param(
        _json({"phone": "12345", "message": "Привет"}),
        422,
        "invalid_input",
        "phone",
        id="bad-phone",
    ),
    pytest.param(
        _json({"phone": "+7 912 345 67 89 ext", "message": "Привет"}),
        422,
        "invalid_input",
        "phone",
        id="phone-with-words",
    ),
    pytest.param(
        _json({"email": "ivan@example.ru", "message": "x" * TEN_MB}),
        (413, 422),
        None,
        None,
        id="ten-megabyte-message",
    ),
    pytest.param(
        _json({"email": "ivan@example.ru", "message": "Привет", "name": "я" * TEN_MB}),
        (413, 422),
        None,
        None,
        id="ten-megabyte-name",
    ),
    pytest.param(
        _json({"email": "ivan@example.ru", "message": "x" * 10_001}),
        422,
        "invalid_input",
        None,
        id="message-over-limit",
    ),
    pytest.param(
        b'{"email": "ivan@example.ru", "message": ', 400, "invalid_json", None, id="broken"
    ),
    pytest.param(b"", 400, "invalid_json", None, id="empty-body"),
    pytest.param(b"\xff\xfe{}", 400, "invalid_json", None, id="not-utf8"),
    pytest.param(b"[1, 2]", 422, "invalid_input", None, id="array"),
    pytest.param(b'"hello"', 422, "invalid_input", None, id="string"),
    pytest.param(
        _json({"email": "ivan@example.ru", "message": 42}),
        422,
        "invalid_input",
        None,
        id="number-as-message",
    ),
    pytest.param(
        _json({"email": "ivan@example.ru", "message": "Привет", "is_admin": True}),
        422,
        "invalid_input",
        None,
        id="unknown-key",
    ),
    pytest.param(
        _json({"email": "ivan@example.ru", "message": "Привет", "fields": {"color": "red"}}),
        422,
        "invalid_input",
        "color",
        id="undeclared-custom-field",
    ),
    pytest.param(
        _json({"email": "ivan@example.ru", "message": "Привет", "fields": {"a": {"b": 1}}}),
        422,
        "invalid_input",
        None,
        id="nested-field",
    ),
]


@pytest.mark.parametrize(("body", "status", "code", "field"), BAD_INPUT)
async def test_bad_input_is_a_clear_4xx_and_stores_nothing(
    client: httpx.AsyncClient,
    hub_db: Database,
    body: bytes,
    status: int | tuple[int, ...],
    code: str | None,
    field: str | None,
):
    response = await client.post(
        "/forms/default", content=body, headers={"Content-Type": "application/json"}
    )

    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    result = assert_json_error(response, response.status_code, code)
    if field is not None:
        assert result["detail"][field]["code"], result
        assert result["detail"][field]["message"], result
    assert len(response.content) < 10_000  # the oversized input is not echoed back
    assert await counts(hub_db) == NOTHING


async def test_field_errors_say_which_field_and_why(client: httpx.AsyncClient, hub_db: Database):
    response = await client.post("/forms/default", json={"email": "not-an-address", "phone": "123"})
    body = assert_json_error(response, 422, "invalid_input")
    assert body["detail"]["email"]["code"] == "invalid_email"
    assert body["detail"]["phone"]["code"] == "invalid_phone"
    assert body["detail"]["message"]["code"] == "required"
    assert "email" in body["detail"]["email"]["message"].lower()
    assert await counts(hub_db) == NOTHING


async def test_contact_required_is_reported(client: httpx.AsyncClient, hub_db: Database):
    response = await client.post("/forms/default", json={"message": "Привет"})
    body = assert_json_error(response, 422, "invalid_input")
    assert body["detail"]["email"]["code"] == "contact_required_email_or_phone"


async def test_a_bad_idempotency_key_is_refused(client: httpx.AsyncClient, hub_db: Database):
    response = await client.post(
        "/forms/default", json=SUBMISSION, headers={"Idempotency-Key": "k" * 201}
    )
    assert_json_error(response, 422, "invalid_idempotency_key")
    response = await client.post(
        "/forms/default", json=SUBMISSION, headers={"Idempotency-Key": "has space"}
    )
    assert_json_error(response, 422, "invalid_idempotency_key")
    assert await counts(hub_db) == NOTHING


async def test_other_media_types_are_415(client: httpx.AsyncClient, hub_db: Database):
    response = await client.post(
        "/forms/default", content=b"hello", headers={"Content-Type": "text/plain"}
    )
    assert_json_error(response, 415, "unsupported_media_type")
    response = await client.post("/forms/default", content=b"hello")
    assert_json_error(response, 415, "unsupported_media_type")
    assert await counts(hub_db) == NOTHING


@pytest.mark.parametrize("key", ["nope", "Default", "a" * 65, "no%20pe", "-x"])
async def test_an_unknown_form_is_404(client: httpx.AsyncClient, hub_db: Database, key: str):
    response = await client.post(f"/forms/{key}", json=SUBMISSION)
    assert_json_error(response, 404, "unknown_form")
    assert await counts(hub_db) == NOTHING


async def test_an_inactive_form_is_404(client: httpx.AsyncClient, hub_db: Database):
    await add_form(hub_db, "old")
    async with hub_db.transaction() as session:
        await session.execute(update(Channel).where(Channel.key == "old").values(is_active=False))
    response = await client.post("/forms/old", json=SUBMISSION)
    assert_json_error(response, 404, "unknown_form")
    assert await counts(hub_db) == NOTHING


async def test_a_webhook_channel_of_another_kind_is_not_a_form(
    client: httpx.AsyncClient, hub_db: Database
):
    from tests.factories import create_channel

    await create_channel(hub_db, key="support-mail", kind="email")
    response = await client.post("/forms/support-mail", json=SUBMISSION)
    assert_json_error(response, 404, "unknown_form")


# Origins and CORS


async def test_a_disallowed_origin_is_403_and_stores_nothing(
    client: httpx.AsyncClient, hub_db: Database
):
    response = await client.post(
        "/forms/default", json=SUBMISSION, headers={"Origin": "https://evil.example.com"}
    )
    assert_json_error(response, 403, "origin_not_allowed")
    assert "access-control-allow-origin" not in response.headers
    assert await counts(hub_db) == NOTHING


async def test_the_hubs_own_origin_and_no_origin_are_allowed(
    client: httpx.AsyncClient, hub_db: Database
):
    response = await client.post("/forms/default", json=SUBMISSION, headers={"Origin": OWN_ORIGIN})
    assert response.status_code == 201, response.text
    assert (await counts(hub_db))["leads"] == 1


async def test_an_allowed_origin_gets_cors_headers_on_success_and_on_errors(
    client: httpx.AsyncClient, hub_db: Database
):
    await add_form(hub_db, "shop", allowed_origins=[SHOP])
    cors = {"Origin": SHOP}

    created = await client.post("/forms/shop", json=SUBMISSION, headers=cors)
    invalid = await client.post("/forms/shop", json={"email": "bad", "message": "x"}, headers=cors)
    broken = await client.post(
        "/forms/shop", content=b"{", headers={**cors, "Content-Type": "application/json"}
    )
    other = await client.post(
        "/forms/shop", json=SUBMISSION, headers={"Origin": "https://shop.example.ru.evil.com"}
    )

    assert created.status_code == 201, created.text
    assert created.headers["access-control-allow-origin"] == SHOP
    assert "origin" in created.headers["vary"].lower()
    assert_json_error(invalid, 422, "invalid_input")
    assert invalid.headers["access-control-allow-origin"] == SHOP
    assert_json_error(broken, 400, "invalid_json")
    assert broken.headers["access-control-allow-origin"] == SHOP
    assert_json_error(other, 403, "origin_not_allowed")
    assert "access-control-allow-origin" not in other.headers
    assert (await counts(hub_db))["leads"] == 1


async def test_the_default_form_refuses_other_sites_until_allowed(
    client: httpx.AsyncClient, hub_db: Database
):
    response = await client.post("/forms/default", json=SUBMISSION, headers={"Origin": SHOP})
    assert_json_error(response, 403, "origin_not_allowed")


async def test_a_wildcard_allows_every_origin(client: httpx.AsyncClient, hub_db: Database):
    await add_form(hub_db, "open", allowed_origins=["*"])
    response = await client.post(
        "/forms/open", json=SUBMISSION, headers={"Origin": "https://anyone.example"}
    )
    assert response.status_code == 201, response.text
    assert response.headers["access-control-allow-origin"] == "https://anyone.example"


async def test_preflight(client: httpx.AsyncClient, hub_db: Database):
    await add_form(hub_db, "shop", allowed_origins=[SHOP])
    request_headers = {
        "Origin": SHOP,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, idempotency-key",
    }

    allowed = await client.options("/forms/shop", headers=request_headers)
    refused = await client.options(
        "/forms/shop", headers={**request_headers, "Origin": "https://evil.example.com"}
    )
    unknown = await client.options("/forms/nope", headers=request_headers)

    assert allowed.status_code == 204, allowed.text
    assert allowed.headers["access-control-allow-origin"] == SHOP
    assert "POST" in allowed.headers["access-control-allow-methods"]
    allowed_headers = allowed.headers["access-control-allow-headers"].lower()
    assert "content-type" in allowed_headers
    assert "idempotency-key" in allowed_headers
    assert int(allowed.headers["access-control-max-age"]) > 0
    assert_json_error(refused, 403, "origin_not_allowed")
    assert "access-control-allow-origin" not in refused.headers
    assert_json_error(unknown, 404, "unknown_form")


# Rate limit (OMNIHUB_FORMS_RATE_LIMIT=3/minute; in memory and in Redis)


async def test_the_fourth_post_in_a_minute_is_429_with_retry_after(
    limited_app: Any, limited_client: httpx.AsyncClient, other_ip: str
):
    db: Database = limited_app.state.context.db
    answers = [await limited_client.post("/forms/default", json=SUBMISSION) for _ in range(4)]

    assert [r.status_code for r in answers[:3]] == [201, 201, 201], [r.text for r in answers]
    body = assert_json_error(answers[3], 429, "rate_limited")
    retry_after = int(answers[3].headers["retry-after"])
    assert 1 <= retry_after <= 60, retry_after
    assert "retry" in str(body["detail"]).lower()
    assert (await counts(db))["leads"] == 3

    # Bad input counts too (a flood of garbage is still a flood) and is refused the same way.
    garbage = await limited_client.post(
        "/forms/default", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert_json_error(garbage, 429, "rate_limited")

    # Another address is not limited by this one's posts.
    transport = httpx.ASGITransport(app=limited_app, client=(other_ip, 40124))
    async with httpx.AsyncClient(transport=transport, base_url=OWN_ORIGIN) as other:
        response = await other.post("/forms/default", json=SUBMISSION)
    assert response.status_code == 201, response.text


async def test_rate_limited_answers_carry_cors_for_allowed_origins(
    limited_app: Any, limited_client: httpx.AsyncClient
):
    await add_form(limited_app.state.context.db, "shop", allowed_origins=[SHOP])
    answers = [
        await limited_client.post("/forms/shop", json=SUBMISSION, headers={"Origin": SHOP})
        for _ in range(4)
    ]
    assert [r.status_code for r in answers] == [201, 201, 201, 429]
    assert answers[3].headers["access-control-allow-origin"] == SHOP
    assert "retry-after" in answers[3].headers


async def test_a_rate_limit_of_zero_turns_it_off(
    app: Any, client: httpx.AsyncClient, hub_env: dict[str, str]
):
    assert hub_env["OMNIHUB_FORMS_RATE_LIMIT"] == "0"
    assert app.state.context.forms_rate_limiter is None
    answers = [await client.post("/forms/default", json=SUBMISSION) for _ in range(25)]
    assert {r.status_code for r in answers} == {201}


async def test_nul_characters_are_dropped_not_a_5xx(client: httpx.AsyncClient, hub_db: Database):
    # PostgreSQL cannot store NUL in text or JSON; a submission carrying one still goes in.
    response = await client.post(
        "/forms/default?utm_source=mail%00ru&referrer=https://x.example/%00",
        json={
            "name": "Иван\u0000",
            "email": "ivan@example.ru",
            "message": "Привет\u0000, мир",
            "consent": True,
        },
    )
    assert response.status_code == 201, response.text
    lead = await only_lead(hub_db)
    assert lead.attribution["utm_source"] == "mailru"
    assert lead.attribution["referrer"] == "https://x.example/"
    assert lead.form_fields["name"] == "Иван"
    async with hub_db.read() as session:
        message = (await session.scalars(select(Message))).one()
    assert message.text == "Привет, мир"


async def test_concurrent_first_posts_from_one_phone_land_on_one_contact(
    client: httpx.AsyncClient, hub_db: Database
):
    spellings = ["8 (912) 345-67-89", "+7 912 345 6789", "89123456789", "+7(912)3456789"]
    responses = await asyncio.gather(
        *(
            client.post(
                "/forms/default",
                json={
                    "phone": spellings[i % len(spellings)],
                    "message": f"Заявка {i}",
                    "consent": True,
                },
            )
            for i in range(12)
        )
    )
    assert [r.status_code for r in responses] == [201] * 12, [r.text for r in responses]
    assert len({r.json()["contact_id"] for r in responses}) == 1
    assert len({r.json()["lead_id"] for r in responses}) == 12
    assert await counts(hub_db) == {
        "leads": 12,
        "messages": 12,
        "contacts": 1,
        "identities": 1,
        "attachments": 0,
    }


async def test_the_default_rate_is_twenty_a_minute(
    hub_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
):
    from hub.app import create_app
    from hub.settings import Settings
    from storage.ratelimit import Rate

    monkeypatch.delenv("OMNIHUB_FORMS_RATE_LIMIT")
    application = create_app(Settings())
    async with application.router.lifespan_context(application):
        limiter = application.state.context.forms_rate_limiter
        assert limiter is not None
        assert limiter.rate == Rate(20, 60)
