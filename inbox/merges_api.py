"""Contact merges under /api/v1: one click that makes two contacts one, and its record."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from inbox.boundary import api_router
from inbox.deps import ContextDep, PrincipalDep, ReadSessionDep
from intake.merges import contact_merges, merge_contacts
from storage.errors import InvalidInput, NotFound, answers, coded
from storage.models import ContactMerge
from storage.types import DbId, utcnow

router = api_router(tags=["contacts"])


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    other_contact_id: DbId = Field(description="The contact merged into this one (then deleted)")


class ContactMergeOut(BaseModel):
    id: int
    into_contact_id: int | None
    from_contact_id: int
    manager_id: int | None
    token_id: int | None
    absorbed: dict[str, Any] = Field(description="The merged contact as it was")
    moved: dict[str, list[int]] = Field(description="Ids of the rows that moved, per table")
    created_at: datetime

    @classmethod
    def of(cls, merge: ContactMerge) -> ContactMergeOut:
        return cls(
            id=merge.id,
            into_contact_id=merge.into_contact_id,
            from_contact_id=merge.from_contact_id,
            manager_id=merge.manager_id,
            token_id=merge.token_id,
            absorbed=merge.absorbed,
            moved=merge.moved,
            created_at=merge.created_at,
        )


@router.post(
    "/contacts/{contact_id}/merge",
    response_model=ContactMergeOut,
    status_code=201,
    responses=answers(NotFound, *coded(InvalidInput, "same_contact")),
)
async def merge(
    contact_id: DbId, body: MergeIn, principal: PrincipalDep, context: ContextDep
) -> ContactMergeOut:
    """Merge another contact into this one: its identities, conversations, leads, claims,
    calls and tasks move here, and the merge is recorded."""
    async with context.db.transaction() as session:
        record = await merge_contacts(
            session, contact_id, body.other_contact_id, principal.actor, utcnow()
        )
        return ContactMergeOut.of(record)


@router.get("/contacts/{contact_id}/merges", response_model=list[ContactMergeOut])
async def merges(
    contact_id: DbId, _principal: PrincipalDep, session: ReadSessionDep
) -> list[ContactMergeOut]:
    """The merges into this contact, newest first."""
    return [ContactMergeOut.of(record) for record in await contact_merges(session, contact_id)]
