"""The built-in form `default` collects names, addresses and phones, so it asks for the
consent to process personal data (152-FZ): refused without it, stored with it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from channels.base import HubContext
from tests.channels.webform.conftest import (
    NOTHING,
    OWN_ORIGIN,
    aged_token,
    assert_json_error,
    counts,
    hidden_inputs,
    only_lead,
    parse_html,
)

VALUES = {"name": "Анна", "email": "anna@example.ru", "message": "Нужна консультация"}


@pytest.fixture
def context(app: Any) -> HubContext:
    hub: HubContext = app.state.context
    return hub


async def test_a_json_post_without_consent_is_refused_and_with_it_accepted(
    client: httpx.AsyncClient, context: HubContext
) -> None:
    for body in (VALUES, {**VALUES, "consent": False}):
        refused = await client.post("/forms/default", json=body)
        problem = assert_json_error(refused, 422, "invalid_input")
        assert problem["detail"]["consent"]["code"] == "consent_required"
    assert await counts(context.db) == NOTHING

    accepted = await client.post("/forms/default", json={**VALUES, "consent": True})

    assert accepted.status_code == 201, accepted.text
    consent = (await only_lead(context.db)).consent
    assert consent is not None
    assert consent["text"].startswith("Я даю согласие на обработку моих персональных данных")
    assert consent["policy_url"] is None  # the owner adds their policy's link


@pytest.mark.parametrize(
    ("lang", "label", "error"),
    [
        (
            "ru",
            "Я даю согласие на обработку моих персональных данных",
            "Подтвердите согласие на обработку персональных данных",
        ),
        (
            "en",
            "I consent to the processing of my personal data",
            "Please confirm your consent to the processing of personal data",
        ),
    ],
)
async def test_the_page_asks_for_consent_and_says_so_when_it_is_missing(
    client: httpx.AsyncClient, context: HubContext, lang: str, label: str, error: str
) -> None:
    page = await client.get(f"/forms/default?lang={lang}")
    box = parse_html(page.text).find("input", name="consent")
    assert box.attrs["type"] == "checkbox" and "required" in box.attrs
    assert label in parse_html(page.text).find("label", **{"for": "f-consent"}).text()

    hidden = {**hidden_inputs(page.text), "_token": aged_token(context.secret, "default", 3)}
    refused = await client.post(
        f"/forms/default?lang={lang}", data={**hidden, **VALUES}, headers={"Origin": OWN_ORIGIN}
    )
    assert refused.status_code == 422
    assert error in refused.text
    assert await counts(context.db) == NOTHING

    again = {**hidden_inputs(refused.text), "_token": aged_token(context.secret, "default", 3)}
    accepted = await client.post(
        f"/forms/default?lang={lang}",
        data={**again, **VALUES, "consent": "1"},
        headers={"Origin": OWN_ORIGIN},
    )
    assert accepted.status_code == 303, accepted.text
    assert (await only_lead(context.db)).consent is not None
