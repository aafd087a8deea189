"""The managers' REST API under /api/v1: sign-in, the lead journal, contacts, conversations.

Endpoints only parse, authorise and shape answers; the work is intake's, and
writes happen inside `context.db.transaction()`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime

from inbox.boundary import api_router
from inbox.deps import (
    ADMIN_REQUIRED,
    NO_MANAGER,
    AdminDep,
    ContextDep,
    Principal,
    PrincipalDep,
    ReadSessionDep,
    caller_manager,
)
from inbox.schemas import (
    ContactChangeIn,
    ContactDetailOut,
    ContactOut,
    ContactPage,
    ConversationDetailOut,
    ConversationOut,
    ConversationPage,
    LeadDetailOut,
    LeadOut,
    LeadPage,
    LeadStatusIn,
    LoginIn,
    ManagerOut,
    MeOut,
    MessageOut,
    MessagePage,
    PasswordChangeIn,
)
from inbox.sessions import (
    CSRF_HEADER,
    SESSION_COOKIE,
    check_csrf,
    check_origin,
    clear_session_cookie,
    client_ip,
    csrf_token,
    login_limits,
    set_session_cookie,
)
from intake.accounts import (
    authenticate_manager,
    get_manager,
    hash_password_async,
    list_managers,
    password_matches,
    set_password_hash,
)
from intake.contact_card import ContactChanges, update_contact, visible_contact
from intake.identities import normalize_email
from intake.journal import (
    ConversationFilters,
    LeadFilters,
    change_lead_status,
    check_lead_filters,
    get_contact,
    get_conversation,
    get_lead,
    iter_leads_csv,
    list_conversations,
    list_leads,
    list_messages,
    search_contacts,
    visible_lead,
)
from intake.sessions import end_manager_sessions, end_session, find_session, open_session
from intake.visibility import Viewer
from storage.errors import (
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthorized,
    answers,
    coded,
)
from storage.types import DbId, utcnow

router = api_router(tags=["inbox"])

NOT_FOUND = answers(NotFound)
# The business rules a list's filters are checked against (beyond their schema).
PAGE_ERRORS = coded(InvalidInput, "invalid_cursor", "invalid_limit")
CONTACT_CHANGE_ERRORS = ("invalid_name", "invalid_company", "invalid_notes")
LEAD_FILTER_ERRORS = answers(
    *coded(
        InvalidInput,
        "invalid_assignee",
        "invalid_status",
        "invalid_source",
        "invalid_date",
        "invalid_text",
    ),
    *PAGE_ERRORS,
)

Limit = Annotated[int, Query(ge=1, le=200, description="Page size, 1..200")]
Cursor = Annotated[
    str | None,
    Query(max_length=200, description="`next_cursor` of the previous page"),
]


def _assignee(value: str | None) -> tuple[int | None, bool]:
    """(assignee_id, unassigned) from a query value: a manager id or "unassigned"."""
    if value is None or not value.strip():
        return None, False
    value = value.strip()
    if value == "unassigned":
        return None, True
    if value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value), False
    raise InvalidInput("assignee_id is a manager id or 'unassigned'", code="invalid_assignee")


def _split(values: list[str] | None) -> tuple[str, ...]:
    """Repeated and comma-separated query values as one tuple (`status=new,spam`)."""
    return tuple(
        part.strip() for value in values or () for part in value.split(",") if part.strip()
    )


def lead_filters(
    channel: Annotated[str | None, Query(max_length=64, description="Channel key or id")] = None,
    status: Annotated[
        list[str] | None,
        Query(description="Lead status; repeat or comma-separate for several"),
    ] = None,
    source: Annotated[
        str | None,
        Query(max_length=20, description="Channel kind: email, telegram, webform, telephony"),
    ] = None,
    created_from: Annotated[
        AwareDatetime | None, Query(description="Created at or after (ISO 8601 with zone)")
    ] = None,
    created_to: Annotated[
        AwareDatetime | None, Query(description="Created before (ISO 8601 with zone)")
    ] = None,
    assignee_id: Annotated[
        str | None, Query(max_length=20, description="Manager id, or `unassigned`")
    ] = None,
    text: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Case-insensitive substring of title, text, contact name, email, phone",
        ),
    ] = None,
) -> LeadFilters:
    assignee, unassigned = _assignee(assignee_id)
    return check_lead_filters(
        LeadFilters(
            channel=channel,
            statuses=_split(status),
            source=source,
            created_from=created_from,
            created_to=created_to,
            assignee_id=assignee,
            unassigned=unassigned,
            text=text,
        )
    )


LeadFiltersDep = Annotated[LeadFilters, Depends(lead_filters)]


# Accounts


def _account_key(email: str) -> str:
    try:
        return normalize_email(email)
    except InvalidInput:
        return email.strip().lower()


# Cross-site refusals are declared for every API route (inbox.boundary); what proves a
# password adds its limits and the wrong password.
PASSWORD_ERRORS = answers(RateLimited, Unauthorized(code="invalid_credentials"))


@router.post(
    "/auth/login",
    response_model=MeOut,
    tags=["auth"],
    responses=PASSWORD_ERRORS,
)
async def login(body: LoginIn, request: Request, response: Response, context: ContextDep) -> MeOut:
    """Sign in with email and password; sets the `omnihub_session` cookie (12 hours)
    and gives the session's CSRF token in the `X-CSRF-Token` response header.

    Attempts are limited per account and per client IP (429 with Retry-After).
    """
    check_origin(request, context)
    ip = client_ip(request)
    await login_limits(context).check(_account_key(body.email), ip)
    manager = await authenticate_manager(context.db, body.email, body.password)
    if manager is None:
        raise Unauthorized("invalid email or password", code="invalid_credentials")
    async with context.db.transaction() as session:
        token = await open_session(
            session, manager.id, user_agent=request.headers.get("user-agent"), ip=ip
        )
    set_session_cookie(request, response, context, token)
    return MeOut(role=manager.role, manager=ManagerOut.model_validate(manager), token_id=None)


@router.post("/auth/logout", status_code=204, response_model=None, tags=["auth"])
async def logout(request: Request, response: Response, context: ContextDep) -> None:
    """Sign out: ends the session on the server and clears the cookie (harmless without one)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        async with context.db.read() as session:
            live = await find_session(session, cookie)
        if live is not None:
            await check_csrf(request, context, cookie)
            async with context.db.transaction() as session:
                await end_session(session, cookie)
    clear_session_cookie(request, response)


@router.post(
    "/auth/logout-all",
    status_code=204,
    response_model=None,
    tags=["auth"],
    responses=answers(NO_MANAGER),
)
async def logout_everywhere(
    principal: PrincipalDep, request: Request, response: Response, context: ContextDep
) -> None:
    """Sign out everywhere: ends every session of the calling manager, this one too."""
    manager_id = caller_manager(principal)
    async with context.db.transaction() as session:
        await end_manager_sessions(session, manager_id)
    clear_session_cookie(request, response)


@router.post(
    "/auth/password",
    status_code=204,
    response_model=None,
    tags=["auth"],
    responses=answers(NO_MANAGER, RateLimited, Forbidden(code="invalid_credentials")),
)
async def change_password(
    body: PasswordChangeIn,
    principal: PrincipalDep,
    request: Request,
    response: Response,
    context: ContextDep,
) -> None:
    """Change the calling manager's password (the current one is asked for).

    Every session of the manager ends; a caller signed in by cookie goes on in a new
    session (new cookie and CSRF token). API tokens are separate and stay valid.
    """
    manager_id = caller_manager(principal)
    async with context.db.read() as session:
        manager = await get_manager(session, manager_id)
    if manager is None:
        raise Unauthorized("authentication required")
    await login_limits(context).check(manager.email, client_ip(request))
    if not await password_matches(manager.password_hash, body.current_password):
        raise Forbidden("the current password is wrong", code="invalid_credentials")
    new_hash = await hash_password_async(body.new_password)
    async with context.db.transaction() as session:
        await set_password_hash(session, manager_id, new_hash)
        await end_manager_sessions(session, manager_id)
        token = None
        if principal.session_id is not None:
            token = await open_session(
                session,
                manager_id,
                user_agent=request.headers.get("user-agent"),
                ip=client_ip(request),
            )
    if token is not None:
        set_session_cookie(request, response, context, token)


@router.get("/me", response_model=MeOut, tags=["auth"])
async def me(
    principal: PrincipalDep,
    session: ReadSessionDep,
    request: Request,
    response: Response,
    context: ContextDep,
) -> MeOut:
    """The caller: their manager record and role (an operator token has no manager).

    A caller signed in by cookie gets the session's CSRF token in `X-CSRF-Token`.
    """
    cookie = request.cookies.get(SESSION_COOKIE)
    if principal.session_id is not None and cookie:
        response.headers[CSRF_HEADER] = csrf_token(context.secret, cookie)
    manager = None
    if principal.manager_id is not None:
        found = await get_manager(session, principal.manager_id)
        manager = ManagerOut.model_validate(found) if found is not None else None
    return MeOut(role=principal.role, manager=manager, token_id=principal.token_id)


@router.get(
    "/managers",
    response_model=list[ManagerOut],
    tags=["auth"],
    responses=answers(ADMIN_REQUIRED),
)
async def managers(_admin: AdminDep, session: ReadSessionDep) -> list[ManagerOut]:
    """Every manager, active or not (administrators only)."""
    return [ManagerOut.model_validate(m) for m in await list_managers(session)]


# Leads. export.csv is registered before /leads/{lead_id} so the path is not taken for an id.


def _viewer(principal: Principal) -> Viewer:
    """Whose eyes the journal is read with (an operator's token acts as an administrator)."""
    return Viewer(manager_id=principal.manager_id, is_admin=principal.is_admin)


@router.get("/leads", response_model=LeadPage, tags=["leads"], responses=LEAD_FILTER_ERRORS)
async def leads(
    principal: PrincipalDep,
    session: ReadSessionDep,
    filters: LeadFiltersDep,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> LeadPage:
    """The lead journal, newest first, filtered; follow `next_cursor` for older leads.
    A manager sees the leads of the conversations they may see; administrators all."""
    page = await list_leads(session, filters, cursor, limit, viewer=_viewer(principal))
    return LeadPage(items=[LeadOut.of(row) for row in page.items], next_cursor=page.next_cursor)


@router.get(
    "/leads/export.csv",
    response_class=StreamingResponse,
    tags=["leads"],
    responses={
        200: {"content": {"text/csv": {}}, "description": "The journal as CSV"},
        **LEAD_FILTER_ERRORS,
    },
)
async def export_leads(
    principal: PrincipalDep, context: ContextDep, filters: LeadFiltersDep
) -> StreamingResponse:
    """The filtered journal as CSV (UTF-8 with BOM), streamed page by page.

    Columns: id, created_at (UTC), status, source, channel, title, contact_name,
    email, phone, utm_source, utm_medium, utm_campaign, utm_term, utm_content,
    referrer, assignee. Cells that a spreadsheet would run as a formula are
    prefixed with a single quote.
    """
    filename = f"leads-{utcnow():%Y%m%d-%H%M%S}.csv"
    return StreamingResponse(
        iter_leads_csv(context.db.read, filters, viewer=_viewer(principal)),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/leads/{lead_id}", response_model=LeadDetailOut, tags=["leads"], responses=NOT_FOUND)
async def lead(lead_id: DbId, principal: PrincipalDep, session: ReadSessionDep) -> LeadDetailOut:
    """One lead with its contact, the contact's identities and the channel."""
    await visible_lead(session, _viewer(principal), lead_id)
    return LeadDetailOut.of_detail(await get_lead(session, lead_id))


@router.patch("/leads/{lead_id}", response_model=LeadDetailOut, tags=["leads"], responses=NOT_FOUND)
async def update_lead(
    lead_id: DbId, body: LeadStatusIn, principal: PrincipalDep, context: ContextDep
) -> LeadDetailOut:
    """Change a lead's status; emits `lead.status_changed` (nothing when unchanged)."""
    async with context.db.transaction() as session:
        await visible_lead(session, _viewer(principal), lead_id)
        await change_lead_status(session, lead_id, body.status, principal.actor)
        detail = await get_lead(session, lead_id)
    return LeadDetailOut.of_detail(detail)


# Contacts


@router.get(
    "/contacts", response_model=ContactPage, tags=["contacts"], responses=answers(*PAGE_ERRORS)
)
async def contacts(
    _principal: PrincipalDep,
    context: ContextDep,
    session: ReadSessionDep,
    q: Annotated[
        str | None, Query(max_length=200, description="Name, company, email or phone")
    ] = None,
    phone: Annotated[
        str | None, Query(max_length=64, description="A phone in any common notation")
    ] = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> ContactPage:
    """Find contacts; every given term must match. Phones and emails are normalised first."""
    page = await search_contacts(
        session,
        q=q,
        phone=phone,
        email=email,
        name=name,
        default_region=context.intake.default_region,
        cursor=cursor,
        limit=limit,
    )
    return ContactPage(
        items=[ContactOut.of(contact) for contact in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/contacts/{contact_id}",
    response_model=ContactDetailOut,
    tags=["contacts"],
    responses=NOT_FOUND,
)
async def contact(
    contact_id: DbId, principal: PrincipalDep, session: ReadSessionDep
) -> ContactDetailOut:
    """A contact with identities, conversations in every channel and open merge suggestions
    (a manager: a contact of a conversation they may see, or their own; as PATCH decides)."""
    await visible_contact(session, Viewer(principal.manager_id, principal.is_admin), contact_id)
    return ContactDetailOut.of_detail(await get_contact(session, contact_id))


@router.patch(
    "/contacts/{contact_id}",
    response_model=ContactDetailOut,
    tags=["contacts"],
    responses=answers(NotFound, *coded(InvalidInput, *CONTACT_CHANGE_ERRORS)),
)
async def change_contact(
    contact_id: DbId, body: ContactChangeIn, principal: PrincipalDep, context: ContextDep
) -> ContactDetailOut:
    """Change a contact's name, company or notes (a manager: a contact of a conversation
    they may see); the same service as the workspace's contact panel."""
    async with context.db.transaction() as session:
        await visible_contact(session, Viewer(principal.manager_id, principal.is_admin), contact_id)
        await update_contact(
            session, contact_id, ContactChanges(body.name, body.company, body.notes)
        )
        detail = await get_contact(session, contact_id)
    return ContactDetailOut.of_detail(detail)


# Conversations


@router.get(
    "/conversations",
    response_model=ConversationPage,
    tags=["conversations"],
    responses=answers(*coded(InvalidInput, "invalid_assignee", "invalid_status"), *PAGE_ERRORS),
)
async def conversations(
    _principal: PrincipalDep,
    session: ReadSessionDep,
    status: Annotated[
        list[str] | None,
        Query(description="open, pending, snoozed, closed; repeat or comma-separate"),
    ] = None,
    channel: Annotated[str | None, Query(max_length=64, description="Channel key or id")] = None,
    contact_id: DbId | None = None,
    assignee_id: Annotated[
        str | None, Query(max_length=20, description="Manager id, or `unassigned`")
    ] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> ConversationPage:
    """Conversations, newest first, filtered by status, channel, contact and assignee."""
    assignee, unassigned = _assignee(assignee_id)
    filters = ConversationFilters(
        statuses=_split(status),
        channel=channel.strip() if channel and channel.strip() else None,
        contact_id=contact_id,
        assignee_id=assignee,
        unassigned=unassigned,
    )
    page = await list_conversations(session, filters, cursor, limit)
    return ConversationPage(
        items=[ConversationOut.of(row) for row in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/conversations/{conversation_id}",
    response_model=ConversationDetailOut,
    tags=["conversations"],
    responses=NOT_FOUND,
)
async def conversation(
    conversation_id: DbId, _principal: PrincipalDep, session: ReadSessionDep
) -> ConversationDetailOut:
    """One conversation with its channel, contact and lead."""
    return ConversationDetailOut.of_detail(await get_conversation(session, conversation_id))


@router.get(
    "/conversations/{conversation_id}/messages",
    response_model=MessagePage,
    tags=["conversations"],
    responses=NOT_FOUND,
)
async def conversation_messages(
    conversation_id: DbId,
    _principal: PrincipalDep,
    session: ReadSessionDep,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size, 1..200")] = 100,
) -> MessagePage:
    """A conversation's messages, oldest first, with attachment metadata."""
    page = await list_messages(session, conversation_id, cursor, limit)
    return MessagePage(
        items=[MessageOut.of(message) for message in page.items], next_cursor=page.next_cursor
    )
