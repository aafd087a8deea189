"""All tables of the hub. Import from here so Alembic sees every model."""

from storage.models.base import Base
from storage.models.calls import (
    BlockedNumber,
    Call,
    CallDirection,
    CallState,
    Task,
    TaskKind,
    TaskStatus,
)
from storage.models.channels import Channel, ChannelKind
from storage.models.claims import Claim, ClaimSequence, ClaimStatus, ClaimStep
from storage.models.conversations import (
    Attachment,
    Conversation,
    ConversationStatus,
    Lead,
    LeadStatus,
    Message,
    MessageDirection,
    MessageStatus,
)
from storage.models.email import (
    EmailMessageId,
    MailboxState,
    QuarantinedEmail,
    QuarantineStatus,
)
from storage.models.outbox import OutboxEvent, OutboxStatus
from storage.models.people import (
    ApiToken,
    Contact,
    Identity,
    IdentityKind,
    Manager,
    ManagerRole,
    MergeSuggestion,
)
from storage.models.routing import (
    Assignment,
    AssignmentReason,
    ManagerAbsence,
    Presence,
    Priority,
    Queue,
    QueueMember,
    RoutingRule,
    RoutingState,
    Strategy,
)
from storage.models.telegram import TelegramBotState, TelegramFsmRecord, TelegramUpdate

__all__ = [
    "ApiToken",
    "Assignment",
    "AssignmentReason",
    "Attachment",
    "Base",
    "BlockedNumber",
    "Call",
    "CallDirection",
    "CallState",
    "Channel",
    "ChannelKind",
    "Claim",
    "ClaimSequence",
    "ClaimStatus",
    "ClaimStep",
    "Contact",
    "Conversation",
    "ConversationStatus",
    "EmailMessageId",
    "Identity",
    "IdentityKind",
    "Lead",
    "LeadStatus",
    "MailboxState",
    "Manager",
    "ManagerAbsence",
    "ManagerRole",
    "MergeSuggestion",
    "Message",
    "MessageDirection",
    "MessageStatus",
    "OutboxEvent",
    "OutboxStatus",
    "Presence",
    "Priority",
    "QuarantineStatus",
    "QuarantinedEmail",
    "Queue",
    "QueueMember",
    "RoutingRule",
    "RoutingState",
    "Strategy",
    "Task",
    "TaskKind",
    "TaskStatus",
    "TelegramBotState",
    "TelegramFsmRecord",
    "TelegramUpdate",
]
