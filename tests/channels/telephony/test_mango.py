"""Mango Office VPBX events through the real webhook, signed with the API key and salt."""

from __future__ import annotations

from typing import Any

import pytest

from tests.channels.telephony.conftest import CLIENT, NOTHING, PhoneHub

KEY, SALT = "mango-vpbx-api-key-0001", "mango-salt-0002"
T0 = 1795860900  # a Unix time
CLIENT_DIGITS, LINE_DIGITS = "79123456789", "74951234567"


def leg(state: str, seq: int, *, location: str = "abonent", **extra: Any) -> dict[str, Any]:
    return {
        "entry_id": "MTAxNjY5OTcwMzE5",
        "call_id": f"MToxMDE2Njk5NzowMzE5OjE={seq}",
        "timestamp": T0 + seq,
        "seq": seq,
        "call_state": state,
        "location": location,
        "from": {"number": CLIENT_DIGITS},
        "to": {
            "extension": "201",
            "number": "sip:anna@vpbx400.mangosip.ru",
            "line_number": LINE_DIGITS,
        },
        **extra,
    }


def summary(result: int, *, talk: int | None, reason: int, **extra: Any) -> dict[str, Any]:
    return {
        "entry_id": "MTAxNjY5OTcwMzE5",
        "call_direction": 1,
        "from": {"number": CLIENT_DIGITS},
        "to": {"extension": "201", "number": "sip:anna@vpbx400.mangosip.ru"},
        "line_number": LINE_DIGITS,
        "create_time": T0,
        "forward_time": T0 + 2,
        "talk_time": talk or 0,
        "end_time": T0 + 95,
        "entry_result": result,
        "disconnect_reason": reason,
        **extra,
    }


@pytest.fixture
async def line(hub: PhoneHub) -> PhoneHub:
    await hub.line("mango", "mango", {"api_key": KEY, "api_salt": SALT})
    return hub


async def post(line: PhoneHub, path: str, event: dict[str, Any]) -> None:
    response = await line.mango("mango", path, event)
    assert response.status_code == 200, response.text


class TestInboundCall:
    async def test_answered(self, line: PhoneHub) -> None:
        anna = await line.manager("anna", extension="201")
        record = {"entry_id": "MTAxNjY5OTcwMzE5", "recording_id": "MToxMDE2Njk5Nzo0NTU6"}
        for _ in range(2):  # the second time: every event repeated
            await post(line, "events/call", leg("Appeared", 1, location="ivr"))
            await post(line, "events/call", leg("Appeared", 2))
            await post(line, "events/call", leg("Connected", 3))
            await post(line, "events/call", leg("Disconnected", 4, disconnect_reason=1110))
            await post(line, "events/summary", summary(1, talk=T0 + 5, reason=1110))
            await post(line, "events/record/added", {**record, "seq": 5})
        assert (await line.counts())["leads"] == 1

        (call,) = await line.calls()
        assert (call.state, call.manager_id, call.client_number) == ("completed", anna, CLIENT)
        assert (call.wait_seconds, call.talk_seconds) == (3, 90)  # times from the events
        assert call.recording_ref == "MToxMDE2Njk5Nzo0NTU6"
        assert (await line.conversations())[0].assignee_id == anna
        assert [r["manager_ids"] for r in await line.events("call.ringing")] == [[], [anna]]

    async def test_missed_summary_first(self, line: PhoneHub) -> None:
        await post(line, "events/summary", summary(0, talk=None, reason=1111))
        await post(line, "events/call", leg("Appeared", 1))  # late: changes nothing

        (call,) = await line.calls()
        assert (call.state, call.end_reason, call.wait_seconds) == ("missed", "cancel", 95)
        (task,) = await line.tasks()
        assert task.phone == CLIENT

    async def test_outbound(self, line: PhoneHub) -> None:
        out = summary(
            1,
            talk=T0 + 10,
            reason=1100,
            call_direction=2,
            **{"from": {"extension": "201"}, "to": {"number": CLIENT_DIGITS}},
        )
        await post(line, "events/summary", out)

        (call,) = await line.calls()
        assert (call.direction, call.state, call.client_number) == ("outbound", "completed", CLIENT)
        assert call.agent == "201"

    async def test_internal_calls_are_not_journaled(self, line: PhoneHub) -> None:
        await post(line, "events/summary", summary(1, talk=T0 + 3, reason=1100, call_direction=0))

        assert await line.counts() == NOTHING


class TestSignature:
    async def test_a_wrong_or_missing_sign_stores_nothing(self, line: PhoneHub) -> None:
        wrong = await line.mango("mango", "events/call", leg("Appeared", 1), salt="other")
        missing = await line.client.post(
            "/webhooks/telephony/mango/events/call", data={"vpbx_api_key": KEY, "json": "{}"}
        )

        assert (wrong.status_code, wrong.json()["error"]) == (403, "signature_invalid")
        assert (missing.status_code, missing.json()["error"]) == (401, "signature_missing")
        assert await line.counts() == NOTHING
