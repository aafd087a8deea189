"""Acceptance: the claims board and a claim's page in Chromium against a real `omnihub serve`.

A client files a claim through the Telegram bot (raw updates through the Bot API stand-in
the hub polls), a manager finds it on the board, works its investigation plan, is refused
a resolution without words, resolves it, and the client receives the notice in Telegram.
Screenshots in Russian and English at 1280 and 390 px go to the hub's artifacts.
"""

from __future__ import annotations

from typing import Any

from bots.texts import t
from intake.claims.texts import status_notice
from tests.channels.telegram.flow import Chat
from tests.e2e.workspace import ADMIN, MANAGER_EN, Workspace, no_overflow, sign_in, wait_for

HOSTILE_NAME = '<img src=x onerror="document.title=1">Мария'
DESCRIPTION = "Коробка пришла смятой, внутри разбит экран."
RESOLUTION = "Заменим телевизор за наш счёт, курьер приедет завтра."


async def file_through_the_bot(hub: Workspace, chat: Chat) -> str:
    """The bot's claim dialogue from /start to the confirmation; returns the claim's number."""
    answers = (
        (chat.text("/start"), None),
        (chat.press("menu:claim"), t("ru", "claim_reason")),
        (chat.press("claim:reason:quality"), t("ru", "claim_order")),
        (chat.text("A-1542"), t("ru", "claim_description")),
        (chat.text(DESCRIPTION), None),
        (chat.press("claim:done"), t("ru", "claim_phone")),
        (chat.contact("+7 912 345-67-89"), None),
        (chat.press("claim:confirm"), None),
    )
    for update, answer in answers:
        before = len(hub.telegram.texts(chat.user_id))
        hub.telegram.queue_update(update)
        got = await wait_for(lambda b=before: hub.telegram.texts(chat.user_id)[b:])
        if answer is not None:
            assert answer in got, got
    rows = await wait_for(lambda: hub.sql("SELECT number FROM claims ORDER BY id DESC LIMIT 1"))
    number: str = rows[0][0]
    await wait_for(lambda: any(number in text for text in hub.telegram.texts(chat.user_id)))
    return number


async def test_a_claim_filed_in_telegram_is_worked_and_resolved_on_its_page(
    hub: Workspace, desk: Any, browser: Any
) -> None:
    from playwright.async_api import expect

    page = await desk.new_page()
    await sign_in(page, hub, ADMIN)
    await page.get_by_role("link", name="Претензии").click()
    await page.wait_for_url("**/claims")
    await expect(page.locator("#claims-rows .empty")).to_be_visible()
    await page.evaluate("() => { window.notReloaded = true; }")

    chat = Chat(language="ru", first_name=HOSTILE_NAME)
    number = await file_through_the_bot(hub, chat)
    # The open board gains the new claim live, without a reload.
    row = page.locator(f'.claim-row[data-claim="{number}"]')
    await expect(row).to_be_visible(timeout=10_000)
    assert await page.evaluate("() => window.notReloaded === true")
    await expect(row).to_contain_text(HOSTILE_NAME)  # as text, not as an element
    await expect(row).to_contain_text("Качество товара или услуги")
    await expect(row).to_contain_text("без ответственного")
    assert await page.locator(".claim-row img").count() == 0
    await page.screenshot(path=hub.artifacts / "claims-ru-1280.png")
    await no_overflow(page, 1280)

    await row.get_by_role("link", name=number).click()
    await page.wait_for_url(f"**/claims/{number}")
    await expect(page.locator("#claim-description")).to_have_text(DESCRIPTION)
    await expect(page.locator("#claim-client")).to_have_text(f"{HOSTILE_NAME} Петров")
    await page.locator("#step-text").fill("Запросить фото упаковки у склада")
    await page.get_by_role("button", name="Добавить шаг").click()
    step = page.locator(".plan-step", has_text="Запросить фото упаковки")
    await step.get_by_role("button", name="Отметить выполненным").click()
    await expect(page.locator(".plan-step.done")).to_contain_text("сделано: Анна Смирнова")
    await page.get_by_role("button", name="Взять себе").click()
    await expect(page.locator(".claim-owner-line")).to_contain_text("Анна Смирнова")

    await page.locator("#new-status").select_option("in_review")
    await page.get_by_role("button", name="Сменить статус").click()
    await expect(page.locator("#claim-status")).to_have_text("на рассмотрении")
    # Resolving without saying how is refused, in words beside the form.
    await page.locator("#new-status").select_option("resolved")
    await page.get_by_role("button", name="Сменить статус").click()
    await expect(page.locator("#status-error")).to_contain_text("Напишите решение")
    await page.locator("#status").screenshot(path=hub.artifacts / "claim-refused-ru-1280.png")
    await page.locator("#new-status").select_option("resolved")
    await page.locator("#resolution").fill(RESOLUTION)
    await page.get_by_role("button", name="Сменить статус").click()
    await expect(page.locator("#claim-status")).to_have_text("решена")
    await expect(page.locator("#claim-resolution")).to_have_text(RESOLUTION)
    await expect(page.locator("#history li")).to_have_count(3)
    await page.screenshot(path=hub.artifacts / "claim-ru-1280.png", full_page=True)
    await no_overflow(page, 1280)

    notice = status_notice("ru", number, "resolved", resolution=RESOLUTION, ask_rating=True)
    sent = await wait_for(
        lambda: [c for c in hub.telegram.sent("sendMessage", chat.user_id) if c.text == notice]
    )
    assert len(sent) == 1
    assert await page.title() != "1"

    # The client rates it in the bot; the page shows the rating.
    claim_id = hub.sql("SELECT id FROM claims WHERE number = ?", number)[0][0]
    hub.telegram.queue_update(chat.press(f"rate:{claim_id}:5"))
    await wait_for(lambda: hub.sql("SELECT rating FROM claims WHERE id = ?", claim_id)[0][0])
    await page.reload()
    await expect(page.locator("#claim-rating")).to_contain_text("5 из 5")

    # The board and the page in English and on a phone.
    for width, lang, who in ((1280, "en", MANAGER_EN), (390, "en", MANAGER_EN), (390, "ru", ADMIN)):
        context = await browser.new_context(
            viewport={"width": width, "height": 844 if width == 390 else 800},
            locale="en-US" if lang == "en" else "ru-RU",
            is_mobile=width == 390,
        )
        context.set_default_timeout(15_000)
        try:
            phone = await context.new_page()
            await sign_in(phone, hub, who)
            await phone.goto(hub.url + "/claims?status=all")
            await expect(phone.locator(f'.claim-row[data-claim="{number}"]')).to_be_visible()
            await phone.screenshot(path=hub.artifacts / f"claims-{lang}-{width}.png")
            await no_overflow(phone, width)
            await phone.goto(f"{hub.url}/claims/{number}")
            resolved = "resolved" if lang == "en" else "решена"
            await expect(phone.locator("#claim-status")).to_have_text(resolved)
            if width == 1280:
                # Anna adds a step: Boris's open page offers a reload, Anna's does not.
                await expect(phone.locator("#claim-changed")).to_be_hidden()
                await page.locator("#step-text").fill("Проверить, что курьер забрал старый")
                await page.get_by_role("button", name="Добавить шаг").click()
                await expect(phone.locator("#claim-changed")).to_be_visible(timeout=10_000)
                await expect(phone.locator("#claim-changed")).to_contain_text("Someone else")
                await expect(page.locator("#claim-changed")).to_be_hidden()
            await phone.screenshot(path=hub.artifacts / f"claim-{lang}-{width}.png", full_page=True)
            await no_overflow(phone, width)
        finally:
            await context.close()
