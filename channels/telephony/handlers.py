"""Outbox handlers of the telephony channel: callback timers, callbacks following the
conversation's manager, and the screen pop on each concerned manager's own topic."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from intake.tasks import assign_waiting_tasks, assign_waiting_tasks_of, check_due
from storage.bus import EventBus
from storage.events import CallAnswered, CallRinging, ConversationAssigned, TaskDue
from storage.outbox import BatchHandler, Handlers
from storage.types import utcnow


def telephony_handlers(bus: EventBus, *, clock: Callable[[], datetime] = utcnow) -> Handlers:
    async def due(session: AsyncSession, event: TaskDue, _event_id: int) -> None:
        await check_due(session, event.task_id, event.due_at or None, clock())

    async def assigned(session: AsyncSession, event: ConversationAssigned, _event_id: int) -> None:
        await assign_waiting_tasks(session, event.conversation_id, event.manager_id)

    async def assigned_together(
        session: AsyncSession, events: Sequence[tuple[ConversationAssigned, int]]
    ) -> None:
        await assign_waiting_tasks_of(
            session, [(event.conversation_id, event.manager_id) for event, _id in events]
        )

    async def screen_pop(
        _session: AsyncSession, event: CallRinging | CallAnswered, event_id: int
    ) -> None:
        for manager_id in event.manager_ids:
            await bus.publish(
                f"manager.{manager_id}",
                {"type": event.topic, "event_id": event_id, **event.payload()},
            )

    return {
        TaskDue: [due],
        ConversationAssigned: [BatchHandler(assigned, assigned_together)],
        CallRinging: [screen_pop],
        CallAnswered: [screen_pop],
    }
