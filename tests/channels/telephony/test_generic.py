"""Generic CTI (Zammad-compatible) through the real webhook: newCall, answer, hangup."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.channels.telephony.conftest import CLIENT, LINE, NOTHING, PhoneHub

ZAMMAD_FROM = "79123456789"  # PBXs send numbers without the "+"


async def call(hub: PhoneHub, call_id: str, *events: tuple[str, dict[str, Any]]) -> None:
    for name, extra in events:
        fields = {
            "event": name,
            "from": ZAMMAD_FROM,
            "to": "74951234567",
            "direction": "in",
            "callId": call_id,
            **extra,
        }
        response = await hub.generic("pbx", **fields)
        assert response.status_code == 200, response.text
        assert response.json() == {}


class TestAnsweredCall:
    async def test_is_journaled_with_contact_lead_and_the_answering_manager(
        self, pbx: PhoneHub
    ) -> None:
        anna = await pbx.manager("anna", extension="101")
        await call(
            pbx,
            "c-1",
            ("newCall", {"user[]": "Anna"}),
            ("answer", {"answeringNumber": "101"}),
            ("hangup", {"cause": "normalClearing", "answeringNumber": "101"}),
        )

        (journaled,) = await pbx.calls()
        assert (journaled.direction, journaled.state, journaled.end_reason) == (
            "inbound",
            "completed",
            "normal",
        )
        assert journaled.client_number == CLIENT
        assert journaled.manager_id == anna
        assert journaled.talk_seconds is not None and journaled.wait_seconds is not None
        contact = await pbx.contact_of(CLIENT)
        assert journaled.contact_id == contact.id
        (lead,) = await pbx.leads()
        assert (lead.kind, lead.source, lead.contact_id) == ("call", "telephony", contact.id)
        (conversation,) = await pbx.conversations()
        assert conversation.assignee_id == anna  # the answering manager has it
        assert conversation.first_response_at is not None
        (message,) = await pbx.messages()
        assert message.text.startswith(f"Входящий звонок с {CLIENT}, разговор")
        assert message.meta["call"] == {"id": journaled.id, "direction": "inbound"}
        assert await pbx.tasks() == []

    async def test_the_assignment_is_audited_with_its_reason(self, pbx: PhoneHub) -> None:
        anna = await pbx.manager("anna", extension="101")
        await call(pbx, "c-1", ("newCall", {}), ("answer", {"answeringNumber": "101"}))

        (conversation,) = await pbx.conversations()
        response = await pbx.client.get(
            f"/api/v1/conversations/{conversation.id}/assignments", headers=pbx.headers
        )
        assert response.status_code == 200, response.text
        (assignment,) = response.json()
        assert (assignment["manager_id"], assignment["reason"]) == (anna, "telephony")

    async def test_json_bodies_work_as_form_bodies(self, pbx: PhoneHub) -> None:
        for name in ("newCall", "answer", "hangup"):
            response = await pbx.generic(
                "pbx",
                as_json=True,
                event=name,
                **{"from": ZAMMAD_FROM, "to": "74951234567"},
                direction="in",
                callId="j-1",
                user=["Anna", "Boris"],
                cause="normalClearing",
            )
            assert (response.status_code, response.json()) == (200, {})

        journaled = await pbx.call("j-1")
        assert journaled.state == "completed"
        assert journaled.details["users"] == ["Anna", "Boris"]


class TestMissedCall:
    async def test_opens_a_callback_for_the_contacts_owner(self, pbx: PhoneHub) -> None:
        owner = await pbx.manager("olga")
        await call(pbx, "c-0", ("newCall", {}), ("hangup", {"cause": "cancel"}))
        await pbx.set_owner(CLIENT, owner)
        await pbx.generic("pbx", event="newCall", **{"from": "89123456789"}, callId="c-1")
        await pbx.generic("pbx", event="hangup", **{"from": "89123456789"}, callId="c-1")

        first, second = await pbx.calls()
        assert (first.state, first.end_reason) == ("missed", "cancel")
        assert (second.state, second.end_reason) == ("missed", "no_answer")
        assert second.contact_id == first.contact_id
        (task,) = await pbx.tasks()  # one callback per number; the second call adds to it
        assert (task.kind, task.status, task.phone, task.count) == ("callback", "open", CLIENT, 2)
        assert task.assignee_id == owner
        assert (task.due_at - first.ended_at).total_seconds() == 30 * 60  # no hours: plain time
        assert task.title == f"Перезвонить {CLIENT}"
        (message,) = [m for m in await pbx.messages() if m.external_id == "call:c-1"]
        assert message.text == f"Пропущенный звонок с {CLIENT}"

    async def test_busy_is_missed_too(self, pbx: PhoneHub) -> None:
        await call(pbx, "c-1", ("newCall", {}), ("hangup", {"cause": "busy"}))

        (journaled,) = await pbx.calls()
        assert (journaled.state, journaled.end_reason) == ("missed", "busy")
        assert len(await pbx.tasks()) == 1

    async def test_forwarded_is_not_called_back(self, pbx: PhoneHub) -> None:
        await call(pbx, "c-1", ("newCall", {}), ("hangup", {"cause": "forwarded"}))

        (journaled,) = await pbx.calls()
        assert (journaled.state, journaled.forwarded) == ("missed", True)
        assert await pbx.tasks() == []

    async def test_anonymous_caller_is_journaled_without_contact_or_callback(
        self, pbx: PhoneHub
    ) -> None:
        anonymous = {"from": "anonymous"}
        await call(pbx, "c-1", ("newCall", anonymous), ("hangup", {**anonymous, "cause": "cancel"}))

        (journaled,) = await pbx.calls()
        assert (journaled.state, journaled.client_number, journaled.contact_id) == (
            "missed",
            None,
            None,
        )
        assert {k: v for k, v in (await pbx.counts()).items() if k != "calls"} == {
            k: v for k, v in NOTHING.items() if k != "calls"
        }

    async def test_a_later_answered_call_closes_the_callback(self, pbx: PhoneHub) -> None:
        await call(pbx, "c-1", ("newCall", {}), ("hangup", {"cause": "noAnswer"}))
        await call(pbx, "c-2", ("newCall", {}), ("answer", {}))

        (task,) = await pbx.tasks()
        second = await pbx.call("c-2")
        assert (task.status, task.closed_by_call_id) == ("done", second.id)
        assert (await pbx.events("task.closed"))[0]["task_id"] == task.id


class TestOutboundCall:
    async def test_is_journaled_for_the_calling_manager_and_opens_no_lead(
        self, pbx: PhoneHub
    ) -> None:
        boris = await pbx.manager("boris", extension="102")
        out = {"direction": "out", "from": "102", "to": "+7 (912) 345-67-89"}
        await call(
            pbx,
            "o-1",
            ("newCall", {**out, "user[]": "Boris"}),
            ("answer", out),
            ("hangup", {**out, "cause": "normalClearing"}),
        )

        (journaled,) = await pbx.calls()
        assert (journaled.direction, journaled.state) == ("outbound", "completed")
        assert journaled.client_number == CLIENT
        assert journaled.agent == "Boris" and journaled.manager_id is None  # named, not matched
        assert journaled.contact_id == (await pbx.contact_of(CLIENT)).id
        assert await pbx.leads() == [] and await pbx.conversations() == []
        del boris

    async def test_answered_callback_closes_the_task_and_joins_the_conversation(
        self, pbx: PhoneHub
    ) -> None:
        boris = await pbx.manager("boris", extension="102")
        await call(pbx, "c-1", ("newCall", {}), ("hangup", {"cause": "cancel"}))
        out = {"direction": "out", "from": "102", "to": ZAMMAD_FROM}
        await call(
            pbx,
            "o-1",
            ("newCall", out),
            ("answer", {**out, "answeringNumber": "102"}),
            ("hangup", {**out, "cause": "normalClearing"}),
        )

        (task,) = await pbx.tasks()
        assert task.status == "done"
        callback = await pbx.call("o-1")
        assert callback.manager_id == boris
        (conversation,) = await pbx.conversations()
        assert callback.conversation_id == conversation.id
        texts = [m.text for m in await pbx.messages()]
        assert texts[1].startswith(f"Исходящий звонок на {CLIENT}, разговор")

    async def test_unanswered_outbound_call_is_not_called_back(self, pbx: PhoneHub) -> None:
        out = {"direction": "out", "from": "102", "to": ZAMMAD_FROM}
        await call(pbx, "o-1", ("newCall", out), ("hangup", {**out, "cause": "noAnswer"}))

        (journaled,) = await pbx.calls()
        assert (journaled.direction, journaled.state) == ("outbound", "missed")
        assert await pbx.tasks() == []


class TestOrderAndRepeats:
    async def test_hangup_before_answer(self, pbx: PhoneHub) -> None:
        anna = await pbx.manager("anna", extension="101")
        await call(
            pbx,
            "c-1",
            ("newCall", {}),
            ("hangup", {"cause": "normalClearing"}),
            ("answer", {"answeringNumber": "101"}),
        )

        (journaled,) = await pbx.calls()
        assert (journaled.state, journaled.manager_id) == ("completed", anna)
        assert journaled.answered_at is not None
        assert journaled.answered_at <= journaled.ended_at  # type: ignore[operator]
        assert await pbx.tasks() == []
        assert (await pbx.conversations())[0].assignee_id == anna

    async def test_cancel_then_a_late_answer_turns_the_missed_call_answered(
        self, pbx: PhoneHub
    ) -> None:
        await call(
            pbx,
            "c-1",
            ("newCall", {}),
            ("hangup", {"cause": "cancel"}),
            ("answer", {}),
        )

        (journaled,) = await pbx.calls()
        assert journaled.state == "completed"
        (task,) = await pbx.tasks()
        assert (task.status, task.closed_by_call_id) == ("done", journaled.id)

    async def test_a_call_first_heard_of_by_its_hangup(self, pbx: PhoneHub) -> None:
        await call(pbx, "c-1", ("hangup", {"cause": "noAnswer"}))
        await call(pbx, "c-1", ("newCall", {}))

        (journaled,) = await pbx.calls()
        assert journaled.state == "missed"
        assert (await pbx.counts())["leads"] == 1
        assert len(await pbx.tasks()) == 1

    async def test_the_same_event_replayed_ten_times_stores_one_call(self, pbx: PhoneHub) -> None:
        for _ in range(10):
            await call(pbx, "c-1", ("newCall", {}))
        for _ in range(10):
            await call(pbx, "c-1", ("hangup", {"cause": "cancel"}))

        assert await pbx.counts() == {
            "calls": 1,
            "contacts": 1,
            "leads": 1,
            "messages": 1,
            "tasks": 1,
        }
        assert len(await pbx.events("call.ringing")) == 1
        assert len(await pbx.events("call.ended")) == 1
        assert (await pbx.tasks())[0].count == 1

    async def test_concurrent_requests_share_transactions_and_each_is_answered(
        self, pbx: PhoneHub
    ) -> None:
        def new_call(n: int) -> Any:
            return pbx.generic(
                "pbx", event="newCall", callId=f"p-{n}", **{"from": f"7912000{n:04d}"}
            )

        responses = await asyncio.gather(
            *(new_call(n) for n in range(12)), *(new_call(0) for _ in range(4))
        )

        assert [(r.status_code, r.json()) for r in responses] == [(200, {})] * 16
        counts = await pbx.counts()
        assert (counts["calls"], counts["contacts"], counts["leads"]) == (12, 12, 12)

    async def test_repeated_newcall_after_answer_changes_nothing(self, pbx: PhoneHub) -> None:
        await call(pbx, "c-1", ("newCall", {}), ("answer", {}), ("newCall", {}))

        (journaled,) = await pbx.calls()
        assert journaled.state == "answered"


class TestScreenPop:
    async def test_ringing_and_answered_carry_the_contact_card_for_the_managers(
        self, pbx: PhoneHub
    ) -> None:
        owner = await pbx.manager("olga")
        anna = await pbx.manager("anna", extension="101")
        await call(pbx, "c-0", ("newCall", {}), ("hangup", {"cause": "cancel"}))
        await pbx.set_owner(CLIENT, owner)

        async with pbx.context.bus.subscribe(f"manager.{owner}", f"manager.{anna}") as inbox:
            await call(pbx, "c-1", ("newCall", {}), ("answer", {"answeringNumber": "101"}))
            await pbx.drain()
            received = [await inbox.get(timeout=2) for _ in range(3)]

        ringing = (await pbx.events("call.ringing"))[-1]
        assert ringing["manager_ids"] == [owner]
        assert ringing["contact"]["owner_id"] == owner
        assert ringing["contact"]["phone"] == CLIENT
        answered = (await pbx.events("call.answered"))[-1]
        assert set(answered["manager_ids"]) == {owner, anna}
        assert answered["manager_id"] == anna
        topics = sorted((m.topic, m.payload["type"]) for m in received if m is not None)
        assert topics == sorted(
            [
                (f"manager.{anna}", "call.answered"),
                (f"manager.{owner}", "call.answered"),
                (f"manager.{owner}", "call.ringing"),
            ]
        )


class TestBlocklist:
    async def test_a_blocked_number_is_rejected_and_stores_no_contact(self, pbx: PhoneHub) -> None:
        response = await pbx.client.post(
            "/api/v1/telephony/blocklist",
            headers=pbx.headers,
            json={"number": "8 (912) 345-67-89", "reason": "спам"},
        )
        assert response.status_code == 201, response.text
        assert response.json()["number"] == CLIENT

        fields = {"from": ZAMMAD_FROM, "to": LINE, "direction": "in", "callId": "s-1"}
        rejected = await pbx.generic("pbx", event="newCall", **fields)
        ended = await pbx.generic("pbx", event="hangup", cause="cancel", **fields)

        assert rejected.json() == {"action": "reject", "reason": "busy"}
        assert ended.json() == {}
        (journaled,) = await pbx.calls()
        assert (journaled.state, journaled.end_reason, journaled.contact_id) == (
            "rejected",
            "blocked",
            None,
        )
        counts = await pbx.counts()
        assert (counts["contacts"], counts["leads"], counts["tasks"]) == (0, 0, 0)


class TestCredentials:
    async def test_bad_credentials_or_input_store_nothing(self, pbx: PhoneHub) -> None:
        new_call = {"event": "newCall", "from": ZAMMAD_FROM, "callId": "x-1"}
        refused = [
            await pbx.generic("pbx", token="", **new_call),
            await pbx.generic("pbx", token="wrong-token", **new_call),
            await pbx.generic("nope", token="x", **new_call),
            await pbx.generic("pbx", **{**new_call, "event": "transfer"}),
            await pbx.generic("pbx", **{**new_call, "direction": "sideways"}),
        ]

        assert [(r.status_code, r.json()["error"]) for r in refused] == [
            (401, "signature_missing"),
            (403, "signature_invalid"),
            (404, "unknown_channel"),
            (422, "unknown_event"),
            (422, "invalid_direction"),
        ]
        assert await pbx.counts() == NOTHING

    async def test_the_token_may_come_as_a_query_parameter_with_multipart_fields(
        self, pbx: PhoneHub
    ) -> None:
        token = pbx.secrets["pbx"]["token"]
        # As `curl --form` posts them (Zammad's form-data examples), user[] repeated.
        fields = [("event", "newCall"), ("from", ZAMMAD_FROM), ("callId", "q-1")]
        fields += [("user[]", "Anna"), ("user[]", "Boris")]
        response = await pbx.client.post(
            f"/webhooks/telephony/pbx?token={token}",
            files=[(name, (None, value)) for name, value in fields],
        )

        assert (response.status_code, response.json()) == (200, {})
        (journaled,) = await pbx.calls()
        assert journaled.details["users"] == ["Anna", "Boris"]
