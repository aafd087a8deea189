"""The reply composer's side of /api/v1: the channels a reply to a conversation can leave by
(`channel_id` of POST .../messages picks one) and the managers a note can mention."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import BaseModel, Field

from inbox.boundary import api_router
from inbox.deps import PrincipalDep, ReadSessionDep
from intake.composer import ReplyRoute, mention_suggestions, reply_routes
from intake.inbox import visible_conversation
from intake.visibility import Viewer
from storage.errors import NotFound, answers
from storage.types import DbId

router = api_router(tags=["conversations"])


class ReplyChannelOut(BaseModel):
    channel_id: int
    kind: str
    title: str
    address: str | None = Field(
        description="Where the reply goes; null: where the client last wrote from"
    )
    own: bool = Field(description="The conversation's own channel")

    @classmethod
    def of(cls, route: ReplyRoute) -> ReplyChannelOut:
        return cls(
            channel_id=route.channel_id,
            kind=route.kind,
            title=route.title,
            address=route.address,
            own=route.own,
        )


class MentionableOut(BaseModel):
    id: int
    name: str


@router.get(
    "/conversations/{conversation_id}/reply-channels",
    response_model=list[ReplyChannelOut],
    responses=answers(NotFound),
)
async def reply_channels(
    conversation_id: DbId, principal: PrincipalDep, session: ReadSessionDep
) -> list[ReplyChannelOut]:
    """Where a reply can go, the conversation's own channel first; an empty list when the
    client cannot be answered in writing (a web form or a call without email or Telegram)."""
    viewer = Viewer(principal.manager_id, principal.is_admin)
    await visible_conversation(session, viewer, conversation_id)
    return [ReplyChannelOut.of(route) for route in await reply_routes(session, conversation_id)]


@router.get("/mentionable-managers", response_model=list[MentionableOut])
async def mentionable_managers(
    _principal: PrincipalDep,
    session: ReadSessionDep,
    q: Annotated[str, Query(max_length=100, description="What was typed after `@`")] = "",
) -> list[MentionableOut]:
    """Active managers whose name (or a word of it) starts with `q`: who a note can mention."""
    return [
        MentionableOut(id=manager_id, name=name)
        for manager_id, name in await mention_suggestions(session, q)
    ]
