"""Zadarma's PBX notifications through the real webhook, signed as Zadarma signs them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.channels.telephony.conftest import CLIENT, NOTHING, PhoneHub

SECRET = "zadarma-api-secret-0123"
START = "2026-11-28 13:15:00"  # Moscow time: 10:15 UTC
CALLER, DID = "79123456789", "74951234567"


async def notify(line: PhoneHub, event: str, **fields: str) -> None:
    """Post a notification with the fields and signature Zadarma's own library defines."""
    data = {"event": event, "call_start": START, "pbx_call_id": "in_1", **fields}
    signed = {
        "NOTIFY_START": ("caller_id", "called_did"),
        "NOTIFY_INTERNAL": ("caller_id", "called_did"),
        "NOTIFY_END": ("caller_id", "called_did"),
        "NOTIFY_ANSWER": ("caller_id", "destination"),
        "NOTIFY_OUT_START": ("internal", "destination"),
        "NOTIFY_OUT_END": ("internal", "destination"),
    }
    if event == "NOTIFY_RECORD":
        text = data["pbx_call_id"] + data["call_id_with_rec"]
    else:
        first, second = signed[event]
        text = data.get(first, "") + data.get(second, "") + data["call_start"]
    response = await line.zadarma("zd", data, signed=text)
    assert response.status_code == 200, response.text


@pytest.fixture
async def line(hub: PhoneHub) -> PhoneHub:
    await hub.line("zd", "zadarma", {"api_secret": SECRET})
    return hub


class TestSetup:
    async def test_the_echo_check_is_answered(self, line: PhoneHub) -> None:
        response = await line.client.get("/webhooks/telephony/zd", params={"zd_echo": "a1b2c3"})

        assert (response.status_code, response.text) == (200, "a1b2c3")
        assert await line.counts() == NOTHING


class TestInboundCall:
    async def test_answered_at_an_extension(self, line: PhoneHub) -> None:
        anna = await line.manager("anna", extension="100")
        inbound = {"caller_id": CALLER, "called_did": DID}
        end = {
            "internal": "100",
            "duration": "83",
            "disposition": "answered",
            "status_code": "16",
            "is_recorded": "1",
            "call_id_with_rec": "1732788900.123",
            **inbound,
        }
        for _ in range(2):  # the second time: every notification repeated
            await notify(line, "NOTIFY_START", **inbound)
            await notify(line, "NOTIFY_INTERNAL", internal="100", **inbound)
            await notify(line, "NOTIFY_ANSWER", caller_id=CALLER, destination="100", internal="100")
            await notify(line, "NOTIFY_END", **end)
        assert (await line.counts())["leads"] == 1

        (call,) = await line.calls()
        assert (call.state, call.manager_id, call.talk_seconds) == ("completed", anna, 83)
        assert call.started_at == datetime(2026, 11, 28, 10, 15, tzinfo=UTC)
        assert call.recording_ref == "1732788900.123"
        ringing = await line.events("call.ringing")
        assert [r["manager_ids"] for r in ringing] == [[], [anna]]  # the extension's manager
        assert (await line.conversations())[0].assignee_id == anna

    async def test_missed_heard_of_end_first(self, line: PhoneHub) -> None:
        inbound = {"caller_id": CALLER, "called_did": DID}
        await notify(line, "NOTIFY_END", duration="0", disposition="cancel", **inbound)
        await notify(line, "NOTIFY_START", **inbound)

        (call,) = await line.calls()
        assert (call.state, call.end_reason) == ("missed", "cancel")
        assert call.client_number == CLIENT
        (task,) = await line.tasks()
        assert task.phone == CLIENT

    async def test_busy(self, line: PhoneHub) -> None:
        inbound = {"caller_id": CALLER, "called_did": DID}
        await notify(line, "NOTIFY_END", duration="0", disposition="busy", **inbound)

        (call,) = await line.calls()
        assert (call.state, call.end_reason) == ("missed", "busy")

    async def test_recording_notification(self, line: PhoneHub) -> None:
        await notify(line, "NOTIFY_START", caller_id=CALLER, called_did=DID)
        await notify(line, "NOTIFY_RECORD", call_id_with_rec="1732788900.555")

        (call,) = await line.calls()
        assert call.recording_ref == "1732788900.555"


class TestOutboundCall:
    async def test_answered(self, line: PhoneHub) -> None:
        boris = await line.manager("boris", extension="101")
        out = {"internal": "101", "destination": CALLER, "pbx_call_id": "out_1"}
        await notify(line, "NOTIFY_OUT_START", **out)
        await notify(
            line, "NOTIFY_OUT_END", caller_id=DID, duration="20", disposition="answered", **out
        )

        (call,) = await line.calls()
        assert (call.direction, call.state, call.manager_id) == ("outbound", "completed", boris)
        assert (call.client_number, call.talk_seconds) == (CLIENT, 20)


class TestSignature:
    async def test_a_wrong_or_missing_signature_stores_nothing(self, line: PhoneHub) -> None:
        data = {
            "event": "NOTIFY_START",
            "call_start": START,
            "pbx_call_id": "in_1",
            "caller_id": CALLER,
            "called_did": DID,
        }
        wrong = await line.zadarma("zd", data, signed=CALLER + DID + START, secret="other-secret")
        missing = await line.client.post("/webhooks/telephony/zd", data=data)

        assert (wrong.status_code, wrong.json()["error"]) == (403, "signature_invalid")
        assert (missing.status_code, missing.json()["error"]) == (401, "signature_missing")
        assert await line.counts() == NOTHING
