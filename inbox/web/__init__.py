"""The managers' web workspace: pages, their static files and the live stream."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

# Each module adds its routes to the shared router when imported.
from . import calls, claims, composer, contacts, leads, leads_csv, pages, presence, states, stream  # noqa: F401
from .common import STATIC_DIR, SignInRequired, router, sign_in_redirect


def install_workspace(app: FastAPI) -> None:
    """Mount the workspace's pages, /static/inbox and the sign-in redirect."""
    app.include_router(router)
    app.mount("/static/inbox", StaticFiles(directory=STATIC_DIR), name="inbox-static")
    app.add_exception_handler(SignInRequired, sign_in_redirect)
