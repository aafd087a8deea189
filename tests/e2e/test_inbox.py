"""Acceptance: the managers' workspace in Chromium against a real `omnihub serve`.

The hub runs as `make run` starts it (embedded SQLite, the worker inside), with a mailbox
on a local dovecot (IMAP) and a local SMTP recorder, and a Telegram bot polling the Bot
API stand-in. Screenshots of the main pages go to OMNIHUB_TEST_ARTIFACTS (or pytest's
temporary directory) under `inbox/`; the path is printed.
"""

from __future__ import annotations

import asyncio
import time
from email.message import EmailMessage
from typing import Any

import httpx

from tests.e2e.workspace import (
    ADMIN,
    CLIENT_CHAT,
    MAILBOX,
    MANAGER_EN,
    Workspace,
    no_overflow,
    post_form,
    replies_with,
    sections_in_sight,
    sign_in,
    wait_for,
)


async def test_sign_in_page_and_headers(hub: Workspace, desk: Any) -> None:
    from playwright.async_api import expect

    page = await desk.new_page()
    response = await page.goto(hub.url + "/")
    assert response is not None and page.url == hub.url + "/login"
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe" not in csp.split("style-src")[0]
    await expect(page.get_by_role("heading", level=1)).to_have_text("Вход в omnihub")
    await page.locator("#email").fill(ADMIN[0])
    await page.locator("#password").fill("wrong password")
    await page.locator("form button[type=submit]").click()
    await expect(page.get_by_role("alert")).to_have_text("Неверная почта или пароль.")
    await page.screenshot(path=hub.artifacts / "login-error-ru-1280.png")
    # A page of the workspace without a session leads to the sign-in page.
    await page.goto(hub.url + "/inbox/v/open")
    assert page.url == hub.url + "/login"


async def test_a_form_post_appears_live_then_a_note_and_logout(hub: Workspace, desk: Any) -> None:
    from playwright.async_api import expect

    page = await desk.new_page()
    await sign_in(page, hub, ADMIN)
    await expect(page.locator("#list-title")).to_have_text("Без ответственного")
    await page.wait_for_function("() => document.documentElement.dataset.live === 'on'")
    before = await page.locator("[data-count=unassigned]").inner_text()

    conversation_id = await asyncio.to_thread(
        post_form, hub, "Светлана Иванова", "svetlana@example.ru", "Хочу заказать 20 коробок."
    )
    posted = time.monotonic()
    row = page.locator(f'#list-rows [data-conversation="{conversation_id}"]')
    await expect(row).to_be_visible(timeout=5_000)
    took = time.monotonic() - posted
    print(f"web-form post to its row in Unassigned: {took * 1000:.0f} ms")
    assert took <= 1.0, took
    await expect(row).to_contain_text("Светлана Иванова")
    await expect(page.locator("[data-count=unassigned]")).to_have_text(str(int(before) + 1))
    assert page.url.endswith("/inbox/v/unassigned")  # no reload, no navigation

    await row.locator("a").click()
    await page.wait_for_url(f"**/inbox/v/unassigned/c/{conversation_id}")
    await expect(page.locator("#timeline")).to_contain_text("Хочу заказать 20 коробок.")
    await page.get_by_label("Заметка для коллег").check()
    await page.locator("#composer-text").fill("Клиент постоянный, дать скидку")
    await page.locator("#composer-text").press("Control+Enter")
    note = page.locator("#timeline .msg-note")
    await expect(note).to_contain_text("Клиент постоянный, дать скидку")
    await expect(note).to_contain_text("заметка")
    await page.screenshot(path=hub.artifacts / "conversation-ru-1280.png")
    rows = hub.sql(
        "SELECT direction, status FROM messages WHERE conversation_id = ? AND text = ?",
        conversation_id,
        "Клиент постоянный, дать скидку",
    )
    assert rows == [("note", "received")]  # a note is never queued for delivery

    cookie = next(c["value"] for c in await desk.cookies() if c["name"] == "omnihub_session")
    await page.get_by_role("button", name="Выйти").click()
    await page.wait_for_url("**/login")
    # The old cookie is dead on the server, not just forgotten by the browser.
    async with httpx.AsyncClient(cookies={"omnihub_session": cookie}, timeout=10) as client:
        me = await client.get(f"{hub.url}/api/v1/me")
        again = await client.get(f"{hub.url}/inbox/v/open")
    assert me.status_code == 401, me.text
    assert again.status_code == 303 and again.headers["location"] == "/login"


async def test_a_conversation_begun_between_a_pages_read_and_its_stream_shows(
    hub: Workspace, desk: Any
) -> None:
    """The page is read, a client writes, and only then does the page's stream connect:
    the stream's hello says a change came meanwhile and the list catches up."""
    from playwright.async_api import expect

    watching = await desk.new_page()  # keeps the hub's live dispatcher hearing
    await sign_in(watching, hub, ADMIN)
    await watching.wait_for_function("() => document.documentElement.dataset.live === 'on'")
    page = await desk.new_page()
    held, release = asyncio.Event(), asyncio.Event()

    async def hold(route: Any) -> None:
        held.set()
        await release.wait()
        await route.continue_()

    await page.route("**/inbox/stream*", hold)
    await page.goto(hub.url + "/inbox/v/unassigned")
    await asyncio.wait_for(held.wait(), timeout=15)
    conversation_id = await asyncio.to_thread(
        post_form, hub, "Вера Лаврова", "vera@example.ru", "Пришлите прайс, пожалуйста."
    )
    row = f'#list-rows [data-conversation="{conversation_id}"]'
    await expect(watching.locator(row)).to_be_visible(timeout=10_000)  # the hub has told it
    assert await page.locator(row).count() == 0  # the page was read before
    release.set()
    await expect(page.locator(row)).to_be_visible(timeout=5_000)
    await expect(page.locator(row)).to_contain_text("Вера Лаврова")
    assert page.url.endswith("/inbox/v/unassigned")  # caught up without a reload
    await page.close()
    await watching.close()


async def test_take_with_a_then_close_shows_the_servers_truth(hub: Workspace, desk: Any) -> None:
    from playwright.async_api import expect

    page = await desk.new_page()
    await sign_in(page, hub, MANAGER_EN)
    await page.wait_for_function("() => document.documentElement.dataset.live === 'on'")
    conversation_id = await asyncio.to_thread(
        post_form, hub, "Pavel Orlov", "pavel@example.ru", "Where is my order 4411?"
    )
    row = page.locator(f'#list-rows [data-conversation="{conversation_id}"]')
    await row.locator("a").click()
    await page.wait_for_url(f"**/inbox/v/unassigned/c/{conversation_id}")
    meta = page.locator(".conv-meta")
    await expect(meta).to_contain_text("unassigned")

    await page.locator("#timeline").click()  # focus outside any field
    await page.keyboard.press("a")  # take
    await expect(meta).to_contain_text(MANAGER_EN[1])
    await expect(page.locator('[data-action="take"]')).to_have_count(0)
    await expect(row).to_have_count(0)  # it left Unassigned
    await expect(page.locator(".history summary")).to_contain_text("Assignment history")
    await page.locator(".history summary").click()
    taken = f"assigned: {MANAGER_EN[1]} · taken · by {MANAGER_EN[1]}"
    await expect(page.locator(".history li").last).to_contain_text(taken)
    assert hub.sql("SELECT assignee_id IS NOT NULL FROM conversations WHERE id = ?",
                   conversation_id) == [(1,)]  # fmt: skip
    await page.screenshot(path=hub.artifacts / "actions-en-1280.png")
    await page.set_viewport_size({"width": 390, "height": 800})
    await no_overflow(page, 390)
    await page.screenshot(path=hub.artifacts / "actions-en-390.png")
    await page.set_viewport_size({"width": 1280, "height": 800})

    await page.get_by_role("button", name="Close", exact=True).click()
    await expect(meta).to_contain_text("Closed")
    await expect(page.locator('#conv-actions [data-action="close"]')).to_have_count(0)
    await expect(page.locator('#conv-actions [data-action="reopen"]')).to_have_count(1)
    assert hub.sql("SELECT status FROM conversations WHERE id = ?", conversation_id) == [
        ("closed",)
    ]

    await page.set_viewport_size({"width": 390, "height": 800})
    await page.goto(f"{hub.url}/inbox/v/mine/c/{conversation_id}?lang=ru")
    await expect(page.locator(".history summary")).to_contain_text("История назначений")
    await no_overflow(page, 390)
    await page.screenshot(path=hub.artifacts / "actions-closed-ru-390.png")

    # An administrator may give a new one to any active manager.
    other = await asyncio.to_thread(
        post_form, hub, "Ирина Лебедева", "irina@example.ru", "Нужен счёт на оплату."
    )
    await page.set_viewport_size({"width": 1280, "height": 800})
    await page.get_by_role("button", name="Выйти").click()
    await sign_in(page, hub, ADMIN)
    await page.goto(f"{hub.url}/inbox/v/unassigned/c/{other}")
    await page.locator('[data-action="assign-menu"]').click()
    await page.get_by_label("Назначить на…").select_option(label=MANAGER_EN[1])
    await page.get_by_role("button", name="Назначить", exact=True).click()
    await expect(meta).to_contain_text(MANAGER_EN[1])
    await expect(page.locator('[data-action="take"]')).to_have_count(0)  # someone has it
    await page.set_viewport_size({"width": 390, "height": 800})
    await no_overflow(page, 390)
    await page.screenshot(path=hub.artifacts / "actions-admin-ru-390.png")

    # Closed by someone else meanwhile: the refusal in words beside the buttons.
    raced = await asyncio.to_thread(
        post_form, hub, "Ольга Петрова", "olga.p@example.ru", "Можно поменять адрес?"
    )
    await page.goto(f"{hub.url}/inbox/v/unassigned/c/{raced}")
    hub.sql("UPDATE conversations SET status = 'closed' WHERE id = ?", raced)
    await page.get_by_role("button", name="Взять себе", exact=True).click()
    await expect(page.locator(".actions-error")).to_have_text("Разговор закрыт.")
    await expect(meta).to_contain_text("Закрытые")  # and the page shows the server's truth
    await no_overflow(page, 390)
    await page.screenshot(path=hub.artifacts / "actions-refused-ru-390.png")


HOSTILE_HTML = """<html><body>
<p>Здравствуйте! Счёт во вложении.</p>
<script>parent.document.title = 'pwned'; window.top.pwned = 1;</script>
<img src="x" onerror="parent.pwned = 2">
<img src="https://tracker.example.net/pixel.png?id=42" alt="pixel">
<a href="javascript:parent.pwned=3">ссылка</a>
<div style="position:fixed;top:0;left:0;width:100%;height:100%;background:red">overlay</div>
</body></html>"""


async def test_an_email_shows_inert_and_the_reply_goes_out_by_smtp(
    hub: Workspace, desk: Any
) -> None:
    from playwright.async_api import expect

    message = EmailMessage()
    message["From"] = "Олег Петров <oleg@client.example.ru>"
    message["To"] = "support@shop.example.ru"
    message["Subject"] = "Счёт на оплату"
    message["Message-ID"] = "<invoice-1@client.example.ru>"
    message.set_content("Здравствуйте! Счёт во вложении.")
    message.add_alternative(HOSTILE_HTML, subtype="html")
    await asyncio.to_thread(hub.dovecot.deliver, MAILBOX[0], message.as_bytes())

    page = await desk.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    await sign_in(page, hub, ADMIN)
    row = page.locator("#list-rows .row", has_text="Олег Петров")
    await expect(row).to_be_visible(timeout=30_000)
    await row.locator("a").click()
    await page.wait_for_url("**/c/*")
    frame_element = page.locator("iframe.email-frame")
    await expect(frame_element).to_have_attribute("sandbox", "")
    frame = page.frame_locator("iframe.email-frame")
    await expect(frame.locator("body")).to_contain_text("Счёт во вложении")
    inner = await frame.locator("body").inner_html()
    assert "<script" not in inner and "onerror" not in inner and "javascript:" not in inner
    assert "position:fixed" not in inner.replace(" ", "")
    await page.wait_for_timeout(500)
    assert await page.evaluate("() => window.pwned") is None
    assert await page.title() != "pwned"
    assert not [url for url in requests if "tracker.example.net" in url], requests
    await page.screenshot(path=hub.artifacts / "email-ru-1280.png")

    await page.locator("#composer-text").fill("Олег, счёт получили, оплатим сегодня.")
    await page.get_by_role("button", name="Отправить").click()
    await expect(page.locator("#timeline .msg-outbound")).to_contain_text("оплатим сегодня")
    sent = await wait_for(
        lambda: [m for m in hub.smtp.messages if "oleg@client.example.ru" in m.rcpt_tos]
    )
    body = sent[0].message.get_body(("plain",))
    assert body is not None and "оплатим сегодня" in body.get_content()
    assert sent[0].message["In-Reply-To"] == "<invoice-1@client.example.ru>"


async def test_a_telegram_reply_reaches_the_client_in_english_and_on_a_phone(
    hub: Workspace, browser: Any
) -> None:
    from playwright.async_api import expect

    hub.telegram.queue_update(
        {
            "update_id": 9001,
            "message": {
                "message_id": 11,
                "date": int(time.time()),
                "chat": {"id": CLIENT_CHAT, "type": "private", "first_name": "Ivan"},
                "from": {"id": CLIENT_CHAT, "is_bot": False, "first_name": "Ivan",
                         "language_code": "en"},
                "text": "Hello! Do you deliver to Kazan?",
            },
        }
    )  # fmt: skip
    shots: dict[str, list[int]] = {}
    for width in (1280, 390):
        context = await browser.new_context(
            viewport={"width": width, "height": 844 if width == 390 else 800},
            locale="en-US",
            is_mobile=width == 390,
        )
        context.set_default_timeout(15_000)
        try:
            page = await context.new_page()
            await sign_in(page, hub, MANAGER_EN)
            await expect(page.locator("#list-title")).to_have_text("Unassigned")
            row = page.locator("#list-rows .row", has_text="Ivan")
            await expect(row).to_be_visible(timeout=30_000)
            await page.screenshot(path=hub.artifacts / f"list-en-{width}.png")
            shots[f"list-{width}"] = [width]
            await no_overflow(page, width)
            await row.locator("a").click()
            await page.wait_for_url("**/c/*")
            await expect(page.locator("#timeline")).to_contain_text("Do you deliver to Kazan?")
            await page.screenshot(path=hub.artifacts / f"conversation-en-{width}.png")
            await no_overflow(page, width)
            if width == 390:
                # One column at a time: the list is hidden behind the conversation.
                assert not await page.locator("#list").is_visible()
                await page.get_by_role("button", name="Contact").click()
                await expect(page.locator("#contact")).to_be_visible()
                await page.screenshot(path=hub.artifacts / "contact-en-390.png")
                await no_overflow(page, width)
                continue
            text = "Yes, we deliver to Kazan in 2 days."
            await page.locator("#composer-text").fill(text)
            await page.reload()  # the draft survives a reload
            await expect(page.locator("#composer-text")).to_have_value(text)
            await page.locator("#composer-text").press("Control+Enter")
            await expect(page.locator("#timeline .msg-outbound")).to_contain_text(text)
            calls = await wait_for(lambda: replies_with(hub.telegram, "deliver to Kazan in 2"))
            assert len(calls) == 1
            await expect(page.locator("#composer-text")).to_have_value("")
            stored = await page.evaluate(
                "() => Object.keys(localStorage).filter(k => k.startsWith('omnihub.draft.'))"
            )
            assert stored == []
        finally:
            await context.close()


async def test_russian_pages_at_390_px(hub: Workspace, browser: Any) -> None:
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, locale="ru-RU", is_mobile=True
    )
    context.set_default_timeout(15_000)
    try:
        page = await context.new_page()
        await page.goto(hub.url + "/login")
        await page.screenshot(path=hub.artifacts / "login-ru-390.png")
        await no_overflow(page, 390)
        await sign_in(page, hub, ADMIN)
        await page.screenshot(path=hub.artifacts / "list-ru-390.png")
        await no_overflow(page, 390)
        await sections_in_sight(page, 390)
        await page.get_by_role("button", name="Разделы").click()
        await page.screenshot(path=hub.artifacts / "views-ru-390.png")
        await no_overflow(page, 390)
        await page.get_by_role("link", name="Все открытые").click()
        await page.wait_for_url("**/inbox/v/open")
        await page.locator("#list-rows .row a").first.click()
        await page.wait_for_url("**/c/*")
        await page.screenshot(path=hub.artifacts / "conversation-ru-390.png")
        await no_overflow(page, 390)
    finally:
        await context.close()


def telegram_update(update_id: int, chat_id: int, name: str, text: str) -> dict[str, Any]:
    person = {"id": chat_id, "is_bot": False, "first_name": name, "language_code": "ru"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": name},
            "from": person,
            "text": text,
        },
    }


async def test_two_managers_see_each_other_and_a_new_client_message_holds_the_send(
    hub: Workspace, browser: Any
) -> None:
    from playwright.async_api import expect

    chat = 777002
    hub.telegram.queue_update(telegram_update(9101, chat, "Мария", "Сколько стоит доставка?"))
    contexts = []
    pages = {}
    try:
        for who, locale in ((ADMIN, "ru-RU"), (MANAGER_EN, "en-US")):
            context = await browser.new_context(
                viewport={"width": 1280, "height": 800}, locale=locale
            )
            context.set_default_timeout(15_000)
            contexts.append(context)
            page = await context.new_page()
            await sign_in(page, hub, who)
            row = page.locator("#list-rows .row", has_text="Мария")
            await expect(row).to_be_visible(timeout=30_000)
            await row.locator("a").click()
            await page.wait_for_url("**/c/*")
            await page.wait_for_function("() => document.documentElement.dataset.live === 'on'")
            pages[who[0]] = page
        anna, boris = pages[ADMIN[0]], pages[MANAGER_EN[0]]
        # Each sees the other: in the conversation and, for Anna, on the list's row too.
        await expect(anna.locator(".who-here")).to_contain_text("смотрит: Boris Kent")
        await expect(boris.locator(".who-here")).to_contain_text("viewing: Анна Смирнова")
        await expect(anna.locator("#list-rows .row", has_text="Мария")).to_contain_text(
            "Boris Kent"
        )

        await boris.locator("#composer-text").fill("Delivery costs 300 rubles.")
        await expect(anna.locator(".who-here")).to_contain_text("печатает: Boris Kent")
        await anna.screenshot(path=hub.artifacts / "presence-ru-1280.png")

        # The client writes again while Boris is composing: his first Send is held.
        hub.telegram.queue_update(telegram_update(9102, chat, "Мария", "А в Казань тоже?"))
        await expect(boris.locator("#timeline")).to_contain_text("А в Казань тоже?", timeout=30_000)
        await boris.get_by_role("button", name="Send").click()
        await expect(boris.locator("#cop")).to_be_visible()
        await expect(boris.locator("#cop")).to_contain_text("The client wrote while you")
        await boris.screenshot(path=hub.artifacts / "traffic-cop-en-1280.png")
        await asyncio.sleep(1.5)
        assert not replies_with(hub.telegram, "300 rubles", chat), "the held send went out"
        await expect(boris.locator("#composer-text")).to_have_value("Delivery costs 300 rubles.")
        await boris.get_by_role("button", name="Send").click()
        calls = await wait_for(lambda: replies_with(hub.telegram, "300 rubles", chat))
        assert len(calls) == 1
    finally:
        for context in contexts:
            await context.close()


async def test_search_from_the_header_finds_and_opens_a_conversation(
    hub: Workspace, desk: Any
) -> None:
    from playwright.async_api import expect

    conversation_id = await asyncio.to_thread(
        post_form, hub, "Пётр Лосев", "petr@example.ru", "Нужны стеллажи для склада, 12 штук."
    )
    await asyncio.to_thread(
        post_form, hub, "Анна Котова", "anna.k@example.ru", "Подскажите сроки доставки."
    )
    page = await desk.new_page()
    await sign_in(page, hub, ADMIN)
    await page.locator("body").press("/")
    await expect(page.locator("#search-q")).to_be_focused()
    await page.keyboard.type("?!")
    await page.keyboard.press("Enter")
    await expect(page.locator(".search-error")).to_have_text(
        "В запросе нет букв или цифр, по которым можно искать."
    )
    await page.locator("#search-q").fill("стеллаж")
    await page.locator("#search-q").press("Enter")
    await page.wait_for_url("**/inbox/search?q=%D1%81%D1%82*")
    await expect(page.locator("#list-title")).to_have_text("Поиск")
    rows = page.locator("#list-rows .row")
    await expect(rows).to_have_count(1)
    row = page.locator(f'#list-rows [data-conversation="{conversation_id}"]')
    await expect(row.locator("mark")).to_have_text("стеллажи")
    await expect(row).to_contain_text("Пётр Лосев")
    await page.screenshot(path=hub.artifacts / "search-ru-1280.png")

    await row.locator("a").click()
    await page.wait_for_url(f"**/inbox/search/c/{conversation_id}?q=*")
    await expect(page.locator("#timeline")).to_contain_text("Нужны стеллажи для склада")
    await page.screenshot(path=hub.artifacts / "search-opened-ru-1280.png")
    await page.go_back()
    await page.wait_for_url("**/inbox/search?q=*")
    await expect(page.locator("#list-rows .row")).to_have_count(1)

    await page.set_viewport_size({"width": 390, "height": 800})
    await page.goto(hub.url + "/inbox/search?q=склада&lang=en")
    await expect(page.locator("#list-title")).to_have_text("Search")
    await expect(row.locator("mark")).to_have_text("склада")
    await no_overflow(page, 390)
    await page.screenshot(path=hub.artifacts / "search-en-390.png")
    await page.goto(hub.url + "/inbox/search?q=")
    await expect(page.locator(".search-error")).to_contain_text("Введите слово")
    await no_overflow(page, 390)
    await page.screenshot(path=hub.artifacts / "search-ru-390.png")


async def test_an_open_tab_keeps_the_manager_online_and_away_is_a_choice(
    hub: Workspace, browser: Any
) -> None:
    def presence() -> str:
        rows = hub.sql("SELECT presence FROM managers WHERE email = ?", MANAGER_EN[0])
        return str(rows[0][0])

    hub.sql("UPDATE managers SET presence = 'offline', presence_expires_at = NULL")
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, locale="en-GB", is_mobile=True
    )
    context.set_default_timeout(15_000)
    try:
        page = await context.new_page()
        await sign_in(page, hub, MANAGER_EN)
        # The tab's first beat takes the manager online, and the top bar says so.
        await wait_for(lambda: presence() == "online", 10)
        picker = page.get_by_label("Your presence")
        await picker.select_option("away")
        await wait_for(lambda: presence() == "away", 10)
        # The choice outlives a reload: the tab keeps beating "away", not "online".
        await page.reload()
        await page.wait_for_timeout(1500)
        assert presence() == "away"
        assert await picker.input_value() == "away"
        await page.screenshot(path=hub.artifacts / "presence-away-en-390.png")
        await no_overflow(page, 390)
        await picker.select_option("online")
        await wait_for(lambda: presence() == "online", 10)
    finally:
        await context.close()
