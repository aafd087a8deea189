"""Claims: filed by clients through any channel, worked by managers through their lifecycle.

A claim is filed through intake like any other request: `file_claim` ingests its
text (and attachments) as a message that opens a conversation and a lead of kind
`claim`, then records the claim with a human number (CLM-2026-000042). Managers
move it through its statuses and add investigation steps; each status change is an
event whose handler queues a notice to the client, in their language, through the
conversation's channel. Services here flush, never commit.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from intake.claims.repository import ClaimFilters, ClaimRepository
from intake.claims.texts import DEFAULT_REASONS, lang_of, status_notice
from intake.claims.texts import text as claim_text
from intake.conversations import add_system_message
from intake.identities import normalize_email, normalize_phone
from intake.ingest import IntakeConfig, ingest
from intake.ingest_repository import IntakeRepository
from intake.journal import Page, decode_cursor, encode_cursor
from intake.schemas import AttachmentIn, IdentityIn, InboundMessage, IngestResult
from intake.visibility import Viewer
from storage.errors import Conflict, InvalidInput, NotFound
from storage.events import (
    ClaimFiled,
    ClaimRated,
    ClaimStatusChanged,
    ClaimStepAdded,
    ClaimStepDone,
    ClaimUpdated,
)
from storage.models import (
    Attachment,
    Claim,
    ClaimStatus,
    ClaimStep,
    Conversation,
    IdentityKind,
)
from storage.outbox import Handlers, emit
from storage.repositories import ChannelRepository
from storage.types import utcnow

__all__ = [
    "TRANSITIONS",
    "ClaimDetail",
    "ClaimFilters",
    "ClaimIn",
    "FiledClaim",
    "Reason",
    "add_step",
    "change_status",
    "claim_handlers",
    "complete_step",
    "contact_claims",
    "default_reasons",
    "file_claim",
    "format_number",
    "get_claim",
    "list_claims",
    "rate_claim",
    "update_claim",
]

MAX_DESCRIPTION = 4000
MAX_ORDER_REF = 100
MAX_STEP = 10_000
MAX_LIST = 200
DEFAULT_DUE_DAYS = 10  # the term a seller has to answer a consumer's claim in Russia

# Which status may follow which: rejected and closed are final.
TRANSITIONS: dict[str, frozenset[str]] = {
    ClaimStatus.REGISTERED: frozenset({"in_review", "investigating", "rejected"}),
    ClaimStatus.IN_REVIEW: frozenset({"investigating", "resolved", "rejected"}),
    ClaimStatus.INVESTIGATING: frozenset({"in_review", "resolved", "rejected"}),
    ClaimStatus.RESOLVED: frozenset({"closed", "investigating"}),
    ClaimStatus.CLOSED: frozenset(),
    ClaimStatus.REJECTED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    ru: str
    en: str

    def label(self, lang: str) -> str:
        return self.en if lang == "en" else self.ru


def default_reasons() -> list[Reason]:
    """quality, delivery, billing, service, other."""
    return [Reason(code, labels["ru"], labels["en"]) for code, labels in DEFAULT_REASONS.items()]


def format_number(year: int, sequence: int) -> str:
    return f"CLM-{year}-{sequence:06d}"


@dataclass(slots=True)
class ClaimIn:
    """A claim as a channel collected it. `external_id` makes filing idempotent."""

    channel_id: int
    channel_kind: str
    external_id: str
    reason: str
    description: str
    identities: list[IdentityIn] = field(default_factory=list)
    order_ref: str | None = None
    phone: str | None = None
    email: str | None = None
    contact_name: str | None = None
    language: str = "ru"
    attachments: list[AttachmentIn] = field(default_factory=list)
    reasons: Sequence[Reason] = field(default_factory=default_reasons)
    reason_label: str | None = None
    due_days: int = DEFAULT_DUE_DAYS
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FiledClaim:
    claim: Claim
    ingest: IngestResult | None
    duplicate: bool = False


def _clean(value: str | None, limit: int) -> str | None:
    value = (value or "").replace("\x00", "").strip()
    if len(value) > limit:
        raise InvalidInput(f"longer than {limit} characters", code="too_long")
    return value or None


async def file_claim(
    session: AsyncSession,
    claim: ClaimIn,
    config: IntakeConfig = IntakeConfig(),
    *,
    now: datetime | None = None,
) -> FiledClaim:
    """File a claim through intake (a conversation and a lead of kind `claim`) and give it
    the next number of the year; never commits.

    The same (channel, external id) returns the claim filed the first time.
    Raises InvalidInput for an unknown reason, an empty description, a bad phone or email.
    """
    repo = ClaimRepository(session)
    seen = await repo.by_external_id(claim.channel_id, claim.external_id)
    if seen is not None:
        return FiledClaim(seen, None, duplicate=True)
    reasons = {r.code: r for r in claim.reasons}
    if claim.reason not in reasons:
        raise InvalidInput(f"unknown reason {claim.reason!r}", code="invalid_reason")
    description = _clean(claim.description, MAX_DESCRIPTION)
    if not description:
        raise InvalidInput("the description is empty", code="empty_description")
    order_ref = _clean(claim.order_ref, MAX_ORDER_REF)
    lang = lang_of(claim.language)
    identities = list(claim.identities)
    phone = normalize_phone(claim.phone, config.default_region) if claim.phone else None
    email = normalize_email(claim.email) if claim.email else None
    if phone:
        identities.append(IdentityIn(IdentityKind.PHONE, phone))
    if email:
        identities.append(IdentityIn(IdentityKind.EMAIL, email))
    if not identities:
        raise InvalidInput("a claim needs a way to reach the client", code="no_contact")

    now = now or utcnow()
    sequence = await repo.next_sequence(now.year)
    number = format_number(now.year, sequence)
    reason_label = claim.reason_label or reasons[claim.reason].label(lang)
    lines = [
        f"{claim_text(lang, 'reason')}: {reason_label}",
    ]
    if order_ref:
        lines.append(f"{claim_text(lang, 'order')}: {order_ref}")
    if phone:
        lines.append(f"{claim_text(lang, 'phone')}: {phone}")
    lines += ["", description]
    result = await ingest(
        session,
        InboundMessage(
            channel_id=claim.channel_id,
            channel_kind=claim.channel_kind,
            external_id=f"claim:{claim.external_id}",
            identities=identities,
            text="\n".join(lines),
            subject=claim_text(lang, "filed_title", number=number, reason=reason_label),
            contact_name=claim.contact_name,
            contact_language=lang,
            # Each claim is its own conversation, worked apart from the client's chat.
            thread_key=f"claim:{number}",
            attachments=claim.attachments,
            meta={**claim.meta, "claim": {"number": number, "reason": claim.reason}},
            form_fields={
                k: v
                for k, v in (
                    ("claim_number", number),
                    ("reason", claim.reason),
                    ("order_ref", order_ref),
                    ("phone", phone),
                    ("email", email),
                )
                if v
            },
            received_at=now,
            lead_kind="claim",
        ),
        config,
    )
    filed = Claim(
        number=number,
        year=now.year,
        sequence=sequence,
        channel_id=claim.channel_id,
        external_id=claim.external_id,
        contact_id=result.contact_id,
        conversation_id=result.conversation_id,
        lead_id=result.lead_id,
        message_id=result.message_id,
        status=ClaimStatus.REGISTERED,
        reason=claim.reason,
        order_ref=order_ref,
        description=description,
        phone=phone,
        email=email,
        language=lang,
        due_at=now + timedelta(days=claim.due_days) if claim.due_days > 0 else None,
        status_changed_at=now,
    )
    session.add(filed)
    await session.flush()
    session.add(
        ClaimStep(claim_id=filed.id, kind="status", text="", to_status=ClaimStatus.REGISTERED)
    )
    emit(session, ClaimFiled(**_refs(filed)))
    await session.flush()
    return FiledClaim(filed, result)


def _refs(claim: Claim) -> dict[str, Any]:
    """The claim as its events carry it (the fields of storage.events.ClaimEvent)."""
    return {
        "claim_id": claim.id,
        "number": claim.number,
        "contact_id": claim.contact_id,
        "conversation_id": claim.conversation_id,
        "channel_id": claim.channel_id,
    }


async def _for_update(session: AsyncSession, claim_id: int) -> Claim:
    claim = await ClaimRepository(session).for_update(claim_id)
    if claim is None:
        raise NotFound(f"no claim {claim_id}")
    return claim


async def change_status(
    session: AsyncSession,
    claim_id: int,
    status: str,
    *,
    manager_id: int | None,
    comment: str | None = None,
    resolution: str | None = None,
    notify: bool = True,
    now: datetime | None = None,
) -> Claim:
    """Move the claim to `status` if its current one allows it (TRANSITIONS): a history
    step and a `claim.status_changed` event (whose handler notifies the client).

    Conflict(transition_not_allowed) otherwise; resolving or rejecting needs a resolution.
    """
    if status not in TRANSITIONS:
        raise InvalidInput(f"unknown status {status!r}", code="invalid_status")
    claim = await _for_update(session, claim_id)
    if status not in TRANSITIONS[claim.status]:
        raise Conflict(
            f"a {claim.status} claim cannot become {status}", code="transition_not_allowed"
        )
    comment = _clean(comment, MAX_STEP)
    resolution = _clean(resolution, MAX_STEP)
    if resolution:
        claim.resolution = resolution
    if status in (ClaimStatus.RESOLVED, ClaimStatus.REJECTED) and not claim.resolution:
        raise InvalidInput("say how the claim was resolved", code="resolution_required")
    now = now or utcnow()
    previous = claim.status
    claim.status = status
    claim.status_changed_at = now
    if status == ClaimStatus.RESOLVED:
        claim.resolved_at = now
    if status in (ClaimStatus.CLOSED, ClaimStatus.REJECTED):
        claim.closed_at = now
    session.add(
        ClaimStep(
            claim_id=claim.id,
            kind="status",
            author_manager_id=manager_id,
            text=comment or "",
            from_status=previous,
            to_status=status,
        )
    )
    emit(
        session,
        ClaimStatusChanged(
            **_refs(claim),
            from_=previous,
            to=status,
            manager_id=manager_id,
            comment=comment,
            notify=notify,
        ),
    )
    await session.flush()
    return claim


async def add_step(
    session: AsyncSession, claim_id: int, text: str, *, manager_id: int | None
) -> ClaimStep:
    """An investigation step: who did what, when (internal; the client is not told)."""
    body = _clean(text, MAX_STEP)
    if not body:
        raise InvalidInput("the step is empty", code="empty_step")
    claim = await _for_update(session, claim_id)
    if claim.status in (ClaimStatus.CLOSED, ClaimStatus.REJECTED):
        raise Conflict(f"the claim is {claim.status}", code="claim_closed")
    step = ClaimStep(claim_id=claim.id, kind="step", author_manager_id=manager_id, text=body)
    session.add(step)
    await session.flush()
    emit(session, ClaimStepAdded(**_refs(claim), step_id=step.id, manager_id=manager_id))
    return step


async def complete_step(
    session: AsyncSession,
    claim_id: int,
    step_id: int,
    *,
    manager_id: int | None,
    now: datetime | None = None,
) -> ClaimStep:
    """Tick off a step of the investigation plan (who, when). Ticking a done step again
    changes nothing; a status entry of the history is not a step (NotFound)."""
    claim = await _for_update(session, claim_id)
    step = await ClaimRepository(session).step_for_update(claim.id, step_id)
    if step is None or step.kind != "step":
        raise NotFound(f"no step {step_id} of claim {claim_id}")
    if step.done_at is not None:
        return step
    if claim.status in (ClaimStatus.CLOSED, ClaimStatus.REJECTED):
        raise Conflict(f"the claim is {claim.status}", code="claim_closed")
    step.done_at = now or utcnow()
    step.done_by_id = manager_id
    emit(session, ClaimStepDone(**_refs(claim), step_id=step.id, manager_id=manager_id))
    await session.flush()
    return step


_UNSET: Any = object()


async def update_claim(
    session: AsyncSession,
    claim_id: int,
    *,
    manager_id: int | None = _UNSET,
    due_at: datetime | None = _UNSET,
    resolution: str | None = _UNSET,
    actor_id: int | None = None,
) -> Claim:
    """Set the responsible manager, the due date or the resolution (given fields only)."""
    claim = await _for_update(session, claim_id)
    changed: dict[str, Any] = {}
    if manager_id is not _UNSET and manager_id != claim.manager_id:
        if manager_id is not None and not await ClaimRepository(session).manager_exists(manager_id):
            raise InvalidInput(f"no manager {manager_id}", code="unknown_manager")
        claim.manager_id = manager_id
        changed["manager_id"] = manager_id
    if due_at is not _UNSET:
        claim.due_at = due_at
        changed["due_at"] = due_at.isoformat() if due_at else None
    if resolution is not _UNSET:
        claim.resolution = _clean(resolution, MAX_STEP)
        changed["resolution"] = True
    if changed:
        emit(session, ClaimUpdated(**_refs(claim), changed=changed, by=actor_id))
    await session.flush()
    return claim


async def rate_claim(
    session: AsyncSession,
    claim_id: int,
    *,
    contact_id: int | None,
    rating: int | None = None,
    comment: str | None = None,
    now: datetime | None = None,
) -> Claim:
    """The client's rating (1-5) of a resolved claim, and an optional comment.

    Only the claim's own contact may rate it (when `contact_id` is given), and only
    once: a second rating raises Conflict `already_rated`.
    """
    claim = await _for_update(session, claim_id)
    if contact_id is not None and claim.contact_id != contact_id:
        raise NotFound(f"no claim {claim_id}")
    if claim.status not in (ClaimStatus.RESOLVED, ClaimStatus.CLOSED):
        raise Conflict("only a resolved claim can be rated", code="not_resolved")
    if rating is not None:
        if not 1 <= rating <= 5:
            raise InvalidInput("the rating is 1 to 5", code="invalid_rating")
        if claim.rating is not None:
            raise Conflict(f"the claim was rated {claim.rating} already", code="already_rated")
        claim.rating = rating
        claim.rated_at = now or utcnow()
    if comment is not None:
        claim.rating_comment = _clean(comment, MAX_STEP)
    emit(session, ClaimRated(**_refs(claim), rating=claim.rating))
    await session.flush()
    return claim


# Reading


@dataclass(frozen=True, slots=True)
class ClaimDetail:
    claim: Claim
    steps: Sequence[ClaimStep]
    attachments: Sequence[Attachment]


async def get_claim(
    session: AsyncSession, claim: int | str, *, viewer: Viewer | None = None
) -> ClaimDetail:
    """A claim by id or number, with its history and attachments; NotFound when `viewer`
    (if given) may not see it (repository.claims_visible_to)."""
    repo = ClaimRepository(session)
    found = await repo.by_number(claim) if isinstance(claim, str) else await repo.get(claim)
    if found is None or not await repo.visible(found, viewer):
        raise NotFound(f"no claim {claim}")
    return ClaimDetail(found, await repo.steps(found.id), await repo.attachments(found.message_id))


async def list_claims(
    session: AsyncSession,
    filters: ClaimFilters,
    *,
    cursor: str | None = None,
    limit: int = 50,
    viewer: Viewer | None = None,
) -> Page[Claim]:
    """Newest first, keyset-paginated like the lead journal; only what `viewer` (if given)
    may see."""
    if not 1 <= limit <= MAX_LIST:
        raise InvalidInput(f"limit must be within 1..{MAX_LIST}", code="invalid_limit")
    for status in filters.statuses:
        if status not in TRANSITIONS:
            raise InvalidInput(f"unknown status {status!r}", code="invalid_status")
    after = decode_cursor("claim", cursor) if cursor else None
    rows = await ClaimRepository(session).list(
        filters, after_id=after, limit=limit + 1, viewer=viewer
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor("claim", rows[-1].id) if more else None)


async def contact_claims(session: AsyncSession, contact_id: int, limit: int = 10) -> list[Claim]:
    """The contact's newest claims (what a client sees under "my claims")."""
    return list(await ClaimRepository(session).of_contact(contact_id, limit))


# Client notifications


def claim_handlers(deliverable_kinds: Collection[str]) -> Handlers:
    """Outbox handlers: a status change queues a notice to the client in their language
    (through the claim's conversation, when its channel can send); after "resolved" the
    notice asks for a rating."""

    async def status_changed(
        session: AsyncSession, event: ClaimStatusChanged, event_id: int
    ) -> None:
        if not event.notify or event.conversation_id is None:
            return
        repo = ClaimRepository(session)
        claim = await repo.get(event.claim_id)
        conversation = await session.get(Conversation, event.conversation_id)
        if claim is None or conversation is None:
            return
        channel = await ChannelRepository(session).get(conversation.channel_id)
        if channel is None or channel.kind not in deliverable_kinds:
            return  # a web-form claim: the client follows it by its number
        contact = await repo.contact(claim.contact_id)
        lang = lang_of(contact.language if contact else None, claim.language)
        status = event.to
        ask_rating = status == ClaimStatus.RESOLVED and claim.rating is None
        external_id = f"claim-notice:{event_id}"
        if await IntakeRepository(session).find_message(conversation.channel_id, external_id):
            return  # the outbox ran this event before (at least once): noticed already
        notice = await add_system_message(
            session,
            conversation.id,
            text=status_notice(
                lang,
                claim.number,
                status,
                resolution=claim.resolution,
                comment=event.comment,
                ask_rating=ask_rating,
            ),
            meta={
                "kind": "claim_status",
                "claim_id": claim.id,
                "status": status,
                "language": lang,
                "ask_rating": ask_rating,
            },
        )
        notice.external_id = external_id

    return {ClaimStatusChanged: [status_changed]}
