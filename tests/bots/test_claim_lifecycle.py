"""A filed claim worked by a manager through the API: the client is told each status in
their language, asked for a rating after "resolved", and the rating is stored."""

from __future__ import annotations

from intake.claims.texts import status_notice
from storage.models import ClaimStatus, MessageStatus
from tests.bots.script import run
from tests.channels.telegram.flow import BotHub, Chat
from tests.factories import create_manager


async def test_status_changes_notify_the_client_and_the_rating_is_stored(hub: BotHub) -> None:
    chat = Chat(language="ru")
    await run(hub, chat, "ru")
    [claim] = await hub.claims()
    base = f"/api/v1/claims/{claim.id}"
    sent_before = len(hub.api.texts(chat.user_id))

    body = await hub.api_post(f"{base}/status", {"status": "in_review"})
    assert body["status"] == "in_review"
    await hub.api_post(f"{base}/steps", {"text": "Запросили фото у склада"}, status=201)
    await hub.drain()
    assert hub.api.texts(chat.user_id)[sent_before:] == [
        status_notice("ru", claim.number, "in_review")
    ]

    # Not every move is allowed; resolving needs a resolution.
    response = await hub.client.post(
        f"{base}/status", json={"status": "closed"}, headers=hub.headers
    )
    assert response.status_code == 409 and response.json()["error"] == "transition_not_allowed"
    response = await hub.client.post(
        f"{base}/status", json={"status": "resolved"}, headers=hub.headers
    )
    assert response.status_code == 422 and response.json()["error"] == "resolution_required"

    resolution = "Заменим товар за наш счёт"
    await hub.api_post(
        f"/api/v1/claims/{claim.number}/status", {"status": "resolved", "resolution": resolution}
    )
    await hub.drain()
    notice = hub.api.sent("sendMessage", chat.user_id)[-1]
    assert notice.text == status_notice(
        "ru", claim.number, "resolved", resolution=resolution, ask_rating=True
    )
    assert notice.buttons() == [f"rate:{claim.id}:{n}" for n in range(1, 6)]

    await hub.send(chat.press(f"rate:{claim.id}:4"))
    assert "4" in hub.api.texts(chat.user_id)[-1]
    await hub.send(chat.text("Быстро и вежливо"))
    detail = await hub.api_get(base)
    assert (detail["rating"], detail["rating_comment"]) == (4, "Быстро и вежливо")
    assert [s["to_status"] for s in detail["steps"] if s["kind"] == "status"] == [
        "registered",
        "in_review",
        "resolved",
    ]
    assert [s["text"] for s in detail["steps"] if s["kind"] == "step"] == [
        "Запросили фото у склада"
    ]
    assert len(detail["attachments"]) == 2
    # The notices are outbound messages of the claim's conversation, sent.
    notices = await hub.messages()
    assert [m.status for m in notices if m.direction == "outbound"] == [MessageStatus.SENT] * 2
    # The comment went to the rating, not into the conversation as a client's message.
    assert not any(m.text == "Быстро и вежливо" for m in notices)

    # "My claims" shows it with its history.
    await hub.send(chat.press("menu:claims"))
    listing = hub.api.sent("sendMessage", chat.user_id)[-1]
    assert claim.number in listing.text and listing.buttons() == [
        f"claims:show:{claim.id}",
        "menu:start",
    ]
    await hub.send(chat.press(f"claims:show:{claim.id}"))
    history = hub.api.texts(chat.user_id)[-1]
    assert "решена" in history and resolution in history and "4 из 5" in history

    await hub.api_post(f"{base}/status", {"status": "closed", "notify": False})
    await hub.drain()
    assert hub.api.texts(chat.user_id)[-1] == history  # closed quietly
    [claim] = await hub.claims()
    assert claim.status == ClaimStatus.CLOSED and claim.closed_at is not None


async def test_claims_api_lists_and_filters(hub: BotHub) -> None:
    first, second = Chat(language="ru"), Chat(language="en")
    await run(hub, first, "ru")
    await run(hub, second, "en")
    one, two = await hub.claims()
    assert int(two.number[-6:]) == int(one.number[-6:]) + 1
    await hub.api_post(f"/api/v1/claims/{two.id}/status", {"status": "investigating"})
    # One phone, two chats: the second claim is the same person's (found by the phone).
    assert one.contact_id == two.contact_id
    manager = await create_manager(hub.context.db)
    patched = await hub.client.patch(
        f"/api/v1/claims/{one.id}",
        json={"manager_id": manager.id, "due_at": "2030-01-31T12:00:00+03:00"},
        headers=hub.headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["manager_id"] == manager.id

    page = await hub.api_get("/api/v1/claims")
    assert [c["number"] for c in page["items"]] == [two.number, one.number]
    page = await hub.api_get("/api/v1/claims", status="investigating")
    assert [c["id"] for c in page["items"]] == [two.id]
    page = await hub.api_get(
        "/api/v1/claims", reason="quality,delivery", manager_id=str(manager.id)
    )
    assert [c["id"] for c in page["items"]] == [one.id]
    page = await hub.api_get("/api/v1/claims", contact_id=one.contact_id, status="registered")
    assert [c["id"] for c in page["items"]] == [one.id]
    page = await hub.api_get("/api/v1/claims", manager_id="unassigned")
    assert [c["id"] for c in page["items"]] == [two.id]
    page = await hub.api_get("/api/v1/claims", limit=1)
    assert [c["id"] for c in page["items"]] == [two.id] and page["next_cursor"]
    page = await hub.api_get("/api/v1/claims", limit=1, cursor=page["next_cursor"])
    assert [c["id"] for c in page["items"]] == [one.id] and page["next_cursor"] is None
    page = await hub.api_get("/api/v1/claims", created_from="2999-01-01T00:00:00Z")
    assert page["items"] == []
    response = await hub.client.get(
        "/api/v1/claims", params={"status": "lost"}, headers=hub.headers
    )
    assert response.status_code == 422
    response = await hub.client.get("/api/v1/claims/999999", headers=hub.headers)
    assert response.status_code == 404
    response = await hub.client.get("/api/v1/claims")
    assert response.status_code == 401
