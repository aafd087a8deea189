"""The bot's filters as coroutines.

aiogram runs a plain callable filter (a magic `F.data == ...`) in a worker thread for
every update it is tried on; at webhook rates those thread hops, not the filters,
would be the cost. These async filters run on the event loop.
"""

from __future__ import annotations

from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message


class Private(Filter):
    """A message in a private chat (the hub talks to clients one to one)."""

    async def __call__(self, message: Message) -> bool:
        return message.chat.type == "private"


class Data(Filter):
    """A button press with this callback data, or data starting with `prefix`."""

    def __init__(self, value: str | None = None, *, prefix: str | None = None) -> None:
        self.value = value
        self.prefix = prefix

    async def __call__(self, query: CallbackQuery) -> bool:
        data = query.data
        if data is None:
            return False
        if self.value is not None:
            return data == self.value
        return self.prefix is None or data.startswith(self.prefix)


def has_file(message: Message) -> bool:
    """A photo or a document."""
    return bool(message.photo or message.document)


class HasFile(Filter):
    async def __call__(self, message: Message) -> bool:
        return has_file(message)
