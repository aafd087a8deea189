"""/api/v1/claims as a manager's token uses it: the claims of the conversations they see and
those they own, and the investigation plan's steps ticked off."""

from __future__ import annotations

import httpx
from sqlalchemy import update

from storage.db import Database
from storage.models import ChannelKind, Conversation
from tests.factories import (
    assert_error,
    create_channel,
    create_claim,
    create_manager,
    manager_with_headers,
)


async def test_a_manager_reads_and_changes_only_the_claims_they_see(
    client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
) -> None:
    olga, headers = await manager_with_headers(hub_db)
    ivan = await create_manager(hub_db)
    channel = await create_channel(hub_db, kind=ChannelKind.EMAIL)
    seen = await create_claim(hub_db, channel)
    hidden = await create_claim(hub_db, channel)
    async with hub_db.transaction() as session:
        await session.execute(
            update(Conversation)
            .where(Conversation.id == hidden.conversation_id)
            .values(assignee_id=ivan.id)
        )
    page = (await client.get("/api/v1/claims", headers=headers)).json()
    assert [c["number"] for c in page["items"]] == [seen.number]
    everything = (await client.get("/api/v1/claims", headers=admin_headers)).json()
    assert len(everything["items"]) == 2
    for path in (f"/api/v1/claims/{hidden.number}", f"/api/v1/claims/{hidden.id}"):
        assert_error(await client.get(path, headers=headers), 404)
    moved = await client.post(
        f"/api/v1/claims/{hidden.id}/status", json={"status": "in_review"}, headers=headers
    )
    assert_error(moved, 404)
    # Made responsible for it, Olga sees it though its conversation is Ivan's.
    patched = await client.patch(
        f"/api/v1/claims/{hidden.id}", json={"manager_id": olga.id}, headers=admin_headers
    )
    assert patched.status_code == 200
    assert (await client.get(f"/api/v1/claims/{hidden.id}", headers=headers)).status_code == 200


async def test_a_step_of_the_plan_is_ticked_off(
    client: httpx.AsyncClient, hub_db: Database
) -> None:
    olga, headers = await manager_with_headers(hub_db)
    channel = await create_channel(hub_db, kind=ChannelKind.EMAIL)
    claim = await create_claim(hub_db, channel)
    base = f"/api/v1/claims/{claim.number}"
    step = await client.post(
        f"{base}/steps", json={"text": "Позвонить в доставку"}, headers=headers
    )
    assert step.status_code == 201 and step.json()["done_at"] is None
    done = await client.post(f"{base}/steps/{step.json()['id']}/done", headers=headers)
    assert done.status_code == 200
    assert done.json()["done_by_id"] == olga.id and done.json()["done_at"] is not None
    again = await client.post(f"{base}/steps/{step.json()['id']}/done", headers=headers)
    assert again.json()["done_at"] == done.json()["done_at"]
    detail = (await client.get(base, headers=headers)).json()
    [registered] = [s for s in detail["steps"] if s["kind"] == "status"]
    assert_error(await client.post(f"{base}/steps/{registered['id']}/done", headers=headers), 404)
