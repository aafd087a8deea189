"""People acting on a conversation's routing: assign, transfer, take; its history; and what
a manager of the workspace may do with it.

Services validate and flush; they never commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from intake.inbox import visible_conversation
from intake.visibility import Viewer
from routing.admin.repository import HistoryRow, RoutingAdminRepository
from routing.engine import Decision, RoutingEngine
from storage.errors import Conflict, Forbidden, InvalidInput, NotFound
from storage.models import Assignment, AssignmentReason, Conversation, ConversationStatus


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
    note: str | None = None,
) -> Decision:
    """To a manager (assigned at once), or to a queue (routed by its strategy); `note`, the
    reason in the person's words, goes into the assignment history."""
    if (manager_id is None) == (queue_id is None):
        raise InvalidInput("give either manager_id or queue_id", code="invalid_transfer")
    note = (note or "").strip() or None
    await _open_conversation(RoutingAdminRepository(session), conversation_id)
    if manager_id is not None:
        decision = await engine.assign(
            session,
            conversation_id,
            manager_id,
            actor_manager_id=actor_manager_id,
            reason=AssignmentReason.TRANSFER,
            note=note,
        )
    else:
        assert queue_id is not None
        decision = await engine.transfer_to_queue(
            session, conversation_id, queue_id, actor_manager_id=actor_manager_id, note=note
        )
    if decision.assignment_id is not None and (note or actor_manager_id is not None):
        recorded = await session.get(Assignment, decision.assignment_id)
        if recorded is not None:
            if note:  # the person's own words, apart from routing's explanation
                recorded.detail = {**(recorded.detail or {}), "note": note}
            if recorded.actor_manager_id is None:  # a transfer that left it waiting
                recorded.actor_manager_id = actor_manager_id
            await session.flush()
    return decision


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


# Acting on a conversation from the workspace


@dataclass(frozen=True, slots=True)
class ConversationActions:
    """What the viewer may do with an opened conversation, and its routing history."""

    history: list[HistoryRow]
    candidates: list[tuple[int, str]]  # managers it may be assigned to: (id, name)
    queues: list[tuple[int, str]] = field(default_factory=list)  # it may be transferred to


def may_reassign(viewer: Viewer, conversation: Conversation) -> bool:
    """Administrators assign anything; a manager only what nobody has or is their own."""
    return viewer.is_admin or conversation.assignee_id in (None, viewer.manager_id)


async def conversation_actions(
    session: AsyncSession, viewer: Viewer, conversation: Conversation
) -> ConversationActions:
    repo = RoutingAdminRepository(session)
    history = await repo.history(conversation.id)
    candidates: list[tuple[int, str]] = []
    queues: list[tuple[int, str]] = []
    if conversation.status != ConversationStatus.CLOSED and may_reassign(viewer, conversation):
        if viewer.is_admin:
            candidates = [(m.id, m.name) for m in await repo.managers() if m.is_active]
        elif conversation.queue_id is not None:
            members = await repo.members(conversation.queue_id)
            candidates = [(m.id, m.name) for _member, m in members if m.is_active]
        queues = [(q.id, q.name) for q in await repo.queues() if q.id != conversation.queue_id]
    return ConversationActions(history, candidates, queues)


async def assign_as(
    session: AsyncSession,
    engine: RoutingEngine,
    viewer: Viewer,
    conversation_id: int,
    manager_id: int,
) -> Decision:
    """Assign by hand (the API's assign) within what the viewer may do: a manager may not
    reassign a colleague's conversation, nor give one to someone outside its queue."""
    row = await visible_conversation(session, viewer, conversation_id)
    if row.conversation.status == ConversationStatus.CLOSED:
        raise Conflict(f"conversation {conversation_id} is closed", code="conversation_closed")
    actions = await conversation_actions(session, viewer, row.conversation)
    if not may_reassign(viewer, row.conversation):
        raise Forbidden("the conversation is a colleague's", code="not_yours")
    if manager_id not in {candidate for candidate, _name in actions.candidates}:
        raise Forbidden(f"manager {manager_id} may not be given it", code="not_a_candidate")
    return await assign(
        session, engine, conversation_id, manager_id, actor_manager_id=viewer.manager_id
    )


async def transfer_as(
    session: AsyncSession,
    engine: RoutingEngine,
    viewer: Viewer,
    conversation_id: int,
    queue_id: int,
    *,
    note: str | None = None,
) -> Decision:
    """Transfer to another queue within what the viewer may do (a conversation they see and
    may reassign: nobody's or their own; an administrator's: any); the queue's strategy picks
    the manager or leaves it waiting, recorded as `transfer` with the reason."""
    row = await visible_conversation(session, viewer, conversation_id)
    if row.conversation.status == ConversationStatus.CLOSED:
        raise Conflict(f"conversation {conversation_id} is closed", code="conversation_closed")
    if not may_reassign(viewer, row.conversation):
        raise Forbidden("the conversation is a colleague's", code="not_yours")
    if row.conversation.queue_id == queue_id:
        raise Conflict("the conversation is in this queue already", code="same_queue")
    return await transfer(
        session,
        engine,
        conversation_id,
        manager_id=None,
        queue_id=queue_id,
        actor_manager_id=viewer.manager_id,
        note=note,
    )
