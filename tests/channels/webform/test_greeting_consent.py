"""The form's answer in and out of working hours, and the consent to process personal data
(152-FZ): a required checkbox with the policy link, refused without it, stored with the lead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from channels.base import HubContext
from routing.calendar import WEEKDAYS
from tests.channels.webform.conftest import (
    NOTHING,
    OWN_ORIGIN,
    add_form,
    assert_json_error,
    counts,
    only_lead,
    parse_html,
)
from tests.factories import create_token

POLICY = "https://shop.example.ru/privacy"
CONSENT = {"required": True, "policy_url": POLICY, "version": "2026-12"}
VALUES = {"name": "Анна", "email": "anna@example.ru", "message": "Нужна консультация"}


@pytest.fixture
def context(app: Any) -> HubContext:
    hub: HubContext = app.state.context
    return hub


def _closed_until_tomorrow() -> dict[str, Any]:
    tomorrow = WEEKDAYS[(datetime.now(UTC) + timedelta(days=1)).weekday()]
    return {"timezone": "UTC", "week": {tomorrow: [["09:00", "18:00"]]}}


async def _hidden(client: httpx.AsyncClient, url: str) -> dict[str, str]:
    response = await client.get(url)
    assert response.status_code == 200, response.text
    page = parse_html(response.text)
    return {
        node.attrs["name"]: node.attrs.get("value", "")
        for node in page.find_all("input", type="hidden")
    }


class TestThanksPage:
    async def test_out_of_hours_it_says_when_a_manager_answers(
        self, client: httpx.AsyncClient, context: HubContext
    ) -> None:
        greeting = {"enabled": True, "working_hours": _closed_until_tomorrow()}
        await add_form(context.db, "night", min_fill_seconds=0, greeting=greeting)
        hidden = await _hidden(client, "/forms/night")
        posted = await client.post(
            "/forms/night", data={**hidden, **VALUES}, headers={"Origin": OWN_ORIGIN}
        )
        assert posted.status_code == 303, posted.text
        thanks = await client.get(posted.headers["location"])
        text = parse_html(thanks.text).find("main").text()
        assert "Сейчас нерабочее время: менеджер свяжется с вами завтра с 09:00." in text
        english = await client.get("/forms/night/thanks?lang=en")
        assert "We are closed now: a manager will get in touch with you tomorrow from 09:00." in (
            parse_html(english.text).find("main").text()
        )

    async def test_in_hours_it_promises_an_answer_shortly(
        self, client: httpx.AsyncClient, context: HubContext
    ) -> None:
        await add_form(context.db, "day", greeting={"enabled": True})
        page = parse_html((await client.get("/forms/day/thanks?lang=ru&n=5")).text)
        assert "Менеджер свяжется с вами в ближайшее время." in page.find("main").text()


class TestConsentJson:
    async def test_without_consent_it_is_a_422_and_nothing_is_stored(
        self, client: httpx.AsyncClient, context: HubContext
    ) -> None:
        await add_form(context.db, "pd", consent=CONSENT)
        for body in (VALUES, {**VALUES, "consent": False}):
            response = await client.post("/forms/pd", json=body)
            problem = assert_json_error(response, 422, "invalid_input")
            assert problem["detail"]["consent"]["code"] == "consent_required"
        assert await counts(context.db) == NOTHING

    async def test_consent_is_stored_with_the_lead_and_shown_in_the_leads_api(
        self, client: httpx.AsyncClient, context: HubContext
    ) -> None:
        await add_form(context.db, "pd", consent=CONSENT)
        before = datetime.now(UTC)
        response = await client.post("/forms/pd", json={**VALUES, "consent": True})
        assert response.status_code == 201, response.text
        lead = await only_lead(context.db)
        assert lead.consent is not None
        assert lead.consent["version"] == "2026-12"
        assert lead.consent["policy_url"] == POLICY
        assert lead.consent["ip"] == "127.0.0.1"
        given = datetime.fromisoformat(lead.consent["given_at"])
        assert before - timedelta(seconds=1) <= given <= datetime.now(UTC)
        token, _ = await create_token(context.db, name="admin")
        listed = await client.get("/api/v1/leads", headers={"Authorization": f"Bearer {token}"})
        assert listed.status_code == 200, listed.text
        [item] = listed.json()["items"]
        assert item["consent"]["version"] == "2026-12"
        assert item["consent"]["ip"] == "127.0.0.1"

    async def test_a_form_without_the_requirement_stores_no_consent(
        self, client: httpx.AsyncClient, context: HubContext
    ) -> None:
        await add_form(context.db, "plain", min_fill_seconds=0)
        response = await client.post("/forms/plain", json=VALUES)
        assert response.status_code == 201, response.text
        assert (await only_lead(context.db)).consent is None


class TestConsentBrowser:
    async def test_the_page_has_a_required_checkbox_with_the_policy_link(
        self, client: httpx.AsyncClient, context: HubContext
    ) -> None:
        await add_form(context.db, "pd", consent=CONSENT)
        page = parse_html((await client.get("/forms/pd")).text)
        box = page.find("input", name="consent")
        assert box.attrs["type"] == "checkbox"
        assert "required" in box.attrs
        label = page.find("label", for_=box.attrs["id"])
        assert "согласие на обработку моих персональных данных" in label.text()
        assert label.find("a").attrs["href"] == POLICY

    async def test_an_unticked_box_re_shows_the_form_and_a_ticked_one_is_stored(
        self, client: httpx.AsyncClient, context: HubContext
    ) -> None:
        await add_form(context.db, "pd", consent=CONSENT, min_fill_seconds=0)
        hidden = await _hidden(client, "/forms/pd")
        refused = await client.post(
            "/forms/pd", data={**hidden, **VALUES}, headers={"Origin": OWN_ORIGIN}
        )
        assert refused.status_code == 422
        page = parse_html(refused.text)
        assert "Подтвердите согласие" in page.find("p", id="f-consent-error").text()
        assert page.find("input", name="email").attrs["value"] == VALUES["email"]
        assert await counts(context.db) == NOTHING

        again = {
            node.attrs["name"]: node.attrs.get("value", "")
            for node in page.find_all("input", type="hidden")
        }
        stored = await client.post(
            "/forms/pd",
            data={**again, **VALUES, "consent": "1"},
            headers={"Origin": OWN_ORIGIN},
        )
        assert stored.status_code == 303, stored.text
        lead = await only_lead(context.db)
        assert lead.consent is not None and lead.consent["version"] == "2026-12"
        assert "персональных данных" in lead.consent["text"]
