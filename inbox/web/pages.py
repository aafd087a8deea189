"""The managers' workspace pages: sign-in and out, the views, the list and a conversation.

Every page is rendered whole on the server (Jinja2, autoescaped); htmx swaps the workspace
in place and pushes the URL, so each view and conversation has its own address and works
without JavaScript too. Pages need a signed-in manager (the session cookie of
inbox.sessions; its CSRF checks guard every POST); without one, they lead to /login.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import HubContext
from hub.headers import EMAIL_FRAME_HEADERS
from inbox.deps import ContextDep, Principal, ReadSessionDep
from inbox.sessions import (
    SESSION_COOKIE,
    check_origin,
    clear_session_cookie,
    client_ip,
    csrf_token,
    login_limits,
    set_session_cookie,
)
from intake.accounts import authenticate_manager, get_manager
from intake.composer import TextPart, mention_parts, note_mentions, reply_routes
from intake.conversations import close_conversation
from intake.identities import normalize_email
from intake.inbox import (
    ListRow,
    Navigation,
    SearchRow,
    View,
    Viewer,
    conversation_view,
    inbox_list,
    navigation,
    parse_view,
    search_list,
    visible_conversation,
    visible_message,
)
from intake.search import MAX_QUERY_LENGTH
from intake.sessions import end_session, find_session, open_session
from routing.admin import conversations as conversation_admin
from routing.admin.bulk import BulkResult, bulk_candidates
from routing.admin.conversations import assign_as, conversation_actions
from storage.errors import HubError, InvalidInput, NotFound, RateLimited
from storage.models import MessageDirection
from storage.types import DbId, utcnow

from .common import (
    DEFAULT_VIEW,
    ListPlace,
    ListPlaceForm,
    PagePrincipal,
    Speaker,
    refused_status,
    render,
    router,
    speaker,
    viewer_of,
)
from .render import email_document, split_quote

# Signing in and out


@router.get("/")
async def home(request: Request, session: ReadSessionDep) -> Response:
    """The hub's address: the workspace when signed in, else the sign-in page."""
    cookie = request.cookies.get(SESSION_COOKIE)
    signed_in = cookie is not None and await find_session(session, cookie) is not None
    return RedirectResponse("/inbox" if signed_in else "/login", status_code=303)


@router.get("/login")
async def login_page(request: Request) -> HTMLResponse:
    return render(request, "login.html", speaker(request), email="", error=None)


@router.post("/login")
async def login(
    request: Request,
    context: ContextDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    """Sign in (the API's sessions, limits and Origin check); on success to the workspace."""
    words = speaker(request)
    check_origin(request, context)
    try:
        account = normalize_email(email)
    except InvalidInput:
        account = email.strip().lower()
    try:
        await login_limits(context).check(account, client_ip(request))
    except RateLimited as exc:
        minutes = max(int(exc.retry_after // 60) + 1, 1)
        error = words.plural("login.too_many", minutes)
        refused = render(request, "login.html", words, 429, email=email, error=error)
        refused.headers.update(exc.headers or {})
        return refused
    manager = await authenticate_manager(context.db, email, password)
    if manager is None:
        error = words.t("login.invalid")
        return render(request, "login.html", words, 401, email=email, error=error)
    async with context.db.transaction() as session:
        token = await open_session(
            session, manager.id, user_agent=request.headers.get("user-agent"), ip=client_ip(request)
        )
    response = RedirectResponse("/inbox", status_code=303)
    set_session_cookie(request, response, context, token)
    return response


@router.post("/logout")
async def logout(request: Request, context: ContextDep, _principal: PagePrincipal) -> Response:
    """End the session on the server (a CSRF-checked POST) and forget the cookie."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        async with context.db.transaction() as session:
            await end_session(session, cookie)
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(request, response)
    return response


# The workspace


@router.get("/inbox")
async def inbox_home(_principal: PagePrincipal) -> Response:
    return RedirectResponse(f"/inbox/v/{DEFAULT_VIEW}", status_code=303)


@dataclass(frozen=True, slots=True)
class SearchResults:
    """What the list column shows for a search: the query, one page of hits (none and an
    error in plain words when the query or cursor is not one to search with)."""

    query: str
    hits: list[SearchRow]
    next_cursor: str | None
    error: str | None

    @property
    def suffix(self) -> str:
        """The query string that keeps a URL within this search."""
        return "?" + urlencode({"q": self.query})


async def _search_results(
    session: ReadSessionDep, viewer: Viewer, words: Speaker, query: str, cursor: str | None
) -> SearchResults:
    if not query.strip():
        return SearchResults(query, [], None, words.t("search.empty"))
    if len(query.strip()) > MAX_QUERY_LENGTH:
        return SearchResults(query, [], None, words.t("search.too_long", limit=MAX_QUERY_LENGTH))
    try:
        page = await search_list(session, viewer, query, cursor)
    except InvalidInput as exc:
        code = "search.bad_cursor" if exc.code == "invalid_cursor" else "search.no_words"
        return SearchResults(query, [], None, words.t(code))
    return SearchResults(query, list(page.items), page.next_cursor, None)


async def _workspace(
    request: Request,
    context: ContextDep,
    principal: Principal,
    session: ReadSessionDep,
    slug: str,
    conversation_id: int | None,
    cursor: str | None,
    query: str | None = None,
    action_error: HubError | None = None,
    sort: str = "activity",
    bulk: BulkResult | None = None,
) -> HTMLResponse:
    """The workspace with a view's list (in the `sort` order), or with a search's results
    when `query` is given; `bulk`, what a bulk action did, above the list."""
    view = parse_view(slug)
    viewer = viewer_of(principal)
    assert principal.manager_id is not None
    manager = await get_manager(session, principal.manager_id)
    words = speaker(request, manager)
    found = None
    if query is not None:
        found = await _search_results(session, viewer, words, query, cursor)
        listing = None
    else:
        listing = await inbox_list(session, viewer, view, cursor, sort=sort)
    nav = await navigation(session, viewer)
    opened = None
    actions = None
    bodies: dict[int, Any] = {}
    note_parts: dict[int, list[TextPart]] = {}
    routes = None
    if conversation_id is not None:
        opened = await conversation_view(session, viewer, conversation_id)
        routes = await reply_routes(session, conversation_id)
        actions = await conversation_actions(session, viewer, opened.row.conversation)
        bodies = {item.message.id: split_quote(item.message.text or "") for item in opened.timeline}
        mentioned = await note_mentions(session, [item.message for item in opened.timeline])
        note_parts = {
            message_id: mention_parts(bodies[message_id].text, names)
            for message_id, names in mentioned.items()
        }
    cookie = request.cookies.get(SESSION_COOKIE, "")
    return render(
        request,
        "workspace.html",
        words,
        status_code=refused_status(request, action_error),
        manager=manager,
        view=view,
        listing=listing,
        found=found,
        nav=nav,
        opened=opened,
        actions=actions,
        action_error=_action_error(words, action_error),
        bodies=bodies,
        note_parts=note_parts,
        routes=routes,
        file_limit=context.intake.reply_file_max_bytes,
        cursor=cursor,
        csrf=csrf_token(context.secret, cookie),
        directions=MessageDirection,
        row_title=_row_title,
        view_title=words.t("search.title") if found else _view_title(words, view, nav),
        sort=sort,
        sort_query="" if sort == "activity" else f"?sort={sort}",
        bulk=bulk,
        bulk_errors=BULK_ERRORS,
        now=utcnow(),
        bulk_managers=await bulk_candidates(session, viewer) if listing is not None else [],
    )


ACTION_ERRORS = frozenset(
    {
        "already_taken",
        "not_offered",
        "conversation_closed",
        "not_yours",
        "not_a_candidate",
        "unknown_manager",
        "snooze_in_past",
        "snooze_too_long",
        "invalid_snooze",
        "thread_reopened",
        "same_queue",
        "unknown_queue",
        "nothing_selected",
        "too_many",
        "no_manager",
    }
)
# What a bulk action may say of one conversation it did not act on.
BULK_ERRORS = ACTION_ERRORS | {"not_found"}


def _action_error(words: Speaker, error: HubError | None) -> str | None:
    """A refused action in plain words, shown next to the buttons."""
    if error is None:
        return None
    code = error.code if error.code in ACTION_ERRORS else "failed"
    return words.t(f"actions.error.{code}")


def _view_title(words: Speaker, view: View, nav: Navigation) -> str:
    if view.kind == "queue":
        names = {str(queue_id): name for queue_id, name in nav.queues}
        return names.get(view.value or "", words.t("view.queue"))
    if view.kind == "channel":
        titles = {str(channel_id): title for channel_id, _kind, title in nav.channels}
        return titles.get(view.value or "", words.t("view.channel"))
    if view.kind == "status":
        return words.t(f"status.{view.value}")
    return words.t(f"view.{view.kind}")


def _row_title(row: ListRow) -> str:
    return row.contact_name or row.conversation.subject or f"#{row.conversation.id}"


ListSort = Annotated[str, Query(pattern="^(activity|sla)$")]


@router.get("/inbox/v/{slug}")
async def view_page(
    slug: str,
    request: Request,
    context: ContextDep,
    principal: PagePrincipal,
    session: ReadSessionDep,
    after: str | None = None,
    sort: ListSort = "activity",
) -> HTMLResponse:
    """A list view (`?after=` for the next page, `?sort=sla` for the nearest SLA first)."""
    return await _workspace(request, context, principal, session, slug, None, after, sort=sort)


@router.get("/inbox/v/{slug}/c/{conversation_id}")
async def conversation_page(
    slug: str,
    conversation_id: DbId,
    request: Request,
    context: ContextDep,
    principal: PagePrincipal,
    session: ReadSessionDep,
    sort: ListSort = "activity",
) -> HTMLResponse:
    """A conversation opened beside the list of the view it was opened from."""
    return await _workspace(
        request, context, principal, session, slug, conversation_id, None, sort=sort
    )


@router.get("/inbox/search")
async def search_page(
    request: Request,
    context: ContextDep,
    principal: PagePrincipal,
    session: ReadSessionDep,
    q: Annotated[str, Query(max_length=1000)] = "",
    after: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    """Search results as a list (`?q=`, `?after=` for the next page): the latest match first,
    only what the manager may see."""
    return await _workspace(request, context, principal, session, DEFAULT_VIEW, None, after, q)


@router.get("/inbox/search/c/{conversation_id}")
async def search_conversation_page(
    conversation_id: DbId,
    request: Request,
    context: ContextDep,
    principal: PagePrincipal,
    session: ReadSessionDep,
    q: Annotated[str, Query(max_length=1000)] = "",
) -> HTMLResponse:
    """A conversation opened beside the search results it was found in."""
    return await _workspace(
        request, context, principal, session, DEFAULT_VIEW, conversation_id, None, q
    )


ActionView = Annotated[str, Form(max_length=40)]
# A workspace action's change: a domain service run in the action's write transaction.
Change = Callable[[AsyncSession], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Action:
    """A workspace action's request: who acts, from beside which list."""

    request: Request
    context: HubContext
    principal: Principal
    place: ListPlace

    @property
    def viewer(self) -> Viewer:
        return viewer_of(self.principal)

    async def run(
        self, conversation_id: int, change: Change, *, service_checks_visibility: bool = False
    ) -> Response:
        """Run `change` in one transaction, on a conversation the manager may see (checked
        here unless the service checks it itself, as assign_as and transfer_as do): the same
        service as the REST API's. Committed, the browser goes to the conversation beside the
        same list (the view in its order, or the search); refused, it sees the page again
        with the refusal next to the buttons, read afresh. What the viewer may not see stays
        a 404."""
        error = None
        try:
            async with self.context.db.transaction() as writing:
                if not service_checks_visibility:
                    await visible_conversation(writing, self.viewer, conversation_id)
                await change(writing)
        except NotFound:
            raise
        except HubError as exc:
            error = exc
        if error is None:
            return RedirectResponse(self.place.conversation_url(conversation_id), status_code=303)
        # A read that starts now: the request's own began before the action's transaction.
        async with self.context.db.read() as fresh:
            return await _workspace(
                self.request,
                self.context,
                self.principal,
                fresh,
                self.place.slug,
                conversation_id,
                None,
                self.place.query,
                action_error=error,
                sort=self.place.sort,
            )


async def _action(
    request: Request, context: ContextDep, principal: PagePrincipal, place: ListPlaceForm
) -> Action:
    return Action(request, context, principal, place)


ActionDep = Annotated[Action, Depends(_action)]


@router.post("/inbox/c/{conversation_id}/take")
async def take(conversation_id: DbId, act: ActionDep) -> Response:
    """Assign to me: the same service as POST /api/v1/conversations/{id}/take."""
    manager_id = act.principal.manager_id
    assert manager_id is not None
    routing = act.context.routing
    return await act.run(
        conversation_id,
        lambda writing: conversation_admin.take(writing, routing, conversation_id, manager_id),
    )


@router.post("/inbox/c/{conversation_id}/assign")
async def assign(
    conversation_id: DbId, act: ActionDep, manager_id: Annotated[DbId, Form()]
) -> Response:
    """Assign to a manager of the conversation's queue (an administrator: to anyone active);
    the API's assign, recorded as `manual` with this manager as the actor."""
    routing = act.context.routing
    return await act.run(
        conversation_id,
        lambda writing: assign_as(writing, routing, act.viewer, conversation_id, manager_id),
        service_checks_visibility=True,
    )


@router.post("/inbox/c/{conversation_id}/close")
async def close(conversation_id: DbId, act: ActionDep) -> Response:
    """Close: the same service as POST /api/v1/conversations/{id}/close."""
    now = act.context.routing.clock()
    by = act.principal.manager_id
    return await act.run(
        conversation_id,
        lambda writing: close_conversation(writing, conversation_id, manager_id=by, now=now),
    )


@router.get("/inbox/m/{message_id}/html")
async def email_html(
    message_id: DbId, principal: PagePrincipal, session: ReadSessionDep
) -> HTMLResponse:
    """An email's HTML as its own inert document, for the timeline's sandboxed frame."""
    message = await visible_message(session, viewer_of(principal), message_id)
    if not message.html:
        raise NotFound(f"no HTML of message {message_id}")
    return HTMLResponse(email_document(message.html), headers=EMAIL_FRAME_HEADERS)
