"""What every workspace page shares: the router, the templates and texts, the signed-in
manager, the reader's language and zone, and the sections of the top bar.

Each part of the workspace (the inbox, and the sections beside it) is a module of this
package that adds its routes to `router` and, when it has a page of its own, its link
to the top bar with `add_section`; `render` gives every template the same words, times
and sections, and `frame` the signed-in manager's page basics.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from hub.headers import PAGE_HEADERS
from inbox.deps import ContextDep, Principal, ReadSessionDep, get_principal
from inbox.sessions import SESSION_COOKIE, csrf_token
from intake.accounts import get_manager
from intake.i18n import Catalogue, Lang, pick_language
from intake.inbox import Viewer, parse_view
from storage.errors import HubError, Unauthorized
from storage.models import Manager
from storage.types import utcnow

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
CATALOGUE = Catalogue(HERE / "locale")
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)

DEFAULT_VIEW = "unassigned"
CHANNEL_ICONS = {"email": "✉", "telegram": "✈", "webform": "▤", "telephony": "☎"}


class SignInRequired(Exception):
    """The page needs a signed-in manager; the answer leads to /login."""


def sign_in_redirect(request: Request, _exc: Exception) -> Response:
    if request.headers.get("hx-request"):
        # htmx follows HX-Redirect with a full page load.
        return Response(status_code=200, headers={"HX-Redirect": "/login"})
    return RedirectResponse("/login", status_code=303)


async def page_principal(
    request: Request, context: ContextDep, session: ReadSessionDep
) -> Principal:
    """The signed-in manager (cookie session, CSRF-checked on POST); else SignInRequired."""
    if not request.cookies.get(SESSION_COOKIE):
        raise SignInRequired
    try:
        principal = await get_principal(request, context, session)
    except Unauthorized as exc:
        raise SignInRequired from exc
    if principal.manager_id is None:
        raise SignInRequired
    return principal


PagePrincipal = Annotated[Principal, Depends(page_principal)]


def viewer_of(principal: Principal) -> Viewer:
    return Viewer(principal.manager_id, principal.is_admin)


@dataclass(frozen=True, slots=True)
class ListPlace:
    """The list a conversation was opened beside, as a form on the conversation posts it:
    the view (and its order), or the search `q`."""

    slug: str
    sort: str = "activity"
    query: str | None = None

    def conversation_url(self, conversation_id: int) -> str:
        """The conversation's address beside this same list."""
        if self.query is not None:
            return f"/inbox/search/c/{conversation_id}?" + urlencode({"q": self.query})
        order = "" if self.sort == "activity" else f"?sort={self.sort}"
        return f"/inbox/v/{self.slug}/c/{conversation_id}{order}"


def list_place(
    view: Annotated[str, Form(max_length=40)] = DEFAULT_VIEW,
    sort: Annotated[str, Form(pattern="^(activity|sla)$")] = "activity",
    q: Annotated[str | None, Form(max_length=1000)] = None,
) -> ListPlace:
    return ListPlace(parse_view(view).slug, sort, q)


ListPlaceForm = Annotated[ListPlace, Depends(list_place)]


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@dataclass(frozen=True, slots=True)
class Speaker:
    """The texts and times of one page in the reader's language and zone."""

    lang: Lang
    zone: ZoneInfo

    def t(self, code: str, **values: Any) -> str:
        return CATALOGUE.text(self.lang, code, **values)

    def plural(self, code: str, count: int, **values: Any) -> str:
        return CATALOGUE.plural(self.lang, code, count, **values)

    def time(self, moment: datetime | None) -> str:
        if moment is None:
            return ""
        local = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(self.zone)
        if local.date() == utcnow().astimezone(self.zone).date():
            return local.strftime("%H:%M")
        return local.strftime("%d.%m.%Y %H:%M")

    def age(self, moment: datetime | None) -> str:
        if moment is None:
            return ""
        at = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        minutes = max(int((utcnow() - at).total_seconds() // 60), 0)
        if minutes < 1:
            return self.t("age.now")
        if minutes < 60:
            return self.plural("age.minutes", minutes)
        if minutes < 24 * 60:
            return self.plural("age.hours", minutes // 60)
        return self.plural("age.days", minutes // (24 * 60))


def speaker(request: Request, manager: Manager | None = None) -> Speaker:
    """`?lang=`, else the manager's setting, else Accept-Language."""
    lang = pick_language(
        request.query_params.get("lang"),
        manager.language if manager is not None else None,
        accept_language=request.headers.get("accept-language"),
    )
    return Speaker(lang, _zone(manager.timezone if manager is not None else None))


def render(
    request: Request, name: str, words: Speaker, status_code: int = 200, **values: Any
) -> HTMLResponse:
    response = templates.TemplateResponse(
        request,
        name,
        {
            "lang": words.lang,
            "t": words.t,
            "plural": words.plural,
            "time": words.time,
            "age": words.age,
            "icons": CHANNEL_ICONS,
            "sections": SECTIONS,
            "read_at": getattr(request.state, "read_at", None),
            **values,
        },
        status_code=status_code,
    )
    response.headers.update(PAGE_HEADERS)
    return response


@dataclass(frozen=True, slots=True)
class Section:
    """A part of the workspace with its own page, linked from the top bar."""

    key: str
    href: str
    label: str  # a text code of the workspace's catalogue


SECTIONS: list[Section] = [Section("inbox", "/inbox", "section.inbox")]


def add_section(key: str, href: str, label: str) -> None:
    """Link a part of the workspace from the top bar (once per key, in import order)."""
    if all(section.key != key for section in SECTIONS):
        SECTIONS.append(Section(key, href, label))


@dataclass(frozen=True, slots=True)
class Frame:
    """The basics of a signed-in page: who reads it, in which words, with which CSRF token."""

    manager: Manager
    words: Speaker
    csrf: str
    viewer: Viewer


async def frame(
    request: Request, context: ContextDep, principal: Principal, session: ReadSessionDep
) -> Frame:
    """The signed-in manager's frame for a page (their language, zone and CSRF token)."""
    assert principal.manager_id is not None
    manager = await get_manager(session, principal.manager_id)
    if manager is None:
        raise SignInRequired
    cookie = request.cookies.get(SESSION_COOKIE, "")
    return Frame(
        manager, speaker(request, manager), csrf_token(context.secret, cookie), viewer_of(principal)
    )


def refused_status(request: Request, error: HubError | None) -> int:
    """The status of a page shown again with a refusal in words: the refusal's own, but 200
    when htmx asked (it swaps only a 2xx answer)."""
    if error is None or request.headers.get("hx-request"):
        return 200
    return error.status_code


def section_page(
    request: Request, name: str, page: Frame, status_code: int = 200, **values: Any
) -> HTMLResponse:
    """A section's page (calls, claims, leads) for the signed-in manager of `page`: their
    words, their top bar and the CSRF token of its forms."""
    return render(
        request, name, page.words, status_code, manager=page.manager, csrf=page.csrf, **values
    )
