"""What the workspace shows of claims: the board (a page of claims with their clients,
owners and due dates, and the counts per status) and one claim's card (its plan, history,
the moves its status allows). Reading only; the changes are the service's.

Every read takes the viewer, so a manager sees the same claims here as through the API
(repository.claims_visible_to), and a page issues a fixed number of queries whatever its size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from intake.claims.repository import ClaimFilters, ClaimRepository
from intake.claims.service import TRANSITIONS, ClaimDetail, get_claim, list_claims
from intake.visibility import Viewer
from storage.models import Claim, ClaimStatus, ClaimStep, Contact
from storage.types import utcnow

__all__ = [
    "ACTIVE",
    "LIFECYCLE",
    "Board",
    "BoardRow",
    "ClaimCard",
    "claim_card",
    "claims_board",
    "is_overdue",
    "sees_claim",
]

# The statuses in the order a claim lives through them; a board's tabs follow it.
LIFECYCLE: tuple[str, ...] = (
    ClaimStatus.REGISTERED,
    ClaimStatus.IN_REVIEW,
    ClaimStatus.INVESTIGATING,
    ClaimStatus.RESOLVED,
    ClaimStatus.CLOSED,
    ClaimStatus.REJECTED,
)
# Still being worked: the due date matters only for these.
ACTIVE: tuple[str, ...] = LIFECYCLE[:3]
BOARD_PAGE = 50


def is_overdue(claim: Claim, now: datetime | None = None) -> bool:
    """Past its due date and still being worked."""
    return claim.due_at is not None and claim.status in ACTIVE and claim.due_at < (now or utcnow())


def client_label(claim: Claim, contact: Contact | None) -> str:
    """The client as a person reads them: the name, else how to reach them."""
    if contact is not None and contact.name:
        return contact.name
    return claim.phone or claim.email or f"#{claim.contact_id}"


@dataclass(frozen=True, slots=True)
class BoardRow:
    claim: Claim
    client: str
    owner: str | None
    overdue: bool


@dataclass(frozen=True, slots=True)
class Board:
    rows: list[BoardRow]
    next_cursor: str | None
    counts: dict[str, int]  # status -> the viewer's claims of it (mine only, when asked)

    @property
    def active(self) -> int:
        return sum(self.counts.get(status, 0) for status in ACTIVE)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


async def claims_board(
    session: AsyncSession,
    viewer: Viewer,
    *,
    statuses: Sequence[str] = ACTIVE,
    mine: bool = False,
    cursor: str | None = None,
    limit: int = BOARD_PAGE,
    now: datetime | None = None,
) -> Board:
    """A page of the claims `viewer` sees in `statuses` (all when empty), newest first;
    `mine`: only those the viewer is responsible for. InvalidInput for an unknown status
    or a bad cursor."""
    manager_id = viewer.manager_id if mine else None
    if mine and manager_id is None:
        return Board([], None, {})
    page = await list_claims(
        session,
        ClaimFilters(statuses=tuple(statuses), manager_id=manager_id),
        cursor=cursor,
        limit=limit,
        viewer=viewer,
    )
    repo = ClaimRepository(session)
    contacts = await repo.contacts({claim.contact_id for claim in page.items})
    owners = await repo.manager_names(
        {claim.manager_id for claim in page.items if claim.manager_id is not None}
    )
    now = now or utcnow()
    rows = [
        BoardRow(
            claim,
            client_label(claim, contacts.get(claim.contact_id)),
            owners.get(claim.manager_id) if claim.manager_id is not None else None,
            is_overdue(claim, now),
        )
        for claim in page.items
    ]
    counts = await repo.count_by_status(viewer, manager_id)
    return Board(rows, page.next_cursor, counts)


@dataclass(frozen=True, slots=True)
class ClaimCard:
    """One claim as its page shows it."""

    detail: ClaimDetail
    contact: Contact | None
    client: str
    names: dict[int, str]  # manager id -> name: the owner, step authors, who ticked steps off
    next_statuses: list[str]  # the moves its status allows: forward ones first
    overdue: bool

    @property
    def claim(self) -> Claim:
        return self.detail.claim

    @property
    def plan(self) -> list[ClaimStep]:
        return [step for step in self.detail.steps if step.kind == "step"]

    @property
    def history(self) -> list[ClaimStep]:
        return [step for step in self.detail.steps if step.kind == "status"]

    @property
    def open(self) -> bool:
        """Steps may still be added and ticked off."""
        return self.claim.status not in (ClaimStatus.CLOSED, ClaimStatus.REJECTED)


async def claim_card(
    session: AsyncSession, viewer: Viewer, claim: int | str, *, now: datetime | None = None
) -> ClaimCard:
    """The claim by id or number, if `viewer` may see it (NotFound otherwise)."""
    detail = await get_claim(session, claim, viewer=viewer)
    repo = ClaimRepository(session)
    found = detail.claim
    contact = await repo.contact(found.contact_id)
    people = {found.manager_id} | {s.author_manager_id for s in detail.steps}
    people |= {s.done_by_id for s in detail.steps}
    names = await repo.manager_names({m for m in people if m is not None})
    allowed = TRANSITIONS.get(found.status, frozenset())
    # Forward moves first (the usual next step), then the ones back.
    here = LIFECYCLE.index(found.status) if found.status in LIFECYCLE else -1
    moves = sorted(allowed, key=lambda s: (LIFECYCLE.index(s) < here, LIFECYCLE.index(s)))
    return ClaimCard(
        detail,
        contact,
        client_label(found, contact),
        names,
        moves,
        is_overdue(found, now),
    )


async def sees_claim(session: AsyncSession, viewer: Viewer, claim_id: int) -> bool:
    """Whether `viewer` may see the claim (one small query; none for an administrator)."""
    if viewer.is_admin:
        return True
    repo = ClaimRepository(session)
    claim = await repo.get(claim_id)
    return claim is not None and await repo.visible(claim, viewer)
