"""Acceptance: the contact panel and the keyboard shortcuts in Chromium against a real
`omnihub serve` (the shared workspace hub of tests/e2e/workspace.py).

One person writes by email, then by the site's form with a phone, then by the form naming
both: the manager sees the suggestion to merge the two contacts, merges in one click, and
the panel shows both identities and every conversation. Screenshots at 1280 and 390 px, in
Russian and English, go to the hub's artifacts.
"""

from __future__ import annotations

import asyncio
import json
import re
from email.message import EmailMessage
from typing import Any

import httpx

from tests.e2e.workspace import (
    ADMIN,
    MAILBOX,
    MANAGER_EN,
    Workspace,
    no_overflow,
    sign_in,
    wait_for,
)

EMAIL = "anna.k@client.example.ru"
PHONE = "+79123456789"


def form(hub: Workspace, **fields: str) -> int:
    body = {**fields, "consent": True}  # the built-in form asks for it (152-FZ)
    response = httpx.post(f"{hub.url}/forms/default", json=body, timeout=30)
    assert response.status_code == 201, response.text
    conversation_id: int = response.json()["conversation_id"]
    return conversation_id


async def one_person_twice(hub: Workspace) -> tuple[int, int, int]:
    """An email, a form with a phone, a form with both: (the email's conversation, the
    phone-only form's, the last form's)."""
    message = EmailMessage()
    message["From"] = f"Анна Кузнецова <{EMAIL}>"
    message["To"] = "support@shop.example.ru"
    message["Subject"] = "Доставка заказа 4471"
    message["Message-ID"] = "<order-4471@client.example.ru>"
    message.set_content("Здравствуйте! Когда приедет заказ 4471?")
    await asyncio.to_thread(hub.dovecot.deliver, MAILBOX[0], message.as_bytes())
    rows = await wait_for(
        lambda: hub.sql("SELECT conversation_id FROM messages WHERE text LIKE ?", "%4471?%")
    )
    by_mail = int(rows[0][0])
    by_phone = form(hub, name="Анна", phone="8 (912) 345-67-89", message="Перезвоните мне")
    both = form(
        hub,
        name="Анна Кузнецова",
        email=EMAIL,
        phone=PHONE,
        message="Это я писала вчера на почту про заказ 4471",
    )
    return by_mail, by_phone, both


async def test_the_suggested_merge_in_one_click_then_both_identities_and_conversations(
    hub: Workspace, desk: Any, browser: Any
) -> None:
    from playwright.async_api import expect

    by_mail, by_phone, both = await one_person_twice(hub)
    page = await desk.new_page()
    await sign_in(page, hub, ADMIN)
    await page.goto(f"{hub.url}/inbox/v/unassigned/c/{both}")
    panel = page.locator("#contact-panel.contact-panel")
    await expect(panel).to_be_visible()
    await expect(panel.locator(".identities")).to_contain_text(EMAIL)
    hint = panel.locator(".merge-hint")
    await expect(hint).to_contain_text("Возможно, это тот же человек")
    await expect(hint).to_contain_text(PHONE)
    await page.screenshot(path=hub.artifacts / "contact-suggestion-ru-1280.png")
    await no_overflow(page, 1280)

    await hint.get_by_role("link", name="Объединить…").click()
    confirm = panel.locator(".merge-confirm")
    await expect(confirm).to_contain_text("Сюда перейдут:")
    await expect(confirm.locator(".merge-moves")).to_contain_text("1 обращение")
    await expect(confirm.locator(".merge-moves")).to_contain_text("1 контакт для связи")
    assert page.url.endswith(f"/c/{both}")  # the confirmation swaps in place
    await expect(confirm.get_by_role("button", name="Объединить")).to_be_focused()
    await page.screenshot(path=hub.artifacts / "contact-merge-confirm-ru-1280.png")
    await confirm.get_by_role("button", name="Объединить").click()

    merged = page.locator("#contact-panel .merges-done")
    await expect(merged).to_contain_text("Анна Смирнова объединил(а) «Анна»")
    identities = page.locator("#contact-panel .identities")
    await expect(identities).to_contain_text(EMAIL)
    await expect(identities).to_contain_text(PHONE)
    links = page.locator("#contact-panel [data-panel-conversation]")
    await expect(links).to_have_count(3)
    listed = {await link.get_attribute("data-panel-conversation") for link in await links.all()}
    assert listed == {str(by_mail), str(by_phone), str(both)}
    await expect(page.locator("#contact-panel .merge-hint")).to_have_count(0)
    # The timeline is the person's across channels: the phone-only form is in it now.
    await expect(page.locator("#timeline")).to_contain_text("Перезвоните мне")
    await page.screenshot(path=hub.artifacts / "contact-merged-ru-1280.png")
    await no_overflow(page, 1280)
    recorded = hub.sql("SELECT moved FROM contact_merges")
    assert len(recorded) == 1 and json.loads(recorded[0][0])["conversations"] == [by_phone]

    # Edit in place: the form swaps into the panel, the saved panel swaps back.
    await page.locator("#contact-panel [data-contact-edit]").click()
    await expect(page.locator("#contact-name")).to_be_focused()
    await page.locator("#contact-name").fill('<img src=x onerror="window.pwned=1">Анна К.')
    await page.locator("#contact-company").fill("ООО «Ромашка и партнёры по оптовой торговле»")
    await page.locator("#contact-notes").fill("Звонить после 18:00.\nПредпочитает почту.")
    await page.screenshot(path=hub.artifacts / "contact-edit-ru-1280.png")
    await page.locator("#contact-panel").get_by_role("button", name="Сохранить").click()
    await expect(page.locator("#contact-title")).to_have_text(
        '<img src=x onerror="window.pwned=1">Анна К.'
    )
    await expect(page.locator("#contact-panel .contact-notes")).to_contain_text(
        "Предпочитает почту."
    )
    assert await page.evaluate("() => window.pwned") is None
    assert page.url.endswith(f"/c/{both}")
    await page.screenshot(path=hub.artifacts / "contact-saved-ru-1280.png")

    # A name too long: said next to the field, what was typed stays.
    await page.locator("#contact-panel [data-contact-edit]").click()
    await page.locator("#contact-name").evaluate("(el) => el.removeAttribute('maxlength')")
    await page.locator("#contact-name").fill("Я" * 201)
    await page.locator("#contact-panel").get_by_role("button", name="Сохранить").click()
    await expect(page.locator("#contact-name-error")).to_contain_text("не более 200 символов")
    await expect(page.locator("#contact-name")).to_have_attribute("aria-invalid", "true")
    await page.locator("#contact-panel").get_by_role("link", name="Отмена").click()
    await expect(page.locator("#contact-panel [data-contact-edit]")).to_be_visible()

    for width, locale, who in ((390, "ru-RU", ADMIN), (1280, "en-US", MANAGER_EN),
                               (390, "en-US", MANAGER_EN)):  # fmt: skip
        context = await browser.new_context(
            viewport={"width": width, "height": 844 if width == 390 else 800},
            locale=locale,
            is_mobile=width == 390,
        )
        context.set_default_timeout(15_000)
        try:
            other = await context.new_page()
            await sign_in(other, hub, who)
            await other.goto(f"{hub.url}/inbox/v/unassigned/c/{both}")
            lang = "ru" if locale == "ru-RU" else "en"
            if width == 390:
                await other.locator("#conversation [data-show-pane=contact]").click()
            await expect(other.locator("#contact-panel .identities")).to_contain_text(PHONE)
            await expect(other.locator("#contact-panel .merges-done")).to_be_visible()
            if lang == "en":
                await expect(other.locator("#contact-panel")).to_contain_text("Conversations")
            await other.screenshot(path=hub.artifacts / f"contact-panel-{lang}-{width}.png")
            await no_overflow(other, width)
            if width == 390:
                # Back to the conversation from the panel, then Esc: back to the list.
                await other.locator("#contact-panel [data-show-pane=conversation]").click()
                await expect(other.locator("#timeline")).to_be_visible()
                await other.keyboard.press("Escape")
                await other.wait_for_url("**/inbox/v/unassigned")
                await expect(other.locator("#list")).to_be_visible()
        finally:
            await context.close()


async def focused(page: Any) -> str:
    return str(
        await page.evaluate(
            "() => { const a = document.activeElement;"
            " return (a.closest('li[data-conversation]') || {dataset: {}}).dataset.conversation"
            " || a.id || a.tagName; }"
        )
    )


async def test_shortcuts_move_open_and_write_and_the_overlay_lists_them(
    hub: Workspace, desk: Any
) -> None:
    from playwright.async_api import expect

    first = form(hub, name="Пётр", email="petr@client.example.ru", message="Нужен счёт")
    second = form(hub, name="Вера", email="vera@client.example.ru", message="Где мой заказ?")
    page = await desk.new_page()
    await sign_in(page, hub, ADMIN)
    await expect(page.locator(f'#list-rows [data-conversation="{second}"]')).to_be_visible()
    rows = await page.locator("#list-rows > li.row").evaluate_all(
        "(items) => items.map((item) => item.dataset.conversation)"
    )
    assert rows.index(str(second)) < rows.index(str(first))  # newest first

    await page.keyboard.press("j")
    assert await focused(page) == rows[0]
    await page.keyboard.press("j")
    assert await focused(page) == rows[1]
    await page.keyboard.press("k")
    assert await focused(page) == rows[0]
    await page.keyboard.press("o")
    await page.wait_for_url(f"**/c/{rows[0]}")
    await expect(page.locator("#composer")).to_be_visible()
    # From the open conversation, j goes on to the next row; Enter opens it.
    await page.keyboard.press("j")
    assert await focused(page) == rows[1]
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"**/c/{rows[1]}")

    await page.keyboard.press("n")
    assert await focused(page) == "composer-text"
    assert await page.locator("#composer input[value=note]").is_checked()
    # Typing in a field never fires a shortcut.
    await page.keyboard.type("jk?o")
    await expect(page.locator("#composer-text")).to_have_value("jk?o")
    assert await page.locator("#keys-help").get_attribute("open") is None
    assert page.url.endswith(f"/c/{rows[1]}")
    await page.locator("#composer-text").fill("")
    await page.locator("#timeline").click()
    await page.keyboard.press("r")
    assert await focused(page) == "composer-text"
    assert await page.locator("#composer input[value=reply]").is_checked()
    await page.locator("#timeline").click()
    await page.keyboard.press("/")
    assert await focused(page) == "search-q"
    await page.locator("#timeline").click()

    # `?`: a modal dialog listing the shortcuts, focus inside it, Esc closes it.
    await page.keyboard.press("?")
    dialog = page.get_by_role("dialog", name="Горячие клавиши")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_role("button", name="Закрыть")).to_be_focused()
    await expect(dialog).to_contain_text("Следующее обращение в списке")
    for _ in range(3):
        await page.keyboard.press("Tab")
        inside = await page.evaluate("() => !!document.activeElement.closest('#keys-help')")
        assert inside
    await page.keyboard.press("j")  # no shortcut under the dialog
    assert page.url.endswith(f"/c/{rows[1]}")
    await page.screenshot(path=hub.artifacts / "keys-ru-1280.png")
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()

    await page.goto(f"{hub.url}/inbox/v/unassigned?lang=en")
    await page.keyboard.press("?")
    english = page.get_by_role("dialog", name="Keyboard shortcuts")
    await expect(english).to_contain_text("Next conversation in the list")
    await page.screenshot(path=hub.artifacts / "keys-en-1280.png")
    await english.get_by_role("button", name="Close").click()
    await expect(english).to_be_hidden()
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.keyboard.press("?")
    await expect(english).to_be_visible()
    await page.screenshot(path=hub.artifacts / "keys-en-390.png")
    await no_overflow(page, 390)
    box = await english.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    await page.keyboard.press("Escape")
    assert re.search(r"/inbox/v/unassigned", page.url)
