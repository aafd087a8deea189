"""The managers' bot: bot channels with `audience: managers` (channels.telegram.webhook
sends their updates here, never to intake).

A manager links their private chat with a one-time code from the hub: `/start CODE`
(the deep link the hub gives) or `/link CODE`; routing's notifications then come to
that chat (channels.telegram.notifier). `/unlink` or `/stop` ends it. The bot answers
a linked manager in the manager's language, anyone else in their Telegram's.
Each update is one unit of work (bots.work): the link and the record of the update
commit together, the answer goes out after.
"""

from __future__ import annotations

from aiogram import Dispatcher, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.methods import SendMessage
from aiogram.types import Message

from bots.filters import Private
from bots.texts import t
from bots.work import DispatcherBot, UpdateWork, WorkMiddleware
from channels.base import HubContext
from channels.telegram.bots import BotChannel
from channels.telegram.links import LinkRefused, linked_manager, redeem_code, unlink_chat
from intake.i18n import lang_of
from storage.models import Manager
from storage.types import utcnow


def manager_lang(manager: Manager) -> str:
    """Russian or English, as the manager's notifications are written."""
    return lang_of(manager.language, "en")


def user_lang(message: Message, channel: BotChannel) -> str:
    user = message.from_user
    return lang_of(user.language_code if user else None, channel.config.language)


def answer(work: UpdateWork, message: Message, text: str) -> None:
    work.replies.append(SendMessage(chat_id=message.chat.id, text=text))


def manager_router() -> Router:
    router = Router(name="managers")
    router.message.filter(Private())

    @router.message(Command("start", "link"))
    async def link(
        message: Message, command: CommandObject, channel: BotChannel, work: UpdateWork
    ) -> None:
        session = await work.session()
        chat_id = str(message.chat.id)
        code = (command.args or "").strip()
        if not code:
            linked = await linked_manager(session, channel.id, chat_id)
            if linked is not None:
                text = t(manager_lang(linked), "manager_already_linked", name=linked.name)
            elif command.command == "link":
                text = t(user_lang(message, channel), "manager_code_missing")
            else:
                text = t(user_lang(message, channel), "manager_welcome")
            answer(work, message, text)
            return
        try:
            manager = await redeem_code(
                session, code, channel_id=channel.id, chat_id=chat_id, now=utcnow()
            )
        except LinkRefused as refused:
            wrong = "manager_code_expired" if refused.reason == "expired" else "manager_code_wrong"
            answer(work, message, t(user_lang(message, channel), wrong))
            return
        answer(work, message, t(manager_lang(manager), "manager_linked", name=manager.name))

    @router.message(Command("unlink", "stop"))
    async def unlink(message: Message, channel: BotChannel, work: UpdateWork) -> None:
        session = await work.session()
        manager = await unlink_chat(session, channel.id, str(message.chat.id))
        if manager is None:
            answer(work, message, t(user_lang(message, channel), "manager_not_linked"))
        else:
            answer(work, message, t(manager_lang(manager), "manager_unlinked"))

    @router.message()
    async def anything_else(message: Message, channel: BotChannel, work: UpdateWork) -> None:
        # The bot only notifies: say what it is for, or whose notifications come here.
        session = await work.session()
        linked = await linked_manager(session, channel.id, str(message.chat.id))
        if linked is not None:
            text = t(manager_lang(linked), "manager_already_linked", name=linked.name)
        else:
            text = t(user_lang(message, channel), "manager_welcome")
        answer(work, message, text)

    return router


class ManagerBot(DispatcherBot):
    """The UpdateProcessor of managers' bots (webhook and long polling alike)."""

    def __init__(self, context: HubContext) -> None:
        isolation = SimpleEventIsolation()
        super().__init__(context.db, Dispatcher(events_isolation=isolation), isolation)
        self.dispatcher.update.outer_middleware(WorkMiddleware(context.bots.limiter))
        self.dispatcher.include_router(manager_router())
