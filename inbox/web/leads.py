"""The lead journal page: the journal filtered (its own URL per filter) and a lead's status
changed in place; its CSV file is in leads_csv.

The page reads and writes through the same services as /api/v1/leads (intake.journal):
the same filters, the same keyset pages (no cap: "more" follows the cursor), the same
status change with its `lead.status_changed` event. Unlike the API's token callers, a
manager here sees only the leads of the conversations they may see (intake.visibility).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Form, Query, Request
from fastapi.responses import (
    HTMLResponse,
    RedirectResponse,
    Response,
)

from hub.headers import PAGE_HEADERS
from inbox.deps import ContextDep, ReadSessionDep
from intake.journal import (
    Actor,
    JournalChoices,
    LeadFilters,
    LeadRow,
    change_lead_status,
    check_lead_filters,
    journal_choices,
    lead_of_conversation,
    list_leads,
    visible_lead,
)
from storage.errors import HubError, InvalidInput, NotFound
from storage.models import ChannelKind, LeadStatus
from storage.types import DbId

from .common import PagePrincipal, Speaker, add_section, frame, render, router

add_section("leads", "/leads", "section.leads")

PAGE_SIZE = 50
LEAD_STATUSES = tuple(status.value for status in LeadStatus)
SOURCES = tuple(kind.value for kind in ChannelKind)
# Refusals the page names in plain words; anything else is "could not be done".
REFUSALS = frozenset(
    {
        "invalid_status",
        "invalid_source",
        "invalid_date",
        "invalid_text",
        "invalid_cursor",
        "invalid_assignee",
    }
)
# Where a status form may send a browser without JavaScript back to.
SAFE_BACK = ("/leads", "/inbox/")


@dataclass(frozen=True, slots=True)
class JournalForm:
    """The filters as the page's GET form holds them (what the manager typed, unparsed)."""

    statuses: tuple[str, ...] = ()
    channel: str = ""
    source: str = ""
    assignee: str = ""
    created_from: str = ""
    created_to: str = ""
    text: str = ""

    def pairs(self) -> list[tuple[str, str]]:
        """The query parameters that reproduce this filter (empty ones left out)."""
        pairs = [("status", status) for status in self.statuses]
        for name in ("channel", "source", "assignee", "created_from", "created_to", "text"):
            value = getattr(self, name)
            if value:
                pairs.append((name, value))
        return pairs

    def query(self, **extra: str) -> str:
        """`?…` for a URL of this filter (with `extra`), or "" when there is nothing."""
        text = urlencode(self.pairs() + list(extra.items()))
        return "?" + text if text else ""

    @property
    def active(self) -> bool:
        return bool(self.pairs())


def _day(value: str, words: Speaker, *, next_day: bool = False) -> datetime | None:
    """The start of a YYYY-MM-DD day in the manager's zone (of the next day for an
    inclusive end); InvalidInput(invalid_date) for anything else."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"not a date: {value!r}", code="invalid_date") from exc
    if next_day:
        day += timedelta(days=1)
    return datetime.combine(day, time(), tzinfo=words.zone)


def lead_filters_of(form: JournalForm, words: Speaker) -> LeadFilters:
    """The journal's filters from the page's form: days in the manager's zone, the period's
    end day included; InvalidInput names what is wrong."""
    assignee_id, unassigned = None, False
    if form.assignee == "unassigned":
        unassigned = True
    elif form.assignee:
        if not (form.assignee.isascii() and form.assignee.isdigit() and len(form.assignee) < 19):
            raise InvalidInput("not a manager", code="invalid_assignee")
        assignee_id = int(form.assignee)
    return check_lead_filters(
        LeadFilters(
            channel=form.channel or None,
            statuses=form.statuses,
            source=form.source or None,
            created_from=_day(form.created_from, words),
            created_to=_day(form.created_to, words, next_day=True),
            assignee_id=assignee_id,
            unassigned=unassigned,
            text=form.text or None,
        )
    )


def journal_form(
    status: Annotated[list[str] | None, Query(max_length=20)] = None,
    channel: Annotated[str, Query(max_length=64)] = "",
    source: Annotated[str, Query(max_length=20)] = "",
    assignee: Annotated[str, Query(max_length=20)] = "",
    created_from: Annotated[str, Query(max_length=10)] = "",
    created_to: Annotated[str, Query(max_length=10)] = "",
    text: Annotated[str, Query(max_length=200)] = "",
) -> JournalForm:
    """The form as submitted, values trimmed and repeated statuses once."""
    return JournalForm(
        statuses=tuple(dict.fromkeys(s for s in status or () if s)),
        channel=channel.strip(),
        source=source.strip(),
        assignee=assignee.strip(),
        created_from=created_from.strip(),
        created_to=created_to.strip(),
        text=text.strip(),
    )


JournalFormDep = Annotated[JournalForm, Depends(journal_form)]


def refusal(words: Speaker, error: HubError) -> str:
    """A refused filter or change in the manager's words."""
    if isinstance(error, NotFound):
        return words.t("leads.error.not_found")
    return words.t(f"leads.error.{error.code if error.code in REFUSALS else 'failed'}")


@dataclass(frozen=True, slots=True)
class RowLook:
    """What a lead's row shows beside the lead itself."""

    channel_titles: dict[int, str]

    def client(self, row: LeadRow) -> str:
        return row.contact_name or row.email or row.phone or f"#{row.lead.contact_id}"

    def channel(self, row: LeadRow) -> str:
        return self.channel_titles.get(row.lead.channel_id, row.channel_key)

    @staticmethod
    def about(row: LeadRow) -> str:
        """The lead's subject, else the first words of its text."""
        return (row.lead.title or row.lead.summary or "").strip()


def look_of(choices: JournalChoices) -> RowLook:
    return RowLook({channel_id: title for channel_id, _kind, title in choices.channels})


@router.get("/leads")
async def leads_page(
    request: Request,
    context: ContextDep,
    principal: PagePrincipal,
    session: ReadSessionDep,
    form: JournalFormDep,
    after: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    """The journal, newest first, filtered by the GET form (`?after=` for the next page,
    which the "more" link's htmx takes only the rows of)."""
    page = await frame(request, context, principal, session)
    words = page.words
    choices = await journal_choices(session)
    rows: Sequence[LeadRow] = []
    next_cursor = None
    error = None
    try:
        filters = lead_filters_of(form, words)
        found = await list_leads(session, filters, after, PAGE_SIZE, viewer=page.viewer)
        rows, next_cursor = found.items, found.next_cursor
    except InvalidInput as exc:
        error = refusal(words, exc)
    values: dict[str, Any] = {
        "rows": rows,
        "next_cursor": next_cursor,
        "form": form,
        "look": look_of(choices),
        "csrf": page.csrf,
        "back": "/leads" + form.query(),
        "statuses": LEAD_STATUSES,
    }
    return render(
        request,
        "leads.html",
        words,
        status_code=400 if error else 200,
        manager=page.manager,
        choices=choices,
        sources=SOURCES,
        error=error,
        **values,
    )


def _safe_back(back: str) -> str:
    """A local page to return to after a form post without JavaScript; else the journal."""
    if back.startswith(SAFE_BACK) and not back.startswith("//") and "\\" not in back:
        return back
    return "/leads"


@router.post("/leads/{lead_id}/status")
async def lead_status(
    lead_id: DbId,
    request: Request,
    context: ContextDep,
    principal: PagePrincipal,
    session: ReadSessionDep,
    status: Annotated[str, Form(max_length=20)],
    part: Annotated[str, Form(pattern="^(row|form)$")] = "row",
    back: Annotated[str, Form(max_length=2000)] = "/leads",
) -> Response:
    """Change a lead's status: the same service as PATCH /api/v1/leads/{id}, for a lead the
    manager may see. htmx gets the lead's row (`part=row`) or its status form (`part=form`,
    the conversation's header) back, a refusal in words inside it; a browser without
    JavaScript goes `back`."""
    page = await frame(request, context, principal, session)
    words = page.words
    error: HubError | None = None
    row: LeadRow | None = None
    try:
        async with context.db.transaction() as writing:
            await visible_lead(writing, page.viewer, lead_id)
            await change_lead_status(
                writing, lead_id, status, Actor(manager_id=principal.manager_id)
            )
            row = await visible_lead(writing, page.viewer, lead_id)
    except HubError as exc:
        error = exc
    htmx = bool(request.headers.get("hx-request"))
    if error is None and not htmx:
        return RedirectResponse(_safe_back(back), status_code=303)
    if isinstance(error, NotFound) and not htmx:
        raise error
    if row is None:
        # Refused: the lead as it is now, in a session that began after the refusal.
        async with context.db.read() as fresh:
            with suppress(NotFound):
                row = await visible_lead(fresh, page.viewer, lead_id)
    refused = refusal(words, error) if error is not None else None
    if row is None:
        # Gone or hidden: the refusal in words where the lead was.
        return render(request, "_lead_gone.html", words, lead_id=lead_id, part=part, error=refused)
    return render(
        request,
        "_lead_row.html" if part == "row" else "_lead_status.html",
        words,
        # htmx swaps only a 2xx answer: its refusal comes as 200 with the words.
        status_code=200 if htmx or error is None else error.status_code,
        row=row,
        lead=row.lead,
        look=look_of(await journal_choices(session)),
        csrf=page.csrf,
        statuses=LEAD_STATUSES,
        back=_safe_back(back),
        part=part,
        error=refused,
    )


@router.get("/leads/c/{conversation_id}/status")
async def conversation_lead_status(
    conversation_id: DbId,
    request: Request,
    context: ContextDep,
    principal: PagePrincipal,
    session: ReadSessionDep,
) -> HTMLResponse:
    """The status form of a conversation's lead, for the conversation's header (loaded by
    htmx beside it); nothing when the conversation opened no lead."""
    page = await frame(request, context, principal, session)
    row = await lead_of_conversation(session, page.viewer, conversation_id)
    if row is None:
        return HTMLResponse("", headers=PAGE_HEADERS)
    return render(
        request,
        "_lead_status.html",
        page.words,
        lead=row.lead,
        csrf=page.csrf,
        statuses=LEAD_STATUSES,
        back=f"/inbox/v/open/c/{conversation_id}",
        part="form",
        error=None,
    )
