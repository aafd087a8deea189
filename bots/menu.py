"""/start, /help, /cancel and the menu: ask a question, file a claim, my claims, language.

/help answers in a dialogue too, without ending it."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, ReplyKeyboardRemove

from bots import keyboards
from bots.filters import Data, Private
from bots.texts import t
from bots.work import Turn
from intake.i18n import other_language


def chat_of(query: CallbackQuery) -> int:
    """The chat a button was pressed in (a private chat has the user's id)."""
    return query.message.chat.id if query.message is not None else query.from_user.id


async def show_menu(turn: Turn, chat_id: int) -> None:
    lang = await turn.lang()
    user = turn.user
    name = (user.first_name if user else "") or ""
    greeting = t(lang, "welcome", name=name) if name else t(lang, "welcome_anonymous")
    turn.send(chat_id, greeting, keyboards.menu(lang))


def menu_router() -> Router:
    router = Router(name="menu")
    router.message.filter(Private())

    @router.message(CommandStart())
    async def start(message: Message, state: FSMContext, turn: Turn) -> None:
        await state.clear()
        await show_menu(turn, message.chat.id)

    @router.message(Command("help"))
    async def help_(message: Message, state: FSMContext, turn: Turn) -> None:
        lang = await turn.lang()
        # In a dialogue the menu's buttons would lead out of it; /cancel is named instead.
        markup = keyboards.menu(lang) if await state.get_state() is None else None
        turn.send(message.chat.id, t(lang, "help"), markup)

    @router.message(Command("cancel"))
    async def cancel(message: Message, state: FSMContext, turn: Turn) -> None:
        lang = await turn.lang()
        had = await state.get_state() is not None
        await state.clear()
        text = t(lang, "cancelled" if had else "nothing_to_cancel")
        turn.send(message.chat.id, text, ReplyKeyboardRemove())
        await show_menu(turn, message.chat.id)

    @router.callback_query(Data("menu:start"))
    async def menu(query: CallbackQuery, turn: Turn) -> None:
        turn.say(query.answer())
        await show_menu(turn, chat_of(query))

    @router.callback_query(Data("menu:ask"))
    async def ask(query: CallbackQuery, state: FSMContext, turn: Turn) -> None:
        await state.clear()
        lang = await turn.lang()
        turn.say(query.answer())
        turn.send(chat_of(query), t(lang, "ask_prompt"), keyboards.to_menu(lang))

    @router.callback_query(Data("menu:lang"))
    async def language(query: CallbackQuery, turn: Turn) -> None:
        lang = other_language(await turn.lang())
        await turn.set_lang(lang)
        turn.say(query.answer(t(lang, "language_set")))
        await show_menu(turn, chat_of(query))

    return router
