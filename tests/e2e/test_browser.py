"""Acceptance: a real `omnihub serve` (as `make run` starts it) driven by Chromium.

One hub per module: started from the venv's console script in a fresh directory
(so ./var is new), embedded SQLite, nothing set but the port and text logs.
Chromium is Debian's (`/usr/bin/chromium`, or OMNIHUB_TEST_CHROMIUM), driven by
Playwright for Python; `playwright install` is never needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import re
import sqlite3
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.served import OMNIHUB, free_port, hub_environment, serving

MIN_FILL_WAIT_MS = 2300  # the default form's minimum fill time is 2 s


@dataclass
class Hub:
    url: str
    workdir: Path
    env: dict[str, str]
    token: str
    log: Path

    @property
    def database(self) -> Path:
        return self.workdir / "var" / "omnihub.db"

    def api(self, path: str, **params: Any) -> Any:
        response = httpx.get(
            f"{self.url}/api/v1{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return response.json()

    def lead(self, lead_id: int) -> dict[str, Any]:
        for item in self.api("/leads", limit=200)["items"]:
            if item["id"] == lead_id:
                found: dict[str, Any] = item
                return found
        raise AssertionError(f"lead {lead_id} is not in GET /api/v1/leads")

    def stored_attribution(self, lead_id: int) -> dict[str, Any]:
        """The lead's attribution as stored (the API shows only the UTM tags and referrer)."""
        with contextlib.closing(sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT attribution FROM leads WHERE id = ?", (lead_id,)).fetchone()
        assert row is not None, lead_id
        value = row[0]
        attribution: dict[str, Any] = json.loads(value) if isinstance(value, str) else value
        return attribution


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """`omnihub serve` in a fresh directory, ready, with an API token from the CLI."""
    workdir = tmp_path_factory.mktemp("e2e-hub")
    port = free_port()
    env = hub_environment(port)
    with serving(workdir, env) as log:
        assert (workdir / "var" / "omnihub.db").exists()
        created = subprocess.run(
            [str(OMNIHUB), "tokens", "create", "--name", "e2e"],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert created.returncode == 0, created.stderr
        token = created.stdout.strip().splitlines()[0]
        yield Hub(url=f"http://127.0.0.1:{port}", workdir=workdir, env=env, token=token, log=log)


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(locale="ru-RU")
    context.set_default_timeout(15_000)
    tab = await context.new_page()
    try:
        yield tab
    finally:
        await context.close()


async def test_a_visitor_fills_the_default_form_and_the_lead_is_in_the_api(hub: Hub, page: Any):
    from playwright.async_api import expect

    url = f"{hub.url}/forms/default?utm_source=newsletter&utm_medium=email&utm_campaign=spring"
    response = await page.goto(url)
    assert response is not None and response.status == 200
    await expect(page.get_by_role("heading", level=1)).to_have_text("Напишите нам")

    await page.get_by_label("Имя").fill("Светлана Иванова")
    await page.get_by_label("Электронная почта").fill("Svetlana.Ivanova@Example.RU")
    await page.get_by_label("Телефон").fill("8 (912) 345-67-89")
    await page.get_by_label("Сообщение").fill("Здравствуйте! Хочу заказать 20 коробок к пятнице.")
    # The built-in form asks for the consent to process personal data (152-FZ).
    await page.get_by_label("Я даю согласие на обработку моих персональных данных").check()
    await page.wait_for_timeout(MIN_FILL_WAIT_MS)
    async with page.expect_navigation(url=f"{hub.url}/forms/default/thanks**"):
        await page.get_by_role("button", name="Отправить").click()

    await expect(page.get_by_role("heading", level=1)).to_have_text("Заявка принята")
    await expect(page.locator("main")).to_contain_text("Номер заявки")
    lead_id = int(await page.locator("main strong").inner_text())

    lead = hub.lead(lead_id)
    assert lead["source"] == "webform"
    assert lead["channel_key"] == "default"
    assert lead["status"] == "new"
    assert lead["email"] == "svetlana.ivanova@example.ru"
    assert lead["phone"] == "+79123456789"
    assert lead["contact_name"] == "Светлана Иванова"
    assert lead["attribution"]["utm_source"] == "newsletter"
    assert lead["attribution"]["utm_medium"] == "email"
    assert lead["attribution"]["utm_campaign"] == "spring"
    assert "20 коробок" in lead["summary"]
    detail = hub.api(f"/leads/{lead_id}")
    emails = [i["value"] for i in detail["contact"]["identities"] if i["kind"] == "email"]
    assert emails == ["svetlana.ivanova@example.ru"]


class _Site(http.server.BaseHTTPRequestHandler):
    hub_url = ""

    def do_GET(self) -> None:
        body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Partner shop</title></head>
<body><h1>Partner shop</h1><p>Write to us:</p>
<script src="{self.hub_url}/forms/default/embed.js" data-lang="en" async></script>
</body></html>""".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def other_site(hub: Hub) -> Iterator[str]:
    """A page on another origin that embeds the form with its script."""
    handler = type("Site", (_Site,), {"hub_url": hub.url})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def test_the_form_embedded_on_another_site(hub: Hub, page: Any, other_site: str):
    from playwright.async_api import expect

    landing = f"{other_site}/landing.html?utm_source=partner&utm_campaign=embed"
    await page.goto(landing)
    await expect(page.locator("iframe")).to_have_count(1)
    iframe = page.locator("iframe")
    assert (await iframe.get_attribute("src")).startswith(f"{hub.url}/forms/default?embed=1")
    assert await iframe.get_attribute("title") == "Contact us"  # data-lang="en"
    frame = page.frame_locator("iframe")
    await expect(frame.get_by_role("heading", level=1)).to_have_text("Contact us")

    await frame.get_by_label("Name").fill("John Smith")
    await frame.get_by_label("Email").fill("john.smith@example.com")
    await frame.get_by_label("Message").fill("Do you ship to Kazakhstan?")
    await frame.get_by_label("I consent to the processing of my personal data").check()
    await page.wait_for_timeout(MIN_FILL_WAIT_MS)
    await frame.get_by_role("button", name="Send").click()

    await expect(frame.get_by_role("heading", level=1)).to_have_text("Request received")
    assert page.url == landing  # the visitor never left the partner's page
    lead_id = int(await frame.locator("main strong").inner_text())
    lead = hub.lead(lead_id)
    assert lead["email"] == "john.smith@example.com"
    assert lead["attribution"]["utm_source"] == "partner"
    assert lead["attribution"]["utm_campaign"] == "embed"
    assert hub.stored_attribution(lead_id)["page_url"] == landing
    # The frame takes its content's height from the page's messages.
    await expect(iframe).to_have_attribute("style", re.compile(r"(^|;\s*)height: \d+px"))


async def test_the_form_works_without_javascript(hub: Hub, browser: Any, tmp_path: Path):
    from playwright.async_api import expect

    context = await browser.new_context(
        java_script_enabled=False, viewport={"width": 390, "height": 844}, locale="en-US"
    )
    context.set_default_timeout(15_000)
    try:
        page = await context.new_page()
        await page.goto(f"{hub.url}/forms/default?utm_source=nojs")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Contact us")
        await page.screenshot(path=tmp_path / "form-nojs-390.png", full_page=True)

        # The server checks the form: no message, a broken address.
        await page.get_by_label("Email").fill("olga@")
        await page.wait_for_timeout(MIN_FILL_WAIT_MS)
        await page.get_by_role("button", name="Send").click()
        await expect(page.get_by_role("alert")).to_contain_text("Please check the form")
        await expect(page.get_by_role("alert")).to_contain_text("Enter an email address")
        await expect(page.get_by_label("Email")).to_have_attribute("aria-invalid", "true")
        await expect(page.get_by_label("Message")).to_have_attribute("aria-invalid", "true")
        await expect(page.get_by_label("Email")).to_have_value("olga@")
        await expect(page.get_by_role("alert")).to_contain_text(
            "Please confirm your consent to the processing of personal data"
        )

        await page.get_by_label("Email").fill("olga@example.ru")
        await page.get_by_label("Message").fill("Без JavaScript тоже работает")
        await page.get_by_label("I consent to the processing of my personal data").check()
        await page.wait_for_timeout(MIN_FILL_WAIT_MS)
        await page.get_by_role("button", name="Send").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Request received")
        lead_id = int(await page.locator("main strong").inner_text())
    finally:
        await context.close()
    lead = hub.lead(lead_id)
    assert lead["email"] == "olga@example.ru"
    assert lead["attribution"]["utm_source"] == "nojs"


async def test_nothing_overflows_a_390px_wide_phone(hub: Hub, browser: Any, tmp_path: Path):
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    )
    try:
        page = await context.new_page()
        widths = {}
        for name, url in [
            ("form-ru", "/forms/default"),
            ("form-en", "/forms/default?lang=en"),
            ("thanks", "/forms/default/thanks?lang=ru&n=123456"),
        ]:
            await page.goto(hub.url + url)
            shot = tmp_path / f"{name}-390.png"
            await page.screenshot(path=shot, full_page=True)
            assert shot.stat().st_size > 0
            widths[name] = await page.evaluate(
                "() => [document.documentElement.scrollWidth, document.body.scrollWidth]"
            )
        # The validation page has the longest texts: check it too.
        await page.goto(hub.url + "/forms/default?lang=ru")
        await page.get_by_label("Электронная почта").fill("x@")
        await page.wait_for_timeout(MIN_FILL_WAIT_MS)
        await page.get_by_role("button", name="Отправить").click()
        await page.get_by_role("alert").wait_for()
        assert await page.get_by_label("Электронная почта").get_attribute("aria-invalid") == "true"
        await page.screenshot(path=tmp_path / "errors-390.png", full_page=True)
        widths["errors"] = await page.evaluate(
            "() => [document.documentElement.scrollWidth, document.body.scrollWidth]"
        )
        # Controls are big enough to tap.
        box = await page.get_by_role("button", name="Отправить").bounding_box()
    finally:
        await context.close()
    for name, (document_width, body_width) in widths.items():
        assert document_width <= 390, (name, document_width)
        assert body_width <= 390, (name, body_width)
    assert box is not None and box["height"] >= 40 and box["width"] <= 390


async def test_a_russian_form_asks_for_consent_before_it_stores_anything(hub: Hub, page: Any):
    from playwright.async_api import expect

    policy = "https://shop.example.ru/privacy"
    added = await asyncio.create_subprocess_exec(
        *(str(OMNIHUB), "channels", "add", "webform", "--key", "consent-form"),
        *("--title", "Заявка", "--privacy-policy", policy),
        cwd=hub.workdir,
        env=hub.env,
        stderr=asyncio.subprocess.PIPE,
    )
    _, errors = await asyncio.wait_for(added.communicate(), timeout=60)
    assert added.returncode == 0, errors.decode()
    await page.goto(f"{hub.url}/forms/consent-form")
    box = page.get_by_label("Я даю согласие на обработку моих персональных данных")
    await expect(box).not_to_be_checked()
    link = page.get_by_role("link", name="политикой обработки персональных данных")
    await expect(link).to_have_attribute("href", policy)
    await page.get_by_label("Электронная почта").fill("marina@example.ru")
    await page.get_by_label("Сообщение").fill("Перезвоните, пожалуйста")
    await page.wait_for_timeout(MIN_FILL_WAIT_MS)
    await page.get_by_role("button", name="Отправить").click()

    await expect(page.locator("#error-summary")).to_contain_text(
        "Подтвердите согласие на обработку персональных данных"
    )
    await expect(page.get_by_label("Сообщение")).to_have_value("Перезвоните, пожалуйста")
    early = [i for i in hub.api("/leads", limit=200)["items"] if i["email"] == "marina@example.ru"]
    assert not early, early

    await box.check()
    await page.wait_for_timeout(MIN_FILL_WAIT_MS)
    async with page.expect_navigation(url=f"{hub.url}/forms/consent-form/thanks**"):
        await page.get_by_role("button", name="Отправить").click()
    lead = hub.lead(int(await page.locator("main strong").inner_text()))
    assert lead["email"] == "marina@example.ru"
    assert lead["consent"]["version"] == "1"
    assert lead["consent"]["policy_url"] == policy
    assert lead["consent"]["ip"] == "127.0.0.1"
