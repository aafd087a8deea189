"""Acting on many conversations at once from the workspace's list: assign, close, snooze.

One request, one transaction; each conversation is acted on in its own savepoint with the
same checks as one at a time (visible to the viewer, theirs to reassign, not closed), so a
refused one leaves the others done. The answer says what was done and what was refused, and
why. Services flush; they never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from intake.conversations import close_conversation
from intake.inbox import visible_conversation
from intake.states import snooze
from intake.visibility import Viewer
from routing.admin.conversations import assign_as
from routing.admin.repository import RoutingAdminRepository
from routing.engine import RoutingEngine
from storage.errors import HubError, InvalidInput

BULK_ACTIONS = ("assign", "close", "snooze")
MAX_BULK = 200


@dataclass(frozen=True, slots=True)
class BulkResult:
    """The action, the ids acted on, and the refused ones with the refusal's code."""

    action: str
    done: list[int] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)


async def bulk_act(
    session: AsyncSession,
    engine: RoutingEngine,
    viewer: Viewer,
    conversation_ids: Sequence[int],
    action: str,
    *,
    now: datetime,
    manager_id: int | None = None,
    until: datetime | None = None,
) -> BulkResult:
    """`action` (`assign` to `manager_id`, `close`, `snooze` until `until`) on each of
    `conversation_ids` (repeats count once, at most MAX_BULK), each checked as if alone.

    InvalidInput when the request itself is wrong (no ids, too many, an unknown action, a
    missing manager or time); a refusal of one conversation is in the result instead.
    """
    ids = list(dict.fromkeys(conversation_ids))
    if not ids:
        raise InvalidInput("no conversation is selected", code="nothing_selected")
    if len(ids) > MAX_BULK:
        raise InvalidInput(f"at most {MAX_BULK} conversations at once", code="too_many")
    if action not in BULK_ACTIONS:
        raise InvalidInput(f"no bulk action {action!r}", code="invalid_action")
    if action == "assign" and manager_id is None:
        raise InvalidInput("assign to whom?", code="no_manager")
    if action == "snooze" and until is None:
        raise InvalidInput("snooze until when?", code="invalid_snooze")
    result = BulkResult(action)
    for conversation_id in ids:
        try:
            async with session.begin_nested():
                await _act(session, engine, viewer, conversation_id, action, now, manager_id, until)
        except HubError as exc:
            result.refused.append((conversation_id, exc.code))
        else:
            result.done.append(conversation_id)
    return result


async def bulk_candidates(session: AsyncSession, viewer: Viewer) -> list[tuple[int, str]]:
    """The managers the bulk bar offers to assign to: an administrator's, every active one;
    a manager's, the active members of their queues (each conversation is checked again)."""
    repo = RoutingAdminRepository(session)
    if viewer.is_admin:
        return [(m.id, m.name) for m in await repo.managers() if m.is_active]
    if viewer.manager_id is None:
        return []
    found: dict[int, str] = {}
    for queue_id in await repo.queues_of(viewer.manager_id):
        for _member, manager in await repo.members(queue_id):
            if manager.is_active:
                found[manager.id] = manager.name
    return sorted(found.items(), key=lambda item: (item[1], item[0]))


async def _act(
    session: AsyncSession,
    engine: RoutingEngine,
    viewer: Viewer,
    conversation_id: int,
    action: str,
    now: datetime,
    manager_id: int | None,
    until: datetime | None,
) -> None:
    if action == "assign":
        assert manager_id is not None
        await assign_as(session, engine, viewer, conversation_id, manager_id)
        return
    await visible_conversation(session, viewer, conversation_id)
    if action == "close":
        await close_conversation(session, conversation_id, manager_id=viewer.manager_id, now=now)
    else:
        assert until is not None
        await snooze(session, conversation_id, until=until, manager_id=viewer.manager_id, now=now)
