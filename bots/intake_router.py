"""What is not part of a dialogue goes to intake: the client's messages become the chat's
conversation, edits update what was stored.

`intake_router` comes first, so that the common case (a client writing outside any
dialogue) is not tried against every dialogue's handlers; commands go on to the menu.
The handlers take the hub's `TelegramIntake` as `intake` from the dispatcher's workflow
data (bots.client puts it there).
`leftovers_router` comes last: unknown commands outside a dialogue are taken in too,
and buttons of dialogues that have moved on are answered as stale.
"""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Filter, StateFilter
from aiogram.types import CallbackQuery, Message

from bots.filters import Data
from bots.texts import t
from bots.work import Turn, UpdateWork
from channels.telegram.bots import BotChannel
from channels.telegram.inbound import TelegramIntake


class OutsideDialogue(Filter):
    """A message from a client in no dialogue that is not a command."""

    async def __call__(self, message: Message, raw_state: str | None = None) -> bool:
        return raw_state is None and not (message.text or "").startswith("/")


async def _take(
    message: Message, bot: Bot, channel: BotChannel, work: UpdateWork, intake: TelegramIntake
) -> None:
    work.ingested = True  # idempotent by the message's own key, no update record needed
    # A delivery of an update a dialogue consumed (a rating's comment, say) is dropped,
    # checked in the transaction that would store it.
    await intake.take(channel, bot, message, work.update_id, unless_handled=True)


def intake_router() -> Router:
    router = Router(name="intake")
    router.message.register(_take, OutsideDialogue())

    @router.edited_message()
    async def edited(
        message: Message, bot: Bot, channel: BotChannel, work: UpdateWork, intake: TelegramIntake
    ) -> None:
        work.ingested = True
        await intake.take_edit(channel, bot, message, work.update_id)

    return router


def leftovers_router() -> Router:
    router = Router(name="leftovers")
    router.message.register(_take, StateFilter(None))

    @router.callback_query(Data())
    async def stale(query: CallbackQuery, turn: Turn) -> None:
        # A button of a dialogue that has moved on (or of an old message).
        turn.say(query.answer(t(await turn.lang(), "stale_button")))

    return router
