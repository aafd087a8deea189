"""The client's rating of a resolved claim: 1-5 from the notice's buttons, then a comment."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bots import keyboards
from bots.filters import Data, HasText
from bots.menu import chat_of
from bots.texts import t
from bots.work import Turn
from channels.telegram.outbound import RATE_PREFIX
from intake.claims import rate_claim
from storage.errors import Conflict, InvalidInput, NotFound


class RatingForm(StatesGroup):
    comment = State()


def rating_router() -> Router:
    router = Router(name="rating")

    @router.callback_query(Data(prefix=f"{RATE_PREFIX}:"), ~Data(f"{RATE_PREFIX}:skip"))
    async def rate(query: CallbackQuery, state: FSMContext, turn: Turn) -> None:
        lang = await turn.lang()
        parts = (query.data or "").split(":")
        if len(parts) != 3 or not parts[1].isdigit() or parts[2] not in {"1", "2", "3", "4", "5"}:
            turn.say(query.answer(t(lang, "stale_button")))
            return
        claim_id, rating = int(parts[1]), int(parts[2])
        contact = await turn.contact()
        session = await turn.session()
        try:
            async with session.begin_nested():
                await rate_claim(session, claim_id, contact_id=contact.id, rating=rating)
        except (Conflict, NotFound, InvalidInput):
            turn.say(query.answer(t(lang, "rating_not_possible")))
            return
        turn.say(query.answer())
        current = await state.get_state()
        if current is not None and current != RatingForm.comment.state:
            # In the middle of another dialogue: keep it, take the rating without a comment.
            turn.send(chat_of(query), t(lang, "rating_saved"))
            return
        await state.set_state(RatingForm.comment)
        await state.set_data({"claim_id": claim_id})
        text = t(lang, "rating_thanks", rating=rating)
        turn.send(chat_of(query), text, keyboards.skip(lang, f"{RATE_PREFIX}:skip"))

    @router.callback_query(StateFilter(RatingForm.comment), Data(f"{RATE_PREFIX}:skip"))
    async def skip(query: CallbackQuery, state: FSMContext, turn: Turn) -> None:
        turn.say(query.answer())
        await state.clear()
        turn.send(chat_of(query), t(await turn.lang(), "rating_saved"))

    @router.message(StateFilter(RatingForm.comment), HasText())
    async def comment(message: Message, state: FSMContext, turn: Turn) -> None:
        lang = await turn.lang()
        data = await state.get_data()
        contact = await turn.contact()
        session = await turn.session()
        try:
            async with session.begin_nested():
                await rate_claim(
                    session,
                    int(data["claim_id"]),
                    contact_id=contact.id,
                    comment=message.text or "",
                )
        except (Conflict, NotFound, InvalidInput, KeyError, ValueError):
            pass
        await state.clear()
        turn.send(message.chat.id, t(lang, "rating_saved"))

    @router.message(StateFilter(RatingForm.comment))
    async def comment_other(message: Message, turn: Turn) -> None:
        lang = await turn.lang()
        text = t(lang, "rating_comment_invalid")
        turn.send(message.chat.id, text, keyboards.skip(lang, f"{RATE_PREFIX}:skip"))

    return router
