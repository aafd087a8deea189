"""Queues and their members, and the queue a channel routes to by default.

Services validate, change rows and flush; they never commit. The inputs are
pydantic models so that the API and the CLI validate alike; a check that needs
the database (an unknown queue or manager) raises `InvalidInput` (422).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    ValidationError,
    model_validator,
)
from sqlalchemy.ext.asyncio import AsyncSession

from routing.admin.repository import RoutingAdminRepository
from routing.calendar import WorkingHours
from storage.errors import Conflict, InvalidInput, NotFound
from storage.events import QueueChanged
from storage.models import Channel, Manager, Priority, Queue, QueueMember, Strategy
from storage.outbox import emit
from storage.repositories import ChannelRepository
from storage.types import DbId

FORWARD_MIN_SECONDS = 60
FORWARD_MAX_SECONDS = 12 * 3600
MAX_SLA_SECONDS = 365 * 24 * 3600

QueueKey = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$"),
]

ManagerId = DbId
QueueId = DbId


def _invalid(exc: ValidationError) -> InvalidInput:
    return InvalidInput(
        [
            {"loc": list(error.get("loc", ())), "msg": error.get("msg"), "type": error.get("type")}
            for error in exc.errors()
        ]
    )


# -- inputs ------------------------------------------------------------------------------


class SlaTargets(BaseModel):
    """Seconds of working time (the queue's hours) until the answer is due."""

    model_config = ConfigDict(extra="forbid")

    first_response: int | None = Field(default=None, gt=0, le=MAX_SLA_SECONDS)
    next_response: int | None = Field(default=None, gt=0, le=MAX_SLA_SECONDS)


class QueueSettings(BaseModel):
    """A queue: its members take conversations by `strategy`.

    Strict order needs `forward_after_seconds` (60..43200): an unanswered
    conversation moves on to the next member after that long.
    """

    model_config = ConfigDict(extra="forbid")

    key: QueueKey = Field(examples=["sales"])
    name: str = Field(min_length=1, max_length=200, examples=["Продажи"])
    strategy: Strategy = Strategy.EVENLY
    forward_after_seconds: int | None = Field(
        default=None, ge=FORWARD_MIN_SECONDS, le=FORWARD_MAX_SECONDS
    )
    supervisor_id: ManagerId | None = None
    sla: dict[Priority, SlaTargets] = Field(
        default_factory=dict,
        description="Targets by priority; `normal` also covers priorities not listed",
        examples=[{"normal": {"first_response": 3600, "next_response": 7200}}],
    )
    working_hours: WorkingHours | None = Field(
        default=None, description="The queue's hours (SLA clocks run only inside); null: 24/7"
    )
    respect_member_hours: StrictBool = True
    sla_breach_action: Literal["escalate", "forward"] = "escalate"
    retry_seconds: int = Field(default=300, ge=10, le=86400)
    is_active: StrictBool = True

    @model_validator(mode="after")
    def _strict_order_forwards(self) -> QueueSettings:
        if self.strategy is Strategy.STRICT_ORDER and self.forward_after_seconds is None:
            raise ValueError(
                "strict order needs forward_after_seconds "
                f"({FORWARD_MIN_SECONDS}..{FORWARD_MAX_SECONDS})"
            )
        if self.working_hours is not None and not any(self.working_hours.week.values()):
            raise ValueError("working_hours have no working time in the week")
        return self

    def columns(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "strategy": self.strategy.value,
            "forward_after_seconds": self.forward_after_seconds,
            "supervisor_id": self.supervisor_id,
            "sla": {
                priority.value: targets.model_dump(exclude_none=True)
                for priority, targets in self.sla.items()
                if targets.model_dump(exclude_none=True)
            },
            "working_hours": self.working_hours.model_dump(mode="json")
            if self.working_hours is not None
            else None,
            "respect_member_hours": self.respect_member_hours,
            "sla_breach_action": self.sla_breach_action,
            "retry_seconds": self.retry_seconds,
            "is_active": self.is_active,
        }


class QueueChanges(BaseModel):
    """The fields to change; the result is validated as a whole queue."""

    model_config = ConfigDict(extra="forbid")

    key: QueueKey | None = None
    name: str | None = Field(default=None, min_length=1, max_length=200)
    strategy: Strategy | None = None
    forward_after_seconds: int | None = Field(
        default=None, ge=FORWARD_MIN_SECONDS, le=FORWARD_MAX_SECONDS
    )
    supervisor_id: ManagerId | None = None
    sla: dict[Priority, SlaTargets] | None = None
    working_hours: WorkingHours | None = None
    respect_member_hours: StrictBool | None = None
    sla_breach_action: Literal["escalate", "forward"] | None = None
    retry_seconds: int | None = Field(default=None, ge=10, le=86400)
    is_active: StrictBool | None = None


# -- views -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueView:
    queue: Queue
    member_ids: list[int]


# -- queues ------------------------------------------------------------------------------


async def list_queues(session: AsyncSession) -> list[QueueView]:
    repo = RoutingAdminRepository(session)
    members = await repo.member_ids()
    return [QueueView(q, members.get(q.id, [])) for q in await repo.queues()]


async def _queue(repo: RoutingAdminRepository, queue_id: int) -> Queue:
    queue = await repo.queue(queue_id)
    if queue is None:
        raise NotFound(f"no queue {queue_id}")
    return queue


async def get_queue(session: AsyncSession, queue_id: int) -> QueueView:
    repo = RoutingAdminRepository(session)
    queue = await _queue(repo, queue_id)
    return QueueView(queue, (await repo.member_ids([queue.id])).get(queue.id, []))


async def _check_queue_refs(
    repo: RoutingAdminRepository, settings: QueueSettings, queue_id: int | None
) -> None:
    other = await repo.queue_by_key(settings.key)
    if other is not None and other.id != queue_id:
        raise Conflict(f"a queue with key {settings.key!r} exists", code="duplicate_key")
    if settings.supervisor_id is not None and not await repo.existing_manager_ids(
        [settings.supervisor_id]
    ):
        raise InvalidInput(f"no manager {settings.supervisor_id}", code="unknown_manager")


async def create_queue(session: AsyncSession, settings: QueueSettings) -> QueueView:
    repo = RoutingAdminRepository(session)
    await _check_queue_refs(repo, settings, None)
    queue = Queue(**settings.columns())
    session.add(queue)
    await session.flush()
    return QueueView(queue, [])


def _queue_fields(queue: Queue) -> dict[str, Any]:
    return {
        "key": queue.key,
        "name": queue.name,
        "strategy": queue.strategy,
        "forward_after_seconds": queue.forward_after_seconds,
        "supervisor_id": queue.supervisor_id,
        "sla": queue.sla or {},
        "working_hours": queue.working_hours,
        "respect_member_hours": queue.respect_member_hours,
        "sla_breach_action": queue.sla_breach_action,
        "retry_seconds": queue.retry_seconds,
        "is_active": queue.is_active,
    }


async def update_queue(session: AsyncSession, queue_id: int, changes: QueueChanges) -> QueueView:
    repo = RoutingAdminRepository(session)
    queue = await _queue(repo, queue_id)
    merged = _queue_fields(queue) | changes.model_dump(exclude_unset=True, mode="json")
    try:
        settings = QueueSettings.model_validate(merged)
    except ValidationError as exc:
        raise _invalid(exc) from None
    await _check_queue_refs(repo, settings, queue.id)
    for name, value in settings.columns().items():
        setattr(queue, name, value)
    await session.flush()
    return QueueView(queue, (await repo.member_ids([queue.id])).get(queue.id, []))


async def delete_queue(session: AsyncSession, queue_id: int) -> None:
    """Delete a queue; refused while a rule sends conversations to it."""
    repo = RoutingAdminRepository(session)
    queue = await _queue(repo, queue_id)
    using = [
        rule.id for rule in await repo.rules() if (rule.actions or {}).get("queue_id") == queue.id
    ]
    if using:
        raise Conflict(
            {"message": f"rules {using} send conversations to this queue", "rule_ids": using},
            code="queue_in_use",
        )
    await session.delete(queue)
    await session.flush()


async def list_members(session: AsyncSession, queue_id: int) -> list[tuple[QueueMember, Manager]]:
    repo = RoutingAdminRepository(session)
    await _queue(repo, queue_id)
    return list(await repo.members(queue_id))


async def _check_managers(repo: RoutingAdminRepository, manager_ids: Sequence[int]) -> None:
    known = await repo.existing_manager_ids(manager_ids)
    unknown = sorted(set(manager_ids) - known)
    if unknown:
        raise InvalidInput(
            {"message": f"no managers {unknown}", "manager_ids": unknown}, code="unknown_manager"
        )


async def replace_members(
    session: AsyncSession, queue_id: int, manager_ids: Sequence[int]
) -> list[tuple[QueueMember, Manager]]:
    """The queue's members become exactly `manager_ids`, positioned in that order."""
    repo = RoutingAdminRepository(session)
    await _queue(repo, queue_id)
    if len(set(manager_ids)) != len(manager_ids):
        raise InvalidInput("a manager is listed twice", code="duplicate_member")
    await _check_managers(repo, manager_ids)
    await repo.clear_members(queue_id)
    await session.flush()
    for position, manager_id in enumerate(manager_ids):
        session.add(QueueMember(queue_id=queue_id, manager_id=manager_id, position=position))
    await session.flush()
    emit(session, QueueChanged(queue_id=queue_id))
    return list(await repo.members(queue_id))


async def add_member(
    session: AsyncSession, queue_id: int, manager_id: int
) -> list[tuple[QueueMember, Manager]]:
    """Append a member at the end of the queue's order."""
    repo = RoutingAdminRepository(session)
    await _queue(repo, queue_id)
    await _check_managers(repo, [manager_id])
    if await repo.member(queue_id, manager_id) is not None:
        raise Conflict(f"manager {manager_id} is already a member", code="already_member")
    position = await repo.next_member_position(queue_id)
    session.add(QueueMember(queue_id=queue_id, manager_id=manager_id, position=position))
    await session.flush()
    emit(session, QueueChanged(queue_id=queue_id))
    return list(await repo.members(queue_id))


async def remove_member(session: AsyncSession, queue_id: int, manager_id: int) -> None:
    repo = RoutingAdminRepository(session)
    await _queue(repo, queue_id)
    member = await repo.member(queue_id, manager_id)
    if member is None:
        raise NotFound(f"manager {manager_id} is not a member of queue {queue_id}")
    await session.delete(member)
    await session.flush()


async def set_default_queue(
    session: AsyncSession, channel_key: str, queue_id: int | None
) -> Channel:
    repo = RoutingAdminRepository(session)
    channel = await ChannelRepository(session).get_by_key(channel_key)
    if channel is None:
        raise NotFound(f"no channel {channel_key!r}")
    if queue_id is not None and not await repo.existing_queue_ids([queue_id]):
        raise InvalidInput(f"no queue {queue_id}", code="unknown_queue")
    channel.default_queue_id = queue_id
    await session.flush()
    if queue_id is not None:  # what waited for want of a queue may now have one
        emit(session, QueueChanged(queue_id=queue_id))
    return channel
