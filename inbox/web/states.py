"""The workspace's state actions: snooze until a time, waiting for the client, reopen,
transfer to another queue, and the list's bulk actions (assign, close, snooze).

Each runs the service the REST API runs (inbox/states_api.py, inbox/routing_api.py) in one
transaction, on a conversation the manager may see; afterwards the browser goes to the
conversation (the server's truth), or sees the page again with the refusal in plain words.
The bulk bar answers with the list and a summary of what was done and what was refused.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.deps import ContextDep, ReadSessionDep
from intake.accounts import get_manager
from intake.inbox import parse_view
from intake.states import local_time, mark_pending, reopen, snooze, snooze_time
from routing.admin.bulk import MAX_BULK, bulk_act
from routing.admin.conversations import transfer_as
from storage.errors import HubError, InvalidInput
from storage.types import DbId

from .common import DEFAULT_VIEW, PagePrincipal, router, speaker, viewer_of
from .pages import ActionDep, ActionView, _workspace

SnoozeChoice = Annotated[str, Form(pattern="^(hour|tomorrow|monday|at)$")]
SnoozeAt = Annotated[str, Form(max_length=40)]


@router.post("/inbox/c/{conversation_id}/snooze")
async def snooze_page(
    conversation_id: DbId,
    act: ActionDep,
    session: ReadSessionDep,
    choice: SnoozeChoice = "hour",
    until: SnoozeAt = "",
) -> Response:
    """Snooze: a quick choice (an hour, tomorrow 9:00 or next Monday 9:00 in the manager's
    zone) or `until` (`choice=at`, a date and time in the manager's zone)."""
    by = act.principal.manager_id
    assert by is not None
    zone = speaker(act.request, await get_manager(session, by)).zone
    now = act.context.routing.clock()

    async def change(writing: AsyncSession) -> None:
        if choice == "at":
            if not until.strip():
                raise InvalidInput("snooze until when?", code="invalid_snooze")
            end = local_time(until, zone)
        else:
            end = snooze_time(choice, now, zone)
        await snooze(writing, conversation_id, until=end, manager_id=by, now=now)

    return await act.run(conversation_id, change)


@router.post("/inbox/c/{conversation_id}/pending")
async def pending_page(conversation_id: DbId, act: ActionDep) -> Response:
    """Waiting for the client: the same service as POST /api/v1/conversations/{id}/pending."""
    by = act.principal.manager_id
    return await act.run(
        conversation_id, lambda writing: mark_pending(writing, conversation_id, manager_id=by)
    )


@router.post("/inbox/c/{conversation_id}/reopen")
async def reopen_page(conversation_id: DbId, act: ActionDep) -> Response:
    """Reopen: the same service as POST /api/v1/conversations/{id}/reopen."""
    now = act.context.routing.clock()
    by = act.principal.manager_id
    return await act.run(
        conversation_id,
        lambda writing: reopen(writing, conversation_id, manager_id=by, now=now),
    )


@router.post("/inbox/c/{conversation_id}/transfer")
async def transfer_page(
    conversation_id: DbId,
    act: ActionDep,
    queue_id: Annotated[DbId, Form()],
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Transfer to another queue (its strategy decides who gets it, or it waits there), with
    the reason in the assignment history: the API's transfer with `queue_id`."""
    routing = act.context.routing
    return await act.run(
        conversation_id,
        lambda writing: transfer_as(
            writing, routing, act.viewer, conversation_id, queue_id, note=reason
        ),
        service_checks_visibility=True,
    )


@router.post("/inbox/bulk")
async def bulk_page(
    request: Request,
    context: ContextDep,
    principal: PagePrincipal,
    ids: Annotated[list[DbId], Form(max_length=MAX_BULK, default_factory=list)],
    action: Annotated[str, Form(pattern="^(assign|close|snooze)$")],
    manager_id: Annotated[DbId | None, Form()] = None,
    choice: SnoozeChoice = "hour",
    view: ActionView = DEFAULT_VIEW,
    sort: Annotated[str, Form(pattern="^(activity|sla)$")] = "activity",
) -> Response:
    """The list's bulk bar: one request for the selected conversations, each checked as if
    alone (the API's POST /api/v1/conversations/bulk); the list again with a summary."""
    slug = parse_view(view).slug
    assert principal.manager_id is not None
    now = context.routing.clock()
    error: HubError | None = None
    result = None
    try:
        async with context.db.transaction() as writing:
            manager = await get_manager(writing, principal.manager_id)
            zone = speaker(request, manager).zone
            until = snooze_time(choice, now, zone) if action == "snooze" else None
            result = await bulk_act(
                writing,
                context.routing,
                viewer_of(principal),
                ids,
                action,
                now=now,
                manager_id=manager_id,
                until=until,
            )
    except HubError as exc:
        error = exc
    # A read that starts now: the request's own began before the changes were committed.
    async with context.db.read() as fresh:
        page = await _workspace(
            request,
            context,
            principal,
            fresh,
            slug,
            None,
            None,
            sort=sort,
            bulk=result,
            action_error=error,
        )
    # The list's own address, so that a reload shows the list (not this POST again).
    page.headers["HX-Push-Url"] = f"/inbox/v/{slug}" + ("" if sort == "activity" else "?sort=sla")
    return page
