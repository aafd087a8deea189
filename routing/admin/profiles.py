"""Managers' routing profiles, their absences and their presence.

Services validate, change rows and flush; they never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    model_validator,
)
from sqlalchemy.ext.asyncio import AsyncSession

from intake.sessions import end_manager_sessions
from routing.admin.repository import RoutingAdminRepository
from routing.calendar import WorkingHours
from routing.engine import effective_presence
from routing.presence import HEARTBEAT_TTL_SECONDS, set_presence
from storage.errors import InvalidInput, NotFound
from storage.events import CapacityChanged
from storage.models import Manager, ManagerAbsence, Presence
from storage.outbox import emit


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


Language = Annotated[
    str,
    BeforeValidator(_lower),
    StringConstraints(pattern=r"^[a-z]{2,3}(-[a-z0-9]{2,4})?$"),
]

# -- inputs ------------------------------------------------------------------------------


class ProfileChanges(BaseModel):
    """A manager's routing profile; `working_hours: null` removes the limits."""

    model_config = ConfigDict(extra="forbid")

    capacity: int | None = Field(default=None, ge=0, le=1000)
    languages: list[Language] | None = Field(default=None, max_length=20, examples=[["ru", "en"]])
    working_hours: WorkingHours | None = None
    is_active: StrictBool | None = None
    notify_by_email: StrictBool | None = None


class AbsenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    starts_at: AwareDatetime
    ends_at: AwareDatetime
    reason: str = Field(default="vacation", min_length=1, max_length=200)

    @model_validator(mode="after")
    def _ordered(self) -> AbsenceIn:
        if self.starts_at >= self.ends_at:
            raise ValueError("starts_at must be before ends_at")
        return self


class PresenceIn(BaseModel):
    """Set presence; repeat the same call as a heartbeat (it lapses to offline after the TTL)."""

    model_config = ConfigDict(extra="forbid")

    presence: Presence
    ttl_seconds: int | None = Field(
        default=None, ge=10, le=86400, description=f"default {HEARTBEAT_TTL_SECONDS}"
    )


# -- views -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProfileView:
    manager: Manager
    presence: Presence
    open_count: int
    queue_ids: list[int]
    absent_now: bool


# -- managers: routing profile, absences, presence ---------------------------------------


async def _manager(repo: RoutingAdminRepository, manager_id: int) -> Manager:
    manager = await repo.manager(manager_id)
    if manager is None:
        raise NotFound(f"no manager {manager_id}")
    return manager


async def get_profile(session: AsyncSession, manager_id: int, now: datetime) -> ProfileView:
    repo = RoutingAdminRepository(session)
    manager = await _manager(repo, manager_id)
    return ProfileView(
        manager=manager,
        presence=effective_presence(manager, now),
        open_count=await repo.open_count(manager_id),
        queue_ids=await repo.queues_of(manager_id),
        absent_now=await repo.absent_now(manager_id, now),
    )


async def update_profile(
    session: AsyncSession, manager_id: int, changes: ProfileChanges, now: datetime
) -> ProfileView:
    repo = RoutingAdminRepository(session)
    manager = await _manager(repo, manager_id)
    given = changes.model_fields_set
    for name in ("capacity", "is_active", "notify_by_email", "languages"):
        if name in given:
            value = getattr(changes, name)
            if value is None:
                raise InvalidInput(f"{name} may not be null")
            if name == "languages":
                value = list(dict.fromkeys(value))
            setattr(manager, name, value)
    if "working_hours" in given:
        hours = changes.working_hours
        manager.working_hours = hours.model_dump(mode="json") if hours is not None else None
    await session.flush()
    if "is_active" in given and not manager.is_active:
        # Signed out for good: reactivation must not revive a stolen or forgotten cookie.
        await end_manager_sessions(session, manager_id)
    if given & {"capacity", "is_active", "languages", "working_hours"}:
        # More room or a wider reach: what waits in the manager's queues may fit now.
        emit(session, CapacityChanged(manager_id=manager_id))
    return await get_profile(session, manager_id, now)


async def list_absences(session: AsyncSession, manager_id: int) -> list[ManagerAbsence]:
    repo = RoutingAdminRepository(session)
    await _manager(repo, manager_id)
    return list(await repo.absences(manager_id))


async def add_absence(session: AsyncSession, manager_id: int, absence: AbsenceIn) -> ManagerAbsence:
    repo = RoutingAdminRepository(session)
    await _manager(repo, manager_id)
    row = ManagerAbsence(
        manager_id=manager_id,
        starts_at=absence.starts_at,
        ends_at=absence.ends_at,
        reason=absence.reason,
    )
    session.add(row)
    await session.flush()
    return row


async def delete_absence(session: AsyncSession, manager_id: int, absence_id: int) -> None:
    repo = RoutingAdminRepository(session)
    row = await repo.absence(absence_id)
    if row is None or row.manager_id != manager_id:
        raise NotFound(f"no absence {absence_id} of manager {manager_id}")
    await session.delete(row)
    await session.flush()


async def change_presence(
    session: AsyncSession, manager_id: int, change: PresenceIn, now: datetime
) -> tuple[Manager, Presence]:
    manager = await set_presence(
        session,
        manager_id,
        change.presence,
        now=now,
        ttl_seconds=change.ttl_seconds or HEARTBEAT_TTL_SECONDS,
    )
    await session.flush()
    return manager, effective_presence(manager, now)


async def presence_board(session: AsyncSession, now: datetime) -> list[tuple[Manager, Presence]]:
    """Every manager with their effective presence (a lapsed heartbeat reads offline)."""
    managers = await RoutingAdminRepository(session).managers()
    return [(manager, effective_presence(manager, now)) for manager in managers]
