"""Acceptance: calls in the workspace, in Chromium against a real `omnihub serve`.

A phone line's webhook (the generic provider, posted as a PBX posts it) announces a ringing
call: the caller's card pops up in the open tabs of the managers concerned without a
reload, and goes when the call ends or is answered; the missed call waits on the calls
page as a callback until a manager marks it done. Screenshots in Russian and English at
1280 and 390 px go to the hub's artifacts.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.e2e.workspace import (
    ADMIN,
    MANAGER_EN,
    Workspace,
    no_overflow,
    sections_in_sight,
    sign_in,
)

LINE_TOKEN = "line-token-0123456789abcdef"


@pytest.fixture(scope="module")
def line(hub: Workspace) -> str:
    """The phone line's webhook URL."""
    hub.cli(
        "channels", "add", "telephony", "--key", "pbx", "--provider", "generic",
        "--token", LINE_TOKEN, "--title", "Office line",
    )  # fmt: skip
    return f"{hub.url}/webhooks/telephony/pbx/{LINE_TOKEN}"


def phone_event(url: str, event: str, call_id: str, number: str, **extra: str) -> None:
    fields = {"event": event, "callId": call_id, "direction": "in", "from": number, **extra}
    response = httpx.post(url, data=fields, timeout=30)
    assert response.status_code == 200, response.text


async def posted(url: str, event: str, call_id: str, number: str, **extra: str) -> None:
    await asyncio.to_thread(phone_event, url, event, call_id, number, **extra)


async def test_a_ring_pops_up_live_then_the_missed_call_waits_until_done(
    hub: Workspace, desk: Any, line: str
) -> None:
    from playwright.async_api import expect

    page = await desk.new_page()
    await sign_in(page, hub, ADMIN)
    await page.wait_for_function("() => document.documentElement.dataset.live === 'on'")

    await posted(line, "newCall", "e2e-1", "+79123456701")
    rung = time.monotonic()
    card = page.locator(".ring-card")
    await expect(card).to_be_visible(timeout=2_000)
    took = time.monotonic() - rung
    print(f"ringing webhook to the card on screen: {took * 1000:.0f} ms")
    assert took <= 2.0, took
    assert page.url.endswith("/inbox/v/unassigned")  # no reload, no navigation
    await expect(card).to_have_attribute("role", "dialog")
    await expect(card).to_contain_text("Входящий звонок")
    await expect(card.get_by_role("link")).to_have_text("Диалог #1")
    await expect(card).to_contain_text("+7 912 345-67-01")
    await expect(card).to_contain_text("Обращается впервые")
    await page.screenshot(path=hub.artifacts / "calls-ringing-ru-1280.png")

    await posted(line, "hangup", "e2e-1", "+79123456701", cause="cancel")
    await expect(card).to_have_count(0, timeout=2_000)

    await page.get_by_role("link", name="Звонки").click()
    await page.wait_for_url("**/calls")
    callbacks = page.locator("#callbacks .callback")
    await expect(callbacks).to_have_count(1)
    await expect(callbacks.first).to_contain_text("+7 912 345-67-01")
    await expect(page.locator("#recent-calls .call-row").first).to_contain_text("пропущен")
    await page.screenshot(path=hub.artifacts / "calls-page-ru-1280.png", full_page=True)
    await no_overflow(page, 1280)

    await callbacks.first.get_by_role("button", name="Отметить сделанным").click()
    await page.wait_for_url("**/calls")
    await expect(page.locator("#callbacks .callback")).to_have_count(0)
    await expect(page.get_by_text("Никто не ждёт обратного звонка.")).to_be_visible()
    # Still in the journal below: a callback done is not a call forgotten.
    await expect(page.locator("#recent-calls")).to_contain_text("+7 912 345-67-01")

    phone = await desk.browser.new_context(
        viewport={"width": 390, "height": 844}, locale="ru-RU", is_mobile=True
    )
    try:
        small = await phone.new_page()
        await sign_in(small, hub, ADMIN)
        await small.goto(hub.url + "/calls")
        await no_overflow(small, 390)
        await sections_in_sight(small, 390)
        await small.screenshot(path=hub.artifacts / "calls-page-ru-390.png", full_page=True)
    finally:
        await phone.close()


async def test_the_owner_sees_the_card_on_any_page_and_it_goes_when_answered(
    hub: Workspace, browser: Any, line: str
) -> None:
    from playwright.async_api import expect

    # A client who called before, whose manager is Boris (English), as is the conversation.
    await posted(line, "newCall", "e2e-2", "+79123456702")
    await posted(line, "hangup", "e2e-2", "+79123456702", cause="cancel")
    boris = hub.sql("SELECT id FROM managers WHERE email = ?", MANAGER_EN[0])[0][0]
    hub.sql(
        "UPDATE contacts SET owner_id = ?, name = ?, company = ? WHERE id = "
        "(SELECT contact_id FROM identities WHERE value = ?)",
        boris, '<img src=x onerror="document.title=1">Ольга Петрова-Водкина',
        "ООО «Ромашка и партнёры»", "+79123456702",
    )  # fmt: skip
    hub.sql(
        "UPDATE conversations SET assignee_id = ? WHERE contact_id = "
        "(SELECT contact_id FROM identities WHERE value = ?)",
        boris, "+79123456702",
    )  # fmt: skip

    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, locale="en-US", is_mobile=True
    )
    context.set_default_timeout(15_000)
    try:
        page = await context.new_page()
        await sign_in(page, hub, MANAGER_EN)
        await page.goto(hub.url + "/calls")  # not the inbox: the card comes here too
        await page.wait_for_load_state("networkidle")
        await expect(page.locator("#callbacks .callback").first).to_contain_text(
            "Ольга Петрова-Водкина"
        )

        await posted(line, "newCall", "e2e-3", "+79123456702")
        card = page.locator(".ring-card")
        await expect(card).to_be_visible(timeout=2_000)
        await expect(card).to_contain_text("Incoming call")
        await expect(card).to_contain_text("ООО «Ромашка и партнёры»")
        await expect(card).to_contain_text('<img src=x onerror="document.title=1">')
        await expect(card).to_contain_text("Last in touch")
        # Its open conversation, one click away.
        await expect(card.get_by_role("link")).to_have_text("Conversation #2")
        assert await page.title() != "1"
        await no_overflow(page, 390)
        await page.screenshot(path=hub.artifacts / "calls-ringing-en-390.png")

        # The page's own lists follow without a reload.
        newest = page.locator("#recent-calls .call-row").first
        await expect(newest).to_contain_text("ringing", timeout=3_000)

        await posted(line, "answer", "e2e-3", "+79123456702")
        await expect(card).to_have_count(0, timeout=2_000)
        await expect(newest).to_contain_text("in progress", timeout=3_000)
        # The answered call closed the callback of that number.
        await expect(page.locator("#callbacks .callback")).to_have_count(0)
        await page.screenshot(path=hub.artifacts / "calls-page-en-390.png", full_page=True)
        await no_overflow(page, 390)
        await sections_in_sight(page, 390)

        await page.set_viewport_size({"width": 1280, "height": 800})
        await posted(line, "newCall", "e2e-4", "+79123456702")
        await expect(card).to_be_visible(timeout=2_000)
        await expect(newest).to_contain_text("ringing", timeout=3_000)
        await page.screenshot(path=hub.artifacts / "calls-page-en-1280.png")
        await card.get_by_role("button", name="Dismiss").click()
        await expect(card).to_have_count(0)
        await no_overflow(page, 1280)
    finally:
        await context.close()


async def test_a_callback_a_colleague_marks_done_leaves_every_open_calls_page(
    hub: Workspace, browser: Any, line: str
) -> None:
    from playwright.async_api import expect

    number, shown = "+79123456709", "+7 912 345-67-09"
    await posted(line, "newCall", "e2e-done", number)
    await posted(line, "hangup", "e2e-done", number, cause="cancel")
    seen = ((ADMIN, "ru-RU", 1280), (MANAGER_EN, "en-US", 390))
    contexts, pages = [], []
    try:
        for who, locale, width in seen:
            context = await browser.new_context(
                viewport={"width": width, "height": 844 if width == 390 else 800},
                locale=locale,
                is_mobile=width == 390,
            )
            context.set_default_timeout(15_000)
            contexts.append(context)
            page = await context.new_page()
            await sign_in(page, hub, who)
            await page.goto(hub.url + "/calls")
            await page.wait_for_function("() => document.documentElement.dataset.live === 'on'")
            await expect(page.locator("#callbacks .callback", has_text=shown)).to_have_count(1)
            pages.append(page)
        admin, colleague = pages
        row = colleague.locator("#callbacks .callback", has_text=shown)
        await colleague.screenshot(path=hub.artifacts / "calls-callback-en-390.png")
        await no_overflow(colleague, 390)

        done = admin.locator("#callbacks .callback", has_text=shown)
        await done.get_by_role("button", name="Отметить сделанным").click()
        marked = time.monotonic()
        await expect(row).to_have_count(0, timeout=5_000)  # no reload in the colleague's tab
        print(f"callback done to gone from a colleague's page: {time.monotonic() - marked:.1f} s")
        assert colleague.url.endswith("/calls")
        await expect(colleague.locator("#recent-calls")).to_contain_text(shown)
        await colleague.screenshot(path=hub.artifacts / "calls-callback-gone-en-390.png")
    finally:
        for context in contexts:
            await context.close()
