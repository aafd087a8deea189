"""Routing administration: queues and members, rules, managers' routing profiles,
absences and presence, and people acting on a conversation (assign, transfer, take).

Services validate, change rows and flush; they never commit. The inputs are
pydantic models so that the API and the CLI validate alike; a check that needs
the database (an unknown queue or manager) raises `InvalidInput` (422).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    ValidationError,
    model_validator,
)
from sqlalchemy.ext.asyncio import AsyncSession

from intake.conversations import add_reply, close_conversation
from intake.schemas import AttachmentIn
from intake.sessions import end_manager_sessions
from routing.admin_repository import HistoryRow, RoutingAdminRepository
from routing.calendar import WorkingHours
from routing.engine import Decision, RoutingEngine, effective_presence
from routing.presence import HEARTBEAT_TTL_SECONDS, set_presence
from routing.rules import RuleActions, RuleConditions
from storage.errors import Conflict, InvalidInput, NotFound
from storage.events import CapacityChanged, QueueChanged
from storage.models import (
    AssignmentReason,
    Channel,
    Conversation,
    ConversationStatus,
    Manager,
    ManagerAbsence,
    Message,
    Presence,
    Priority,
    Queue,
    QueueMember,
    RoutingRule,
    Strategy,
)
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


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


Language = Annotated[
    str,
    BeforeValidator(_lower),
    StringConstraints(pattern=r"^[a-z]{2,3}(-[a-z0-9]{2,4})?$"),
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


class RuleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, examples=["Претензии"])
    is_active: StrictBool = True
    conditions: RuleConditions = Field(default_factory=RuleConditions)
    actions: RuleActions = Field(default_factory=RuleActions)


class RuleChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    is_active: StrictBool | None = None
    conditions: RuleConditions | None = None
    actions: RuleActions | None = None


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
class QueueView:
    queue: Queue
    member_ids: list[int]


@dataclass(frozen=True, slots=True)
class ProfileView:
    manager: Manager
    presence: Presence
    open_count: int
    queue_ids: list[int]
    absent_now: bool


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


# -- rules -------------------------------------------------------------------------------


async def list_rules(session: AsyncSession) -> list[RoutingRule]:
    return list(await RoutingAdminRepository(session).rules())


async def _rule(repo: RoutingAdminRepository, rule_id: int) -> RoutingRule:
    rule = await repo.rule(rule_id)
    if rule is None:
        raise NotFound(f"no rule {rule_id}")
    return rule


async def get_rule(session: AsyncSession, rule_id: int) -> RoutingRule:
    return await _rule(RoutingAdminRepository(session), rule_id)


async def _check_actions(repo: RoutingAdminRepository, actions: RuleActions) -> None:
    if actions.queue_id is not None and not await repo.existing_queue_ids([actions.queue_id]):
        raise InvalidInput(f"actions.queue_id: no queue {actions.queue_id}", code="unknown_queue")
    if actions.manager_id is not None and not await repo.existing_manager_ids([actions.manager_id]):
        raise InvalidInput(
            f"actions.manager_id: no manager {actions.manager_id}", code="unknown_manager"
        )


def _dump_rule_part(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_defaults=True)


async def create_rule(session: AsyncSession, settings: RuleSettings) -> RoutingRule:
    """A new rule, last in order."""
    repo = RoutingAdminRepository(session)
    await _check_actions(repo, settings.actions)
    rule = RoutingRule(
        name=settings.name,
        is_active=settings.is_active,
        position=await repo.next_rule_position(),
        conditions=_dump_rule_part(settings.conditions),
        actions=_dump_rule_part(settings.actions),
    )
    session.add(rule)
    await session.flush()
    return rule


async def update_rule(session: AsyncSession, rule_id: int, changes: RuleChanges) -> RoutingRule:
    repo = RoutingAdminRepository(session)
    rule = await _rule(repo, rule_id)
    given = changes.model_fields_set
    for name in ("name", "is_active"):
        if name in given:
            value = getattr(changes, name)
            if value is None:
                raise InvalidInput(f"{name} may not be null")
            setattr(rule, name, value)
    if "conditions" in given:
        rule.conditions = _dump_rule_part(changes.conditions or RuleConditions())
    if "actions" in given:
        actions = changes.actions or RuleActions()
        await _check_actions(repo, actions)
        rule.actions = _dump_rule_part(actions)
    await session.flush()
    return rule


async def delete_rule(session: AsyncSession, rule_id: int) -> None:
    repo = RoutingAdminRepository(session)
    await session.delete(await _rule(repo, rule_id))
    await session.flush()


async def reorder_rules(session: AsyncSession, rule_ids: Sequence[int]) -> list[RoutingRule]:
    """Set the order of all rules: `rule_ids` must list every rule exactly once."""
    repo = RoutingAdminRepository(session)
    rules = {rule.id: rule for rule in await repo.rules()}
    if len(set(rule_ids)) != len(rule_ids) or set(rule_ids) != set(rules):
        raise InvalidInput(
            {
                "message": "list every rule id exactly once",
                "missing": sorted(set(rules) - set(rule_ids)),
                "unknown": sorted(set(rule_ids) - set(rules)),
            },
            code="invalid_order",
        )
    for position, rule_id in enumerate(rule_ids):
        rules[rule_id].position = position
    await session.flush()
    return [rules[rule_id] for rule_id in rule_ids]


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


# -- conversations -----------------------------------------------------------------------


async def assignment_history(session: AsyncSession, conversation_id: int) -> list[HistoryRow]:
    repo = RoutingAdminRepository(session)
    if await repo.conversation(conversation_id) is None:
        raise NotFound(f"no conversation {conversation_id}")
    return await repo.history(conversation_id)


async def _open_conversation(repo: RoutingAdminRepository, conversation_id: int) -> Conversation:
    conversation = await repo.conversation(conversation_id)
    if conversation is None:
        raise NotFound(f"no conversation {conversation_id}")
    if conversation.status == ConversationStatus.CLOSED:
        raise Conflict(f"conversation {conversation_id} is closed", code="conversation_closed")
    return conversation


async def assign(
    session: AsyncSession,
    engine: RoutingEngine,
    conversation_id: int,
    manager_id: int,
    *,
    actor_manager_id: int | None,
) -> Decision:
    await _open_conversation(RoutingAdminRepository(session), conversation_id)
    return await engine.assign(
        session, conversation_id, manager_id, actor_manager_id=actor_manager_id
    )


async def transfer(
    session: AsyncSession,
    engine: RoutingEngine,
    conversation_id: int,
    *,
    manager_id: int | None,
    queue_id: int | None,
    actor_manager_id: int | None,
) -> Decision:
    """To a manager (assigned at once), or to a queue (routed by its strategy)."""
    if (manager_id is None) == (queue_id is None):
        raise InvalidInput("give either manager_id or queue_id", code="invalid_transfer")
    await _open_conversation(RoutingAdminRepository(session), conversation_id)
    if manager_id is not None:
        return await engine.assign(
            session,
            conversation_id,
            manager_id,
            actor_manager_id=actor_manager_id,
            reason=AssignmentReason.TRANSFER,
        )
    assert queue_id is not None
    return await engine.transfer_to_queue(
        session, conversation_id, queue_id, actor_manager_id=actor_manager_id
    )


async def take(
    session: AsyncSession, engine: RoutingEngine, conversation_id: int, manager_id: int
) -> Decision:
    await _open_conversation(RoutingAdminRepository(session), conversation_id)
    return await engine.take(session, conversation_id, manager_id)


async def reply(
    session: AsyncSession,
    conversation_id: int,
    *,
    text: str,
    note: bool,
    manager_id: int | None,
    now: datetime,
    idempotency_key: str | None,
    attachments: Sequence[AttachmentIn] = (),
) -> Message:
    message = await add_reply(
        session,
        conversation_id,
        text=text,
        manager_id=manager_id,
        now=now,
        note=note,
        idempotency_key=idempotency_key,
        attachments=attachments,
    )
    return await RoutingAdminRepository(session).load_attachments(message)


async def close(
    session: AsyncSession, conversation_id: int, *, manager_id: int | None, now: datetime
) -> Conversation:
    conversation = await close_conversation(
        session, conversation_id, manager_id=manager_id, now=now
    )
    await session.flush()
    return conversation


async def conversation_routing(session: AsyncSession, conversation_id: int) -> Conversation:
    conversation = await RoutingAdminRepository(session).conversation(conversation_id)
    if conversation is None:
        raise NotFound(f"no conversation {conversation_id}")
    return conversation
