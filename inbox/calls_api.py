"""The telephony API under /api/v1: the call journal, tasks (callbacks), the blocklist,
and how the phone system names each manager.

Reading is open to every authenticated caller; the blocklist and other managers'
lines are for administrators. Writes run in `context.db.transaction()` through
intake's services.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from inbox.boundary import api_router
from inbox.deps import (
    ADMIN_REQUIRED,
    AdminDep,
    ContextDep,
    PrincipalDep,
    ReadSessionDep,
    require_self_or_admin,
)
from intake import tasks
from intake.calls import admin as calls_admin
from intake.calls.repository import CallFilters, TaskFilters
from storage.errors import Conflict, InvalidInput, NotFound, answers, coded
from storage.models import BlockedNumber, Call, Manager, Task, TaskStatus
from storage.repositories import ChannelRepository
from storage.types import DbId, utcnow

router = api_router(tags=["telephony"])

Limit = Annotated[int, Query(ge=1, le=200, description="Page size, 1..200")]
Cursor = Annotated[
    str | None, Query(max_length=200, description="`next_cursor` of the previous page")
]
NOT_FOUND = answers(NotFound)
ADMIN = answers(ADMIN_REQUIRED)


class CallOut(BaseModel):
    id: int
    channel_id: int
    provider_call_id: str
    direction: str
    state: str
    from_number: str
    to_number: str
    number: str | None = Field(description="The client's number in E.164")
    contact_id: int | None
    conversation_id: int | None
    manager_id: int | None = Field(description="Who answered (inbound) or called (outbound)")
    agent: str | None = Field(description="How the phone system named that manager")
    queue: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    wait_seconds: int | None
    talk_seconds: int | None
    end_reason: str | None
    forwarded: bool
    recording_url: str | None = Field(description="A link at the provider; never fetched")
    recording_ref: str | None = Field(description="The provider's id of the recording")

    @classmethod
    def of(cls, call: Call) -> CallOut:
        return cls(
            id=call.id,
            channel_id=call.channel_id,
            provider_call_id=call.provider_call_id,
            direction=call.direction,
            state=call.state,
            from_number=call.from_number,
            to_number=call.to_number,
            number=call.client_number,
            contact_id=call.contact_id,
            conversation_id=call.conversation_id,
            manager_id=call.manager_id,
            agent=call.agent,
            queue=call.queue,
            started_at=call.started_at,
            answered_at=call.answered_at,
            ended_at=call.ended_at,
            wait_seconds=call.wait_seconds,
            talk_seconds=call.talk_seconds,
            end_reason=call.end_reason,
            forwarded=call.forwarded,
            recording_url=call.recording_url,
            recording_ref=call.recording_ref,
        )


class CallPage(BaseModel):
    items: list[CallOut]
    next_cursor: str | None


class TaskOut(BaseModel):
    id: int
    kind: str
    status: str
    title: str
    assignee_id: int | None
    contact_id: int | None
    conversation_id: int | None
    call_id: int | None = Field(description="The missed call that opened it")
    phone: str | None
    count: int = Field(description="Missed calls it answers for")
    due_at: datetime
    overdue: bool
    overdue_at: datetime | None
    closed_at: datetime | None
    closed_by_call_id: int | None
    closed_by_manager_id: int | None
    note: str
    created_at: datetime

    @classmethod
    def of(cls, task: Task, now: datetime) -> TaskOut:
        return cls(
            id=task.id,
            kind=task.kind,
            status=task.status,
            title=task.title,
            assignee_id=task.assignee_id,
            contact_id=task.contact_id,
            conversation_id=task.conversation_id,
            call_id=task.call_id,
            phone=task.phone,
            count=task.count,
            due_at=task.due_at,
            overdue=task.status == TaskStatus.OPEN and task.due_at < now,
            overdue_at=task.overdue_at,
            closed_at=task.closed_at,
            closed_by_call_id=task.closed_by_call_id,
            closed_by_manager_id=task.closed_by_manager_id,
            note=task.note,
            created_at=task.created_at,
        )


class TaskPage(BaseModel):
    items: list[TaskOut]
    next_cursor: str | None


class TaskDoneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(default="", max_length=4000)


class BlockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: str = Field(min_length=1, max_length=64, examples=["+7 912 345-67-89"])
    reason: str = Field(default="", max_length=200)


class BlockedOut(BaseModel):
    number: str
    reason: str
    created_by_id: int | None
    created_at: datetime

    @classmethod
    def of(cls, blocked: BlockedNumber) -> BlockedOut:
        return cls(
            number=blocked.number,
            reason=blocked.reason,
            created_by_id=blocked.created_by_id,
            created_at=blocked.created_at,
        )


class ManagerLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    extension: str | None = Field(
        default=None, max_length=64, description="Extension or SIP login at the phone system"
    )
    phone: str | None = Field(default=None, max_length=64)


class ManagerLineOut(BaseModel):
    manager_id: int
    extension: str | None
    phone: str | None

    @classmethod
    def of(cls, manager: Manager) -> ManagerLineOut:
        return cls(manager_id=manager.id, extension=manager.extension, phone=manager.phone)


def _states(values: list[str] | None) -> tuple[str, ...]:
    return tuple(part.strip() for v in values or () for part in v.split(",") if part.strip())


@router.get(
    "/calls",
    response_model=CallPage,
    responses=answers(
        *coded(
            InvalidInput,
            "unknown_channel",
            "invalid_direction",
            "invalid_state",
            "invalid_phone",
            "invalid_cursor",
        ),
    ),
)
async def calls(
    _principal: PrincipalDep,
    session: ReadSessionDep,
    context: ContextDep,
    direction: Annotated[str | None, Query(description="inbound or outbound")] = None,
    state: Annotated[
        list[str] | None,
        Query(description="ringing, answered, missed, completed, rejected; repeat or comma"),
    ] = None,
    channel: Annotated[str | None, Query(max_length=64, description="Channel key")] = None,
    manager_id: DbId | None = None,
    contact_id: DbId | None = None,
    number: Annotated[str | None, Query(max_length=64, description="The client's number")] = None,
    started_from: Annotated[AwareDatetime | None, Query()] = None,
    started_to: Annotated[AwareDatetime | None, Query()] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> CallPage:
    """The call journal, newest first, with filters."""
    channel_id = None
    if channel is not None:
        found = await ChannelRepository(session).get_by_key(channel)
        if found is None:
            raise InvalidInput(f"no channel {channel!r}", code="unknown_channel")
        channel_id = found.id
    filters = calls_admin.check_call_filters(
        CallFilters(
            direction=direction,
            states=_states(state),
            channel_id=channel_id,
            manager_id=manager_id,
            contact_id=contact_id,
            number=number,
            started_from=started_from,
            started_to=started_to,
        ),
        context.intake.default_region,
    )
    page = await calls_admin.list_calls(session, filters, cursor=cursor, limit=limit)
    return CallPage(items=[CallOut.of(c) for c in page.items], next_cursor=page.next_cursor)


@router.get("/calls/{call_id}", response_model=CallOut, responses=NOT_FOUND)
async def call(call_id: DbId, _principal: PrincipalDep, session: ReadSessionDep) -> CallOut:
    """One call."""
    return CallOut.of(await calls_admin.get_call(session, call_id))


@router.get(
    "/tasks",
    response_model=TaskPage,
    responses=answers(
        *coded(InvalidInput, "invalid_status", "invalid_assignee", "invalid_cursor"),
    ),
)
async def task_list(
    principal: PrincipalDep,
    session: ReadSessionDep,
    status: Annotated[
        str, Query(description="open (default), done, cancelled, or all")
    ] = TaskStatus.OPEN,
    overdue: Annotated[bool, Query(description="Only open tasks past their due time")] = False,
    kind: Annotated[str | None, Query(max_length=20, description="callback")] = None,
    assignee_id: Annotated[
        str | None, Query(max_length=20, description="A manager id, `me` or `unassigned`")
    ] = None,
    contact_id: DbId | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> TaskPage:
    """Tasks newest first: open callbacks by default, `overdue=true` for the late ones."""
    statuses: tuple[str, ...]
    if status == "all":
        statuses = ()
    elif status in set(TaskStatus):
        statuses = (status,)
    else:
        raise InvalidInput("status is open, done, cancelled or all", code="invalid_status")
    assignee, unassigned = _assignee(assignee_id, principal.manager_id)
    now = utcnow()
    filters = TaskFilters(
        kind=kind,
        statuses=statuses,
        assignee_id=assignee,
        unassigned=unassigned,
        contact_id=contact_id,
        overdue_at=now if overdue else None,
    )
    page = await tasks.list_tasks(session, filters, cursor=cursor, limit=limit)
    return TaskPage(items=[TaskOut.of(t, now) for t in page.items], next_cursor=page.next_cursor)


def _assignee(value: str | None, me: int | None) -> tuple[int | None, bool]:
    if value is None or not value.strip():
        return None, False
    value = value.strip()
    if value == "unassigned":
        return None, True
    if value == "me":
        if me is None:
            raise InvalidInput("`me` needs a manager's token or session", code="invalid_assignee")
        return me, False
    if value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value), False
    raise InvalidInput("assignee_id is a manager id, `me` or `unassigned`", code="invalid_assignee")


@router.get("/tasks/{task_id}", response_model=TaskOut, responses=NOT_FOUND)
async def task(task_id: DbId, _principal: PrincipalDep, session: ReadSessionDep) -> TaskOut:
    return TaskOut.of(await tasks.get_task(session, task_id), utcnow())


@router.post(
    "/tasks/{task_id}/done",
    response_model=TaskOut,
    responses=answers(NotFound, Conflict),
)
async def task_done(
    task_id: DbId, body: TaskDoneIn, principal: PrincipalDep, context: ContextDep
) -> TaskOut:
    """Mark a task done (a callback made outside the phone system, say)."""
    now = utcnow()
    async with context.db.transaction() as session:
        done = await tasks.complete_task(
            session, task_id, manager_id=principal.manager_id, now=now, note=body.note
        )
        return TaskOut.of(done, now)


@router.get("/telephony/blocklist", response_model=list[BlockedOut])
async def blocklist(_principal: PrincipalDep, session: ReadSessionDep) -> list[BlockedOut]:
    """Blocked numbers: rejected where the provider can (generic CTI, Twilio), and never
    made into contacts, leads or callbacks."""
    return [BlockedOut.of(b) for b in await calls_admin.blocked_numbers(session)]


@router.post(
    "/telephony/blocklist",
    response_model=BlockedOut,
    status_code=201,
    responses=answers(ADMIN_REQUIRED, Conflict),
)
async def block(body: BlockIn, admin: AdminDep, context: ContextDep) -> BlockedOut:
    async with context.db.transaction() as session:
        blocked = await calls_admin.block_number(
            session,
            body.number,
            reason=body.reason,
            manager_id=admin.manager_id,
            region=context.intake.default_region,
        )
        return BlockedOut.of(blocked)


@router.delete(
    "/telephony/blocklist/{number}",
    status_code=204,
    response_model=None,
    responses={**ADMIN, **NOT_FOUND},
)
async def unblock(
    number: Annotated[str, Path(min_length=1, max_length=64)], _admin: AdminDep, context: ContextDep
) -> None:
    async with context.db.transaction() as session:
        await calls_admin.unblock_number(session, number, region=context.intake.default_region)


@router.put(
    "/managers/{manager_id}/telephony",
    response_model=ManagerLineOut,
    responses={**ADMIN, **NOT_FOUND},
)
async def manager_line(
    manager_id: DbId, body: ManagerLineIn, principal: PrincipalDep, context: ContextDep
) -> ManagerLineOut:
    """How the phone system names the manager, so the hub knows who answered a call
    (administrators, or the manager themself)."""
    require_self_or_admin(principal, manager_id)
    async with context.db.transaction() as session:
        manager = await calls_admin.set_manager_line(
            session,
            manager_id,
            extension=body.extension,
            phone=body.phone,
            region=context.intake.default_region,
        )
        return ManagerLineOut.of(manager)
