"""Conversation states in the REST API under /api/v1: snooze until a time, mark as waiting
for the client, reopen, and the same actions (with assign) on many conversations at once.

Each action acts only on a conversation the caller may see (administrators and operators'
tokens: any; a manager: their queues', the unassigned ones and their own) and runs the
services the workspace's pages run, in one transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from inbox.boundary import api_router
from inbox.deps import ContextDep, Principal, PrincipalDep
from inbox.routing_schemas import ConversationRoutingOut
from intake.inbox import visible_conversation
from intake.states import mark_pending, reopen, snooze
from intake.visibility import Viewer
from routing.admin.bulk import MAX_BULK, bulk_act
from storage.errors import Conflict, InvalidInput, NotFound, answers
from storage.types import DbId

router = api_router()

ACTED = answers(NotFound, Conflict)


def _viewer(principal: Principal) -> Viewer:
    return Viewer(principal.manager_id, principal.is_admin)


class SnoozeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    until: datetime = Field(
        description="When it comes back (with a time zone; within a year)",
        examples=["2026-12-08T09:00:00+03:00"],
    )


class BulkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation_ids: list[DbId] = Field(min_length=1, max_length=MAX_BULK)
    action: Literal["assign", "close", "snooze"]
    manager_id: DbId | None = Field(default=None, description="For `assign`")
    until: datetime | None = Field(default=None, description="For `snooze`, with a time zone")


class RefusedOut(BaseModel):
    conversation_id: int
    error: str


class BulkOut(BaseModel):
    """What was done and what was refused (each with the error code it would have had alone)."""

    done: list[int]
    refused: list[RefusedOut]


@router.post(
    "/conversations/{conversation_id}/snooze",
    response_model=ConversationRoutingOut,
    tags=["conversations"],
    responses={**ACTED, **answers(InvalidInput)},
)
async def snooze_conversation(
    conversation_id: DbId, body: SnoozeIn, principal: PrincipalDep, context: ContextDep
) -> ConversationRoutingOut:
    """Put it aside until `until`: it leaves the open views and comes back on top (its
    assignee told) when the time comes or when the client writes."""
    if body.until.tzinfo is None:
        raise InvalidInput("`until` needs a time zone", code="invalid_snooze")
    async with context.db.transaction() as session:
        await visible_conversation(session, _viewer(principal), conversation_id)
        conversation = await snooze(
            session,
            conversation_id,
            until=body.until,
            manager_id=principal.manager_id,
            now=context.routing.clock(),
        )
        return ConversationRoutingOut.of(conversation)


@router.post(
    "/conversations/{conversation_id}/pending",
    response_model=ConversationRoutingOut,
    tags=["conversations"],
    responses=ACTED,
)
async def mark_conversation_pending(
    conversation_id: DbId, principal: PrincipalDep, context: ContextDep
) -> ConversationRoutingOut:
    """Waiting for the client: no SLA target falls due; the client's next message opens it."""
    async with context.db.transaction() as session:
        await visible_conversation(session, _viewer(principal), conversation_id)
        conversation = await mark_pending(session, conversation_id, manager_id=principal.manager_id)
        return ConversationRoutingOut.of(conversation)


@router.post(
    "/conversations/{conversation_id}/reopen",
    response_model=ConversationRoutingOut,
    tags=["conversations"],
    responses=ACTED,
)
async def reopen_conversation(
    conversation_id: DbId, principal: PrincipalDep, context: ContextDep
) -> ConversationRoutingOut:
    """Open a closed, waiting or snoozed conversation again (409 `thread_reopened` when its
    thread has since opened another conversation)."""
    async with context.db.transaction() as session:
        await visible_conversation(session, _viewer(principal), conversation_id)
        conversation = await reopen(
            session, conversation_id, manager_id=principal.manager_id, now=context.routing.clock()
        )
        return ConversationRoutingOut.of(conversation)


@router.post(
    "/conversations/bulk",
    response_model=BulkOut,
    tags=["conversations"],
    responses=answers(InvalidInput),
)
async def bulk(body: BulkIn, principal: PrincipalDep, context: ContextDep) -> BulkOut:
    """Assign, close or snooze many conversations in one request: each is checked as if
    alone, and a refused one (not visible: `not_found`) leaves the others done."""
    if body.until is not None and body.until.tzinfo is None:
        raise InvalidInput("`until` needs a time zone", code="invalid_snooze")
    async with context.db.transaction() as session:
        result = await bulk_act(
            session,
            context.routing,
            _viewer(principal),
            body.conversation_ids,
            body.action,
            now=context.routing.clock(),
            manager_id=body.manager_id,
            until=body.until,
        )
    return BulkOut(
        done=result.done,
        refused=[RefusedOut(conversation_id=i, error=code) for i, code in result.refused],
    )
