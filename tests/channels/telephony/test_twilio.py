"""Twilio through the real webhook, each request signed with twilio's own RequestValidator."""

from __future__ import annotations

import pytest
from twilio.request_validator import RequestValidator

from tests.channels.telephony.conftest import CLIENT, LINE, NOTHING, PhoneHub

AUTH_TOKEN = "12345678901234567890123456789012"
ACCOUNT = "AC" + "1" * 32


def params(call_sid: str, status: str, **extra: str) -> dict[str, str]:
    """An inbound call's parameters as Twilio posts them."""
    return {
        "AccountSid": ACCOUNT,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": status,
        "Called": LINE,
        "Caller": CLIENT,
        "Direction": "inbound",
        "From": CLIENT,
        "FromCountry": "RU",
        "To": LINE,
        "ToCountry": "RU",
        **extra,
    }


def status_callback(call_sid: str, status: str, **extra: str) -> dict[str, str]:
    return params(
        call_sid,
        status,
        CallbackSource="call-progress-events",
        SequenceNumber="0",
        Timestamp="Sat, 28 Nov 2026 10:15:01 +0000",
        **extra,
    )


@pytest.fixture
async def line(hub: PhoneHub) -> PhoneHub:
    await hub.line("tw", "twilio", {"auth_token": AUTH_TOKEN}, dial=["client:anna", "+79001112233"])
    return hub


class TestInboundCall:
    async def test_answered_through_dial(self, line: PhoneHub) -> None:
        anna = await line.manager("anna", extension="anna")
        voice = await line.twilio("tw", params("CA1", "ringing"))
        assert voice.status_code == 200
        assert voice.headers["content-type"].startswith("text/xml")
        twiml = voice.text
        assert '<Dial action="http://hub.test/webhooks/telephony/tw"' in twiml
        assert "<Client " in twiml and ">anna</Client>" in twiml
        assert ">+79001112233</Number>" in twiml

        leg = {"ParentCallSid": "CA1", "CallSid": "CA2", "To": "client:anna"}
        dial = params("CA1", "in-progress", DialCallStatus="completed", DialCallSid="CA2")
        rest = [
            status_callback("CA2", "ringing") | leg,
            status_callback("CA2", "in-progress") | leg,
            dial | {"DialCallDuration": "42"},
            status_callback("CA1", "completed", CallDuration="50"),
        ]
        answers = [await line.twilio("tw", request) for request in rest]
        assert all(a.text.endswith("<Response/>") for a in answers)
        counts = await line.counts()
        for request in [params("CA1", "ringing"), *rest]:  # Twilio retries: all of it again
            await line.twilio("tw", request)
        assert await line.counts() == counts == {**counts, "calls": 1, "leads": 1}

        (call,) = await line.calls()
        assert (call.state, call.manager_id, call.talk_seconds) == ("completed", anna, 42)
        assert call.agent == "anna"
        (conversation,) = await line.conversations()
        assert conversation.assignee_id == anna
        assert (await line.events("call.ringing"))[-1]["manager_ids"] == [anna]
        assert await line.tasks() == []

    async def test_no_answer_is_missed_and_called_back(self, line: PhoneHub) -> None:
        await line.twilio("tw", params("CA1", "ringing"))
        # The status callback overtakes the <Dial> action.
        await line.twilio("tw", status_callback("CA1", "completed"))
        await line.twilio("tw", params("CA1", "in-progress", DialCallStatus="no-answer"))

        (call,) = await line.calls()
        assert (call.state, call.end_reason) == ("missed", "no_answer")
        (task,) = await line.tasks()
        assert (task.phone, task.status) == (CLIENT, "open")

    async def test_busy(self, line: PhoneHub) -> None:
        await line.twilio("tw", status_callback("CA1", "busy"))

        (call,) = await line.calls()
        assert (call.state, call.end_reason) == ("missed", "busy")

    async def test_recording_is_stored_as_a_link(self, line: PhoneHub) -> None:
        url = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/RE1"
        await line.twilio("tw", params("CA1", "ringing"))
        await line.twilio(
            "tw",
            {
                "AccountSid": ACCOUNT,
                "CallSid": "CA1",
                "RecordingSid": "RE1",
                "RecordingUrl": url,
                "RecordingStatus": "completed",
                "RecordingDuration": "41",
            },
        )

        (call,) = await line.calls()
        assert (call.recording_url, call.recording_ref) == (url, "RE1")

    async def test_a_blocked_number_gets_reject(self, line: PhoneHub) -> None:
        await line.client.post(
            "/api/v1/telephony/blocklist", headers=line.headers, json={"number": CLIENT}
        )

        voice = await line.twilio("tw", params("CA1", "ringing"))

        assert voice.text.endswith('<Response><Reject reason="busy"/></Response>')
        (call,) = await line.calls()
        assert call.state == "rejected"
        assert (await line.counts())["contacts"] == 0


class TestOutboundCall:
    async def test_answered_by_the_client(self, line: PhoneHub) -> None:
        out = {"Direction": "outbound-api", "From": LINE, "To": CLIENT}
        await line.twilio("tw", status_callback("CA9", "initiated") | out)
        await line.twilio("tw", status_callback("CA9", "in-progress") | out)
        await line.twilio("tw", status_callback("CA9", "completed", CallDuration="65") | out)

        (call,) = await line.calls()
        assert (call.direction, call.state, call.talk_seconds) == ("outbound", "completed", 65)
        assert call.client_number == CLIENT
        assert await line.leads() == []


class TestSignature:
    async def test_a_wrong_missing_or_tampered_signature_stores_nothing(
        self, line: PhoneHub
    ) -> None:
        signed = params("CA1", "ringing")
        signature = RequestValidator(AUTH_TOKEN).compute_signature(
            "http://hub.test/webhooks/telephony/tw", signed
        )
        refused = [
            await line.twilio("tw", signed, auth_token="0" * 32),
            await line.client.post("/webhooks/telephony/tw", data=signed),
            await line.client.post(
                "/webhooks/telephony/tw",
                data={**signed, "From": "+79990000000"},
                headers={"X-Twilio-Signature": signature},
            ),
        ]

        assert [(r.status_code, r.json()["error"]) for r in refused] == [
            (403, "signature_invalid"),
            (401, "signature_missing"),
            (403, "signature_invalid"),
        ]
        assert await line.counts() == NOTHING
