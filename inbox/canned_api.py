"""Canned replies and read positions under /api/v1: what the workspace's composer inserts
by `/`, and the unread markers of the conversation lists."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from inbox.boundary import api_router
from inbox.deps import ContextDep, PrincipalDep, ReadSessionDep
from intake import canned
from intake.inbox import visible_conversation
from intake.reads import mark_read
from intake.visibility import Viewer
from storage.errors import Conflict, Forbidden, InvalidInput, NotFound, answers, coded
from storage.models import CannedReply
from storage.types import DbId, utcnow

router = api_router(tags=["canned replies"])

INVALID = coded(InvalidInput, "invalid_shortcut", "invalid_title", "invalid_body")


class CannedReplyOut(BaseModel):
    id: int
    shortcut: str
    title: str
    body: str
    shared: bool = Field(description="The team's reply (kept by administrators), else your own")
    updated_at: datetime

    @classmethod
    def of(cls, reply: CannedReply) -> CannedReplyOut:
        return cls(
            id=reply.id,
            shortcut=reply.shortcut,
            title=reply.title,
            body=reply.body,
            shared=reply.owner_id is None,
            updated_at=reply.updated_at,
        )


class CannedReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shortcut: str = Field(max_length=65, description="Typed after `/`: letters, digits, - or _")
    title: str = Field(max_length=200)
    body: str = Field(
        max_length=canned.MAX_BODY,
        description="May name {client_name}, {request_number} and {manager_name}",
    )
    shared: StrictBool = False


class CannedReplyChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shortcut: str | None = Field(default=None, max_length=65)
    title: str | None = Field(default=None, max_length=200)
    body: str | None = Field(default=None, max_length=canned.MAX_BODY)


class RenderedOut(BaseModel):
    text: str


class ReadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message_id: DbId | None = Field(
        default=None, description="Read up to this message; the newest when omitted"
    )


def _editor(principal: PrincipalDep) -> canned.Editor:
    return canned.Editor(manager_id=principal.manager_id, is_admin=principal.is_admin)


@router.get("/canned-replies", response_model=list[CannedReplyOut])
async def canned_replies(
    principal: PrincipalDep,
    session: ReadSessionDep,
    q: Annotated[str | None, Query(max_length=100, description="What was typed after `/`")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[CannedReplyOut]:
    """The shared replies and your own, by shortcut."""
    replies = await canned.list_canned(session, principal.manager_id, q, limit)
    return [CannedReplyOut.of(reply) for reply in replies]


@router.post(
    "/canned-replies",
    response_model=CannedReplyOut,
    status_code=201,
    responses=answers(
        *INVALID,
        *coded(InvalidInput, "shared_only"),
        Forbidden(code="admin_required"),
        Conflict(code="shortcut_taken"),
    ),
)
async def create_canned_reply(
    body: CannedReplyIn, principal: PrincipalDep, context: ContextDep
) -> CannedReplyOut:
    async with context.db.transaction() as session:
        reply = await canned.create_canned(
            session,
            _editor(principal),
            shortcut=body.shortcut,
            title=body.title,
            body=body.body,
            shared=body.shared,
        )
        return CannedReplyOut.of(reply)


@router.patch(
    "/canned-replies/{reply_id}",
    response_model=CannedReplyOut,
    responses=answers(
        *INVALID, NotFound, Forbidden(code="admin_required"), Conflict(code="shortcut_taken")
    ),
)
async def change_canned_reply(
    reply_id: DbId, body: CannedReplyChange, principal: PrincipalDep, context: ContextDep
) -> CannedReplyOut:
    async with context.db.transaction() as session:
        reply = await canned.change_canned(
            session,
            _editor(principal),
            reply_id,
            shortcut=body.shortcut,
            title=body.title,
            body=body.body,
        )
        return CannedReplyOut.of(reply)


@router.delete(
    "/canned-replies/{reply_id}",
    status_code=204,
    response_model=None,
    responses=answers(NotFound, Forbidden(code="admin_required")),
)
async def delete_canned_reply(reply_id: DbId, principal: PrincipalDep, context: ContextDep) -> None:
    async with context.db.transaction() as session:
        await canned.delete_canned(session, _editor(principal), reply_id)


@router.get(
    "/canned-replies/{reply_id}/text",
    response_model=RenderedOut,
    responses=answers(NotFound),
)
async def rendered_canned_reply(
    reply_id: DbId,
    conversation_id: Annotated[DbId, Query(description="The conversation it is inserted into")],
    principal: PrincipalDep,
    session: ReadSessionDep,
) -> RenderedOut:
    """The reply's text with the conversation's client name, request number and your name
    (404 for a conversation you may not see)."""
    viewer = Viewer(principal.manager_id, principal.is_admin)
    await visible_conversation(session, viewer, conversation_id)
    text = await canned.render_canned(session, principal.manager_id, reply_id, conversation_id)
    return RenderedOut(text=text)


@router.post(
    "/conversations/{conversation_id}/read",
    status_code=204,
    response_model=None,
    responses=answers(NotFound, *coded(InvalidInput, "invalid_message", "manager_only")),
)
async def read_conversation(
    conversation_id: DbId, principal: PrincipalDep, context: ContextDep, body: ReadIn | None = None
) -> None:
    """You have read the conversation (up to `message_id`): its unread marker goes."""
    if principal.manager_id is None:
        raise InvalidInput("read positions belong to managers", code="manager_only")
    async with context.db.transaction() as session:
        await mark_read(
            session,
            principal.manager_id,
            conversation_id,
            utcnow(),
            body.message_id if body is not None else None,
        )
