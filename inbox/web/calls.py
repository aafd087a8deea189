"""The calls section of the workspace: the callbacks to make (overdue first) and the recent
calls, and the card a ringing call pops up in every workspace tab of the managers concerned.

The page reads through intake.calls.desk (the conversations' visibility); "done" is the
API's `complete_task`. The live stream (inbox.web.stream) tells a tab that a call rings
for its manager; the tab's script (static/calls.js) fetches the card from `/calls/ring/{id}`
and drops it when the stream says the call was answered or ended.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from inbox.deps import ContextDep, ReadSessionDep
from intake.calls.desk import (
    CALLBACKS_PAGE,
    complete_callback,
    open_callbacks,
    recent_calls,
    ringing_card,
)
from storage.errors import Conflict, InvalidInput, NotFound
from storage.types import DbId, utcnow

from .common import (
    Frame,
    PagePrincipal,
    add_section,
    frame,
    refused_status,
    render,
    router,
    section_page,
)

add_section("calls", "/calls", "section.calls")

CALLS_PAGE = 50
CALLBACKS_SHOWN_MAX = 500
"""The most callbacks a live refresh keeps on the page (a tab paged on beyond is cut back)."""


def duration(seconds: int | None) -> str:
    """m:ss, or nothing when unknown."""
    if seconds is None:
        return ""
    minutes, rest = divmod(max(seconds, 0), 60)
    return f"{minutes}:{rest:02d}"


def recording(url: str | None) -> str | None:
    """A recording's link at the provider, only when it is a web address (the journal keeps
    no other kind; this keeps a `javascript:` one out of a page whatever the row says)."""
    if url and url.lower().startswith(("https://", "http://")):
        return url
    return None


async def _page(
    request: Request,
    page: Frame,
    session: ReadSessionDep,
    *,
    missed: bool,
    after: str | None,
    due_after: str | None = None,
    shown: int | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    now = utcnow()
    # A live refresh of a list the manager has paged on keeps as many rows as it showed.
    limit = max(CALLBACKS_PAGE, min(shown or 0, CALLBACKS_SHOWN_MAX))
    try:
        callbacks = await open_callbacks(session, page.viewer, now, cursor=due_after, limit=limit)
        calls = await recent_calls(
            session, page.viewer, missed_only=missed, cursor=after, limit=CALLS_PAGE
        )
    except InvalidInput as exc:
        raise NotFound("no such page of calls") from exc
    return section_page(
        request,
        "calls.html",
        page,
        status_code,
        callbacks=callbacks,
        calls=calls,
        missed=missed,
        more_callbacks=_more_callbacks(missed, callbacks.next_cursor),
        error=error,
        duration=duration,
        recording=recording,
    )


def _more_callbacks(missed: bool, cursor: str | None) -> str | None:
    """The address of the callbacks' next page (the "more" link takes only its rows)."""
    if cursor is None:
        return None
    return "/calls?" + urlencode({**({"show": "missed"} if missed else {}), "due_after": cursor})


@router.get("/calls")
async def calls_page(
    request: Request,
    context: ContextDep,
    principal: PagePrincipal,
    session: ReadSessionDep,
    show: Annotated[str, Query(pattern="^(all|missed)$")] = "all",
    after: Annotated[str | None, Query(max_length=200)] = None,
    due_after: Annotated[str | None, Query(max_length=200)] = None,
    shown: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    """The callbacks to make (`?due_after=` their next page; `?shown=N`, a first page of N
    when the tab had paged on), then the recent calls (`?show=missed`, `?after=` a page on)."""
    page = await frame(request, context, principal, session)
    return await _page(
        request,
        page,
        session,
        missed=show == "missed",
        after=after,
        due_after=due_after,
        shown=shown,
    )


@router.post("/calls/tasks/{task_id}/done")
async def callback_done(
    task_id: DbId,
    request: Request,
    context: ContextDep,
    principal: PagePrincipal,
    session: ReadSessionDep,
    note: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """Mark a callback done (as the API's POST /tasks/{id}/done), then back to the page."""
    page = await frame(request, context, principal, session)
    try:
        async with context.db.transaction() as writing:
            await complete_callback(writing, page.viewer, task_id, now=utcnow(), note=note)
    except (Conflict, NotFound) as exc:
        # In plain words above the lists, which show how things are now.
        gone = isinstance(exc, NotFound)
        error = page.words.t("calls.error.gone" if gone else "calls.error.closed")
        return await _page(
            request, page, session, missed=False, after=None, error=error,
            status_code=refused_status(request, exc),
        )  # fmt: skip
    return RedirectResponse("/calls", status_code=303)


@router.get("/calls/ring/{call_id}")
async def ringing(
    call_id: DbId,
    request: Request,
    context: ContextDep,
    principal: PagePrincipal,
    session: ReadSessionDep,
) -> HTMLResponse:
    """The ringing call's card, a fragment the tab's script shows."""
    page = await frame(request, context, principal, session)
    card = await ringing_card(session, page.viewer, call_id, extension=page.manager.extension)
    return render(request, "_call_card.html", page.words, card=card)
