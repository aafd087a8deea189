"""The lead journal as a CSV file: the page's filters (the same URL with `.csv`), every
matching lead the manager may see, no cap, streamed a keyset page at a time
(intake.journal.iter_leads_csv), in the manager's language and time zone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from hub.headers import PAGE_HEADERS
from inbox.deps import ContextDep, ReadSessionDep
from intake.journal import LeadRow, iter_leads_csv, journal_choices
from storage.errors import InvalidInput
from storage.types import utcnow

from .common import PagePrincipal, Speaker, frame, router
from .leads import JournalFormDep, RowLook, lead_filters_of, look_of, refusal

# The CSV is `;`-separated: Excel with Russian regional settings (the hub's first users)
# splits a double-clicked CSV on the list separator, which is `;` there (the comma is the
# decimal mark), so a comma file would open as one column. Quoting stays RFC 4180's.
CSV_DELIMITER = ";"
CSV_HEADER = (
    "leads.csv.id",
    "leads.csv.created",
    "leads.csv.client",
    "leads.csv.email",
    "leads.csv.phone",
    "leads.csv.channel",
    "leads.csv.source",
    "leads.csv.about",
    "leads.csv.status",
    "leads.csv.manager",
    "leads.csv.conversation",
)


def _csv_cells(words: Speaker, look: RowLook) -> Callable[[LeadRow], list[Any]]:
    def cells(row: LeadRow) -> list[Any]:
        lead = row.lead
        created = lead.created_at.astimezone(words.zone)
        return [
            lead.id,
            created.strftime("%Y-%m-%d %H:%M"),
            row.contact_name,
            row.email,
            row.phone,
            look.channel(row),
            words.t(f"channel.{lead.source}"),
            look.about(row),
            words.t(f"lead.status.{lead.status}"),
            row.assignee_name,
            lead.conversation_id,
        ]

    return cells


@router.get("/leads.csv")
async def leads_csv(
    request: Request,
    context: ContextDep,
    principal: PagePrincipal,
    session: ReadSessionDep,
    form: JournalFormDep,
) -> Response:
    """Every lead of the filtered journal (no cap) as a CSV file in the manager's language,
    streamed a keyset page at a time."""
    page = await frame(request, context, principal, session)
    words = page.words
    try:
        filters = lead_filters_of(form, words)
    except InvalidInput as exc:
        return PlainTextResponse(refusal(words, exc), status_code=400, headers=PAGE_HEADERS)
    look = look_of(await journal_choices(session))
    stamp = utcnow().astimezone(words.zone)
    filename = f"leads-{stamp:%Y-%m-%d-%H%M}.csv"
    return StreamingResponse(
        iter_leads_csv(
            context.db.read,
            filters,
            viewer=page.viewer,
            header=[words.t(code) for code in CSV_HEADER],
            cells=_csv_cells(words, look),
            delimiter=CSV_DELIMITER,
        ),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
