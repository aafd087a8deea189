"""The manager's own presence from the workspace: online while a tab is open, away or
offline by choice.

Every open tab beats (`static/presence.js`, every 45 s) with the state its manager chose
in the top bar (kept in the browser, online unless chosen otherwise); routing's presence
lapses to offline two minutes after the last beat, so closing the last tab takes the
manager offline. Going online routes what waits in their queues, as the API's
PUT /api/v1/me/presence does.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response

from inbox.deps import ContextDep
from routing.engine import effective_presence
from routing.presence import keep_presence
from storage.models import Manager
from storage.types import utcnow

from .common import PagePrincipal, router, templates

STATES = ("online", "away", "offline")


def presence_of(manager: Manager) -> str:
    """The manager's presence as routing sees it now (a lapsed heartbeat is offline)."""
    return effective_presence(manager, utcnow()).value


templates.env.globals["presence_of"] = presence_of
templates.env.globals["presence_states"] = STATES


@router.post("/inbox/presence")
async def my_presence(
    request: Request,
    context: ContextDep,
    principal: PagePrincipal,
    state: Annotated[str, Form(pattern="^(online|away|offline)$")],
) -> Response:
    """Set or renew this manager's presence: 204 for the tab's script, else back to the
    workspace (the form works without JavaScript)."""
    assert principal.manager_id is not None
    async with context.db.transaction() as session:
        await keep_presence(session, principal.manager_id, state, now=context.routing.clock())
    if request.headers.get("x-heartbeat"):
        return Response(status_code=204)
    return RedirectResponse("/inbox", status_code=303)
