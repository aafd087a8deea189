"""The hosted form page, its thanks page and the embed script."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from channels.webform.schemas import FormConfig
from storage.db import Database
from storage.models import Channel
from tests.channels.webform.conftest import (
    SHOP,
    Node,
    add_form,
    assert_json_error,
    custom_config,
    hidden_inputs,
    parse_html,
)


@pytest.fixture
def hub_db(app: Any) -> Database:
    database: Database = app.state.context.db
    return database


async def get_page(client: httpx.AsyncClient, url: str, **headers: str) -> Node:
    response = await client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return parse_html(response.text)


async def test_the_default_form_exists_out_of_the_box(hub_db: Database):
    async with hub_db.read() as session:
        channel = (await session.scalars(select(Channel).where(Channel.key == "default"))).one()
    assert channel.kind == "webform"
    assert channel.is_active
    config = FormConfig.model_validate(channel.config)
    assert [f.name for f in config.fields] == ["name", "email", "phone", "message"]
    assert [f.name for f in config.fields if f.required] == ["message"]
    assert config.require_contact == "email_or_phone"
    assert config.title.ru and config.title.en
    assert config.thanks.ru and config.thanks.en


async def test_the_page_is_russian_by_default(client: httpx.AsyncClient, hub_db: Database):
    response = await client.get("/forms/default")

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    page = parse_html(response.text)
    assert page.find("html").attrs["lang"] == "ru"
    assert page.find("title").text() == "Напишите нам"
    assert page.find("h1").text() == "Напишите нам"
    labels = [label.text() for label in page.find_all("label")]
    for expected in ("Имя", "Электронная почта", "Телефон", "Сообщение", "Файлы"):
        assert any(label.startswith(expected) for label in labels), (expected, labels)
    assert page.find("button", type="submit").text() == "Отправить"
    switch = page.find("a", hreflang="en")
    assert switch.attrs["href"] == "?lang=en"
    assert switch.text() == "English"


@pytest.mark.parametrize(
    ("url", "headers", "lang", "title"),
    [
        ("/forms/default?lang=en", {}, "en", "Contact us"),
        ("/forms/default", {"Accept-Language": "en-US,en;q=0.9"}, "en", "Contact us"),
        ("/forms/default", {"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.8"}, "ru", "Напишите нам"),
        ("/forms/default", {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}, "en", "Contact us"),
        ("/forms/default", {"Accept-Language": "de-DE"}, "ru", "Напишите нам"),
        ("/forms/default?lang=ru", {"Accept-Language": "en"}, "ru", "Напишите нам"),
        ("/forms/default?lang=xx", {"Accept-Language": "en"}, "en", "Contact us"),
    ],
)
async def test_the_language_follows_lang_then_accept_language(
    client: httpx.AsyncClient,
    hub_db: Database,
    url: str,
    headers: dict[str, str],
    lang: str,
    title: str,
):
    page = await get_page(client, url, **headers)
    assert page.find("html").attrs["lang"] == lang
    assert page.find("h1").text() == title
    assert hidden_inputs_of(page)["_lang"] == lang


def hidden_inputs_of(page: Node) -> dict[str, str]:
    return {
        n.attrs["name"]: n.attrs.get("value", "") for n in page.find_all("input", type="hidden")
    }


async def test_english_labels(client: httpx.AsyncClient, hub_db: Database):
    page = await get_page(client, "/forms/default?lang=en")
    labels = [label.text() for label in page.find_all("label")]
    for expected in ("Name", "Email", "Phone", "Message", "Files"):
        assert any(label.startswith(expected) for label in labels), (expected, labels)
    assert page.find("button", type="submit").text() == "Send"
    assert page.find("a", hreflang="ru").text() == "Русский"


async def test_a_form_in_english_by_default(client: httpx.AsyncClient, hub_db: Database):
    await add_form(hub_db, "export", language="en")
    page = await get_page(client, "/forms/export")
    assert page.find("html").attrs["lang"] == "en"
    page = await get_page(client, "/forms/export", **{"Accept-Language": "ru"})
    assert page.find("html").attrs["lang"] == "ru"


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_every_control_has_a_label_and_the_page_is_accessible(
    client: httpx.AsyncClient, hub_db: Database, lang: str
):
    await add_form(hub_db, "b2b", custom_config())
    page = await get_page(client, f"/forms/b2b?lang={lang}")

    meta = page.find("meta", name="viewport")
    assert "width=device-width" in meta.attrs["content"]
    assert "initial-scale=1" in meta.attrs["content"]
    assert "user-scalable=no" not in meta.attrs["content"]
    form = page.find("form")
    assert form.attrs["method"] == "post"
    assert form.attrs["action"] == "/forms/b2b"
    assert form.attrs["enctype"] == "multipart/form-data"
    assert page.find(None, id=form.attrs["aria-labelledby"]).tag == "h1"
    labels = {label.attrs.get("for"): label for label in page.find_all("label")}
    controls = [
        node
        for node in form.iter()
        if node.tag in ("input", "textarea", "select") and node.attrs.get("type") != "hidden"
    ]
    names = [c.attrs["name"] for c in controls]
    assert names == [
        "website",
        "name",
        "email",
        "phone",
        "message",
        "company",
        "topic",
        "attachments",
    ]
    for control in controls:
        control_id = control.attrs["id"]
        assert control_id in labels, control.attrs
        assert labels[control_id].text(), control_id
    ids = [node.attrs["id"] for node in page.iter() if "id" in node.attrs]
    assert len(ids) == len(set(ids)), ids
    by_name = {c.attrs["name"]: c for c in controls}
    assert by_name["email"].attrs["type"] == "email"
    assert by_name["email"].attrs["autocomplete"] == "email"
    assert by_name["phone"].attrs["type"] == "tel"
    assert by_name["phone"].attrs["autocomplete"] == "tel"
    assert by_name["name"].attrs["autocomplete"] == "name"
    for name in ("message", "company"):
        assert "required" in by_name[name].attrs
        assert by_name[name].attrs["aria-required"] == "true"
        # The asterisk is decoration; the words are for screen readers.
        label = labels[by_name[name].attrs["id"]]
        assert label.find("span", class_="req").attrs["aria-hidden"] == "true"
    for name in ("name", "email", "phone", "topic"):
        assert "required" not in by_name[name].attrs
    assert by_name["message"].attrs["maxlength"] == "10000"
    assert by_name["company"].attrs["maxlength"] == "100"
    options = [o.text() for o in by_name["topic"].find_all("option")]
    assert options == ["", "Доставка", "Оплата"]
    hint = page.find(None, id=by_name["attachments"].attrs["aria-describedby"])
    assert "5" in hint.text() and "10" in hint.text()
    # The form needs no script: nothing on the hosted page runs JavaScript.
    assert not page.find_all("script")
    assert "aria-invalid" not in json.dumps([n.attrs for n in page.iter()])


async def test_the_honeypot_is_hidden_from_people_and_assistive_tech(
    client: httpx.AsyncClient, hub_db: Database
):
    response = await client.get("/forms/default")
    page = parse_html(response.text)
    trap = page.find("input", name="website")
    assert trap.attrs["tabindex"] == "-1"
    assert trap.attrs["autocomplete"] == "off"
    assert "required" not in trap.attrs
    hiding = [a for a in trap.ancestors() if a.attrs.get("aria-hidden") == "true"]
    assert hiding, "the honeypot must sit inside an aria-hidden container"
    container = hiding[0]
    assert "hp" in container.attrs.get("class", "").split()
    assert ".hp {" in response.text and "left: -10000px" in response.text


async def test_the_page_carries_a_signed_token_and_the_page_url(
    client: httpx.AsyncClient, hub_db: Database
):
    url = "/forms/default?utm_source=newsletter&utm_campaign=spring"
    first = hidden_inputs((await client.get(url, headers={"Referer": "https://t.me/"})).text)
    second = hidden_inputs((await client.get(url)).text)

    assert first["_token"] != second["_token"]
    assert first["_token"].startswith("default:")
    assert first["_page"] == "http://hub.test" + url
    assert first["_referrer"] == "https://t.me/"
    assert "_embed" not in first


async def test_the_embedded_page_takes_the_host_page_and_may_be_framed(
    client: httpx.AsyncClient, hub_db: Database
):
    page_url = "https://shop.example.ru/contacts?utm_source=vk"
    response = await client.get(
        "/forms/default",
        params={"embed": "1", "page": page_url, "referrer": "https://vk.com/", "lang": "en"},
    )

    assert response.status_code == 200
    assert "x-frame-options" not in response.headers
    assert "content-security-policy" not in response.headers
    hidden = hidden_inputs(response.text)
    assert hidden["_page"] == page_url
    assert hidden["_referrer"] == "https://vk.com/"
    assert hidden["_embed"] == "1"
    page = parse_html(response.text)
    assert "embed" in page.find("body").attrs["class"]
    assert not page.find_all("a", hreflang="ru")  # no language switch inside a frame
    script = page.find("script").text()
    assert "postMessage" in script and '"default"' in script


async def test_a_form_with_allowed_origins_may_be_framed_only_by_them(
    client: httpx.AsyncClient, hub_db: Database
):
    await add_form(hub_db, "shop", allowed_origins=[SHOP])
    response = await client.get("/forms/shop?embed=1")
    assert response.headers["content-security-policy"] == f"frame-ancestors 'self' {SHOP}"


async def test_the_page_parameter_is_ignored_outside_embedding(
    client: httpx.AsyncClient, hub_db: Database
):
    response = await client.get("/forms/default?page=https://evil.example/")
    assert hidden_inputs(response.text)["_page"].startswith("http://hub.test/forms/default")


async def test_markup_in_values_is_escaped(client: httpx.AsyncClient, hub_db: Database):
    response = await client.get(
        "/forms/default",
        params={"embed": "1", "page": '"><script>alert(1)</script>', "lang": "en"},
    )
    assert "<script>alert(1)</script>" not in response.text
    assert hidden_inputs(response.text)["_page"] == '"><script>alert(1)</script>'


async def test_the_embed_script(client: httpx.AsyncClient, hub_db: Database):
    response = await client.get("/forms/default/embed.js")

    assert response.status_code == 200
    content_type = response.headers["content-type"]
    assert content_type.split(";")[0] in ("application/javascript", "text/javascript")
    assert "max-age" in response.headers["cache-control"]
    script = response.text
    assert 'key = "default"' in script
    assert 'origin = "http://hub.test"' in script
    assert f"title = {json.dumps('Напишите нам')}" in script
    assert 'createElement("iframe")' in script
    assert "embed=1" in script and "location.href" in script and "document.referrer" in script
    assert "data.lang" in script
    # The frame's accessible name follows data-lang.
    titles = json.dumps({"ru": "Напишите нам", "en": "Contact us"})
    assert f"titles = {titles}" in script


async def test_the_embed_script_names_its_form(client: httpx.AsyncClient, hub_db: Database):
    await add_form(hub_db, "promo-2025")
    script = (await client.get("/forms/promo-2025/embed.js")).text
    assert 'key = "promo-2025"' in script
    assert '"default"' not in script


async def test_a_public_url_is_the_embed_scripts_origin(
    hub_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
):
    from hub.app import create_app
    from hub.settings import Settings

    monkeypatch.setenv("OMNIHUB_PUBLIC_URL", "https://hub.example.ru")
    application = create_app(Settings())
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://10.0.0.5:8000") as http:
            script = (await http.get("/forms/default/embed.js")).text
            allowed = await http.post(
                "/forms/default",
                json={"email": "a@example.ru", "message": "hi", "consent": True},
                headers={"Origin": "https://hub.example.ru"},
            )
    assert 'origin = "https://hub.example.ru"' in script
    assert allowed.status_code == 201, allowed.text


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_the_thanks_page(client: httpx.AsyncClient, hub_db: Database, lang: str):
    page = await get_page(client, f"/forms/default/thanks?lang={lang}&n=42")
    heading = page.find("h1")
    assert page.find("html").attrs["lang"] == lang
    expected = {"ru": "Заявка принята", "en": "Request received"}[lang]
    thanks = {"ru": "Спасибо! Ваша заявка принята", "en": "Thank you! We have received"}[lang]
    number = {"ru": "Номер заявки", "en": "Request number"}[lang]
    assert heading.text() == expected
    # A heading stays a heading (role="status" on the <h1> would hide it from heading
    # navigation); the news is announced by the region around it.
    assert "role" not in heading.attrs
    assert heading.parent is not None and heading.parent.attrs["role"] == "status"
    body = page.find("main").text()
    assert thanks in body
    assert number in body
    assert page.find("strong").text() == "42"
    assert page.find("a").attrs["href"] == f"/forms/default?lang={lang}"
    assert page.find("meta", name="viewport")


async def test_the_thanks_page_without_a_number_and_embedded(
    client: httpx.AsyncClient, hub_db: Database
):
    page = await get_page(client, "/forms/default/thanks?lang=en&embed=1")
    assert not page.find_all("strong")
    assert page.find("a").attrs["href"] == "/forms/default?lang=en&embed=1"
    assert page.find_all("script")  # reports its height to the embedding page


async def test_a_custom_thanks_text(client: httpx.AsyncClient, hub_db: Database):
    await add_form(
        hub_db, "promo", thanks={"ru": "Промокод придёт на почту", "en": "The code is on its way"}
    )
    page = await get_page(client, "/forms/promo/thanks?lang=ru&n=7")
    assert "Промокод придёт на почту" in page.find("main").text()


@pytest.mark.parametrize(
    "url",
    [
        "/forms/nope",
        "/forms/nope/embed.js",
        "/forms/nope/thanks",
        "/forms/NOPE",
        "/forms/..%2F..%2Fetc",
    ],
)
async def test_an_unknown_form_is_a_json_404(client: httpx.AsyncClient, hub_db: Database, url: str):
    response = await client.get(url)
    assert_json_error(response, 404)
    if "%2F" not in url:
        assert response.json()["error"] == "unknown_form"


async def test_a_bad_number_on_the_thanks_page_is_a_4xx(
    client: httpx.AsyncClient, hub_db: Database
):
    response = await client.get("/forms/default/thanks?n=abc")
    assert_json_error(response, 422, "invalid_input")


async def test_a_form_added_with_the_cli(
    client: httpx.AsyncClient, hub_db: Database, hub_env: dict[str, str], tmp_path: Path
):
    command = Path(sys.executable).parent / "omnihub"
    if not command.exists():
        pytest.skip(f"no console script at {command}")
    process = await asyncio.create_subprocess_exec(
        str(command),
        "channels",
        "add",
        "webform",
        "--key",
        "promo",
        "--title",
        "Spring promo",
        "--language",
        "en",
        "--allowed-origin",
        SHOP,
        cwd=tmp_path,
        env={**os.environ, **hub_env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    assert "/forms/promo" in out.decode()

    page = await get_page(client, "/forms/promo")
    assert page.find("html").attrs["lang"] == "en"
    assert page.find("h1").text() == "Spring promo"
    response = await client.post(
        "/forms/promo",
        json={"email": "a@example.ru", "message": "Хочу скидку"},
        headers={"Origin": SHOP},
    )
    assert response.status_code == 201, response.text
    assert response.headers["access-control-allow-origin"] == SHOP
