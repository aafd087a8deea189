"""Outbox handlers of the telephony channel: callback timers, callbacks following the
conversation's manager, and the screen pop on each concerned manager's own topic."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from intake.tasks import DUE_TOPIC, assign_waiting_tasks, check_due
from storage.bus import EventBus
from storage.models import OutboxEvent
from storage.outbox import Handler
from storage.types import utcnow


def telephony_handlers(
    bus: EventBus, *, clock: Callable[[], datetime] = utcnow
) -> dict[str, Sequence[Handler]]:
    async def due(session: AsyncSession, event: OutboxEvent) -> None:
        due_at = event.payload.get("due_at")
        await check_due(
            session, int(event.payload["task_id"]), str(due_at) if due_at else None, clock()
        )

    async def assigned(session: AsyncSession, event: OutboxEvent) -> None:
        await assign_waiting_tasks(
            session, int(event.payload["conversation_id"]), int(event.payload["manager_id"])
        )

    async def screen_pop(_session: AsyncSession, event: OutboxEvent) -> None:
        for manager_id in event.payload.get("manager_ids") or ():
            await bus.publish(
                f"manager.{int(manager_id)}",
                {"type": event.topic, "event_id": event.id, **event.payload},
            )

    return {
        DUE_TOPIC: [due],
        "conversation.assigned": [assigned],
        "call.ringing": [screen_pop],
        "call.answered": [screen_pop],
    }
