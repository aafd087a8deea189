"""The scripted claim dialogue: the updates a client sends and the answers expected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bots.texts import date_text, plural, t
from intake.claims.texts import DEFAULT_REASONS
from tests.channels.telegram.flow import BotHub, Chat

PNG = b"\x89PNG\r\n\x1a\n" + b"first-photo" * 50
JPEG = b"\xff\xd8\xff\xe0" + b"second-photo" * 50
PHONE = "+7 912 345-67-89"


def description(lang: str) -> str:
    return (
        "Коробка пришла смятой, внутри разбит экран."
        if lang == "ru"
        else "The box arrived crushed and the screen is broken."
    )


def steps(hub: BotHub, chat: Chat, lang: str) -> list[tuple[dict[str, Any], list[str]]]:
    """(update, the bot's answers to it) in order, from /start to the confirmation."""
    hub.api.add_file("photo-1", PNG)
    hub.api.add_file("photo-2", JPEG)
    name = chat.user["first_name"]
    review = t(
        lang,
        "claim_review",
        reason=DEFAULT_REASONS["quality"][lang],
        order="A-1542",
        description=description(lang),
        files="photo_{}.jpg, photo_{}.jpg",
        phone="+79123456789",
    )
    return [
        (chat.text("/start"), [t(lang, "welcome", name=name)]),
        (chat.press("menu:claim"), [t(lang, "claim_reason")]),
        (chat.press("claim:reason:quality"), [t(lang, "claim_order")]),
        (chat.text("A-1542"), [t(lang, "claim_description")]),
        (chat.text(description(lang)), [plural(lang, "claim_files", 10)]),
        (chat.photo("photo-1", len(PNG)), [t(lang, "claim_file_added", count=1, max=10)]),
        (chat.photo("photo-2", len(JPEG)), [t(lang, "claim_file_added", count=2, max=10)]),
        (chat.press("claim:done"), [t(lang, "claim_phone")]),
        (chat.contact(PHONE), [t(lang, "claim_phone_saved", phone="+79123456789"), review]),
        (chat.press("claim:confirm"), [t(lang, "claim_filed", number="{number}", due="{due}")]),
    ]


def fill(text: str, lang: str, number: str | None, photo_ids: list[int]) -> str:
    """The expected answer with what is known only as the dialogue runs filled in."""
    files = ", ".join(f"photo_{i}.jpg" for i in photo_ids)
    due = date_text(lang, datetime.now(UTC) + timedelta(days=10))
    return (
        text.replace("photo_{}.jpg, photo_{}.jpg", files)
        .replace("{number}", number or "?")
        .replace("{due}", due)
    )


async def run(hub: BotHub, chat: Chat, lang: str, upto: int | None = None, start: int = 0) -> None:
    """Send the script's updates [start, upto) and check each answer as it comes."""
    script = steps(hub, chat, lang)
    photo_ids = [update["message"]["message_id"] for update, _ in script[5:7]]
    for index, (update, answers) in enumerate(script[start:upto], start=start):
        before = len(hub.api.texts(chat.user_id))
        await hub.send(update)
        got = hub.api.texts(chat.user_id)[before:]
        claims = await hub.claims()
        number = claims[-1].number if claims else None
        want = [fill(answer, lang, number, photo_ids) for answer in answers]
        assert got == want, f"step {index}"


async def filed_and_resolved(hub: BotHub, chat: Chat, lang: str) -> int:
    """File the script's claim, have a manager resolve it (the client is asked for a
    rating), and return the claim's id."""
    await run(hub, chat, lang)
    claim = (await hub.claims())[-1]
    base = f"/api/v1/claims/{claim.id}/status"
    await hub.api_post(base, {"status": "in_review"})
    await hub.api_post(base, {"status": "resolved", "resolution": "Заменим товар"})
    await hub.drain()
    return claim.id
