"""Where the client bot's FSM keeps each chat's step: Redis when the hub has it, otherwise
a table in the hub's database, so a dialogue survives restarts either way."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import (
    BaseEventIsolation,
    BaseStorage,
    DefaultKeyBuilder,
    KeyBuilder,
    StateType,
    StorageKey,
)
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage

from bots.work import current_work
from storage.db import Database
from storage.telegram_repository import TelegramRepository

KEY_PREFIX = "omnihub-fsm"


def key_builder() -> KeyBuilder:
    # Several bots share one storage: the bot's id is part of every key.
    return DefaultKeyBuilder(prefix=KEY_PREFIX, with_bot_id=True, with_destiny=True)


class DatabaseStorage(BaseStorage):
    """aiogram's FSM storage on the `telegram_fsm` table.

    Inside an update's unit of work (bots.work) it reads and writes in that update's
    transaction, so the step moves on only if everything else the update did commits.

    Every update asks for its chat's step first, and most chats are in no dialogue. So
    the steps of the chats that are in one (the table's rows with a state: few) are
    mirrored in memory, loaded from the table, changed after each commit and reloaded
    every `refresh_seconds`; a chat not in the mirror is in no dialogue, with no query.
    That holds while one process handles a chat's updates, which the per-chat lock
    of this storage assumes anyway; several processes share Redis instead.
    """

    def __init__(
        self, db: Database, keys: KeyBuilder | None = None, *, refresh_seconds: float = 60.0
    ) -> None:
        self.db = db
        self.keys = keys or key_builder()
        self.refresh_seconds = refresh_seconds
        self._states: dict[str, str] = {}
        self._loaded_at: float | None = None
        self._loading = asyncio.Lock()

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = (state.state if isinstance(state, State) else state) or None
        name = self.keys.build(key)
        await self._write(name, state=value or "")
        self._after_commit(lambda: self._remember(name, value))

    async def get_state(self, key: StorageKey) -> str | None:
        name = self.keys.build(key)
        session = _open_session()
        if session is not None:
            return await TelegramRepository(session).fsm_state(name)
        await self._load()
        return self._states.get(name)

    async def _load(self) -> None:
        now = time.monotonic()
        if self._loaded_at is not None and now - self._loaded_at < self.refresh_seconds:
            return
        async with self._loading:
            if self._loaded_at is not None and now - self._loaded_at < self.refresh_seconds:
                return
            async with self.db.read() as read:
                self._states = await TelegramRepository(read).fsm_states()
            self._loaded_at = time.monotonic()

    def _remember(self, name: str, state: str | None) -> None:
        if state is None:
            self._states.pop(name, None)
        else:
            self._states[name] = state

    def _after_commit(self, callback: Callable[[], None]) -> None:
        work = current_work()
        if work is not None:
            work.after_commit.append(callback)
        else:
            callback()

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._write(self.keys.build(key), data=dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        name = self.keys.build(key)
        session = _open_session()
        if session is not None:
            return await TelegramRepository(session).fsm_data(name)
        async with self.db.read() as read:
            return await TelegramRepository(read).fsm_data(name)

    async def close(self) -> None:
        pass

    async def _write(
        self, name: str, *, state: str | None = None, data: dict[str, Any] | None = None
    ) -> None:
        work = current_work()
        if work is not None:
            session = await work.session()
            await TelegramRepository(session).set_fsm(name, state=state, data=data)
            return
        async with self.db.transaction() as session:
            await TelegramRepository(session).set_fsm(name, state=state, data=data)


def _open_session() -> Any:
    work = current_work()
    return work.session_if_open() if work is not None else None


def create_storage(db: Database, redis_url: str | None) -> tuple[BaseStorage, BaseEventIsolation]:
    """Redis (shared by every hub process, with a lock per chat across them) when
    configured; otherwise the database table and an in-process lock per chat."""
    if redis_url:
        storage = RedisStorage.from_url(redis_url, key_builder=key_builder())
        return storage, RedisEventIsolation(storage.redis, key_builder=key_builder())
    return DatabaseStorage(db), SimpleEventIsolation()
