"""Routing: queues and their members, rules, manager absences, the assignment journal."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, CreatedMixin, IdMixin, TimestampMixin
from storage.types import BigId, JSONDict, UTCDateTime


class Presence(StrEnum):
    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


class Strategy(StrEnum):
    EVENLY = "evenly"
    STRICT_ORDER = "strict_order"
    EVERYBODY = "everybody"
    LEAST_LOADED = "least_loaded"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class RoutingState(StrEnum):
    NEW = "new"
    ASSIGNED = "assigned"
    OFFERED = "offered"  # visible to every member of a queue; the first who takes it wins
    WAITING = "waiting"  # nobody could take it; retried on a schedule and on capacity


class Queue(IdMixin, TimestampMixin, Base):
    __tablename__ = "queues"

    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    strategy: Mapped[str] = mapped_column(String(20), default=Strategy.EVENLY)
    # Strict order: an unanswered conversation moves to the next member after this long.
    forward_after_seconds: Mapped[int | None] = mapped_column(Integer)
    supervisor_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("managers.id", ondelete="SET NULL")
    )
    # {"normal": {"first_response": 3600, "next_response": 7200}, "high": {...}}
    sla: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    # routing.calendar.WorkingHours as JSON; None means around the clock.
    working_hours: Mapped[dict[str, Any] | None] = mapped_column(JSONDict)
    # Offer conversations only to members inside their own working hours.
    respect_member_hours: Mapped[bool] = mapped_column(Boolean, default=True)
    sla_breach_action: Mapped[str] = mapped_column(String(20), default="escalate")
    retry_seconds: Mapped[int] = mapped_column(Integer, default=300)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class QueueMember(IdMixin, CreatedMixin, Base):
    __tablename__ = "queue_members"
    __table_args__ = (UniqueConstraint("queue_id", "manager_id"),)

    queue_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("queues.id", ondelete="CASCADE"), index=True
    )
    manager_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("managers.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)


class RoutingRule(IdMixin, TimestampMixin, Base):
    """An ordered rule: when all its conditions hold, its actions apply (first match wins)."""

    __tablename__ = "routing_rules"

    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer, default=0, index=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    conditions: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    actions: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)


class ManagerAbsence(IdMixin, CreatedMixin, Base):
    """A vacation or other absence: no routing to the manager, owner-first included."""

    __tablename__ = "manager_absences"

    manager_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("managers.id", ondelete="CASCADE"), index=True
    )
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(String(200), default="vacation")


class AssignmentReason(StrEnum):
    OWNER = "owner"
    RULE = "rule"
    STRATEGY = "strategy"
    MANUAL = "manual"
    TRANSFER = "transfer"
    TAKE = "take"
    FORWARD = "forward"
    SLA = "sla"
    TELEPHONY = "telephony"  # the manager who answered the call


class Assignment(IdMixin, CreatedMixin, Base):
    """One routing decision with its reason: assigned, offered, or left waiting."""

    __tablename__ = "assignments"
    __table_args__ = (Index("ix_assignments_conversation_id_id", "conversation_id", "id"),)

    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    state: Mapped[str] = mapped_column(String(20))
    manager_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("managers.id", ondelete="SET NULL"), index=True
    )
    queue_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("queues.id", ondelete="SET NULL")
    )
    reason: Mapped[str] = mapped_column(String(20))
    explanation: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    actor_manager_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("managers.id", ondelete="SET NULL")
    )
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
