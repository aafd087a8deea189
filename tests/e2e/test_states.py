"""Acceptance: conversation states in Chromium against a real `omnihub serve` (its worker
inside, its clock real): a snooze a few seconds long leaves the list and comes back live,
two conversations closed at once from the list, a transfer to another queue with its reason;
screenshots of the list with a selection and of the action bar, Russian and English, at
1280 and 390 px, under the artifacts' `inbox/` folder.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from tests.e2e.workspace import ADMIN, Workspace, no_overflow, post_form, sign_in


def _queue(hub: Workspace, key: str, name: str) -> int:
    token = hub.cli("tokens", "create", "--name", "states test").strip()
    response = httpx.post(
        f"{hub.url}/api/v1/queues",
        json={"key": key, "name": name},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    queue_id: int = response.json()["id"]
    return queue_id


async def _shots(page: Any, hub: Workspace, name: str, url: str) -> None:
    """The page at `url` in Russian and English, 1280 and 390 px, nothing wider than that."""
    for lang in ("ru", "en"):
        for width in (1280, 390):
            await page.set_viewport_size({"width": width, "height": 800})
            await page.goto(f"{url}{'&' if '?' in url else '?'}lang={lang}")
            await no_overflow(page, width)
            await page.screenshot(path=hub.artifacts / f"{name}-{lang}-{width}.png")
    await page.set_viewport_size({"width": 1280, "height": 800})


async def test_a_short_snooze_leaves_the_list_and_comes_back_live(
    hub: Workspace, desk: Any
) -> None:
    from playwright.async_api import expect

    page = await desk.new_page()
    await sign_in(page, hub, ADMIN)
    conversation_id = await asyncio.to_thread(
        post_form, hub, "Марина Белова", "marina@example.ru", "Перезвоните после обеда."
    )
    await page.goto(f"{hub.url}/inbox/v/unassigned/c/{conversation_id}")
    await page.get_by_role("button", name="Взять себе", exact=True).click()
    await expect(page.locator(".conv-meta")).to_contain_text(ADMIN[1])

    # The action bar with its snooze menu open, for the screenshots.
    await page.locator('[data-action="snooze"]').click()
    await expect(page.locator('[data-snooze="tomorrow"]')).to_be_visible()
    for width in (1280, 390):
        await page.set_viewport_size({"width": width, "height": 800})
        await no_overflow(page, width)
        await page.screenshot(path=hub.artifacts / f"states-snooze-menu-ru-{width}.png")
    await page.set_viewport_size({"width": 1280, "height": 800})

    [(zone,)] = hub.sql("SELECT timezone FROM managers WHERE email = ?", ADMIN[0])
    until = datetime.now(ZoneInfo(zone)) + timedelta(seconds=6)
    await page.locator("#snooze-until").fill(until.strftime("%Y-%m-%dT%H:%M:%S"))
    await page.locator('[data-snooze="at"]').click()
    await expect(page.locator(".conv-meta")).to_contain_text("Отложен до")
    assert hub.sql("SELECT status FROM conversations WHERE id = ?", conversation_id) == [
        ("snoozed",)
    ]

    # Mine, without it; then it comes back on its own, and the notice says so.
    await page.goto(f"{hub.url}/inbox/v/mine")
    await page.wait_for_function("() => document.documentElement.dataset.live === 'on'")
    row = page.locator(f'#list-rows [data-conversation="{conversation_id}"]')
    await expect(row).to_have_count(0)
    await expect(row).to_be_visible(timeout=20_000)
    assert page.url.endswith("/inbox/v/mine")  # no reload, no navigation
    await expect(page.locator("#states-notice")).to_contain_text("Марина Белова")
    await expect(page.locator("#list-rows .row").first).to_have_attribute(
        "data-conversation", str(conversation_id)
    )
    assert hub.sql("SELECT status FROM conversations WHERE id = ?", conversation_id) == [("open",)]


async def test_bulk_close_two_from_the_list(hub: Workspace, desk: Any) -> None:
    from playwright.async_api import expect

    page = await desk.new_page()
    await sign_in(page, hub, ADMIN)
    first = await asyncio.to_thread(
        post_form, hub, "Константин Длиннофамильный-Преображенский", "k@example.ru", "Счёт"
    )
    second = await asyncio.to_thread(
        post_form, hub, "<b>Ирина</b>", "irina.b@example.ru", "<script>alert(1)</script>"
    )
    await page.goto(f"{hub.url}/inbox/v/unassigned")
    for conversation_id in (first, second):
        box = page.locator(f'#list-rows [data-conversation="{conversation_id}"] input.pick')
        await box.focus()
        await page.keyboard.press("Space")  # keyboard accessible
        await expect(box).to_be_checked()
    await expect(page.locator("[data-bulk-count]")).to_have_text("Выбрано: 2")
    await expect(page.locator("#list-rows")).to_contain_text("<b>Ирина</b>")  # as text
    for lang, count in (("ru", "Выбрано: 2"), ("en", "Selected: 2")):
        for width in (1280, 390):
            await page.set_viewport_size({"width": width, "height": 800})
            await page.goto(f"{hub.url}/inbox/v/unassigned?lang={lang}")
            for conversation_id in (first, second):
                await page.locator(
                    f'#list-rows [data-conversation="{conversation_id}"] input.pick'
                ).check()
            await expect(page.locator("[data-bulk-count]")).to_have_text(count)
            await no_overflow(page, width)
            await page.screenshot(path=hub.artifacts / f"states-selection-{lang}-{width}.png")
    await page.set_viewport_size({"width": 1280, "height": 800})

    await page.get_by_label("What to do with the selected").select_option("close")
    await page.locator("[data-bulk-apply]").click()
    # The answer is in the manager's own language (Russian): `?lang=` was this page's only.
    await expect(page.locator(".bulk-summary")).to_contain_text("Закрыто: 2")
    await expect(page.locator(f'#list-rows [data-conversation="{first}"]')).to_have_count(0)
    await expect(page.locator(f'#list-rows [data-conversation="{second}"]')).to_have_count(0)
    assert page.url.endswith("/inbox/v/unassigned")
    statuses = hub.sql("SELECT status FROM conversations WHERE id IN (?, ?)", first, second)
    assert statuses == [("closed",), ("closed",)]
    await page.screenshot(path=hub.artifacts / "states-bulk-done-ru-1280.png")


async def test_transfer_to_another_queue_with_a_reason(hub: Workspace, desk: Any) -> None:
    from playwright.async_api import expect

    queue_id = _queue(hub, "lawyers", "Юристы и договорной отдел")
    page = await desk.new_page()
    await sign_in(page, hub, ADMIN)
    conversation_id = await asyncio.to_thread(
        post_form, hub, "Павел Рябов", "pavel.r@example.ru", "Нужен договор поставки."
    )
    await page.goto(f"{hub.url}/inbox/v/unassigned/c/{conversation_id}")
    await _shots(page, hub, "states-actions", f"{hub.url}/inbox/v/unassigned/c/{conversation_id}")
    await page.goto(f"{hub.url}/inbox/v/unassigned/c/{conversation_id}")
    await page.locator('[data-action="assign-menu"]').click()
    for width in (1280, 390):
        await page.set_viewport_size({"width": width, "height": 800})
        await no_overflow(page, width)
        await page.screenshot(path=hub.artifacts / f"states-assign-menu-ru-{width}.png")
    await page.set_viewport_size({"width": 1280, "height": 800})
    await page.get_by_label("В очередь").select_option(str(queue_id))
    await page.get_by_label("Причина").fill("нужен юрист")
    await page.locator('[data-action="transfer"]').click()
    await page.locator(".history summary").click()
    await expect(page.locator(".history li").last).to_contain_text(
        f"передача · «нужен юрист» · кем: {ADMIN[1]}"
    )
    assert hub.sql("SELECT queue_id FROM conversations WHERE id = ?", conversation_id) == [
        (queue_id,)
    ]
    await page.set_viewport_size({"width": 390, "height": 800})
    await no_overflow(page, 390)
    await page.screenshot(path=hub.artifacts / "states-transferred-ru-390.png")
