"""The REST API's routers: what every route under /api/v1 refuses and declares alike."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from inbox.deps import refuse_control_characters
from inbox.sessions import CSRF_REFUSALS
from storage.errors import HubError, InvalidInput, Unauthorized, answers

# Authentication, input that is not valid, a body that cannot be parsed at all, and a
# cookie-authenticated change that does not come from the hub's own pages (CSRF).
API_ANSWERS = answers(Unauthorized, InvalidInput, HubError, *CSRF_REFUSALS)


def api_router(**options: Any) -> APIRouter:
    """A router under /api/v1 whose routes refuse control characters in their input and
    declare `API_ANSWERS`; a route adds its own with `responses=answers(...)`."""
    return APIRouter(
        prefix="/api/v1",
        responses=API_ANSWERS,
        dependencies=[Depends(refuse_control_characters)],
        **options,
    )
