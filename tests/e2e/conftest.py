"""Chromium for the browser tests: Debian's (`/usr/bin/chromium`, or OMNIHUB_TEST_CHROMIUM),
driven by Playwright for Python; `playwright install` is never needed."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import missing_part
from tests.e2e.workspace import desk, hub, mail, telegram  # noqa: F401  (fixtures)

CHROMIUM = os.environ.get("OMNIHUB_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _chromium_present() -> bool:
    return Path(CHROMIUM).exists()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    try:
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import async_playwright
    except ImportError as exc:
        missing_part(f"the playwright package is not installed: {exc}")
    if not _chromium_present():
        missing_part(f"no Chromium at {CHROMIUM} (Debian package chromium)")
    async with async_playwright() as playwright:
        try:
            chromium = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
        except PlaywrightError as exc:
            missing_part(f"Chromium at {CHROMIUM} does not start: {exc}")
        try:
            yield chromium
        finally:
            await chromium.close()
