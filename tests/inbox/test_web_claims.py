"""The claims board and a claim's page over HTTP (the app in-process, both databases): the
board's tabs and filters, who sees which claim, CSRF on every change, the status change that
notifies the client as the API does, refusals in words, and the investigation plan."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta

import httpx
from sqlalchemy import select, update

from inbox.web.live import Dispatcher
from intake.claims.board import BOARD_PAGE
from intake.claims.texts import status_notice
from intake.visibility import Viewer
from storage.bus import InProcessBus
from storage.db import Database
from storage.models import ChannelKind, Claim, ClaimStep, Conversation, ManagerRole, Message
from storage.types import utcnow
from tests.factories import create_channel, create_claim, create_manager, drain
from tests.inbox.test_web_pages import HUB, signed_in
from tests.inbox.test_web_stream import opened


def rows(page: httpx.Response) -> list[str]:
    """The claim numbers the board lists, in order."""
    return re.findall(r'data-claim="(CLM-[0-9-]+)"', page.text)


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


async def status_of(db: Database, claim_id: int) -> str:
    async with db.read() as session:
        claim = await session.get(Claim, claim_id)
        assert claim is not None
        return claim.status


async def test_the_board_by_status_and_mine_with_overdue_marked(
    client: httpx.AsyncClient, hub_db: Database
) -> None:
    olga = await create_manager(hub_db, email="olga@example.ru", role=ManagerRole.ADMIN)
    channel = await create_channel(hub_db, kind=ChannelKind.EMAIL)
    late = await create_claim(hub_db, channel, name="Анна", now=utcnow() - timedelta(days=12))
    fresh = await create_claim(hub_db, channel, reason="delivery")
    await signed_in(client, "olga@example.ru")
    taken = await client.post(f"/claims/{fresh.number}/take", headers={"Origin": HUB})
    assert taken.status_code == 303
    fresh_status = await client.post(
        f"/claims/{fresh.number}/status",
        data={"status": "in_review", "notify": "true"},
        headers={"Origin": HUB},
    )
    assert fresh_status.status_code == 303

    board = await client.get("/claims", params={"lang": "en"})
    assert board.status_code == 200 and rows(board) == [fresh.number, late.number]
    late_row = board.text.split(f'data-claim="{late.number}"')[1].split("</li>")[0]
    assert "overdue" in late_row and "Анна" in late_row and "no owner" in late_row
    assert "Quality of goods or service" in late_row
    fresh_row = board.text.split(f'data-claim="{fresh.number}"')[1].split("</li>")[0]
    assert "overdue" not in fresh_row and olga.name in fresh_row and "in review" in fresh_row

    in_review = await client.get("/claims", params={"status": "in_review"})
    assert rows(in_review) == [fresh.number]
    mine = await client.get("/claims", params={"status": "all", "mine": "1"})
    assert rows(mine) == [fresh.number] and 'aria-current="true">✓' in mine.text
    assert rows(await client.get("/claims", params={"status": "resolved"})) == []
    stale = await client.get("/claims", params={"after": "not-a-cursor"})
    assert stale.status_code == 200 and rows(stale) == [] and 'role="alert"' in stale.text
    # The section is linked from the top bar, in the reader's language.
    assert 'href="/claims" aria-current="page">Претензии</a>' in (await client.get("/claims")).text


async def test_a_manager_sees_only_the_claims_of_conversations_they_see(
    client: httpx.AsyncClient, hub_db: Database
) -> None:
    await create_manager(hub_db, email="olga@example.ru")
    ivan = await create_manager(hub_db, email="ivan@example.ru")
    channel = await create_channel(hub_db, kind=ChannelKind.EMAIL)
    open_claim = await create_claim(hub_db, channel)
    ivans = await create_claim(hub_db, channel, description="Чужая претензия")
    async with hub_db.transaction() as session:
        await session.execute(
            update(Conversation)
            .where(Conversation.id == ivans.conversation_id)
            .values(assignee_id=ivan.id)
        )
    await signed_in(client, "olga@example.ru")
    board = await client.get("/claims", params={"status": "all"})
    assert rows(board) == [open_claim.number]
    assert (await client.get(f"/claims/{ivans.number}")).status_code == 404
    assert (await client.get(f"/claims/{open_claim.number}")).status_code == 200
    moved = await client.post(
        f"/claims/{ivans.number}/status",
        data={"status": "rejected", "resolution": "нет"},
        headers={"Origin": HUB},
    )
    assert moved.status_code == 404 and await status_of(hub_db, ivans.id) == "registered"
    step = await client.post(
        f"/claims/{ivans.number}/steps", data={"text": "шаг"}, headers={"Origin": HUB}
    )
    assert step.status_code == 404
    assert (await client.get("/claims/CLM-2026-999999")).status_code == 404


async def test_every_change_is_csrf_checked(client: httpx.AsyncClient, hub_db: Database) -> None:
    await create_manager(hub_db, email="olga@example.ru", role=ManagerRole.ADMIN)
    channel = await create_channel(hub_db, kind=ChannelKind.EMAIL)
    claim = await create_claim(hub_db, channel)
    await signed_in(client, "olga@example.ru")
    page = await client.get(f"/claims/{claim.number}")
    token = csrf_of(page)
    forged = {"status": "in_review", "notify": "true"}
    cross = await client.post(
        f"/claims/{claim.number}/status", data=forged, headers={"Origin": "https://evil.example"}
    )
    assert cross.status_code == 403
    bare = await client.post(f"/claims/{claim.number}/status", data=forged)
    assert bare.status_code == 403
    wrong = await client.post(
        f"/claims/{claim.number}/status", data={**forged, "csrf_token": token[:-2] + "xx"}
    )
    assert wrong.status_code == 403
    for path in ("steps", "take"):
        assert (await client.post(f"/claims/{claim.number}/{path}", data={})).status_code == 403
    assert await status_of(hub_db, claim.id) == "registered"
    # The page's own token, without an Origin header, is what a browser form sends.
    done = await client.post(f"/claims/{claim.number}/status", data={**forged, "csrf_token": token})
    assert done.status_code == 303 and await status_of(hub_db, claim.id) == "in_review"


async def test_resolving_notifies_the_client_and_refusals_are_said_in_words(
    app: object, client: httpx.AsyncClient, hub_db: Database
) -> None:
    await create_manager(hub_db, email="olga@example.ru", role=ManagerRole.ADMIN)
    channel = await create_channel(hub_db, kind=ChannelKind.EMAIL)
    claim = await create_claim(hub_db, channel)
    await signed_in(client, "olga@example.ru")
    english = {"Origin": HUB}

    illegal = await client.post(
        f"/claims/{claim.number}/status?lang=en", data={"status": "closed"}, headers=english
    )
    assert illegal.status_code == 409
    assert "cannot move to this status from its current one" in illegal.text
    assert 'id="status-error"' in illegal.text
    bare = await client.post(
        f"/claims/{claim.number}/status", data={"status": "in_review"}, headers=english
    )
    assert bare.status_code == 303
    unexplained = await client.post(
        f"/claims/{claim.number}/status?lang=en",
        data={"status": "resolved"},
        headers=english,
    )
    assert unexplained.status_code == 422 and "Write the resolution" in unexplained.text
    # The form comes back as it was sent, beside the words.
    assert '<option value="resolved" selected>' in unexplained.text
    assert await status_of(hub_db, claim.id) == "in_review"
    await drain(app)

    resolution = "Заменим товар <b>за наш счёт</b>"
    resolved = await client.post(
        f"/claims/{claim.number}/status",
        data={"status": "resolved", "resolution": resolution, "notify": "true"},
        headers=english,
    )
    assert resolved.status_code == 303 and resolved.headers["location"].startswith(
        f"/claims/{claim.number}"
    )
    await drain(app)
    async with hub_db.read() as session:
        notices = (
            await session.scalars(
                select(Message.text)
                .where(Message.conversation_id == claim.conversation_id)
                .where(Message.external_id.like("claim-notice:%"))
                .order_by(Message.id)
            )
        ).all()
    assert notices == [
        status_notice("ru", claim.number, "resolved", resolution=resolution, ask_rating=True)
    ]
    page = await client.get(f"/claims/{claim.number}", params={"lang": "en"})
    assert "Заменим товар &lt;b&gt;за наш счёт&lt;/b&gt;" in page.text
    assert "<b>за наш счёт</b>" not in page.text
    history = page.text.split('id="history"')[1]
    assert history.count("<li>") == 3 and "resolved" in history
    assert '<option value="closed">' in page.text and '<option value="rejected">' not in page.text


async def test_the_investigation_plan_adds_and_ticks_off_steps(
    client: httpx.AsyncClient, hub_db: Database
) -> None:
    olga = await create_manager(hub_db, email="olga@example.ru", role=ManagerRole.ADMIN)
    channel = await create_channel(hub_db, kind=ChannelKind.EMAIL)
    claim = await create_claim(hub_db, channel, name="<script>alert(1)</script>")
    await signed_in(client, "olga@example.ru")
    empty = await client.post(
        f"/claims/{claim.number}/steps", data={"text": "   "}, headers={"Origin": HUB}
    )
    assert empty.status_code == 422 and "Шаг пустой" in empty.text
    added = await client.post(
        f"/claims/{claim.number}/steps",
        data={"text": "Запросить фото у склада"},
        headers={"Origin": HUB},
    )
    assert added.status_code == 303
    async with hub_db.read() as session:
        step = (
            await session.scalars(
                select(ClaimStep).where(ClaimStep.claim_id == claim.id, ClaimStep.kind == "step")
            )
        ).one()
    page = await client.get(f"/claims/{claim.number}")
    assert f'action="/claims/{claim.number}/steps/{step.id}/done"' in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>alert(1)" not in page.text
    done = await client.post(
        f"/claims/{claim.number}/steps/{step.id}/done", headers={"Origin": HUB}
    )
    assert done.status_code == 303
    page = await client.get(f"/claims/{claim.number}")
    assert f'data-step="{step.id}"' in page.text and "/done" not in page.text
    assert f"сделано: {olga.name}" in page.text
    missing = await client.post(
        f"/claims/{claim.number}/steps/999999/done", headers={"Origin": HUB}
    )
    assert missing.status_code == 404


async def test_a_long_board_is_a_bounded_page_with_more(
    client: httpx.AsyncClient, hub_db: Database
) -> None:
    await create_manager(hub_db, email="olga@example.ru", role=ManagerRole.ADMIN)
    channel = await create_channel(hub_db, kind=ChannelKind.EMAIL)
    numbers = [(await create_claim(hub_db, channel)).number for _ in range(BOARD_PAGE + 1)]
    await signed_in(client, "olga@example.ru")
    first = await client.get("/claims", params={"status": "registered"})
    assert rows(first) == numbers[::-1][:BOARD_PAGE]
    more = re.search(r'<a class="button" href="(/claims\?[^"]+)">', first.text)
    assert more is not None and "status=registered" in more.group(1)
    second = await client.get(html.unescape(more.group(1)))
    assert rows(second) == [numbers[0]] and 'class="claims-more"' not in second.text


async def test_the_claims_stream_passes_on_only_what_the_manager_sees(db: Database) -> None:
    olga = await create_manager(db)
    ivan = await create_manager(db)
    channel = await create_channel(db, kind=ChannelKind.EMAIL)
    seen = await create_claim(db, channel)
    hidden = await create_claim(db, channel)
    async with db.transaction() as session:
        await session.execute(
            update(Conversation)
            .where(Conversation.id == hidden.conversation_id)
            .values(assignee_id=ivan.id)
        )
    bus = InProcessBus()
    dispatcher = Dispatcher(bus, db)
    try:
        stream = await opened(dispatcher, "claims", Viewer(olga.id))
        boss = await opened(dispatcher, "claims", Viewer(None, True))
        hello = await stream.next()
        assert "event: hello" in hello
        assert (await boss.told()) == ("hello", {"seq": 0, "fresh": False})  # no page read
        for claim in (hidden, seen):
            await bus.publish(
                "claim.status_changed",
                {
                    "event_id": 1,
                    "claim_id": claim.id,
                    "number": claim.number,
                    "manager_id": ivan.id,
                    "to": "in_review",
                },
            )
        change = await stream.next()
        assert "event: change" in change and "id: 1\n" in change
        line = next(x for x in change.splitlines() if x.startswith("data: "))
        assert json.loads(line.removeprefix("data: ")) == {
            "seq": 1,
            "topic": "claim.status_changed",
            "number": seen.number,
            "by": ivan.id,
        }
        # An administrator hears both; the inbox's tabs hear nothing of claims.
        assert [(await boss.told())[1]["number"] for _ in range(2)] == [
            hidden.number,
            seen.number,
        ]
        assert stream.tab.pending == 0 and dispatcher.feeds["inbox"].tabs == set()
    finally:
        await dispatcher.close()
        await bus.close()
