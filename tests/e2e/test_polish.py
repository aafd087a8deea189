"""Acceptance: the workspace's finishing touches in Chromium against a real `omnihub serve`
(the shared workspace hub of tests/e2e/workspace.py).

A client files a claim through the hosted claims form; its conversation's header links to
the claim and the claim page back; the top bar's "?" button opens the shortcuts; a note's
@mention stands out in the timeline; the contact panel follows an edit made through the
REST API, without a reload. Screenshots at 1280 and 390 px, Russian and English.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx

from tests.e2e.workspace import ADMIN, MANAGER_EN, Workspace, no_overflow, sign_in, wait_for

HOSTILE = "<img src=x onerror=alert(1)>"


async def _file_claim(page: Any, hub: Workspace) -> str:
    await page.goto(f"{hub.url}/forms/claims?lang=ru")
    await page.locator("[name=name]").fill(f"Мария {HOSTILE}")
    await page.locator("[name=email]").fill("maria@client.example.ru")
    await page.locator("[name=reason]").select_option("quality")
    await page.locator("[name=description]").fill("Чайник протекает с первого дня, прошу замену.")
    await asyncio.sleep(2.2)  # the form refuses what is sent faster than a person types
    await page.locator("form button[type=submit]").click()
    await page.wait_for_url("**/forms/claims/thanks**")
    found = re.search(r"CLM-\d{4}-\d{6}", await page.content())
    assert found is not None
    return found.group(0)


async def test_claim_link_shortcuts_button_mentions_and_a_live_contact_panel(
    hub: Workspace, desk: Any, browser: Any
) -> None:
    from playwright.async_api import expect

    page = await desk.new_page()
    number = await _file_claim(page, hub)
    [(conversation_id, contact_id)] = await wait_for(
        lambda: hub.sql(
            "SELECT c.conversation_id, c.contact_id FROM claims c WHERE c.number = ?", number
        )
    )
    await sign_in(page, hub, ADMIN)
    await page.goto(f"{hub.url}/inbox/v/open/c/{conversation_id}")

    # 1. The header links to the claim, the claim page back.
    link = page.locator(f'#conversation .conv-head [data-claim-link="{number}"]')
    await expect(link).to_have_text(f"Претензия {number}")
    await link.click()
    await page.wait_for_url(f"**/claims/{number}")
    await page.locator("#claim-conversation").click()
    await page.wait_for_url(f"**/c/{conversation_id}")

    # 3. A note mentioning a colleague: the name stands out, the markup stays text.
    composer = page.locator("#composer")
    await composer.locator("input[name=kind][value=note]").check()
    await composer.locator("textarea[name=text]").fill(
        f"@Boris Kent, посмотри претензию {number} {HOSTILE}"
    )
    await composer.locator("textarea[name=text]").press("Control+Enter")
    mention = page.locator("#timeline .msg-note mark.mention")
    await expect(mention).to_have_text("@Boris Kent")
    await expect(page.locator("#timeline .msg-note .text").last).to_contain_text(HOSTILE)
    assert await page.locator("#timeline img").count() == 0

    # 2. The "?" button opens the shortcuts' dialog; Esc closes it, focus comes back.
    button = page.get_by_role("button", name="Горячие клавиши")
    await button.click()
    await expect(page.locator("#keys-help")).to_be_visible()
    await page.screenshot(path=hub.artifacts / "polish-keys-button-ru-1280.png")
    await page.keyboard.press("Escape")
    await expect(page.locator("#keys-help")).to_be_hidden()
    await expect(button).to_be_focused()

    # 5. An edit made elsewhere (the REST API) reaches the open panel without a reload.
    await expect(page.locator("#contact-panel.contact-panel")).to_be_visible()
    token = hub.cli("tokens", "create", "--name", "polish test").strip()
    async with httpx.AsyncClient(timeout=30) as api:
        changed = await api.patch(
            f"{hub.url}/api/v1/contacts/{contact_id}",
            json={"name": "Мария Соколова", "company": "ООО «Чайники»"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert changed.status_code == 200, changed.text
    await expect(page.locator("#contact-title")).to_have_text("Мария Соколова", timeout=5000)
    await expect(page.locator("#contact-panel")).to_contain_text("ООО «Чайники»")

    url = f"{hub.url}/inbox/v/open/c/{conversation_id}"
    for width in (1280, 390):
        await page.set_viewport_size({"width": width, "height": 844 if width == 390 else 800})
        await page.goto(f"{url}?lang=ru")
        await expect(link).to_be_visible()
        await no_overflow(page, width)
        await page.screenshot(path=hub.artifacts / f"polish-conversation-ru-{width}.png")

    # The English-speaking manager, at both widths.
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    context.set_default_timeout(15_000)
    try:
        other = await context.new_page()
        await sign_in(other, hub, MANAGER_EN)
        await other.goto(url)
        for width in (1280, 390):
            await other.set_viewport_size({"width": width, "height": 844 if width == 390 else 800})
            await other.goto(url)
            await expect(other.locator(f'[data-claim-link="{number}"]')).to_have_text(
                f"Claim {number}"
            )
            await expect(other.locator("#timeline mark.mention")).to_have_text("@Boris Kent")
            await no_overflow(other, width)
            await other.screenshot(path=hub.artifacts / f"polish-conversation-en-{width}.png")
            keys = other.get_by_role("button", name="Keyboard shortcuts")
            await keys.click()
            await expect(other.locator("#keys-help")).to_be_visible()
            await other.screenshot(path=hub.artifacts / f"polish-keys-button-en-{width}.png")
            await other.keyboard.press("Escape")
    finally:
        await context.close()
