"""The built-in form `default` in a real browser: the consent box (152-FZ) in Russian and
English, refused without it, accepted with it; screenshots at 1280 and 390 px."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.workspace import Workspace, no_overflow

MIN_FILL_WAIT_MS = 2100  # the default form's minimum fill time is 2 s

WORDS = {
    "ru": {
        "email": "Электронная почта",
        "message": "Сообщение",
        "consent": "Я даю согласие на обработку моих персональных данных",
        "refused": "Подтвердите согласие на обработку персональных данных",
        "send": "Отправить",
        "thanks": "Заявка принята",
    },
    "en": {
        "email": "Email",
        "message": "Message",
        "consent": "I consent to the processing of my personal data",
        "refused": "Please confirm your consent to the processing of personal data",
        "send": "Send",
        "thanks": "Request received",
    },
}


def _consents(hub: Workspace, address: str) -> list[Any]:
    """The stored consent of each lead from this address."""
    rows = hub.sql("SELECT consent FROM leads WHERE form_fields LIKE ?", f"%{address}%")
    return [row[0] for row in rows]


@pytest.mark.parametrize("width", [1280, 390])
@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_the_default_form_asks_for_consent(
    hub: Workspace, browser: Any, lang: str, width: int
) -> None:
    from playwright.async_api import expect

    words = WORDS[lang]
    context = await browser.new_context(viewport={"width": width, "height": 900})
    context.set_default_timeout(15_000)
    try:
        page = await context.new_page()
        await page.goto(f"{hub.url}/forms/default?lang={lang}")
        box = page.get_by_label(words["consent"])
        await expect(box).not_to_be_checked()
        await page.screenshot(
            path=hub.artifacts / f"consent-form-{lang}-{width}.png", full_page=True
        )
        await no_overflow(page, width)

        address = f"consent-{lang}-{width}@example.ru"
        hostile = "<img src=x onerror=alert(1)> " + "очень-длинное-слово" * 12
        await page.get_by_label(words["email"]).fill(address)
        await page.get_by_label(words["message"]).fill(hostile)
        await page.wait_for_timeout(MIN_FILL_WAIT_MS)
        await page.get_by_role("button", name=words["send"]).click()

        await expect(page.locator("#error-summary")).to_contain_text(words["refused"])
        await expect(page.get_by_label(words["message"])).to_have_value(hostile)
        assert await page.locator("img").count() == 0  # the markup stayed text
        await page.screenshot(
            path=hub.artifacts / f"consent-refused-{lang}-{width}.png", full_page=True
        )
        await no_overflow(page, width)
        assert not _consents(hub, address)

        await page.get_by_label(words["consent"]).check()
        await page.wait_for_timeout(MIN_FILL_WAIT_MS)
        await page.get_by_role("button", name=words["send"]).click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(words["thanks"])
    finally:
        await context.close()
    [consent] = _consents(hub, address)
    assert consent is not None and json.loads(consent)["text"].startswith(words["consent"])
