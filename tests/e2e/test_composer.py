"""Acceptance: the reply composer in Chromium against a real `omnihub serve`: a note's
@mention reaches the colleague's open page, `/` inserts a canned reply filled in on the
server, drafts survive a reload, a web-form client gets the reply with its PDF by email
(the SMTP recorder), and a file over the limit is refused before it is sent. Screenshots in
Russian and English at 1280 and 390 px go to the artifacts' `inbox/` folder."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.e2e.workspace import (
    ADMIN,
    MANAGER_EN,
    Workspace,
    no_overflow,
    post_form,
    sign_in,
    wait_for,
)

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


async def _csrf(page: Any) -> str:
    token: str = await page.locator("meta[name=csrf-token]").get_attribute("content")
    return token


async def _open(page: Any, hub: Workspace, conversation_id: int, lang: str = "") -> None:
    suffix = f"?lang={lang}" if lang else ""
    await page.goto(f"{hub.url}/inbox/v/open/c/{conversation_id}{suffix}")
    await page.wait_for_function("() => document.documentElement.dataset.live === 'on'")


async def test_a_mention_in_a_note_reaches_the_colleagues_open_page(
    hub: Workspace, browser: Any, desk: Any
) -> None:
    from playwright.async_api import expect

    conversation_id = await asyncio.to_thread(
        post_form, hub, "Светлана <b>Иванова</b>", "svetlana@example.ru", "Нужна скидка на опт."
    )
    colleague = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
    colleague.set_default_timeout(15_000)
    try:
        boris = await colleague.new_page()
        await sign_in(boris, hub, MANAGER_EN)
        await boris.wait_for_function("() => document.documentElement.dataset.live === 'on'")

        page = await desk.new_page()
        await sign_in(page, hub, ADMIN)
        await _open(page, hub, conversation_id)
        await page.locator("#composer input[value=note]").check()
        text = page.locator("#composer-text")
        await text.click()
        await text.press_sequentially("@bor")
        option = page.locator("#composer-suggest [role=option]")
        await expect(option).to_have_count(1)
        await expect(option).to_have_text("@" + MANAGER_EN[1])
        await expect(option).to_have_attribute("aria-selected", "true")
        await page.screenshot(path=hub.artifacts / "composer-mention-ru-1280.png")
        await text.press("Enter")  # the keyboard picks it
        await expect(text).to_have_value(f"@{MANAGER_EN[1]} ")
        await text.press_sequentially("клиент просит скидку, посмотрите?")
        await text.press("Control+Enter")
        await expect(page.locator("#timeline .msg-note").last).to_contain_text(
            f"@{MANAGER_EN[1]} клиент просит скидку"
        )

        toast = boris.locator("#toasts .toast-mentioned")
        await expect(toast).to_have_count(1)
        await expect(toast.locator("a")).to_have_text(
            f"{ADMIN[1]} mentioned you in a note on conversation #{conversation_id}"
        )
        await expect(toast).to_contain_text("клиент просит скидку")
        await boris.screenshot(path=hub.artifacts / "composer-mentioned-en-1280.png")
        await boris.set_viewport_size({"width": 390, "height": 800})
        await no_overflow(boris, 390)
        await boris.screenshot(path=hub.artifacts / "composer-mentioned-en-390.png")
        await toast.locator("a").click()
        await boris.wait_for_url(f"**/c/{conversation_id}")
        boris_id = hub.sql("SELECT id FROM managers WHERE email = ?", MANAGER_EN[0])[0][0]
        meta = hub.sql(
            "SELECT meta FROM messages WHERE conversation_id = ? AND direction = 'note'",
            conversation_id,
        )
        assert [json.loads(row[0]) for row in meta] == [{"mentions": [boris_id]}]
    finally:
        await colleague.close()


async def test_slash_inserts_a_canned_reply_and_drafts_survive_a_reload(
    hub: Workspace, desk: Any
) -> None:
    from playwright.async_api import expect

    conversation_id = await asyncio.to_thread(
        post_form, hub, "Мария Котова", "maria@example.ru", "Когда доставка?"
    )
    page = await desk.new_page()
    await sign_in(page, hub, ADMIN)
    await _open(page, hub, conversation_id)
    made = await page.request.post(
        hub.url + "/api/v1/canned-replies",
        data={
            "shortcut": "hello",
            "title": "Приветствие",
            "body": "Здравствуйте, {client_name}! Ваша заявка №{request_number}. {manager_name}",
            "shared": True,
        },
        headers={"X-CSRF-Token": await _csrf(page), "Origin": hub.url},
    )
    assert made.status == 201, await made.text()
    lead = hub.sql("SELECT id FROM leads WHERE conversation_id = ?", conversation_id)[0][0]

    text = page.locator("#composer-text")
    await text.click()
    await text.press_sequentially("Добрый день. /hel")
    option = page.locator("#composer-suggest [role=option]")
    await expect(option).to_have_count(1)
    await expect(option).to_contain_text("/hello")
    await expect(option).to_contain_text("Приветствие")
    await page.screenshot(path=hub.artifacts / "composer-canned-ru-1280.png")
    await text.press("Tab")
    filled = f"Добрый день. Здравствуйте, Мария Котова! Ваша заявка №{lead}. {ADMIN[1]}"
    await expect(text).to_have_value(filled)
    await expect(page.locator("#composer-suggest")).to_be_hidden()

    # The draft of each kind survives a reload.
    await page.locator("#composer input[value=note]").check()
    await expect(text).to_have_value("")
    await text.fill("Заметка в работе")
    await page.reload()
    await expect(text).to_have_value(filled)
    await page.locator("#composer input[value=note]").check()
    await expect(text).to_have_value("Заметка в работе")
    await page.locator("#composer input[value=reply]").check()
    await expect(text).to_have_value(filled)

    # Sent: the reply's draft is gone; the note's stays.
    await page.get_by_role("button", name="Отправить", exact=True).click()
    await expect(page.locator("#timeline .msg-outbound").last).to_contain_text("Мария Котова!")
    await page.reload()
    await expect(text).to_have_value("")
    await page.locator("#composer input[value=note]").check()
    await expect(text).to_have_value("Заметка в работе")


async def test_a_web_form_client_gets_the_reply_with_its_pdf_by_email(
    hub: Workspace, desk: Any
) -> None:
    from playwright.async_api import expect

    conversation_id = await asyncio.to_thread(
        post_form, hub, "Олег Пруденко", "oleg@example.ru", "Пришлите счёт, пожалуйста."
    )
    page = await desk.new_page()
    await sign_in(page, hub, ADMIN)
    await _open(page, hub, conversation_id)
    composer = page.locator("#composer")
    await expect(composer.locator(".via-one")).to_contain_text("oleg@example.ru")
    await composer.locator("input[name=files]").set_input_files(
        [{"name": "Счёт № 17.pdf", "mimeType": "application/pdf", "buffer": PDF}]
    )
    await expect(composer.locator(".files-chosen")).to_contain_text("Счёт № 17.pdf")
    await page.locator("#composer-text").fill("Счёт во вложении.")
    await no_overflow(page, 1280)
    await page.screenshot(path=hub.artifacts / "composer-file-ru-1280.png")
    await page.set_viewport_size({"width": 390, "height": 800})
    await no_overflow(page, 390)
    await page.screenshot(path=hub.artifacts / "composer-file-ru-390.png")
    await page.set_viewport_size({"width": 1280, "height": 800})
    await page.get_by_role("button", name="Отправить", exact=True).click()

    chip = page.locator("#timeline .msg-outbound .chip a").last
    await expect(chip).to_contain_text("Счёт № 17.pdf")
    await page.screenshot(path=hub.artifacts / "composer-sent-file-ru-1280.png")
    # (The other tests' replies to web-form clients go out by email too, meanwhile.)
    [sent] = await wait_for(
        lambda: [m for m in hub.smtp.messages if m.message["To"] == "oleg@example.ru"]
    )
    mail = sent.message
    assert "Счёт во вложении." in mail.get_body(("plain",)).get_content()
    [pdf] = list(mail.iter_attachments())
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_filename() == "Счёт № 17.pdf" and pdf.get_content() == PDF
    await expect(page.locator("#timeline .msg-outbound .delivery").last).to_have_class(
        "delivery delivery-sent"
    )
    # The timeline's link downloads it for a signed-in manager.
    href = await chip.get_attribute("href")
    download = await page.request.get(hub.url + str(href))
    assert download.status == 200 and await download.body() == PDF


async def test_a_file_over_the_limit_is_refused_before_sending(
    hub: Workspace, browser: Any
) -> None:
    from playwright.async_api import expect

    conversation_id = await asyncio.to_thread(
        post_form, hub, "Pavel Orlov", "pavel@example.ru", "Can you send the contract?"
    )
    context = await browser.new_context(viewport={"width": 390, "height": 800}, locale="en-GB")
    context.set_default_timeout(15_000)
    try:
        page = await context.new_page()
        await sign_in(page, hub, MANAGER_EN)
        await _open(page, hub, conversation_id)
        await page.locator("#composer").evaluate("form => { form.dataset.fileLimit = '64'; }")
        await page.locator("#composer input[name=files]").set_input_files(
            [{"name": "contract.pdf", "mimeType": "application/pdf", "buffer": PDF}]
        )
        error = page.locator("#composer .composer-error")
        await expect(error).to_contain_text("The file contract.pdf is over")
        await page.locator("#composer-text").fill("Here it is.")
        await page.get_by_role("button", name="Send", exact=True).click()
        await expect(error).to_contain_text("contract.pdf")
        await no_overflow(page, 390)
        await page.screenshot(path=hub.artifacts / "composer-too-large-en-390.png")
        await page.set_viewport_size({"width": 1280, "height": 800})
        await page.screenshot(path=hub.artifacts / "composer-too-large-en-1280.png")
        rows = hub.sql(
            "SELECT count(*) FROM messages WHERE conversation_id = ? AND direction = 'outbound'",
            conversation_id,
        )
        assert rows == [(0,)]
    finally:
        await context.close()


async def test_a_client_without_email_or_telegram_is_told_plainly(
    hub: Workspace, desk: Any, browser: Any
) -> None:
    from playwright.async_api import expect

    response = await asyncio.to_thread(
        httpx.post,
        f"{hub.url}/forms/default",
        json={
            "name": "Глеб <i>Звонков</i>",
            "phone": "+7 916 555-12-34",
            "message": "Перезвоните",
            "consent": True,
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text
    conversation_id = int(response.json()["conversation_id"])
    page = await desk.new_page()
    await sign_in(page, hub, ADMIN)
    await _open(page, hub, conversation_id)
    composer = page.locator("#composer")
    await expect(composer.locator(".no-route")).to_contain_text("нельзя ответить письменно")
    await expect(composer.locator("input[value=reply]")).to_be_disabled()
    await expect(composer.locator("input[value=note]")).to_be_checked()
    await expect(composer.locator("input[name=files]")).to_have_count(0)
    await page.screenshot(path=hub.artifacts / "composer-no-route-ru-1280.png")
    await page.set_viewport_size({"width": 390, "height": 800})
    await no_overflow(page, 390)
    await page.screenshot(path=hub.artifacts / "composer-no-route-ru-390.png")
    # A note still goes.
    await page.locator("#composer-text").fill("Перезвонить после обеда")
    await page.locator("#composer-text").press("Control+Enter")
    await expect(page.locator("#timeline .msg-note").last).to_contain_text("после обеда")

    english = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
    try:
        boris = await english.new_page()
        await sign_in(boris, hub, MANAGER_EN)
        await _open(boris, hub, conversation_id)
        await expect(boris.locator("#composer .no-route")).to_contain_text(
            "cannot be answered in writing"
        )
        await boris.screenshot(path=hub.artifacts / "composer-no-route-en-1280.png")
        await boris.set_viewport_size({"width": 390, "height": 800})
        await no_overflow(boris, 390)
        await boris.screenshot(path=hub.artifacts / "composer-no-route-en-390.png")
    finally:
        await english.close()
