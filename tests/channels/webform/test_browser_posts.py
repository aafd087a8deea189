"""Browser posts to /forms/{key}: the hosted page's form, urlencoded or multipart with files."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from channels.base import HubContext
from storage.models import Attachment, Message
from tests.channels.webform.conftest import (
    NOTHING,
    OWN_ORIGIN,
    add_form,
    aged_token,
    assert_json_error,
    counts,
    field_value,
    hidden_inputs,
    only_lead,
    parse_html,
)

VALUES = {
    "name": "Анна Смирнова",
    "email": "anna@example.ru",
    "phone": "8 (912) 345-67-89",
    "message": "Здравствуйте! Интересует оптовая поставка.",
}


@pytest.fixture
def context(app: Any) -> HubContext:
    hub: HubContext = app.state.context
    return hub


@pytest.fixture
async def quick(context: HubContext) -> str:
    """A form with the default fields and no minimum fill time, for most tests here."""
    await add_form(context.db, "quick", min_fill_seconds=0)
    return "quick"


async def open_form(client: httpx.AsyncClient, key: str, url: str | None = None, **headers: str):
    """GET the page like a browser; returns the hidden inputs it would post back."""
    response = await client.get(url or f"/forms/{key}", headers=headers)
    assert response.status_code == 200, response.text
    hidden = hidden_inputs(response.text)
    assert hidden["_token"]
    return hidden


async def post_form(
    client: httpx.AsyncClient,
    key: str,
    data: dict[str, str],
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
    origin: str | None = OWN_ORIGIN,
) -> httpx.Response:
    headers = {"Origin": origin} if origin else {}
    return await client.post(f"/forms/{key}", data=data, files=files, headers=headers)


def thanks_query(response: httpx.Response, key: str) -> dict[str, list[str]]:
    assert response.status_code == 303, (response.status_code, response.text[:500])
    location = urlsplit(response.headers["location"])
    assert location.path == f"/forms/{key}/thanks"
    return parse_qs(location.query)


async def test_urlencoded_post_redirects_to_thanks_and_keeps_utm(
    client: httpx.AsyncClient, context: HubContext, quick: str
):
    hidden = await open_form(
        client,
        quick,
        "/forms/quick?utm_source=newsletter&utm_medium=email&utm_campaign=spring&gclid=g1",
        Referer="https://mail.example.ru/inbox",
    )

    response = await post_form(client, quick, {**hidden, **VALUES})

    query = thanks_query(response, quick)
    lead = await only_lead(context.db)
    assert query["n"] == [str(lead.id)]
    assert query["lang"] == ["ru"]
    assert lead.attribution["utm_source"] == "newsletter"
    assert lead.attribution["utm_medium"] == "email"
    assert lead.attribution["utm_campaign"] == "spring"
    assert lead.attribution["gclid"] == "g1"
    assert lead.attribution["referrer"] == "https://mail.example.ru/inbox"
    assert lead.attribution["page_url"].startswith("http://hub.test/forms/quick?utm_source=")
    assert lead.form_fields == {
        "name": "Анна Смирнова",
        "email": "anna@example.ru",
        "phone": "+79123456789",
    }
    async with context.db.read() as session:
        message = (await session.scalars(select(Message))).one()
    assert message.text == VALUES["message"]
    assert message.meta["form"] == "quick"

    thanks = await client.get(response.headers["location"])
    assert thanks.status_code == 200
    assert "Заявка принята" in thanks.text
    assert str(lead.id) in parse_html(thanks.text).find("strong").text()


async def test_the_language_of_the_page_is_kept(
    client: httpx.AsyncClient, context: HubContext, quick: str
):
    hidden = await open_form(client, quick, "/forms/quick?lang=en")
    assert hidden["_lang"] == "en"
    response = await post_form(client, quick, {**hidden, **VALUES})
    assert thanks_query(response, quick)["lang"] == ["en"]
    thanks = await client.get(response.headers["location"])
    assert "Request received" in thanks.text


async def test_multipart_post_with_two_attachments_stores_them(
    client: httpx.AsyncClient, context: HubContext, quick: str
):
    hidden = await open_form(client, quick)
    pdf = b"%PDF-1.4 " + bytes(range(256)) * 40
    photo = b"\x89PNG\r\n\x1a\n" + b"\x00\x01" * 3000
    files = [
        ("attachments", ("договор №5.pdf", pdf, "application/pdf")),
        ("attachments", ("C:\\Users\\anna\\photo.png", photo, "image/png")),
    ]

    response = await post_form(client, quick, {**hidden, **VALUES}, files=files)

    thanks_query(response, quick)
    async with context.db.read() as session:
        rows = (await session.scalars(select(Attachment).order_by(Attachment.id))).all()
        message = (await session.scalars(select(Message))).one()
    assert [(a.filename, a.content_type, a.size) for a in rows] == [
        ("договор №5.pdf", "application/pdf", len(pdf)),
        ("photo.png", "image/png", len(photo)),
    ]
    assert all(a.message_id == message.id for a in rows)
    for row, content in zip(rows, (pdf, photo), strict=True):
        assert row.sha256 == hashlib.sha256(content).hexdigest()
        assert await context.blobs.get(row.sha256) == content
        path = context.blobs.path(row.sha256)  # type: ignore[attr-defined]
        assert path.is_file() and path.read_bytes() == content


async def test_an_empty_file_input_is_no_attachment(
    client: httpx.AsyncClient, context: HubContext, quick: str
):
    hidden = await open_form(client, quick)
    # What a browser sends when no file was chosen.
    files = [("attachments", ("", b"", "application/octet-stream"))]
    response = await post_form(client, quick, {**hidden, **VALUES}, files=files)
    thanks_query(response, quick)
    assert (await counts(context.db))["attachments"] == 0


async def test_a_filled_honeypot_looks_like_success_but_stores_nothing(
    client: httpx.AsyncClient, context: HubContext, quick: str
):
    hidden = await open_form(client, quick)
    response = await post_form(
        client, quick, {**hidden, **VALUES, "website": "https://spam.example"}
    )
    query = thanks_query(response, quick)
    assert "n" not in query
    assert await counts(context.db) == NOTHING


@pytest.mark.parametrize("token", ["", "garbage", "quick:abc.def.ghi"])
async def test_a_forged_token_re_renders_the_page_with_the_values(
    client: httpx.AsyncClient, context: HubContext, quick: str, token: str
):
    hidden = await open_form(client, quick)
    response = await post_form(client, quick, {**hidden, **VALUES, "_token": token})
    _assert_re_rendered(response, "Страница устарела")
    assert await counts(context.db) == NOTHING


async def test_a_token_signed_with_another_secret_is_refused(
    client: httpx.AsyncClient, context: HubContext, quick: str
):
    hidden = await open_form(client, quick)
    forged = aged_token("another-secret-0123456789abcdef", quick, 60)
    response = await post_form(client, quick, {**hidden, **VALUES, "_token": forged})
    _assert_re_rendered(response, "Страница устарела")
    assert await counts(context.db) == NOTHING


async def test_an_expired_token_re_renders_the_page(
    client: httpx.AsyncClient, context: HubContext, quick: str
):
    hidden = await open_form(client, quick, "/forms/quick?lang=en")
    expired = aged_token(context.secret, quick, 25 * 3600)
    response = await post_form(client, quick, {**hidden, **VALUES, "_token": expired})
    page = _assert_re_rendered(response, "This page has expired")
    # The new page carries a fresh token that works.
    again = hidden_inputs(response.text)
    assert again["_token"] != expired
    assert page.find("html").attrs["lang"] == "en"
    ok = await post_form(client, quick, {**again, **VALUES})
    thanks_query(ok, quick)
    assert (await counts(context.db))["leads"] == 1


async def test_a_token_of_another_form_is_refused(
    client: httpx.AsyncClient, context: HubContext, quick: str
):
    other = await open_form(client, "default")
    hidden = await open_form(client, quick)
    response = await post_form(client, quick, {**hidden, **VALUES, "_token": other["_token"]})
    _assert_re_rendered(response, "Страница устарела")
    assert await counts(context.db) == NOTHING


async def test_a_post_faster_than_the_minimum_fill_time_is_asked_again(
    client: httpx.AsyncClient, context: HubContext
):
    hidden = await open_form(client, "default")  # the default form: 2 s at least

    # The built-in form asks for consent (152-FZ): given here, so only the speed is wrong.
    response = await post_form(client, "default", {**hidden, **VALUES, "consent": "1"})

    page = _assert_re_rendered(response, "слишком быстро")
    assert await counts(context.db) == NOTHING
    # A person who took their time gets through with the same values.
    token = aged_token(context.secret, "default", 3)
    fresh = hidden_inputs(response.text)
    assert fresh["_token"] != hidden["_token"]
    assert page.find("form").attrs["action"] == "/forms/default"
    ok = await post_form(client, "default", {**fresh, **VALUES, "_token": token, "consent": "1"})
    thanks_query(ok, "default")
    assert (await counts(context.db))["leads"] == 1


def _assert_re_rendered(response: httpx.Response, message: str):
    """A 422 HTML page with the form-level message and the submitted values kept."""
    assert response.status_code == 422, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("text/html")
    page = parse_html(response.text)
    summary = page.find("div", id="error-summary")
    assert summary.attrs["role"] == "alert"
    assert message in summary.text()
    for name, value in VALUES.items():
        assert field_value(response.text, name) == value, name
    assert "website" not in hidden_inputs(response.text)
    assert field_value(response.text, "website") == ""
    return page


@pytest.mark.parametrize(
    ("lang", "changes", "expected"),
    [
        (
            "ru",
            {"message": "", "email": "anna@", "phone": ""},
            {"message": "Заполните это поле", "email": "Укажите адрес электронной почты"},
        ),
        (
            "en",
            {"message": "", "email": "", "phone": "12"},
            {"message": "Please fill in this field", "phone": "Enter a phone number"},
        ),
        (
            "en",
            {"email": "", "phone": ""},
            {"email": "Enter an email address or a phone number"},
        ),
        ("ru", {"name": "И" * 201}, {"name": "Слишком длинное значение"}),
        ("ru", {"message": "ы" * 10_001}, {"message": "Слишком длинное значение"}),
    ],
)
async def test_validation_errors_re_render_with_messages_next_to_fields(
    client: httpx.AsyncClient,
    context: HubContext,
    quick: str,
    lang: str,
    changes: dict[str, str],
    expected: dict[str, str],
):
    hidden = await open_form(client, quick, f"/forms/quick?lang={lang}")
    values = {**VALUES, **changes}

    response = await post_form(client, quick, {**hidden, **values})

    assert response.status_code == 422, response.text[:300]
    assert response.headers["content-type"].startswith("text/html")
    page = parse_html(response.text)
    assert page.find("html").attrs["lang"] == lang
    summary = page.find("div", id="error-summary")
    for name, message in expected.items():
        control = page.find(None, id=f"f-{name}")
        assert control.attrs.get("aria-invalid") == "true", name
        error = page.find("p", id=f"f-{name}-error")
        assert control.attrs["aria-describedby"] == f"f-{name}-error"
        assert message in error.text()
        assert message in summary.text()
        assert summary.find("a", href=f"#f-{name}")
    flagged = {n.attrs["id"] for n in page.iter() if n.attrs.get("aria-invalid") == "true"}
    assert flagged == {f"f-{name}" for name in expected}
    for name, value in values.items():
        assert field_value(response.text, name) == value
    assert await counts(context.db) == NOTHING
    # The corrected page goes through.
    fixed = await post_form(client, quick, {**hidden_inputs(response.text), **VALUES})
    thanks_query(fixed, quick)
    assert (await counts(context.db))["leads"] == 1


async def test_a_double_submit_of_one_page_stores_one_lead(
    client: httpx.AsyncClient, context: HubContext, quick: str
):
    hidden = await open_form(client, quick)
    first = await post_form(client, quick, {**hidden, **VALUES})
    second = await post_form(client, quick, {**hidden, **VALUES})

    assert thanks_query(first, quick) == thanks_query(second, quick)
    assert (await counts(context.db))["leads"] == 1
    assert (await counts(context.db))["messages"] == 1


async def test_a_double_submit_after_a_validation_error_stores_one_lead(
    client: httpx.AsyncClient, context: HubContext, quick: str
):
    hidden = await open_form(client, quick)
    bad = await post_form(client, quick, {**hidden, **VALUES, "email": "x@"})
    assert bad.status_code == 422
    again = hidden_inputs(bad.text)
    first = await post_form(client, quick, {**again, **VALUES})
    second = await post_form(client, quick, {**again, **VALUES})
    assert thanks_query(first, quick) == thanks_query(second, quick)
    assert (await counts(context.db))["leads"] == 1


TEN_MB = 10 * 1024 * 1024


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
async def test_a_ten_megabyte_text_field_is_a_4xx(
    client: httpx.AsyncClient, context: HubContext, quick: str, encoding: str
):
    hidden = await open_form(client, quick)
    data = {**hidden, **VALUES, "message": "x" * TEN_MB}
    files = (
        [("attachments", ("a.txt", b"hello", "text/plain"))] if encoding == "multipart" else None
    )

    response = await post_form(client, quick, data, files=files)

    assert response.status_code in (413, 422), (response.status_code, response.text[:300])
    if response.headers["content-type"].startswith("application/json"):
        assert_json_error(response, response.status_code)
    else:
        assert "Слишком длинное значение" in response.text
    assert len(response.content) < 1_000_000  # the value is not echoed back
    assert await counts(context.db) == NOTHING


async def test_too_many_files_re_render(client: httpx.AsyncClient, context: HubContext):
    await add_form(context.db, "docs", min_fill_seconds=0, max_files=2)
    hidden = await open_form(client, "docs")
    files = [("attachments", (f"scan{i}.jpg", b"JPEG" * 10, "image/jpeg")) for i in range(3)]

    response = await post_form(client, "docs", {**hidden, **VALUES}, files=files)

    assert response.status_code == 422, response.text[:300]
    page = parse_html(response.text)
    assert "Слишком много файлов" in page.find("p", id="f-attachments-error").text()
    assert "f-attachments-error" in page.find("input", id="f-attachments").attrs["aria-describedby"]
    assert field_value(response.text, "message") == VALUES["message"]
    assert await counts(context.db) == NOTHING


async def test_a_too_large_file_re_renders_naming_it(
    client: httpx.AsyncClient, context: HubContext
):
    await add_form(context.db, "docs", min_fill_seconds=0, max_file_bytes=1024 * 1024)
    hidden = await open_form(client, "docs", "/forms/docs?lang=en")
    files = [
        ("attachments", ("small.txt", b"ok", "text/plain")),
        ("attachments", ("huge.bin", b"\x00" * (1024 * 1024 + 1), "application/octet-stream")),
    ]

    response = await post_form(client, "docs", {**hidden, **VALUES}, files=files)

    assert response.status_code == 422, response.text[:300]
    error = parse_html(response.text).find("p", id="f-attachments-error").text()
    assert "huge.bin" in error
    assert "1 MB" in error
    assert "{" not in error
    assert await counts(context.db) == NOTHING
    assert not await context.blobs.exists(hashlib.sha256(b"ok").hexdigest())


async def test_files_on_a_form_without_attachments_are_refused(
    client: httpx.AsyncClient, context: HubContext
):
    await add_form(context.db, "nofiles", min_fill_seconds=0, accept_files=False)
    page = await client.get("/forms/nofiles")
    assert 'type="file"' not in page.text
    hidden = hidden_inputs(page.text)
    files = [("attachments", ("a.txt", b"hello", "text/plain"))]
    response = await post_form(client, "nofiles", {**hidden, **VALUES}, files=files)
    assert response.status_code == 422, response.text[:300]
    assert await counts(context.db) == NOTHING


async def test_a_body_over_the_hubs_limit_is_413(
    client: httpx.AsyncClient, context: HubContext, quick: str
):
    hidden = await open_form(client, quick)
    files = [
        ("attachments", (f"big{i}.bin", bytes([i]) * (9 * 1024 * 1024), "application/zip"))
        for i in range(4)
    ]
    response = await post_form(client, quick, {**hidden, **VALUES}, files=files)
    assert_json_error(response, 413, "payload_too_large")
    assert await counts(context.db) == NOTHING


async def test_a_browser_post_from_a_disallowed_origin_is_403(
    client: httpx.AsyncClient, context: HubContext, quick: str
):
    hidden = await open_form(client, quick)
    response = await post_form(client, quick, {**hidden, **VALUES}, origin="https://evil.example")
    assert_json_error(response, 403, "origin_not_allowed")
    assert await counts(context.db) == NOTHING


async def test_an_embedded_post_returns_to_the_embedded_thanks_page(
    client: httpx.AsyncClient, context: HubContext, quick: str
):
    page_url = "https://shop.example.ru/contacts?utm_source=vk&utm_campaign=may"
    hidden = await open_form(
        client,
        quick,
        "/forms/quick?"
        + httpx.QueryParams(
            {"embed": "1", "page": page_url, "referrer": "https://vk.com/", "lang": "en"}
        ).__str__(),
    )
    assert hidden["_embed"] == "1"
    response = await post_form(client, quick, {**hidden, **VALUES})
    query = thanks_query(response, quick)
    assert query["embed"] == ["1"]
    lead = await only_lead(context.db)
    assert lead.attribution["page_url"] == page_url
    assert lead.attribution["utm_source"] == "vk"
    assert lead.attribution["utm_campaign"] == "may"
    assert lead.attribution["referrer"] == "https://vk.com/"


async def test_custom_fields_from_a_browser_post(client: httpx.AsyncClient, context: HubContext):
    from tests.channels.webform.conftest import custom_config

    await add_form(context.db, "b2b", custom_config(min_fill_seconds=0))
    hidden = await open_form(client, "b2b")
    ok = await post_form(
        client, "b2b", {**hidden, **VALUES, "company": "ООО Ромашка", "topic": "Доставка"}
    )
    thanks_query(ok, "b2b")
    lead = await only_lead(context.db)
    assert lead.form_fields["company"] == "ООО Ромашка"
    assert lead.form_fields["topic"] == "Доставка"

    hidden = await open_form(client, "b2b")
    bad = await post_form(client, "b2b", {**hidden, **VALUES, "topic": "Ремонт"})
    assert bad.status_code == 422
    page = parse_html(bad.text)
    assert page.find("select", id="f-topic").attrs["aria-invalid"] == "true"
    assert page.find("input", id="f-company").attrs["aria-invalid"] == "true"
    assert (await counts(context.db))["leads"] == 1


async def test_a_rate_limited_browser_post_is_429_html(
    limited_app: Any, limited_client: httpx.AsyncClient
):
    await add_form(limited_app.state.context.db, "quick", min_fill_seconds=0)
    answers = []
    for _ in range(4):
        page = await limited_client.get("/forms/quick")
        answers.append(
            await limited_client.post(
                "/forms/quick",
                data={**hidden_inputs(page.text), **VALUES},
                headers={"Origin": OWN_ORIGIN},
            )
        )
    assert [r.status_code for r in answers] == [303, 303, 303, 429]
    assert answers[3].headers["content-type"].startswith("text/html")
    assert int(answers[3].headers["retry-after"]) >= 1
    assert "Слишком много отправок" in answers[3].text
    assert (await counts(limited_app.state.context.db))["leads"] == 3


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--x\r\nContent-Disposition: form-data\r\n\r\nhi\r\n--x--\r\n"),
        (
            "multipart/form-data; boundary=x",
            b"--x\r\nContent-Disposition: form-data\r\n\r\nhi\r\n--x--\r\n",
        ),
        (
            "application/x-www-form-urlencoded",
            "&".join(f"f{i}=v" for i in range(500)).encode(),
        ),
    ],
    ids=["no-boundary", "part-without-name", "too-many-fields"],
)
async def test_a_malformed_browser_body_is_a_clear_4xx(
    client: httpx.AsyncClient, context: HubContext, quick: str, content_type: str, body: bytes
):
    response = await client.post(
        "/forms/quick", content=body, headers={"Content-Type": content_type, "Origin": OWN_ORIGIN}
    )
    assert_json_error(response, 422, "invalid_form")
    assert await counts(context.db) == NOTHING


async def test_nul_characters_in_a_browser_post_are_dropped(
    client: httpx.AsyncClient, context: HubContext, quick: str
):
    hidden = await open_form(client, quick)
    data = {
        **hidden,
        **VALUES,
        "message": "Добрый\x00 день",
        "_page": "https://a.example/?utm_source=x%00y\x00",
    }
    response = await post_form(client, quick, data)
    thanks_query(response, quick)
    lead = await only_lead(context.db)
    assert lead.attribution["utm_source"] == "xy"
    async with context.db.read() as session:
        message = (await session.scalars(select(Message))).one()
    assert message.text == "Добрый день"


async def test_concurrent_double_submits_of_one_page_store_one_lead(
    client: httpx.AsyncClient, context: HubContext, quick: str
):
    hidden = await open_form(client, quick)
    files = [("attachments", ("a.txt", b"same file", "text/plain"))]
    responses = await asyncio.gather(
        *(post_form(client, quick, {**hidden, **VALUES}, files=files) for _ in range(6))
    )
    queries = [thanks_query(r, quick) for r in responses]
    assert all(q == queries[0] for q in queries), queries
    assert await counts(context.db) == {
        "leads": 1,
        "messages": 1,
        "contacts": 1,
        "identities": 2,
        "attachments": 1,
    }
