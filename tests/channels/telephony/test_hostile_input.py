"""What a broken PBX or an attacker posts to the telephony webhook: over-long call ids,
oversized bodies, JSON objects where text belongs, and a hostile Zadarma echo."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from tests.channels.telephony.conftest import NOTHING, PhoneHub

ZAMMAD_FROM = "79123456789"
ZAMMAD_OTHER = "79990001122"
# The journal keys a call on its whole id; the id becomes the message's external id
# "call:<id>", a 255-character column.
LONGEST_CALL_ID = 250


def error_of(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]


class TestCallIds:
    async def test_ids_that_differ_only_past_the_limit_are_refused_not_merged(
        self, pbx: PhoneHub
    ) -> None:
        shared = "c" * LONGEST_CALL_ID
        first, second = shared + "-first-caller", shared + "-second-caller"

        answers = [
            await pbx.generic("pbx", event="newCall", callId=first, **{"from": ZAMMAD_FROM}),
            await pbx.generic("pbx", event="newCall", callId=second, **{"from": ZAMMAD_OTHER}),
            await pbx.generic(
                "pbx", event="hangup", callId=second, cause="noAnswer", **{"from": ZAMMAD_OTHER}
            ),
        ]

        assert [error_of(a) for a in answers] == [(422, "invalid_call_id")] * 3
        assert await pbx.counts() == NOTHING

    async def test_the_longest_id_is_kept_whole(self, pbx: PhoneHub) -> None:
        longest = "x" * (LONGEST_CALL_ID - 2) + "-1"
        for event in ({"event": "newCall"}, {"event": "hangup", "cause": "noAnswer"}):
            response = await pbx.generic("pbx", callId=longest, **event, **{"from": ZAMMAD_FROM})
            assert response.status_code == 200, response.text

        (call,) = await pbx.calls()
        assert (call.provider_call_id, call.state) == (longest, "missed")

    async def test_every_provider_refuses_an_over_long_id(self, hub: PhoneHub) -> None:
        await hub.line("mg", "mango", {"api_key": "mango-key", "api_salt": "mango-salt"})
        await hub.line("tw", "twilio", {"auth_token": "twilio-token"})
        await hub.line("zd", "zadarma", {"api_secret": "zadarma-secret"})
        too_long = "9" * (LONGEST_CALL_ID + 1)

        mango = await hub.mango(
            "mg",
            "events/call",
            {
                "entry_id": too_long,
                "call_state": "Appeared",
                "location": "ivr",
                "from": {"number": ZAMMAD_FROM},
                "to": {"line_number": "74951234567"},
            },
        )
        twilio = await hub.twilio(
            "tw",
            {
                "CallSid": "CA" + too_long,
                "CallStatus": "ringing",
                "Direction": "inbound",
                "From": "+" + ZAMMAD_FROM,
                "To": "+74951234567",
            },
        )
        start = {
            "event": "NOTIFY_START",
            "call_start": "2024-05-06 10:00:00",
            "pbx_call_id": too_long,
            "caller_id": ZAMMAD_FROM,
            "called_did": "74951234567",
        }
        zadarma = await hub.zadarma(
            "zd", start, signed=ZAMMAD_FROM + "74951234567" + "2024-05-06 10:00:00"
        )

        assert [error_of(r) for r in (mango, twilio, zadarma)] == [(422, "invalid_call_id")] * 3
        assert await hub.counts() == NOTHING


class TestTypes:
    async def test_json_objects_and_arrays_where_text_belongs_are_a_422(
        self, pbx: PhoneHub
    ) -> None:
        new_call = {"event": "newCall", "from": ZAMMAD_FROM, "callId": "t-1"}
        for broken in (
            {"from": {"n": 1}},
            {"to": [1, 2]},
            {"callId": {"id": "t-1"}},
            {"event": ["newCall"]},
            {"user": [{"name": "Anna"}]},
        ):
            response = await pbx.generic("pbx", as_json=True, **{**new_call, **broken})
            assert error_of(response) == (422, "invalid_field"), broken

        assert await pbx.counts() == NOTHING

    async def test_mango_numbers_must_be_text(self, hub: PhoneHub) -> None:
        await hub.line("mg", "mango", {"api_key": "mango-key", "api_salt": "mango-salt"})

        response = await hub.mango(
            "mg",
            "events/call",
            {
                "entry_id": "e-1",
                "call_state": "Appeared",
                "location": "ivr",
                "from": {"number": {"n": 1}},
                "to": {"line_number": "74951234567"},
            },
        )

        assert error_of(response) == (422, "invalid_field")
        assert await hub.counts() == NOTHING


class TestBodyLimit:
    async def test_a_declared_oversized_body_is_a_413(self, pbx: PhoneHub) -> None:
        token = pbx.secrets["pbx"]["token"]
        body = b"event=newCall&callId=big-1&from=" + b"7" * (10 * 1024 * 1024)

        response = await pbx.client.post(
            f"/webhooks/telephony/pbx/{token}",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

        assert error_of(response) == (413, "payload_too_large")
        assert await pbx.counts() == NOTHING

    async def test_a_chunked_body_is_cut_off_once_over_the_limit(self, pbx: PhoneHub) -> None:
        token = pbx.secrets["pbx"]["token"]
        chunk, chunks = 16 * 1024, 640  # 10 MiB, sent without a Content-Length
        sent = 0

        async def dribble() -> AsyncIterator[bytes]:
            nonlocal sent
            yield b"event=newCall&callId=big-2&from="
            for _ in range(chunks):
                sent += 1
                yield b"7" * chunk

        response = await pbx.client.post(
            f"/webhooks/telephony/pbx/{token}",
            content=dribble(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

        assert error_of(response) == (413, "payload_too_large")
        assert sent < chunks // 10  # the rest was never read
        assert await pbx.counts() == NOTHING

    async def test_a_body_within_the_limit_is_taken(self, pbx: PhoneHub) -> None:
        response = await pbx.generic(
            "pbx", event="newCall", callId="ok-1", queue="q" * 100, **{"from": ZAMMAD_FROM}
        )

        assert response.status_code == 200, response.text
        assert len(await pbx.calls()) == 1


class TestZadarmaEcho:
    async def test_only_an_echo_of_allowed_characters_is_answered(self, hub: PhoneHub) -> None:
        await hub.line("zd", "zadarma", {"api_secret": "zadarma-secret"})

        good = await hub.client.get("/webhooks/telephony/zd", params={"zd_echo": "Ab9_-x"})
        hostile = [
            await hub.client.get("/webhooks/telephony/zd", params={"zd_echo": value})
            for value in ("<script>alert(1)</script>", "a b", "x" * 200, "")
        ]

        assert (good.status_code, good.text) == (200, "Ab9_-x")
        assert good.headers["content-type"].startswith("text/plain")
        assert good.headers["x-content-type-options"] == "nosniff"
        assert [error_of(r) for r in hostile] == [(422, "invalid_echo")] * 4
        assert await hub.counts() == NOTHING
