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

from collections.abc import Callable
from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

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
from storage.bus import BusMessage
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
from .live import LiveResponse, Tab, dispatcher_of, feed, read_at, sse, tail_of

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


CLAIMS_FEED = "claims"


@feed(CLAIMS_FEED)
class ClaimsFeed:
    """The claims pages' stream: `hello`, then one `change` per claim event the viewer may
    see (`seq`, the claim's number, who made the change), keep-alives. Whether a claim is
    in sight is asked once per event and manager, however many of their tabs are open."""

    name: str = CLAIMS_FEED
    topics: tuple[str, ...] = ("claim.*",)

    def __init__(self, db: Database) -> None:
        self.db = db
        self.tabs: set[Tab] = set()

    def wants(self, topic: str) -> bool:
        return topic.startswith("claim.")

    def changes(self, topic: str) -> bool:
        return True

    def hello(self, tab: Tab) -> str:
        return sse("hello", {"seq": tab.seq, "fresh": tab.fresh})

    def prefetch(self, message: BusMessage) -> None:
        """Nothing to start early: a claim event asks a question per viewer."""

    async def deliver(self, message: BusMessage) -> None:
        claim_id = message.payload.get("claim_id")
        if not isinstance(claim_id, int):
            return
        by = message.payload.get("manager_id", message.payload.get("by"))
        tail = tail_of(
            {
                "topic": message.topic,
                "number": message.payload.get("number"),
                "by": by if isinstance(by, int) else None,
            }
        )
        tabs = list(self.tabs)
        sees: dict[Viewer, bool] = {tab.viewer: True for tab in tabs if tab.viewer.is_admin}
        asked = [viewer for viewer in {tab.viewer for tab in tabs} if viewer not in sees]
        if asked:
            async with self.db.read() as session:
                for viewer in asked:
                    sees[viewer] = await sees_claim(session, viewer, claim_id)
        for tab in tabs:
            if sees[tab.viewer]:
                tab.numbered("change", tail)


@router.get("/claims/stream")
async def claims_stream(request: Request, context: ContextDep) -> LiveResponse:
    """The claims pages' live stream (text/event-stream)."""
    # Its own short read session: a request-scoped one would stay open with the stream.
    async with context.db.read() as session:
        viewer = viewer_of(await page_principal(request, context, session))
    dispatcher = dispatcher_of(request, context)
    return LiveResponse(dispatcher, dispatcher.tab(CLAIMS_FEED, viewer, since=read_at(request)))


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
