"""My claims: the client's claims with their status, and one claim's history."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from bots import keyboards
from bots.filters import Data, Private
from bots.menu import chat_of
from bots.texts import date_text, t
from bots.work import Turn
from intake.claims.service import contact_claims, get_claim
from intake.claims.texts import status_label
from storage.errors import NotFound


async def show_claims(turn: Turn, chat_id: int) -> None:
    lang = await turn.lang()
    contact = await turn.contact()
    claims = await contact_claims(await turn.session(), contact.id)
    if not claims:
        turn.send(chat_id, t(lang, "my_claims_empty"), keyboards.menu(lang))
        return
    lines = [
        (
            c.id,
            t(
                lang,
                "my_claims_line",
                number=c.number,
                status=status_label(lang, c.status),
                date=date_text(lang, c.created_at),
            ),
        )
        for c in claims
    ]
    text = "\n".join([t(lang, "my_claims_title"), "", *(line for _, line in lines)])
    turn.send(chat_id, text, keyboards.claim_list(lang, lines))


def my_claims_router() -> Router:
    router = Router(name="my-claims")

    @router.callback_query(Data("menu:claims"))
    async def from_menu(query: CallbackQuery, turn: Turn) -> None:
        turn.say(query.answer())
        await show_claims(turn, chat_of(query))

    @router.message(Command("claims"), Private())
    async def from_command(message: Message, turn: Turn) -> None:
        await show_claims(turn, message.chat.id)

    @router.callback_query(Data(prefix="claims:show:"))
    async def history(query: CallbackQuery, turn: Turn) -> None:
        lang = await turn.lang()
        contact = await turn.contact()
        raw = (query.data or "").removeprefix("claims:show:")
        try:
            if not raw.isdigit():
                raise NotFound(raw)
            detail = await get_claim(await turn.session(), int(raw))
            if detail.claim.contact_id != contact.id:
                raise NotFound(raw)
        except NotFound:
            turn.say(query.answer(t(lang, "stale_button")))
            return
        turn.say(query.answer())
        claim = detail.claim
        labels = {r.code: r.label(lang) for r in turn.channel.config.reasons()}
        lines = [
            t(
                lang,
                "claim_history",
                number=claim.number,
                reason=labels.get(claim.reason, claim.reason),
                status=status_label(lang, claim.status),
            )
        ]
        for step in detail.steps:
            if step.kind == "status" and step.to_status:
                lines.append(
                    f"{date_text(lang, step.created_at)} — {status_label(lang, step.to_status)}"
                )
        if claim.resolution and claim.status in ("resolved", "closed", "rejected"):
            lines += ["", t(lang, "claim_history_resolution", resolution=claim.resolution)]
        if claim.rating:
            lines.append(t(lang, "claim_history_rating", rating=claim.rating))
        turn.send(chat_of(query), "\n".join(lines), keyboards.claim_history(lang))

    return router
