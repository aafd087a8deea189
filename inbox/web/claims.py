"""The claims section of the workspace: the board (/claims) and a claim's page
(/claims/{number}) with its investigation plan, status history and status change.

The pages read through intake.claims.board and change through intake.claims.service, the
same services as /api/v1/claims: a status change notifies the client exactly as the API's
does, and a manager sees the same claims here as there. A refused change (a move the
claim's status does not allow, a missing resolution) is shown in plain words beside the
form that asked for it.

Live: `/claims/stream` passes each claim event the manager may see to their open board
(which refreshes its rows) or claim page (which offers a reload when someone else changed
it), numbered like the inbox's stream so a tab that missed one knows it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from inbox.deps import ContextDep, ReadSessionDep
from intake.claims.board import (
    ACTIVE,
    LIFECYCLE,
    Board,
    claim_card,
    claims_board,
    sees_claim,
)
from intake.claims.service import (
    add_step,
    change_status,
    complete_step,
    update_claim,
)
from intake.claims.texts import DEFAULT_REASONS, status_label
from intake.visibility import Viewer
from storage.bus import EventBus
from storage.db import Database
from storage.errors import HubError, InvalidInput
from storage.types import DbId

from .common import (
    Frame,
    PagePrincipal,
    Speaker,
    add_section,
    frame,
    page_principal,
    refused_status,
    router,
    section_page,
    viewer_of,
)
from .stream import KEEPALIVE_SECONDS, RETRY_MS, sse

add_section("claims", "/claims", "section.claims")

ClaimNumber = Annotated[str, Path(pattern=r"^CLM-[0-9]{4}-[0-9]{6,12}$")]
# The board's tabs: the claims still worked, each status, every claim.
TABS: tuple[str, ...] = ("active", *LIFECYCLE, "all")
# The refusals a form can meet, each said in plain words; any other is "failed".
REFUSALS = frozenset(
    {
        "transition_not_allowed",
        "resolution_required",
        "invalid_status",
        "empty_step",
        "claim_closed",
        "too_long",
    }
)


def _statuses(tab: str) -> tuple[str, ...]:
    if tab == "active":
        return ACTIVE
    return () if tab == "all" else (tab,)


def _day(words: Speaker) -> Callable[[datetime], str]:
    """A date (a due date) in the reader's zone, without the time."""
    return lambda moment: moment.astimezone(words.zone).strftime("%d.%m.%Y")


def _labels(lang: str) -> tuple[dict[str, str], dict[str, str]]:
    """Status and reason codes in the reader's words (the claims catalogue's, which the
    client reads too)."""
    statuses = {status: status_label(lang, status) for status in LIFECYCLE}
    reasons = {code: labels[lang] for code, labels in DEFAULT_REASONS.items()}
    return statuses, reasons


@router.get("/claims")
async def board_page(
    request: Request,
    context: ContextDep,
    principal: PagePrincipal,
    session: ReadSessionDep,
    status: Annotated[str, Query(max_length=20)] = "active",
    mine: bool = False,
    after: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    """The claims the manager sees, newest first, by status (`?status=`), only theirs
    (`?mine=1`), the next page by `?after=`."""
    page = await frame(request, context, principal, session)
    tab = status if status in TABS else "active"
    error = None
    try:
        board = await claims_board(
            session, page.viewer, statuses=_statuses(tab), mine=mine, cursor=after
        )
    except InvalidInput:  # a cursor that is not one of ours
        board = Board([], None, {})
        error = page.words.t("claims.bad_cursor")
    statuses, reasons = _labels(page.words.lang)
    keep = {"status": tab, **({"mine": "1"} if mine else {})}
    return section_page(
        request,
        "claims.html",
        page,
        board=board,
        tab=tab,
        tabs=TABS,
        mine=mine,
        error=error,
        statuses=statuses,
        reasons=reasons,
        day=_day(page.words),
        more=f"/claims?{urlencode({**keep, 'after': board.next_cursor})}"
        if board.next_cursor
        else None,
        query=urlencode(keep),
    )


# Live


async def claim_changes(bus: EventBus, db: Database, viewer: Viewer) -> AsyncIterator[str]:
    """The stream's text: `hello`, then one `change` per claim event the viewer may see
    (`seq`, the claim's number, who made the change), keep-alives."""
    async with bus.subscribe("claim.*") as subscription:
        seq = 0
        dropped_seen = 0
        yield f"retry: {RETRY_MS}\n" + sse("hello", {"seq": seq})
        while True:
            started = time.monotonic()
            message = await subscription.get(KEEPALIVE_SECONDS)
            if message is None:
                if time.monotonic() - started < KEEPALIVE_SECONDS / 2:
                    return  # the bus closed: the hub is stopping
                yield ": keep-alive\n\n"
                continue
            dropped = int(getattr(subscription, "dropped", 0))
            if dropped > dropped_seen:
                seq += dropped - dropped_seen
                dropped_seen = dropped
            claim_id = message.payload.get("claim_id")
            if not isinstance(claim_id, int):
                continue
            if not viewer.is_admin:
                async with db.read() as session:
                    if not await sees_claim(session, viewer, claim_id):
                        continue
            seq += 1
            by = message.payload.get("manager_id", message.payload.get("by"))
            data = {
                "seq": seq,
                "topic": message.topic,
                "number": message.payload.get("number"),
                "by": by if isinstance(by, int) else None,
            }
            yield sse("change", data, seq)


@router.get("/claims/stream")
async def claims_stream(request: Request, context: ContextDep) -> StreamingResponse:
    """The claims pages' live stream (text/event-stream)."""
    # Its own short read session: a request-scoped one would stay open with the stream.
    async with context.db.read() as session:
        viewer = viewer_of(await page_principal(request, context, session))
    return StreamingResponse(
        claim_changes(context.bus, context.db, viewer),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _claim_page(
    request: Request,
    page: Frame,
    session: ReadSessionDep,
    number: str,
    refusal: tuple[str, HubError] | None = None,
    kept: dict[str, str] | None = None,
) -> HTMLResponse:
    """The claim's page; with `refusal` (which form, why) the words beside that form, and
    the form's fields as they were sent (`kept`)."""
    card = await claim_card(session, page.viewer, number)
    statuses, reasons = _labels(page.words.lang)
    form, error = refusal if refusal else (None, None)
    said = None
    if error is not None:
        code = error.code if error.code in REFUSALS else "failed"
        said = page.words.t(f"claims.error.{code}")
    return section_page(
        request,
        "claim.html",
        page,
        refused_status(request, error),
        card=card,
        claim=card.claim,
        statuses=statuses,
        reasons=reasons,
        day=_day(page.words),
        refused_form=form,
        refusal=said,
        kept=kept or {},
    )


@router.get("/claims/{number}")
async def claim_page(
    number: ClaimNumber,
    request: Request,
    context: ContextDep,
    principal: PagePrincipal,
    session: ReadSessionDep,
) -> HTMLResponse:
    """One claim: its fields, the client, the plan, the history and the status change."""
    page = await frame(request, context, principal, session)
    return await _claim_page(request, page, session, number)


async def _changed(
    request: Request,
    context: ContextDep,
    principal: PagePrincipal,
    session: ReadSessionDep,
    number: str,
    form: str,
    error: HubError | None,
    kept: dict[str, str] | None = None,
) -> Response:
    """After a change: back to the claim (the server's truth), or the page again with the
    refusal beside the form. What the manager may not see stays a 404."""
    if error is None:
        return RedirectResponse(f"/claims/{number}#{form}", status_code=303)
    page = await frame(request, context, principal, session)
    return await _claim_page(request, page, session, number, (form, error), kept)


@router.post("/claims/{number}/status")
async def claim_status(
    number: ClaimNumber,
    request: Request,
    context: ContextDep,
    principal: PagePrincipal,
    session: ReadSessionDep,
    status: Annotated[str, Form(max_length=20)],
    resolution: Annotated[str, Form(max_length=10_000)] = "",
    comment: Annotated[str, Form(max_length=10_000)] = "",
    notify: Annotated[bool, Form()] = False,
) -> Response:
    """Move the claim on: the same service as POST /api/v1/claims/{claim}/status, so the
    client is told (in their language) unless `notify` is off."""
    page = await frame(request, context, principal, session)
    claim_id = (await claim_card(session, page.viewer, number)).claim.id
    error = None
    try:
        async with context.db.transaction() as writing:
            await change_status(
                writing,
                claim_id,
                status,
                manager_id=principal.manager_id,
                comment=comment or None,
                resolution=resolution or None,
                notify=notify,
            )
    except HubError as exc:
        error = exc
    kept = {"status": status, "resolution": resolution, "comment": comment}
    return await _changed(request, context, principal, session, number, "status", error, kept)


@router.post("/claims/{number}/steps")
async def claim_step(
    number: ClaimNumber,
    request: Request,
    context: ContextDep,
    principal: PagePrincipal,
    session: ReadSessionDep,
    text: Annotated[str, Form(max_length=10_000)] = "",
) -> Response:
    """Add a step to the investigation plan (internal: the client is not told)."""
    page = await frame(request, context, principal, session)
    claim_id = (await claim_card(session, page.viewer, number)).claim.id
    error = None
    try:
        async with context.db.transaction() as writing:
            await add_step(writing, claim_id, text, manager_id=principal.manager_id)
    except HubError as exc:
        error = exc
    kept = {"text": text}
    return await _changed(request, context, principal, session, number, "plan", error, kept)


@router.post("/claims/{number}/steps/{step_id}/done")
async def claim_step_done(
    number: ClaimNumber,
    step_id: DbId,
    request: Request,
    context: ContextDep,
    principal: PagePrincipal,
    session: ReadSessionDep,
) -> Response:
    """Tick off a step of the plan."""
    page = await frame(request, context, principal, session)
    claim_id = (await claim_card(session, page.viewer, number)).claim.id
    error = None
    try:
        async with context.db.transaction() as writing:
            await complete_step(writing, claim_id, step_id, manager_id=principal.manager_id)
    except HubError as exc:
        error = exc
    return await _changed(request, context, principal, session, number, "plan", error)


@router.post("/claims/{number}/take")
async def claim_take(
    number: ClaimNumber,
    request: Request,
    context: ContextDep,
    principal: PagePrincipal,
    session: ReadSessionDep,
) -> Response:
    """Become the claim's responsible manager (the API's PATCH with manager_id)."""
    page = await frame(request, context, principal, session)
    claim_id = (await claim_card(session, page.viewer, number)).claim.id
    async with context.db.transaction() as writing:
        await update_claim(
            writing, claim_id, manager_id=principal.manager_id, actor_id=principal.manager_id
        )
    return RedirectResponse(f"/claims/{number}", status_code=303)
