"""The claims API under /api/v1/claims: list and filter, detail with history and files,
status changes (the client is notified), investigation steps, assignment and due date."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool

from inbox.boundary import api_router
from inbox.deps import ContextDep, Principal, PrincipalDep, ReadSessionDep
from inbox.schemas import AttachmentOut
from intake.claims.service import (
    ClaimDetail,
    ClaimFilters,
    add_step,
    change_status,
    complete_step,
    get_claim,
    list_claims,
    update_claim,
)
from intake.visibility import Viewer
from storage.errors import Conflict, InvalidInput, NotFound, answers, coded
from storage.models import Claim, ClaimStep
from storage.types import DbId

router = api_router(tags=["claims"])
NOT_FOUND = answers(NotFound)
CONFLICT = answers(Conflict)
ClaimRef = Annotated[
    str,
    Path(
        pattern=r"^([0-9]{1,18}|CLM-[0-9]{4}-[0-9]{6,12})$",
        description="The claim's id or number (CLM-2026-000042)",
    ),
]


class ClaimOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    number: str
    status: str
    reason: str
    order_ref: str | None
    description: str
    phone: str | None
    email: str | None
    language: str
    channel_id: int
    contact_id: int
    conversation_id: int | None
    lead_id: int | None
    manager_id: int | None
    resolution: str | None
    due_at: datetime | None
    created_at: datetime
    status_changed_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    rating: int | None
    rating_comment: str | None
    rated_at: datetime | None

    @classmethod
    def of(cls, claim: Claim) -> ClaimOut:
        return cls.model_validate(claim)


class ClaimStepOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    author_manager_id: int | None
    text: str
    from_status: str | None
    to_status: str | None
    created_at: datetime
    done_at: datetime | None = Field(description="An investigation step: when it was done")
    done_by_id: int | None


class ClaimDetailOut(ClaimOut):
    steps: list[ClaimStepOut]
    attachments: list[AttachmentOut]

    @classmethod
    def of_detail(cls, detail: ClaimDetail) -> ClaimDetailOut:
        return cls(
            **ClaimOut.of(detail.claim).model_dump(),
            steps=[ClaimStepOut.model_validate(s) for s in detail.steps],
            attachments=[AttachmentOut.model_validate(a) for a in detail.attachments],
        )


class ClaimPage(BaseModel):
    items: list[ClaimOut]
    next_cursor: str | None


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: str = Field(
        examples=["in_review"],
        description="registered, in_review, investigating, resolved, closed, rejected",
    )
    comment: str | None = Field(default=None, max_length=10_000, description="Told the client")
    resolution: str | None = Field(
        default=None, max_length=10_000, description="Required to resolve or reject"
    )
    notify: StrictBool = Field(default=True, description="Tell the client (in their language)")


class StepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=10_000, examples=["Запросили фото у склада"])


class ClaimChangesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    manager_id: DbId | None = None
    due_at: AwareDatetime | None = None
    resolution: str | None = Field(default=None, max_length=10_000)


def _ref(value: str) -> int | str:
    return value if value.startswith("CLM-") else int(value)


def _viewer(principal: Principal) -> Viewer:
    return Viewer(principal.manager_id, principal.is_admin)


async def _claim_id(context: Any, ref: str, principal: Principal) -> int:
    """The claim's id, if the principal may see it (NotFound otherwise)."""
    async with context.db.read() as session:
        return (await get_claim(session, _ref(ref), viewer=_viewer(principal))).claim.id


def _split(values: list[str] | None) -> tuple[str, ...]:
    return tuple(p.strip() for v in values or () for p in v.split(",") if p.strip())


@router.get(
    "/claims",
    response_model=ClaimPage,
    responses=answers(
        *coded(InvalidInput, "invalid_manager", "invalid_status", "invalid_cursor"),
    ),
)
async def claims(
    principal: PrincipalDep,
    session: ReadSessionDep,
    status: Annotated[list[str] | None, Query(description="Repeat or comma-separate")] = None,
    reason: Annotated[list[str] | None, Query(description="Reason codes")] = None,
    manager_id: Annotated[
        str | None, Query(max_length=20, description="Manager id, or `unassigned`")
    ] = None,
    contact_id: DbId | None = None,
    channel_id: DbId | None = None,
    created_from: Annotated[AwareDatetime | None, Query(description="ISO 8601 with zone")] = None,
    created_to: Annotated[AwareDatetime | None, Query(description="ISO 8601 with zone")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ClaimPage:
    """Claims, newest first, filtered by status, reason, manager, contact, channel, dates;
    a manager sees the claims of the conversations they see and those they are responsible
    for."""
    manager, unassigned = None, False
    wanted = (manager_id or "").strip()
    if wanted:
        if wanted == "unassigned":
            unassigned = True
        # Up to 18 ASCII digits: always a 64-bit id (int("²") fails, 2**63 overflows).
        elif wanted.isascii() and wanted.isdigit() and len(wanted) <= 18:
            manager = int(wanted)
        else:
            raise InvalidInput("manager_id is a manager id or 'unassigned'", code="invalid_manager")
    page = await list_claims(
        session,
        ClaimFilters(
            statuses=_split(status),
            reasons=_split(reason),
            manager_id=manager,
            unassigned=unassigned,
            contact_id=contact_id,
            channel_id=channel_id,
            created_from=created_from,
            created_to=created_to,
        ),
        cursor=cursor,
        limit=limit,
        viewer=_viewer(principal),
    )
    return ClaimPage(items=[ClaimOut.of(c) for c in page.items], next_cursor=page.next_cursor)


@router.get("/claims/{claim}", response_model=ClaimDetailOut, responses=NOT_FOUND)
async def claim_detail(
    claim: ClaimRef, principal: PrincipalDep, session: ReadSessionDep
) -> ClaimDetailOut:
    """One claim (by id or number) with its history and attachments."""
    return ClaimDetailOut.of_detail(
        await get_claim(session, _ref(claim), viewer=_viewer(principal))
    )


@router.post(
    "/claims/{claim}/status",
    response_model=ClaimDetailOut,
    responses=answers(
        NotFound,
        Conflict(code="transition_not_allowed"),
        *coded(InvalidInput, "invalid_status", "resolution_required"),
    ),
)
async def claim_status(
    claim: ClaimRef, body: StatusIn, principal: PrincipalDep, context: ContextDep
) -> ClaimDetailOut:
    """Move the claim on (registered → in_review → investigating → resolved → closed, or
    rejected); 409 `transition_not_allowed` otherwise. The client is told in their
    language; after "resolved" they are asked for a rating."""
    claim_id = await _claim_id(context, claim, principal)
    async with context.db.transaction() as session:
        await change_status(
            session,
            claim_id,
            body.status,
            manager_id=principal.manager_id,
            comment=body.comment,
            resolution=body.resolution,
            notify=body.notify,
        )
        return ClaimDetailOut.of_detail(await get_claim(session, claim_id))


@router.post(
    "/claims/{claim}/steps",
    response_model=ClaimStepOut,
    status_code=201,
    responses={**NOT_FOUND, **CONFLICT},
)
async def claim_step(
    claim: ClaimRef, body: StepIn, principal: PrincipalDep, context: ContextDep
) -> ClaimStepOut:
    """Record an investigation step (who, when, what); not sent to the client."""
    claim_id = await _claim_id(context, claim, principal)
    async with context.db.transaction() as session:
        step: ClaimStep = await add_step(
            session, claim_id, body.text, manager_id=principal.manager_id
        )
        return ClaimStepOut.model_validate(step)


@router.patch("/claims/{claim}", response_model=ClaimDetailOut, responses=NOT_FOUND)
async def claim_update(
    claim: ClaimRef, body: ClaimChangesIn, principal: PrincipalDep, context: ContextDep
) -> ClaimDetailOut:
    """Set the responsible manager (null: nobody), the due date or the resolution."""
    claim_id = await _claim_id(context, claim, principal)
    given = body.model_dump(exclude_unset=True)
    async with context.db.transaction() as session:
        await update_claim(session, claim_id, **given, actor_id=principal.manager_id)
        return ClaimDetailOut.of_detail(await get_claim(session, claim_id))


@router.post(
    "/claims/{claim}/steps/{step_id}/done",
    response_model=ClaimStepOut,
    responses=answers(NotFound, Conflict(code="claim_closed")),
)
async def claim_step_done(
    claim: ClaimRef, step_id: DbId, principal: PrincipalDep, context: ContextDep
) -> ClaimStepOut:
    """Tick off a step of the investigation plan (when, by whom); again: no change."""
    claim_id = await _claim_id(context, claim, principal)
    async with context.db.transaction() as session:
        step = await complete_step(session, claim_id, step_id, manager_id=principal.manager_id)
        return ClaimStepOut.model_validate(step)
