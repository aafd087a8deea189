"""People acting on a conversation's routing: assign, transfer, take; its history.

Services validate and flush; they never commit.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from routing.admin.repository import HistoryRow, RoutingAdminRepository
from routing.engine import Decision, RoutingEngine
from storage.errors import Conflict, InvalidInput, NotFound
from storage.models import AssignmentReason, Conversation, ConversationStatus


async def assignment_history(session: AsyncSession, conversation_id: int) -> list[HistoryRow]:
    repo = RoutingAdminRepository(session)
    if await repo.conversation(conversation_id) is None:
        raise NotFound(f"no conversation {conversation_id}")
    return await repo.history(conversation_id)


async def _open_conversation(repo: RoutingAdminRepository, conversation_id: int) -> Conversation:
    conversation = await repo.conversation(conversation_id)
    if conversation is None:
        raise NotFound(f"no conversation {conversation_id}")
    if conversation.status == ConversationStatus.CLOSED:
        raise Conflict(f"conversation {conversation_id} is closed", code="conversation_closed")
    return conversation


async def assign(
    session: AsyncSession,
    engine: RoutingEngine,
    conversation_id: int,
    manager_id: int,
    *,
    actor_manager_id: int | None,
) -> Decision:
    await _open_conversation(RoutingAdminRepository(session), conversation_id)
    return await engine.assign(
        session, conversation_id, manager_id, actor_manager_id=actor_manager_id
    )


async def transfer(
    session: AsyncSession,
    engine: RoutingEngine,
    conversation_id: int,
    *,
    manager_id: int | None,
    queue_id: int | None,
    actor_manager_id: int | None,
) -> Decision:
    """To a manager (assigned at once), or to a queue (routed by its strategy)."""
    if (manager_id is None) == (queue_id is None):
        raise InvalidInput("give either manager_id or queue_id", code="invalid_transfer")
    await _open_conversation(RoutingAdminRepository(session), conversation_id)
    if manager_id is not None:
        return await engine.assign(
            session,
            conversation_id,
            manager_id,
            actor_manager_id=actor_manager_id,
            reason=AssignmentReason.TRANSFER,
        )
    assert queue_id is not None
    return await engine.transfer_to_queue(
        session, conversation_id, queue_id, actor_manager_id=actor_manager_id
    )


async def take(
    session: AsyncSession, engine: RoutingEngine, conversation_id: int, manager_id: int
) -> Decision:
    await _open_conversation(RoutingAdminRepository(session), conversation_id)
    return await engine.take(session, conversation_id, manager_id)


async def conversation_routing(session: AsyncSession, conversation_id: int) -> Conversation:
    conversation = await RoutingAdminRepository(session).conversation(conversation_id)
    if conversation is None:
        raise NotFound(f"no conversation {conversation_id}")
    return conversation
