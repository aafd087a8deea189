"""The contact panel beside a conversation: who the client is, everything the hub holds
about them, editing name, company and notes, and merging the duplicates the hub suggests.

The panel is a fragment (`/inbox/contacts/{id}/panel`) that the conversation view loads
with htmx; its edit form and merge confirmation swap in place. It uses the same services
as the REST API (intake.contact_card's edit as PATCH /api/v1/contacts/{id}, intake.merges
as POST /api/v1/contacts/{id}/merge), and shows only a contact of a conversation the
manager may see. `view` and `conversation` say where the panel sits, so its links and the
page after a merge lead back there.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from inbox.deps import ContextDep, ReadSessionDep
from intake.contact_card import (
    COMPANY_LIMIT,
    NAME_LIMIT,
    NOTES_LIMIT,
    ContactChanges,
    contact_card,
    update_contact,
    visible_contact,
)
from intake.inbox import parse_view, visible_conversation
from intake.merges import merge_contacts
from storage.errors import InvalidInput, NotFound
from storage.types import DbId

from .common import DEFAULT_VIEW, Frame, PagePrincipal, frame, render, router

ViewSlug = Annotated[str, Query(max_length=40)]
ConversationRef = Annotated[DbId | None, Query()]
# How htmx swaps the whole workspace (as the workspace's own links do).
WORKSPACE_SWAP = {"target": "#workspace", "select": "#workspace", "swap": "outerHTML show:none"}
# The tables a merge moves rows of, in the order the panel names them.
MOVES = (
    "identities",
    "conversations",
    "leads",
    "claims",
    "calls",
    "tasks",
)


def _place(view: str, conversation: int | None, lang: str | None = None) -> dict[str, Any]:
    """Where the panel sits: the view's slug (a known one), the open conversation, and the
    language asked for in the address (`?lang=`), which the panel's own links keep."""
    slug = parse_view(view).slug
    query = {"view": slug} | ({"conversation": str(conversation)} if conversation else {})
    asked = {"lang": lang} if lang in ("ru", "en") else {}
    return {
        "slug": slug,
        "conversation_id": conversation,
        "place": "?" + urlencode(query | asked),
        "asked": "?" + urlencode(asked) if asked else "",
    }


async def _panel(
    request: Request,
    page: Frame,
    session: ReadSessionDep,
    contact_id: int,
    view: str,
    conversation: int | None,
    status_code: int = 200,
    **values: Any,
) -> HTMLResponse:
    card = await contact_card(session, page.viewer, contact_id)
    return render(
        request,
        "_contact_panel.html",
        page.words,
        status_code=status_code,
        card=card,
        csrf=page.csrf,
        limits={"name": NAME_LIMIT, "company": COMPANY_LIMIT, "notes": NOTES_LIMIT},
        moves=MOVES,
        **_place(view, conversation, request.query_params.get("lang")),
        **values,
    )


@router.get("/inbox/contacts/{contact_id}/panel")
async def contact_panel(
    contact_id: DbId,
    request: Request,
    context: ContextDep,
    principal: PagePrincipal,
    session: ReadSessionDep,
    view: ViewSlug = DEFAULT_VIEW,
    conversation: ConversationRef = None,
) -> HTMLResponse:
    """The contact panel: identities, owner, conversations, leads, claims, calls, notes,
    the merges suggested and done."""
    page = await frame(request, context, principal, session)
    return await _panel(request, page, session, contact_id, view, conversation)


@router.get("/inbox/contacts/{contact_id}/edit")
async def contact_edit(
    contact_id: DbId,
    request: Request,
    context: ContextDep,
    principal: PagePrincipal,
    session: ReadSessionDep,
    view: ViewSlug = DEFAULT_VIEW,
    conversation: ConversationRef = None,
) -> HTMLResponse:
    """The panel with the form for name, company and notes."""
    page = await frame(request, context, principal, session)
    return await _panel(request, page, session, contact_id, view, conversation, editing=True)


@router.post("/inbox/contacts/{contact_id}")
async def contact_save(
    contact_id: DbId,
    request: Request,
    context: ContextDep,
    principal: PagePrincipal,
    session: ReadSessionDep,
    name: Annotated[str, Form(max_length=1000)] = "",
    company: Annotated[str, Form(max_length=1000)] = "",
    notes: Annotated[str, Form(max_length=20_000)] = "",
    view: Annotated[str, Form(max_length=40)] = DEFAULT_VIEW,
    conversation: Annotated[DbId | None, Form()] = None,
) -> Response:
    """Save name, company and notes (the service of PATCH /api/v1/contacts/{id}); the panel
    again, or the form with the refusal next to the field."""
    page = await frame(request, context, principal, session)
    htmx = bool(request.headers.get("hx-request"))
    try:
        async with context.db.transaction() as writing:
            await visible_contact(writing, page.viewer, contact_id)
            await update_contact(writing, contact_id, ContactChanges(name, company, notes))
    except InvalidInput as exc:
        field = exc.code.removeprefix("invalid_")
        return await _panel(
            request,
            page,
            session,  # nothing was written
            contact_id,
            view,
            conversation,
            # htmx swaps only a 2xx answer: the refusal it asked for comes as 200.
            status_code=200 if htmx else 422,
            editing=True,
            entered={"name": name, "company": company, "notes": notes},
            field_error=(field, page.words.t(f"panel.error.{field}", limit=_limit(field))),
        )
    if htmx and conversation:
        # The name shows in the list and the conversation too: htmx loads the whole
        # conversation page again (the form swapped in place; the saved page swaps whole).
        where = {"path": _back(request, contact_id, view, conversation)} | WORKSPACE_SWAP
        return Response(status_code=200, headers={"HX-Location": json.dumps(where)})
    if htmx:
        # A new read: this request's first one may not see what was just written.
        async with context.db.read() as fresh:
            return await _panel(request, page, fresh, contact_id, view, conversation)
    return RedirectResponse(_back(request, contact_id, view, conversation), status_code=303)


def _limit(field: str) -> int:
    return {"name": NAME_LIMIT, "company": COMPANY_LIMIT}.get(field, NOTES_LIMIT)


def _back(request: Request, contact_id: int, view: str, conversation: int | None) -> str:
    """The conversation the panel sits beside, else the panel itself (in the language the
    address asked for)."""
    place = _place(view, conversation, request.query_params.get("lang"))
    if conversation:
        return f"/inbox/v/{place['slug']}/c/{conversation}{place['asked']}"
    return f"/inbox/contacts/{contact_id}/panel{place['place']}"


@router.get("/inbox/contacts/{contact_id}/merge/{other_id}")
async def merge_confirmation(
    contact_id: DbId,
    other_id: DbId,
    request: Request,
    context: ContextDep,
    principal: PagePrincipal,
    session: ReadSessionDep,
    view: ViewSlug = DEFAULT_VIEW,
    conversation: ConversationRef = None,
) -> HTMLResponse:
    """The panel asking to confirm a suggested merge, saying what would move."""
    page = await frame(request, context, principal, session)
    return await _panel(request, page, session, contact_id, view, conversation, confirm=other_id)


@router.post("/inbox/contacts/{contact_id}/merge")
async def merge(
    contact_id: DbId,
    request: Request,
    context: ContextDep,
    principal: PagePrincipal,
    session: ReadSessionDep,
    other_contact_id: Annotated[DbId, Form()],
    view: Annotated[str, Form(max_length=40)] = DEFAULT_VIEW,
    conversation: Annotated[DbId | None, Form()] = None,
) -> Response:
    """Merge another contact into this one (the service of POST /api/v1/contacts/{id}/merge):
    then the conversation again, its timeline and panel with everything of both."""
    page = await frame(request, context, principal, session)
    # What the manager may not see stays a 404, before anything is touched.
    await visible_contact(session, page.viewer, contact_id)
    if conversation:
        await visible_conversation(session, page.viewer, conversation)
    try:
        async with context.db.transaction() as writing:
            await merge_contacts(
                writing, contact_id, other_contact_id, principal.actor, context.routing.clock()
            )
    except (InvalidInput, NotFound):
        # Merged already (by someone else), or the contact itself: said in the panel.
        async with context.db.read() as fresh:
            return await _panel(
                request,
                page,
                fresh,
                contact_id,
                view,
                conversation,
                status_code=200 if request.headers.get("hx-request") else 409,
                merge_error=page.words.t("panel.merge.gone"),
            )
    return RedirectResponse(_back(request, contact_id, view, conversation), status_code=303)
