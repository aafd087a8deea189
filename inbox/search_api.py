"""Search under /api/v1/search: conversations by their messages, subject, contact, identities
and numbers, as `intake.search` matches them, limited to what the caller may see."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import BaseModel, Field

from inbox.api import PAGE_ERRORS, Cursor, Limit
from inbox.boundary import api_router
from inbox.deps import PrincipalDep, ReadSessionDep
from inbox.schemas import ConversationOut
from intake.search import MAX_QUERY_LENGTH, SearchHit, search
from intake.visibility import Viewer
from storage.errors import InvalidInput, answers, coded

router = api_router(tags=["search"])


class SnippetPartOut(BaseModel):
    text: str
    hit: bool = Field(description="Whether this part is a matched word")


class SearchHitOut(BaseModel):
    conversation: ConversationOut
    message_id: int | None = Field(description="The latest matching message, if a message matched")
    snippet: list[SnippetPartOut] = Field(
        description="Plain-text fragment of that message, split where matched words start and end"
    )

    @classmethod
    def of(cls, hit: SearchHit) -> SearchHitOut:
        return cls(
            conversation=ConversationOut.of(hit.row),
            message_id=hit.message_id,
            snippet=[SnippetPartOut(text=part.text, hit=part.hit) for part in hit.snippet],
        )


class SearchPage(BaseModel):
    items: list[SearchHitOut]
    next_cursor: str | None


@router.get(
    "/search",
    response_model=SearchPage,
    responses=answers(*coded(InvalidInput, "invalid_query"), *PAGE_ERRORS),
)
async def search_conversations(
    principal: PrincipalDep,
    session: ReadSessionDep,
    q: Annotated[
        str,
        Query(
            max_length=MAX_QUERY_LENGTH, description="Words, a name, an email, a phone or a number"
        ),
    ],
    cursor: Cursor = None,
    limit: Limit = 50,
) -> SearchPage:
    """Conversations matching `q` that the caller may see, newest first, every one reachable
    page by page."""
    viewer = Viewer(manager_id=principal.manager_id, is_admin=principal.is_admin)
    page = await search(session, viewer, q, cursor, limit)
    return SearchPage(
        items=[SearchHitOut.of(hit) for hit in page.items], next_cursor=page.next_cursor
    )
