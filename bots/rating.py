"""The client's rating of a resolved claim: 1-5 from the notice's buttons, then a comment.

A claim is rated once; the notice's buttons are taken away when it is, and a later
press of them (another device, an older copy) only says what the rating is. The comment
is the client's next message, if it is text and comes within the channel's
`rating_comment_seconds`; anything else is a message to the managers like any other.
"""

from __future__ import annotations

import time

from aiogram import Bot, Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.methods import EditMessageReplyMarkup
from aiogram.types import CallbackQuery, Message

from bots import keyboards
from bots.filters import Data
from bots.menu import chat_of
from bots.texts import t
from bots.work import Turn
from channels.telegram.bots import BotChannel
from channels.telegram.inbound import TelegramIntake
from channels.telegram.outbound import RATE_PREFIX
from intake.claims.service import get_claim, rate_claim
from intake.ingest import ingest
from storage.errors import Conflict, InvalidInput, NotFound

SKIP = f"{RATE_PREFIX}:skip"


class RatingForm(StatesGroup):
    comment = State()


def _take_buttons_away(query: CallbackQuery, turn: Turn) -> None:
    if query.message is not None:
        turn.say(
            EditMessageReplyMarkup(chat_id=chat_of(query), message_id=query.message.message_id)
        )


def rating_router() -> Router:
    router = Router(name="rating")

    @router.callback_query(Data(prefix=f"{RATE_PREFIX}:"), ~Data(SKIP))
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
        except Conflict as exc:
            if exc.code != "already_rated":
                turn.say(query.answer(t(lang, "rating_not_possible")))
                return
            rated = (await get_claim(session, claim_id)).claim.rating
            turn.say(query.answer(t(lang, "rating_already", rating=rated), show_alert=True))
            _take_buttons_away(query, turn)
            return
        except (NotFound, InvalidInput):
            turn.say(query.answer(t(lang, "rating_not_possible")))
            return
        turn.say(query.answer())
        _take_buttons_away(query, turn)
        current = await state.get_state()
        if current is not None and current != RatingForm.comment.state:
            # In the middle of another dialogue: keep it, take the rating without a comment.
            turn.send(chat_of(query), t(lang, "rating_saved"))
            return
        await state.set_state(RatingForm.comment)
        until = time.time() + turn.channel.config.rating_comment_seconds
        await state.set_data({"claim_id": claim_id, "until": until})
        text = t(lang, "rating_thanks", rating=rating)
        turn.send(chat_of(query), text, keyboards.skip(lang, SKIP))

    @router.callback_query(StateFilter(RatingForm.comment), Data(SKIP))
    async def skip(query: CallbackQuery, state: FSMContext, turn: Turn) -> None:
        turn.say(query.answer())
        await state.clear()
        lang = await turn.lang()
        turn.send(chat_of(query), t(lang, "rating_saved"), keyboards.to_menu(lang))

    @router.message(StateFilter(RatingForm.comment))
    async def next_message(
        message: Message,
        state: FSMContext,
        turn: Turn,
        bot: Bot,
        channel: BotChannel,
        intake: TelegramIntake,
    ) -> None:
        data = await state.get_data()
        text = message.text or ""
        if text and not text.startswith("/") and time.time() <= float(data.get("until", 0)):
            await _comment(message, state, turn, int(data["claim_id"]), text)
            return
        # Not a comment: the client writes to the managers. Files are fetched before the
        # update's transaction opens; the message is stored in it, with the step's end.
        inbound = await intake.inbound(channel, bot, message, turn.work.update_id)
        session = await turn.session()
        await state.clear()
        if inbound is not None:
            await ingest(session, inbound, turn.context.intake)

    return router


async def _comment(
    message: Message, state: FSMContext, turn: Turn, claim_id: int, text: str
) -> None:
    lang = await turn.lang()
    contact = await turn.contact()
    session = await turn.session()
    try:
        async with session.begin_nested():
            await rate_claim(session, claim_id, contact_id=contact.id, comment=text)
    except (Conflict, NotFound, InvalidInput):
        pass  # the claim moved on (reopened, say): the comment has nowhere to go
    await state.clear()
    turn.send(message.chat.id, t(lang, "rating_saved"), keyboards.to_menu(lang))
