"""Bodies of the routing API (`/api/v1`): queues, rules, profiles, presence, assignments.

Request bodies of administration live with the services that validate them
(`routing.admin`); the small conversation actions are here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from routing.admin.profiles import ProfileView
from routing.admin.queues import ManagerId, QueueId, QueueView
from routing.admin.repository import HistoryRow
from routing.engine import Decision
from storage.models import (
    Channel,
    Conversation,
    Manager,
    ManagerAbsence,
    Presence,
    QueueMember,
    RoutingRule,
)
from storage.types import DbId


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# Queues


class QueueOut(BaseModel):
    id: int
    key: str
    name: str
    strategy: str
    forward_after_seconds: int | None
    supervisor_id: int | None
    sla: dict[str, dict[str, int]]
    working_hours: dict[str, Any] | None
    respect_member_hours: bool
    sla_breach_action: str
    retry_seconds: int
    is_active: bool
    member_ids: list[int] = Field(description="Members in their order")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, view: QueueView) -> QueueOut:
        queue = view.queue
        return cls(
            id=queue.id,
            key=queue.key,
            name=queue.name,
            strategy=queue.strategy,
            forward_after_seconds=queue.forward_after_seconds,
            supervisor_id=queue.supervisor_id,
            sla=dict(queue.sla or {}),
            working_hours=queue.working_hours,
            respect_member_hours=queue.respect_member_hours,
            sla_breach_action=queue.sla_breach_action,
            retry_seconds=queue.retry_seconds,
            is_active=queue.is_active,
            member_ids=view.member_ids,
            created_at=queue.created_at,
            updated_at=queue.updated_at,
        )


class MemberOut(BaseModel):
    manager_id: int
    position: int
    name: str
    email: str
    is_active: bool

    @classmethod
    def of(cls, row: tuple[QueueMember, Manager]) -> MemberOut:
        member, manager = row
        return cls(
            manager_id=manager.id,
            position=member.position,
            name=manager.name,
            email=manager.email,
            is_active=manager.is_active,
        )


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    manager_id: ManagerId


class DefaultQueueIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue_id: QueueId | None = Field(description="null: the channel has no default queue")


class ChannelQueueOut(BaseModel):
    id: int
    key: str
    kind: str
    default_queue_id: int | None

    @classmethod
    def of(cls, channel: Channel) -> ChannelQueueOut:
        return cls(
            id=channel.id,
            key=channel.key,
            kind=channel.kind,
            default_queue_id=channel.default_queue_id,
        )


# Rules


class RuleOut(Schema):
    id: int
    name: str
    position: int
    is_active: bool
    conditions: dict[str, Any]
    actions: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, rule: RoutingRule) -> RuleOut:
        return cls.model_validate(rule)


# Managers


class RoutingProfileOut(BaseModel):
    manager_id: int
    name: str
    email: str
    is_active: bool
    presence: str = Field(description="Effective: a lapsed heartbeat reads offline")
    presence_expires_at: datetime | None
    capacity: int
    open_conversations: int
    languages: list[str]
    working_hours: dict[str, Any] | None
    notify_by_email: bool
    telegram_linked: bool
    last_assigned_at: datetime | None
    queue_ids: list[int]
    absent_now: bool

    @classmethod
    def of(cls, view: ProfileView) -> RoutingProfileOut:
        manager = view.manager
        return cls(
            manager_id=manager.id,
            name=manager.name,
            email=manager.email,
            is_active=manager.is_active,
            presence=view.presence.value,
            presence_expires_at=manager.presence_expires_at,
            capacity=manager.capacity,
            open_conversations=view.open_count,
            languages=list(manager.languages or []),
            working_hours=manager.working_hours,
            notify_by_email=manager.notify_by_email,
            telegram_linked=manager.telegram_linked,
            last_assigned_at=manager.last_assigned_at,
            queue_ids=view.queue_ids,
            absent_now=view.absent_now,
        )


class AbsenceOut(Schema):
    id: int
    manager_id: int
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_at: datetime

    @classmethod
    def of(cls, absence: ManagerAbsence) -> AbsenceOut:
        return cls.model_validate(absence)


class PresenceOut(BaseModel):
    manager_id: int
    name: str
    is_active: bool
    presence: str = Field(description="Effective presence: online, away or offline")
    expires_at: datetime | None = Field(description="When it lapses unless renewed")

    @classmethod
    def of(cls, manager: Manager, presence: Presence) -> PresenceOut:
        return cls(
            manager_id=manager.id,
            name=manager.name,
            is_active=manager.is_active,
            presence=presence.value,
            expires_at=manager.presence_expires_at if presence is not Presence.OFFLINE else None,
        )


# Conversations


class AssignmentOut(BaseModel):
    """One routing decision: assigned, offered to a queue, or left waiting; and why."""

    id: int
    state: str
    manager_id: int | None
    manager_name: str | None
    queue_id: int | None
    queue_name: str | None
    reason: str = Field(description="owner, rule, strategy, manual, transfer, take, forward, sla")
    explanation: str
    detail: dict[str, Any]
    actor_manager_id: int | None = Field(description="Who did it by hand (null: routing)")
    actor_name: str | None
    created_at: datetime
    ended_at: datetime | None

    @classmethod
    def of(cls, row: HistoryRow) -> AssignmentOut:
        a = row.assignment
        return cls(
            id=a.id,
            state=a.state,
            manager_id=a.manager_id,
            manager_name=row.manager_name,
            queue_id=a.queue_id,
            queue_name=row.queue_name,
            reason=a.reason,
            explanation=a.explanation,
            detail=dict(a.detail or {}),
            actor_manager_id=a.actor_manager_id,
            actor_name=row.actor_name,
            created_at=a.created_at,
            ended_at=a.ended_at,
        )


class DecisionOut(BaseModel):
    """What routing did: `assigned` (manager_id set), `offered` or `waiting`."""

    state: str
    manager_id: int | None
    queue_id: int | None
    reason: str
    explanation: str
    assignment_id: int | None

    @classmethod
    def of(cls, decision: Decision) -> DecisionOut:
        return cls(
            state=decision.state.value,
            manager_id=decision.manager_id,
            queue_id=decision.queue_id,
            reason=decision.reason,
            explanation=decision.explanation,
            assignment_id=decision.assignment_id,
        )


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    manager_id: ManagerId


class TransferIn(BaseModel):
    """Exactly one of them: a manager (assigned at once) or a queue (its strategy decides)."""

    model_config = ConfigDict(extra="forbid")

    manager_id: ManagerId | None = None
    queue_id: QueueId | None = None
    reason: str | None = Field(
        default=None, max_length=500, description="Why, kept in the assignment history"
    )


class ReplyFileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255, examples=["счёт.pdf"])
    content_type: str = Field(default="application/octet-stream", max_length=127)
    content_base64: str = Field(min_length=1, description="The file, base64-encoded")


class ReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=100_000, examples=["Здравствуйте! Уже смотрим."])
    note: StrictBool = Field(
        default=False, description="An internal note, never sent to the client"
    )
    attachments: list[ReplyFileIn] = Field(
        default_factory=list, max_length=20, description="Files sent with the reply"
    )
    channel_id: DbId | None = Field(
        default=None,
        description="Send through this channel of the contact's (see GET .../reply-channels); "
        "by default the conversation's own, or the first other when its own cannot write back",
    )
    mentions: list[DbId] = Field(
        default_factory=list,
        max_length=50,
        description="A note's mentioned managers as picked; only active managers whose "
        "@Name stands in the text are mentioned and notified",
    )


class ConversationRoutingOut(BaseModel):
    id: int
    status: str
    assignee_id: int | None
    routing_state: str
    queue_id: int | None
    priority: str
    tags: list[str]
    waiting_reason: str | None
    assigned_at: datetime | None
    first_response_at: datetime | None
    first_response_due_at: datetime | None
    next_response_due_at: datetime | None
    last_inbound_at: datetime | None
    last_outbound_at: datetime | None
    closed_at: datetime | None
    snoozed_until: datetime | None = None

    @classmethod
    def of(cls, conversation: Conversation) -> ConversationRoutingOut:
        return cls(
            id=conversation.id,
            status=conversation.status,
            assignee_id=conversation.assignee_id,
            routing_state=conversation.routing_state,
            queue_id=conversation.queue_id,
            priority=conversation.priority,
            tags=list(conversation.tags or []),
            waiting_reason=conversation.waiting_reason,
            assigned_at=conversation.assigned_at,
            first_response_at=conversation.first_response_at,
            first_response_due_at=conversation.first_response_due_at,
            next_response_due_at=conversation.next_response_due_at,
            last_inbound_at=conversation.last_inbound_at,
            last_outbound_at=conversation.last_outbound_at,
            closed_at=conversation.closed_at,
            snoozed_until=conversation.snoozed_until,
        )
