"""Tasks: what a manager must do by a time. Callbacks after missed calls are the first kind.

A missed call opens one callback per number (another missed call from the number
adds to the open one); an answered call with that number closes it, as does a
manager marking it done. Each task has a timer (`TaskDue`, an outbox event at its
due time) that emits `TaskOverdue` when the task is still open then. Services
flush, never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

import intake
from intake.calls.repository import TaskFilters, TaskRepository
from intake.i18n import Catalogue, lang_of
from intake.journal import Page, decode_cursor, page_of
from storage.errors import Conflict, InvalidInput, NotFound
from storage.events import (
    TaskAssigned,
    TaskClosed,
    TaskCreated,
    TaskDue,
    TaskOverdue,
    TaskUpdated,
)
from storage.models import Call, Task, TaskKind, TaskStatus
from storage.outbox import emit

CURSOR_KIND = "task"

# The task's title comes from the calls' catalogue (found from the intake package).
CALL_TEXTS = Catalogue(Path(intake.__file__).parent / "calls" / "locale")


def task_fields(task: Task) -> dict[str, Any]:
    """The task as its events carry it (the fields of storage.events.TaskEvent)."""
    return {
        "task_id": task.id,
        "kind": task.kind,
        "status": task.status,
        "assignee_id": task.assignee_id,
        "contact_id": task.contact_id,
        "conversation_id": task.conversation_id,
        "call_id": task.call_id,
        "phone": task.phone,
        "count": task.count,
        "due_at": task.due_at.isoformat(),
    }


async def open_callback(
    session: AsyncSession,
    call: Call,
    *,
    assignee_id: int | None,
    due_at: datetime,
    language: str = "ru",
    open_tasks: dict[str, list[Task]] | None = None,
    announce: bool = True,
) -> tuple[Task, bool]:
    """The open callback for the call's number: a new one (True), or the one already open
    with this missed call added to it (False). `open_tasks` (phone -> open tasks, rows
    locked) saves the query when the caller loaded them; with `announce=False` a new
    task is neither flushed nor announced: the caller does both (`announce_tasks`)."""
    if call.client_number is None:
        raise InvalidInput("a call without a number cannot be called back", code="no_number")
    phone = call.client_number
    if open_tasks is not None and phone in open_tasks:
        task = next((t for t in open_tasks[phone] if t.kind == TaskKind.CALLBACK), None)
    else:
        task = await TaskRepository(session).open_of_kind_for_phone(TaskKind.CALLBACK, phone)
    if task is not None:
        task.count += 1
        if task.assignee_id is None and assignee_id is not None:
            task.assignee_id = assignee_id
        if task.contact_id is None:
            task.contact_id = call.contact_id
        if task.id is not None:  # not one still to be announced
            emit(session, TaskUpdated(**task_fields(task)))
        return task, False
    task = Task(
        kind=TaskKind.CALLBACK,
        status=TaskStatus.OPEN,
        title=CALL_TEXTS.text(lang_of(language), "task.call_back", number=call.client_number),
        assignee_id=assignee_id,
        contact_id=call.contact_id,
        conversation_id=call.conversation_id,
        call_id=call.id,
        phone=call.client_number,
        count=1,
        due_at=due_at,
        note="",
    )
    session.add(task)
    if open_tasks is not None:
        open_tasks.setdefault(phone, []).append(task)
    if announce:
        await announce_tasks(session, [task])
    return task, True


async def announce_tasks(session: AsyncSession, tasks: list[Task]) -> None:
    """Flush new tasks (one statement for all) and write their events and timers."""
    if not tasks:
        return
    await session.flush()
    for task in tasks:
        emit(session, TaskCreated(**task_fields(task)))
        emit(session, TaskDue(task_id=task.id, due_at=task.due_at.isoformat()), due_at=task.due_at)


async def close_callbacks(
    session: AsyncSession,
    call: Call,
    now: datetime,
    open_tasks: dict[str, list[Task]] | None = None,
) -> list[Task]:
    """An answered call with a number closes the open tasks of that number."""
    if call.client_number is None:
        return []
    if open_tasks is not None and call.client_number in open_tasks:
        tasks = open_tasks.pop(call.client_number)
        open_tasks[call.client_number] = []
    else:
        tasks = await TaskRepository(session).open_for_phone(call.client_number)
    for task in tasks:
        task.status = TaskStatus.DONE
        task.closed_at = now
        task.closed_by_call_id = call.id
        emit(session, TaskClosed(**task_fields(task), closed_by_call_id=call.id))
    return tasks


async def complete_task(
    session: AsyncSession,
    task_id: int,
    *,
    manager_id: int | None,
    now: datetime,
    note: str = "",
) -> Task:
    """A manager marks the task done (409 when it is closed already)."""
    task = await TaskRepository(session).get(task_id, lock=True)
    if task is None:
        raise NotFound(f"no task {task_id}")
    if task.status != TaskStatus.OPEN:
        raise Conflict(f"task {task_id} is {task.status} already", code="task_closed")
    task.status = TaskStatus.DONE
    task.closed_at = now
    task.closed_by_manager_id = manager_id
    if note:
        task.note = note
    await session.flush()
    emit(session, TaskClosed(**task_fields(task), closed_by_manager_id=manager_id))
    return task


async def assign_waiting_tasks(
    session: AsyncSession, conversation_id: int, manager_id: int
) -> list[Task]:
    """Routing gave the conversation a manager: its open tasks nobody has go to them."""
    return await assign_waiting_tasks_of(session, [(conversation_id, manager_id)])


async def assign_waiting_tasks_of(
    session: AsyncSession, assigned: Sequence[tuple[int, int]]
) -> list[Task]:
    """`assign_waiting_tasks` for each (conversation, manager) in order, the tasks read in
    one statement: a conversation's waiting tasks go to the first manager it names."""
    if not assigned:
        return []
    conversation_ids = sorted({conversation_id for conversation_id, _manager in assigned})
    waiting = await TaskRepository(session).open_unassigned_of_conversations(conversation_ids)
    if not waiting:
        return []
    first: dict[int, int] = {}
    for conversation_id, manager_id in assigned:
        first.setdefault(conversation_id, manager_id)
    for task in waiting:
        assert task.conversation_id is not None
        task.assignee_id = first[task.conversation_id]
        emit(session, TaskAssigned(**task_fields(task)))
    await session.flush()
    return waiting


async def check_due(
    session: AsyncSession, task_id: int, due_at: str | None, now: datetime
) -> Task | None:
    """The task's timer: `TaskOverdue` if it is still open and its due time unchanged."""
    task = await TaskRepository(session).get(task_id, lock=True)
    if task is None or task.status != TaskStatus.OPEN or task.overdue_at is not None:
        return None
    if due_at is not None and task.due_at.isoformat() != due_at:
        return None  # moved since; the new due time has its own timer
    if task.due_at > now:
        emit(session, TaskDue(task_id=task.id, due_at=due_at), due_at=task.due_at)
        return None
    task.overdue_at = now
    await session.flush()
    emit(session, TaskOverdue(**task_fields(task), overdue_at=now.isoformat()))
    return task


async def get_task(session: AsyncSession, task_id: int) -> Task:
    task = await TaskRepository(session).get(task_id)
    if task is None:
        raise NotFound(f"no task {task_id}")
    return task


async def list_tasks(
    session: AsyncSession, filters: TaskFilters, *, cursor: str | None, limit: int
) -> Page[Task]:
    """Tasks newest first, with an opaque cursor."""
    after_id = decode_cursor(CURSOR_KIND, cursor) if cursor else None
    rows = await TaskRepository(session).find(filters, after_id, limit + 1)
    return page_of(CURSOR_KIND, list(rows), limit, lambda row: row.id)
