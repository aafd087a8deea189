"""The routing API under /api/v1: queues and members, rules, routing profiles, absences,
presence, and acting on a conversation (assign, transfer, take, reply, close).

Reading is open to every authenticated caller; changing queues, rules and channels
is for administrators. Every change runs in `context.db.transaction()` through
routing's and intake's services; manual decisions are audited in the assignment
history with the acting manager.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Body, Header, Path

from channels.base import HubContext
from inbox.boundary import api_router
from inbox.deps import (
    ADMIN_REQUIRED,
    NO_MANAGER,
    AdminDep,
    ContextDep,
    PrincipalDep,
    ReadSessionDep,
    caller_manager,
    require_self_or_admin,
)
from inbox.routing_schemas import (
    AbsenceOut,
    AssignIn,
    AssignmentOut,
    ChannelQueueOut,
    ConversationRoutingOut,
    DecisionOut,
    DefaultQueueIn,
    MemberIn,
    MemberOut,
    PresenceOut,
    QueueOut,
    ReplyFileIn,
    ReplyIn,
    RoutingProfileOut,
    RuleOut,
    TransferIn,
)
from inbox.schemas import MessageOut
from intake.conversations import add_reply, close_conversation
from intake.schemas import AttachmentIn
from routing.admin import conversations as conversation_admin
from routing.admin import profiles as profile_admin
from routing.admin import queues as queue_admin
from routing.admin import rules as rule_admin
from routing.admin.profiles import AbsenceIn, PresenceIn, ProfileChanges
from routing.admin.queues import ManagerId, QueueChanges, QueueSettings
from routing.admin.rules import RuleChanges, RuleSettings
from storage.blobs import normalise_content_type
from storage.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    answers,
    coded,
)
from storage.types import DbId

router = api_router()

ChannelKey = Annotated[str, Path(min_length=1, max_length=64)]
NOT_FOUND = answers(NotFound)
ADMIN = answers(ADMIN_REQUIRED, NotFound)
CONFLICT = answers(Conflict)
# A rule's actions must name a queue and a manager that exist.
RULE_ERRORS = answers(
    ADMIN_REQUIRED,
    NotFound,
    *coded(InvalidInput, "unknown_queue", "unknown_manager"),
)
# Queues


@router.get("/queues", response_model=list[QueueOut], tags=["queues"])
async def queues(_principal: PrincipalDep, session: ReadSessionDep) -> list[QueueOut]:
    """Every queue with its settings and ordered member ids."""
    return [QueueOut.of(view) for view in await queue_admin.list_queues(session)]


@router.post(
    "/queues",
    response_model=QueueOut,
    status_code=201,
    tags=["queues"],
    responses={**ADMIN, **CONFLICT},
)
async def create_queue(body: QueueSettings, _admin: AdminDep, context: ContextDep) -> QueueOut:
    """Create a queue (administrators). Keys are unique (409 `duplicate_key`)."""
    async with context.db.transaction() as session:
        return QueueOut.of(await queue_admin.create_queue(session, body))


@router.get("/queues/{queue_id}", response_model=QueueOut, tags=["queues"], responses=NOT_FOUND)
async def queue(queue_id: DbId, _principal: PrincipalDep, session: ReadSessionDep) -> QueueOut:
    """One queue."""
    return QueueOut.of(await queue_admin.get_queue(session, queue_id))


@router.patch(
    "/queues/{queue_id}", response_model=QueueOut, tags=["queues"], responses={**ADMIN, **CONFLICT}
)
async def update_queue(
    queue_id: DbId, body: QueueChanges, _admin: AdminDep, context: ContextDep
) -> QueueOut:
    """Change a queue's settings; the result is validated as a whole (administrators)."""
    async with context.db.transaction() as session:
        return QueueOut.of(await queue_admin.update_queue(session, queue_id, body))


@router.delete(
    "/queues/{queue_id}",
    status_code=204,
    response_model=None,
    tags=["queues"],
    responses={**ADMIN, **CONFLICT},
)
async def delete_queue(queue_id: DbId, _admin: AdminDep, context: ContextDep) -> None:
    """Delete a queue (409 `queue_in_use` while a rule sends conversations to it).

    Its conversations keep their assignees; channels using it as default lose it.
    """
    async with context.db.transaction() as session:
        await queue_admin.delete_queue(session, queue_id)


@router.get(
    "/queues/{queue_id}/members",
    response_model=list[MemberOut],
    tags=["queues"],
    responses=NOT_FOUND,
)
async def members(
    queue_id: DbId, _principal: PrincipalDep, session: ReadSessionDep
) -> list[MemberOut]:
    """The queue's members in order (strict order follows it)."""
    return [MemberOut.of(row) for row in await queue_admin.list_members(session, queue_id)]


@router.put(
    "/queues/{queue_id}/members", response_model=list[MemberOut], tags=["queues"], responses=ADMIN
)
async def replace_members(
    queue_id: DbId,
    manager_ids: Annotated[
        list[ManagerId],
        Body(max_length=1000, examples=[[3, 1, 2]], description="Manager ids in order"),
    ],
    _admin: AdminDep,
    context: ContextDep,
) -> list[MemberOut]:
    """Replace the members with this ordered list of manager ids (positions follow it)."""
    async with context.db.transaction() as session:
        rows = await queue_admin.replace_members(session, queue_id, manager_ids)
        return [MemberOut.of(row) for row in rows]


@router.post(
    "/queues/{queue_id}/members",
    response_model=list[MemberOut],
    status_code=201,
    tags=["queues"],
    responses={**ADMIN, **CONFLICT},
)
async def add_member(
    queue_id: DbId, body: MemberIn, _admin: AdminDep, context: ContextDep
) -> list[MemberOut]:
    """Append a member at the end of the order; answers with all members."""
    async with context.db.transaction() as session:
        rows = await queue_admin.add_member(session, queue_id, body.manager_id)
        return [MemberOut.of(row) for row in rows]


@router.delete(
    "/queues/{queue_id}/members/{manager_id}",
    status_code=204,
    response_model=None,
    tags=["queues"],
    responses=ADMIN,
)
async def remove_member(
    queue_id: DbId, manager_id: DbId, _admin: AdminDep, context: ContextDep
) -> None:
    """Remove a member (their assigned conversations stay with them)."""
    async with context.db.transaction() as session:
        await queue_admin.remove_member(session, queue_id, manager_id)


@router.put(
    "/channels/{channel_key}/default-queue",
    response_model=ChannelQueueOut,
    tags=["queues"],
    responses=ADMIN,
)
async def set_default_queue(
    channel_key: ChannelKey, body: DefaultQueueIn, _admin: AdminDep, context: ContextDep
) -> ChannelQueueOut:
    """Where the channel's conversations go when no rule says otherwise (null: nowhere)."""
    async with context.db.transaction() as session:
        channel = await queue_admin.set_default_queue(session, channel_key, body.queue_id)
        return ChannelQueueOut.of(channel)


# Rules. /routing/rules/order is a PUT, which no /routing/rules/{id} route has.


@router.get("/routing/rules", response_model=list[RuleOut], tags=["rules"])
async def rules(_principal: PrincipalDep, session: ReadSessionDep) -> list[RuleOut]:
    """The rules in order; the first active rule whose conditions all hold decides."""
    return [RuleOut.of(rule) for rule in await rule_admin.list_rules(session)]


@router.post(
    "/routing/rules", response_model=RuleOut, status_code=201, tags=["rules"], responses=RULE_ERRORS
)
async def create_rule(body: RuleSettings, _admin: AdminDep, context: ContextDep) -> RuleOut:
    """Add a rule at the end of the order. Actions naming an unknown queue or manager: 422."""
    async with context.db.transaction() as session:
        return RuleOut.of(await rule_admin.create_rule(session, body))


@router.put("/routing/rules/order", response_model=list[RuleOut], tags=["rules"], responses=ADMIN)
async def reorder_rules(
    rule_ids: Annotated[
        list[DbId],
        Body(max_length=10_000, examples=[[2, 1]], description="Every rule id, in the new order"),
    ],
    _admin: AdminDep,
    context: ContextDep,
) -> list[RuleOut]:
    """Set the order of the rules: list every rule id exactly once."""
    async with context.db.transaction() as session:
        return [RuleOut.of(rule) for rule in await rule_admin.reorder_rules(session, rule_ids)]


@router.get("/routing/rules/{rule_id}", response_model=RuleOut, tags=["rules"], responses=NOT_FOUND)
async def rule(rule_id: DbId, _principal: PrincipalDep, session: ReadSessionDep) -> RuleOut:
    """One rule."""
    return RuleOut.of(await rule_admin.get_rule(session, rule_id))


@router.patch(
    "/routing/rules/{rule_id}", response_model=RuleOut, tags=["rules"], responses=RULE_ERRORS
)
async def update_rule(
    rule_id: DbId, body: RuleChanges, _admin: AdminDep, context: ContextDep
) -> RuleOut:
    """Change a rule's name, activity, conditions or actions (each replaced as a whole)."""
    async with context.db.transaction() as session:
        return RuleOut.of(await rule_admin.update_rule(session, rule_id, body))


@router.delete(
    "/routing/rules/{rule_id}",
    status_code=204,
    response_model=None,
    tags=["rules"],
    responses=ADMIN,
)
async def delete_rule(rule_id: DbId, _admin: AdminDep, context: ContextDep) -> None:
    """Delete a rule."""
    async with context.db.transaction() as session:
        await rule_admin.delete_rule(session, rule_id)


# Managers: routing profile and absences


@router.get(
    "/managers/{manager_id}/routing",
    response_model=RoutingProfileOut,
    tags=["managers"],
    responses=ADMIN,
)
async def routing_profile(
    manager_id: DbId, principal: PrincipalDep, context: ContextDep, session: ReadSessionDep
) -> RoutingProfileOut:
    """A manager's routing profile: presence, capacity and load, languages, hours, queues."""
    require_self_or_admin(principal, manager_id)
    now = context.routing.clock()
    return RoutingProfileOut.of(await profile_admin.get_profile(session, manager_id, now))


@router.patch(
    "/managers/{manager_id}/routing",
    response_model=RoutingProfileOut,
    tags=["managers"],
    responses=ADMIN,
)
async def update_routing_profile(
    manager_id: DbId, body: ProfileChanges, principal: PrincipalDep, context: ContextDep
) -> RoutingProfileOut:
    """Change capacity (0..1000), languages, working hours, email notifications
    (administrators or the manager themself); `is_active` only administrators."""
    require_self_or_admin(principal, manager_id)
    if "is_active" in body.model_fields_set and not principal.is_admin:
        raise Forbidden(
            "only administrators activate or deactivate managers", code="admin_required"
        )
    now = context.routing.clock()
    async with context.db.transaction() as session:
        return RoutingProfileOut.of(
            await profile_admin.update_profile(session, manager_id, body, now)
        )


@router.get(
    "/managers/{manager_id}/absences",
    response_model=list[AbsenceOut],
    tags=["managers"],
    responses=ADMIN,
)
async def absences(
    manager_id: DbId, principal: PrincipalDep, session: ReadSessionDep
) -> list[AbsenceOut]:
    """The manager's vacations and other absences (no routing to them meanwhile)."""
    require_self_or_admin(principal, manager_id)
    return [AbsenceOut.of(row) for row in await profile_admin.list_absences(session, manager_id)]


@router.post(
    "/managers/{manager_id}/absences",
    response_model=AbsenceOut,
    status_code=201,
    tags=["managers"],
    responses=ADMIN,
)
async def add_absence(
    manager_id: DbId, body: AbsenceIn, principal: PrincipalDep, context: ContextDep
) -> AbsenceOut:
    """Record an absence from `starts_at` to `ends_at` (ISO 8601 with a zone)."""
    require_self_or_admin(principal, manager_id)
    async with context.db.transaction() as session:
        return AbsenceOut.of(await profile_admin.add_absence(session, manager_id, body))


@router.delete(
    "/managers/{manager_id}/absences/{absence_id}",
    status_code=204,
    response_model=None,
    tags=["managers"],
    responses=ADMIN,
)
async def delete_absence(
    manager_id: DbId, absence_id: DbId, principal: PrincipalDep, context: ContextDep
) -> None:
    """Remove an absence."""
    require_self_or_admin(principal, manager_id)
    async with context.db.transaction() as session:
        await profile_admin.delete_absence(session, manager_id, absence_id)


# Presence


@router.put(
    "/me/presence",
    response_model=PresenceOut,
    tags=["presence"],
    responses=answers(NO_MANAGER),
)
async def my_presence(
    body: PresenceIn, principal: PrincipalDep, context: ContextDep
) -> PresenceOut:
    """Set your presence; online and away lapse to offline after `ttl_seconds` (default 120)
    unless the same call is repeated (the heartbeat). Going online routes what waits."""
    manager_id = caller_manager(principal)
    now = context.routing.clock()
    async with context.db.transaction() as session:
        manager, presence = await profile_admin.change_presence(session, manager_id, body, now)
        return PresenceOut.of(manager, presence)


@router.put(
    "/managers/{manager_id}/presence",
    response_model=PresenceOut,
    tags=["presence"],
    responses=ADMIN,
)
async def set_presence(
    manager_id: DbId, body: PresenceIn, _admin: AdminDep, context: ContextDep
) -> PresenceOut:
    """Set a manager's presence (administrators)."""
    now = context.routing.clock()
    async with context.db.transaction() as session:
        manager, presence = await profile_admin.change_presence(session, manager_id, body, now)
        return PresenceOut.of(manager, presence)


@router.get("/presence", response_model=list[PresenceOut], tags=["presence"])
async def presence(
    _principal: PrincipalDep, context: ContextDep, session: ReadSessionDep
) -> list[PresenceOut]:
    """Every manager with their effective presence (a lapsed heartbeat reads offline)."""
    now = context.routing.clock()
    return [PresenceOut.of(m, p) for m, p in await profile_admin.presence_board(session, now)]


# Conversations


@router.get(
    "/conversations/{conversation_id}/assignments",
    response_model=list[AssignmentOut],
    tags=["conversations"],
    responses=NOT_FOUND,
)
async def assignments(
    conversation_id: DbId, _principal: PrincipalDep, session: ReadSessionDep
) -> list[AssignmentOut]:
    """Every routing decision on the conversation, oldest first, with reasons and actors."""
    return [
        AssignmentOut.of(row)
        for row in await conversation_admin.assignment_history(session, conversation_id)
    ]


@router.get(
    "/conversations/{conversation_id}/routing",
    response_model=ConversationRoutingOut,
    tags=["conversations"],
    responses=NOT_FOUND,
)
async def conversation_routing(
    conversation_id: DbId, _principal: PrincipalDep, session: ReadSessionDep
) -> ConversationRoutingOut:
    """The conversation's routing state: assignee, queue, priority, tags, SLA clocks."""
    return ConversationRoutingOut.of(
        await conversation_admin.conversation_routing(session, conversation_id)
    )


@router.post(
    "/conversations/{conversation_id}/assign",
    response_model=DecisionOut,
    tags=["conversations"],
    responses={**NOT_FOUND, **CONFLICT},
)
async def assign(
    conversation_id: DbId, body: AssignIn, principal: PrincipalDep, context: ContextDep
) -> DecisionOut:
    """Assign to a manager by hand (their presence and capacity are the caller's judgement);
    recorded as `manual` with the caller as the actor."""
    engine = context.routing
    async with context.db.transaction() as session:
        decision = await conversation_admin.assign(
            session,
            engine,
            conversation_id,
            body.manager_id,
            actor_manager_id=principal.manager_id,
        )
    return DecisionOut.of(decision)


@router.post(
    "/conversations/{conversation_id}/transfer",
    response_model=DecisionOut,
    tags=["conversations"],
    responses={**NOT_FOUND, **CONFLICT},
)
async def transfer(
    conversation_id: DbId, body: TransferIn, principal: PrincipalDep, context: ContextDep
) -> DecisionOut:
    """Transfer to a manager (`manager_id`) or to a queue (`queue_id`, routed by its
    strategy; it may wait or be offered); recorded as `transfer` with the `reason`."""
    engine = context.routing
    async with context.db.transaction() as session:
        decision = await conversation_admin.transfer(
            session,
            engine,
            conversation_id,
            manager_id=body.manager_id,
            queue_id=body.queue_id,
            actor_manager_id=principal.manager_id,
            note=body.reason,
        )
    return DecisionOut.of(decision)


@router.post(
    "/conversations/{conversation_id}/take",
    response_model=DecisionOut,
    tags=["conversations"],
    responses=answers(NO_MANAGER, NotFound, Conflict),
)
async def take(conversation_id: DbId, principal: PrincipalDep, context: ContextDep) -> DecisionOut:
    """Take a conversation nobody has (offered to everybody, or waiting): the first one wins,
    the others get 409 `already_taken`."""
    manager_id = caller_manager(principal)
    engine = context.routing
    async with context.db.transaction() as session:
        decision = await conversation_admin.take(session, engine, conversation_id, manager_id)
    return DecisionOut.of(decision)


@router.post(
    "/conversations/{conversation_id}/messages",
    response_model=MessageOut,
    status_code=201,
    tags=["conversations"],
    responses={**NOT_FOUND, **CONFLICT},
)
async def reply(
    conversation_id: DbId,
    body: ReplyIn,
    principal: PrincipalDep,
    context: ContextDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=200,
            description="The same key returns the message stored the first time",
        ),
    ] = None,
) -> MessageOut:
    """Reply to the client (queued for delivery through the conversation's channel) or add
    an internal note (`note: true`). The first reply stamps `first_response_at`."""
    now = context.routing.clock()
    files = [await _stored_file(context, file) for file in body.attachments]
    async with context.db.transaction() as session:
        message = await add_reply(
            session,
            conversation_id,
            text=body.text,
            note=body.note,
            manager_id=principal.manager_id,
            now=now,
            idempotency_key=idempotency_key,
            attachments=files,
            channel_id=body.channel_id,
            mentions=body.mentions,
        )
        return MessageOut.of(message)


async def _stored_file(context: HubContext, file: ReplyFileIn) -> AttachmentIn:
    """Decode an attached file and put it in the blob store (before the transaction)."""
    try:
        data = base64.b64decode(file.content_base64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{file.filename}: not valid base64", code="bad_attachment") from exc
    limit = context.intake.reply_file_max_bytes
    if len(data) > limit:
        raise PayloadTooLarge(f"{file.filename} is over {limit} bytes")
    ref = await context.blobs.put(data, normalise_content_type(file.content_type))
    return AttachmentIn(file.filename, ref.content_type, ref.size, ref.sha256)


@router.post(
    "/conversations/{conversation_id}/close",
    response_model=ConversationRoutingOut,
    tags=["conversations"],
    responses=NOT_FOUND,
)
async def close(
    conversation_id: DbId, principal: PrincipalDep, context: ContextDep
) -> ConversationRoutingOut:
    """Close the conversation; the assignee's capacity is freed and what waits is routed."""
    now = context.routing.clock()
    async with context.db.transaction() as session:
        conversation = await close_conversation(
            session, conversation_id, manager_id=principal.manager_id, now=now
        )
        return ConversationRoutingOut.of(conversation)
