"""Who may take a conversation, and whom each strategy picks. Pure functions, no I/O.

The engine loads candidates under locks and asks these functions; the property
tests drive them directly. Every refusal carries its reason, so each decision
can be explained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from storage.models import Presence, Strategy

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A queue member as routing sees them at one moment."""

    manager_id: int
    position: int
    is_active: bool
    presence: Presence  # effective: a lapsed heartbeat reads as offline
    absent: bool  # on vacation or another recorded absence
    in_hours: bool  # inside their own working hours
    open_count: int
    capacity: int
    languages: tuple[str, ...] = ()
    last_assigned_at: datetime | None = None


def refusal(candidate: Candidate, *, language: str | None, respect_hours: bool) -> str | None:
    """Why this member cannot take a new conversation now, or None if they can."""
    if not candidate.is_active:
        return "inactive"
    if candidate.absent:
        return "absent"
    if candidate.presence != Presence.ONLINE:
        return str(candidate.presence.value)
    if respect_hours and not candidate.in_hours:
        return "outside working hours"
    if candidate.open_count >= candidate.capacity:
        return f"at capacity {candidate.open_count}/{candidate.capacity}"
    if language and candidate.languages and language not in candidate.languages:
        return f"does not speak {language}"
    return None


@dataclass(frozen=True, slots=True)
class Choice:
    manager_id: int | None
    explanation: str
    refused: dict[int, str]


def choose(
    strategy: Strategy,
    candidates: Sequence[Candidate],
    *,
    language: str | None = None,
    respect_hours: bool = True,
    after_manager_id: int | None = None,
) -> Choice:
    """The member `strategy` picks among the eligible ones (None if nobody may take it).

    `after_manager_id` serves strict order's forwarding: the search starts with the
    member after that one, round the list, and never returns that same member.
    """
    refused: dict[int, str] = {}
    eligible: list[Candidate] = []
    for candidate in candidates:
        reason = refusal(candidate, language=language, respect_hours=respect_hours)
        if reason is None and candidate.manager_id != after_manager_id:
            eligible.append(candidate)
        elif reason is not None:
            refused[candidate.manager_id] = reason
    if not eligible:
        return Choice(None, _nobody(candidates, refused), refused)

    if strategy is Strategy.STRICT_ORDER:
        ordered = sorted(candidates, key=lambda c: (c.position, c.manager_id))
        start = 0
        if after_manager_id is not None:
            ids = [c.manager_id for c in ordered]
            if after_manager_id in ids:
                start = ids.index(after_manager_id) + 1
        rotated = ordered[start:] + ordered[:start]
        allowed = {c.manager_id for c in eligible}
        picked = next(c for c in rotated if c.manager_id in allowed)
        how = "next in order" if after_manager_id is not None else "first in order"
        return Choice(
            picked.manager_id, f"strict order: {how} (position {picked.position})", refused
        )
    if strategy is Strategy.LEAST_LOADED:
        picked = min(
            eligible,
            key=lambda c: (
                c.open_count / max(c.capacity, 1),
                c.open_count,
                c.last_assigned_at or EPOCH,
                c.position,
                c.manager_id,
            ),
        )
        return Choice(
            picked.manager_id,
            f"least loaded: {picked.open_count}/{picked.capacity} open",
            refused,
        )
    # Evenly (and the pick among everybody's takers): the least recently assigned.
    picked = min(eligible, key=lambda c: (c.last_assigned_at or EPOCH, c.position, c.manager_id))
    when = picked.last_assigned_at.isoformat() if picked.last_assigned_at else "never"
    return Choice(picked.manager_id, f"evenly: least recently assigned ({when})", refused)


def eligible_ids(
    candidates: Sequence[Candidate], *, language: str | None, respect_hours: bool
) -> list[int]:
    return [
        c.manager_id
        for c in candidates
        if refusal(c, language=language, respect_hours=respect_hours) is None
    ]


def _nobody(candidates: Sequence[Candidate], refused: dict[int, str]) -> str:
    if not candidates:
        return "the queue has no members"
    reasons = sorted({reason for reason in refused.values()})
    return "nobody can take it: " + "; ".join(
        f"{sum(1 for r in refused.values() if r == reason)} {reason}" for reason in reasons
    )
