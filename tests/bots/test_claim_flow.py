"""Filing a claim in the bot, end to end: raw updates through the webhook, the bot's
answers as the Bot API stand-in recorded them, the claim and the contact in storage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import select

from bots.texts import t
from storage.models import Attachment, ClaimStatus, Lead, TelegramFsmRecord
from tests.bots.script import JPEG, PNG, run, steps
from tests.channels.telegram.flow import BotHub, Chat
from tests.conftest import REDIS_URL, missing_part
from tests.telegram_api import BotApiStandIn


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_a_client_files_a_claim_in_their_language(hub: BotHub, lang: str) -> None:
    chat = Chat(language=lang, first_name="Иван" if lang == "ru" else "John")
    await run(hub, chat, lang)

    [claim] = await hub.claims()
    year = datetime.now(UTC).year
    assert claim.number == f"CLM-{year}-000001"
    assert claim.status == ClaimStatus.REGISTERED
    assert (claim.reason, claim.order_ref, claim.phone) == ("quality", "A-1542", "+79123456789")
    assert claim.language == lang
    assert claim.due_at is not None
    # The claim's message carries both photos, downloaded through getFile.
    async with hub.context.db.read() as session:
        files = (
            await session.scalars(
                select(Attachment).where(Attachment.message_id == claim.message_id)
            )
        ).all()
        lead = await session.get(Lead, claim.lead_id)
    assert sorted([await hub.context.blobs.get(f.sha256) for f in files]) == sorted([PNG, JPEG])
    assert lead is not None and lead.kind == "claim" and lead.source == "telegram"
    assert await hub.identities(claim.contact_id) == {
        ("telegram", str(chat.user_id)),
        ("phone", "+79123456789"),
    }
    # The last answer came with the menu again; the phone keyboard was removed before.
    last = hub.api.sent("sendMessage", chat.user_id)
    assert last[-1].buttons() == ["menu:ask", "menu:claim", "menu:claims", "menu:lang"]
    assert last[-3].markup == {"remove_keyboard": True}
    assert claim.number in last[-1].text


async def test_invalid_input_gets_a_friendly_prompt_again(hub: BotHub) -> None:
    chat = Chat(language="ru")

    async def answer(update: dict[str, Any]) -> str:
        await hub.send(update)
        return hub.api.texts(chat.user_id)[-1]

    await answer(chat.text("/start"))
    await answer(chat.press("menu:claim"))
    assert await answer(chat.text("качество")) == t("ru", "claim_reason_invalid")
    assert await answer(chat.press("claim:reason:delivery")) == t("ru", "claim_order")
    assert await answer(chat.text("№" * 150)) == t("ru", "claim_order_invalid")
    assert await answer(chat.press("claim:skip")) == t("ru", "claim_description")
    assert await answer(chat.text("плохо")) == t("ru", "claim_description_invalid")
    await answer(chat.text("Курьер опоздал на три дня"))
    assert await answer(chat.text("вот")) == t("ru", "claim_files_invalid")
    assert await answer(chat.press("claim:done")) == t("ru", "claim_phone")
    assert await answer(chat.text("позвоните мне")) == t("ru", "claim_phone_invalid")
    assert await answer(chat.contact("+7 912 000-00-01", own=False)) == t(
        "ru", "claim_phone_not_own"
    )
    assert (await answer(chat.text("8 (912) 345-67-89"))).startswith("Проверьте претензию")
    # Edit the description from the review; the review comes back; then confirm.
    assert await answer(chat.press("claim:edit")) == t("ru", "claim_edit_which")
    assert await answer(chat.press("claim:edit:description")) == t("ru", "claim_description")
    assert "четыре дня" in await answer(chat.text("Курьер опоздал на четыре дня"))
    assert await answer(chat.text("отправляйте")) == t("ru", "claim_review_buttons")
    await answer(chat.press("claim:confirm"))
    [claim] = await hub.claims()
    assert claim.description == "Курьер опоздал на четыре дня"
    assert (claim.reason, claim.order_ref, claim.phone) == ("delivery", None, "+79123456789")
    # A button of the finished dialogue is answered as stale, nothing else happens.
    await hub.send(chat.press("claim:confirm"))
    assert hub.api.sent("answerCallbackQuery")[-1].params["text"] == t("ru", "stale_button")
    assert len(await hub.claims()) == 1


async def test_cancel_at_any_step_drops_the_draft(hub: BotHub) -> None:
    chat = Chat(language="en")
    for update, _ in steps(hub, chat, "en")[:4]:
        await hub.send(update)
    await hub.send(chat.text("/cancel"))
    assert hub.api.texts(chat.user_id)[-2:] == [
        t("en", "cancelled"),
        t("en", "welcome", name="Иван"),
    ]
    # Outside the dialogue, text goes to the conversation as a normal message.
    await hub.send(chat.text("Just a question about delivery times"))
    assert [m.text for m in await hub.messages()] == ["Just a question about delivery times"]
    assert await hub.claims() == []


# Restarts: the dialogue resumes at the same step, with either FSM storage.


@asynccontextmanager
async def running_hub(api: BotApiStandIn, made: BotHub | None = None) -> AsyncIterator[BotHub]:
    from hub.app import create_app
    from hub.settings import Settings

    application = create_app(Settings())
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:
            bot_hub = BotHub(application, http, api)
            if made is None:
                await bot_hub.setup()
            else:
                await bot_hub.attach(made)
            yield bot_hub


@pytest.mark.parametrize("fsm", ["embedded", "redis"])
async def test_the_dialogue_survives_a_restart(
    hub_env: dict[str, str], api: BotApiStandIn, monkeypatch: pytest.MonkeyPatch, fsm: str
) -> None:
    if fsm == "redis":
        try:
            connection = aioredis.from_url(REDIS_URL)
            await connection.ping()
            await connection.aclose()
        except Exception as exc:
            missing_part(f"Redis unreachable at {REDIS_URL}: {exc}")
        monkeypatch.setenv("OMNIHUB_REDIS_URL", REDIS_URL)
    chat = Chat(language="ru")
    async with running_hub(api) as first:
        await run(first, chat, "ru", upto=5)  # up to the files step
        made = first
    async with running_hub(api, made) as second:
        if fsm == "embedded":
            assert await second.count(TelegramFsmRecord) == 1  # the step, kept in the table
        await run(second, chat, "ru", start=5)
        [claim] = await second.claims()
        assert claim.description.startswith("Коробка пришла смятой")


async def test_a_photo_with_a_caption_describes_the_claim_and_is_attached(hub: BotHub) -> None:
    chat = Chat(language="ru")
    for update, _ in steps(hub, chat, "ru")[:4]:  # up to the description step
        await hub.send(update)
    caption = "Коробка пришла смятой, внутри разбит экран."
    await hub.send(chat.photo("photo-1", len(PNG), caption=caption))
    assert hub.api.texts(chat.user_id)[-1] == t("ru", "claim_file_added", count=1, max=10)
    await hub.send(chat.press("claim:done"))
    await hub.send(chat.contact("+7 912 345-67-89"))
    await hub.send(chat.press("claim:confirm"))

    [claim] = await hub.claims()
    assert claim.description == caption
    async with hub.context.db.read() as session:
        files = (
            await session.scalars(
                select(Attachment).where(Attachment.message_id == claim.message_id)
            )
        ).all()
    assert [await hub.context.blobs.get(f.sha256) for f in files] == [PNG]


async def test_every_step_offers_a_way_out(hub: BotHub) -> None:
    chat = Chat(language="en")

    async def buttons(update: dict[str, Any]) -> list[str]:
        await hub.send(update)
        return hub.api.sent("sendMessage", chat.user_id)[-1].buttons()

    assert "menu:start" in await buttons(chat.press("menu:ask"))
    assert "claim:cancel" in await buttons(chat.press("menu:claim"))
    assert "claim:cancel" in await buttons(chat.press("claim:reason:quality"))  # order
    assert "claim:cancel" in await buttons(chat.press("claim:skip"))  # description
    assert "claim:cancel" in await buttons(chat.text("short"))  # description again
    assert "claim:cancel" in await buttons(chat.text("The parcel never arrived."))  # files
    await hub.send(chat.press("claim:cancel"))
    assert hub.api.texts(chat.user_id)[-1] == t("en", "welcome", name="Иван")
    assert await hub.claims() == []
