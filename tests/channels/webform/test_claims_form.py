"""The hosted claims form /forms/claims: pages in both languages, a post that files a
claim with its files, errors shown again on the page, double posts filed once."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from storage.models import Attachment, Claim, Lead
from tests.channels.webform.conftest import aged_token, field_value, hidden_inputs, parse_html
from tests.factories import create_token

SECRET = "test-secret-key-0123456789abcdef"


async def test_the_form_files_a_claim(app: Any, client: httpx.AsyncClient) -> None:
    ru = await client.get("/forms/claims?lang=ru")
    en = await client.get("/forms/claims", headers={"Accept-Language": "en-GB,en"})
    assert ru.status_code == en.status_code == 200
    assert "Претензия" in ru.text and "Доставка" in ru.text and 'lang="ru"' in ru.text
    assert "Send the claim" in en.text and "Delivery" in en.text
    assert [o.attrs.get("value") for o in parse_html(ru.text).find_all("option")] == [
        "",
        "quality",
        "delivery",
        "billing",
        "service",
        "other",
    ]
    fields = hidden_inputs(ru.text)
    token = aged_token(SECRET, "claims", 10, submission_id="sub-1")
    form = {
        **fields,
        "_token": token,
        "name": "Мария Смирнова",
        "phone": "8 912 345 67 89",
        "reason": "delivery",
        "order_ref": "A-2001",
        "description": "Курьер не приехал в назначенный день.",
    }
    files = {"attachments": ("check.pdf", b"%PDF-1.4 receipt", "application/pdf")}

    # An error first: the page comes back with it and with what was typed.
    short = await client.post("/forms/claims", data={**form, "description": "плохо"}, files=files)
    assert short.status_code == 422
    assert "не меньше 10 символов" in short.text
    assert field_value(short.text, "order_ref") == "A-2001"

    posted = await client.post("/forms/claims", data=form, files=files)
    again = await client.post("/forms/claims", data=form, files=files)  # a double click
    assert posted.status_code == again.status_code == 303
    assert posted.headers["location"] == again.headers["location"]
    thanks = await client.get(posted.headers["location"])
    db = app.state.context.db
    async with db.read() as session:
        [claim] = (await session.scalars(select(Claim))).all()
        [attachment] = (await session.scalars(select(Attachment))).all()
        lead = await session.get(Lead, claim.lead_id)
    assert claim.number in thanks.text and "Претензия зарегистрирована" in thanks.text
    assert (claim.reason, claim.order_ref, claim.phone) == ("delivery", "A-2001", "+79123456789")
    assert attachment.filename == "check.pdf" and attachment.message_id == claim.message_id
    assert lead is not None and lead.kind == "claim" and lead.source == "webform"

    token, _ = await create_token(db)
    detail = await client.get(
        f"/api/v1/claims/{claim.number}", headers={"Authorization": f"Bearer {token}"}
    )
    assert detail.status_code == 200 and detail.json()["attachments"][0]["filename"] == "check.pdf"


async def test_a_claim_needs_a_way_to_answer(client: httpx.AsyncClient) -> None:
    page = await client.get("/forms/claims?lang=en")
    form = {
        **hidden_inputs(page.text),
        "_token": aged_token(SECRET, "claims", 10),
        "reason": "quality",
        "description": "The kettle leaks after a week.",
        "email": "not-an-address",
    }
    response = await client.post("/forms/claims", data=form)
    assert response.status_code == 422
    assert "Enter an email address" in response.text
    response = await client.post("/forms/claims", data={**form, "email": ""})
    assert "Enter an email address or a phone number" in response.text
