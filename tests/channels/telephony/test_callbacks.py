"""Missed calls become callbacks: for the contact's owner (or whoever routing gives the
conversation), due in working time, overdue on a timer, closed by an answered call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from routing.calendar import WorkingHours
from tests.channels.telephony.conftest import CLIENT, PhoneHub

# Friday 4 December 2026, 17:50 in Moscow (UTC+3): ten minutes before the day ends.
FRIDAY_EVENING = datetime(2026, 12, 4, 14, 50, tzinfo=UTC)
NINE_TO_SIX = WorkingHours.weekdays_9_to_18().model_dump(mode="json")


async def missed(hub: PhoneHub, call_id: str, number: str = "+7 912 345-67-89") -> None:
    for event, extra in (("newCall", {}), ("hangup", {"cause": "cancel"})):
        response = await hub.generic(
            "pbx",
            event=event,
            callId=call_id,
            direction="in",
            to="+74951234567",
            **{"from": number},
            **extra,
        )
        assert response.status_code == 200, response.text


@pytest.fixture
async def pbx(hub: PhoneHub) -> PhoneHub:
    await hub.line("pbx", "generic", callback_minutes=30)
    return hub


class TestAcceptance:
    async def test_missed_call_and_later_form_land_on_one_contact_and_its_owner_calls_back(
        self, pbx: PhoneHub
    ) -> None:
        anna = await pbx.manager("anna")
        await pbx.queue("sales", [anna], lines=("pbx", "default"))

        await missed(pbx, "c-1", "+7 912 345-67-89")
        await pbx.drain()  # routing assigns the conversation; anna becomes the owner
        form = await pbx.client.post(
            "/forms/default",
            json={
                "name": "Иван Петров",
                "phone": "89123456789",
                "message": "Перезвоните мне",
                "consent": True,
            },
        )
        assert form.status_code == 201, form.text

        contact = await pbx.contact_of(CLIENT)
        assert form.json()["contact_id"] == contact.id  # one contact for both
        assert contact.owner_id == anna
        (task,) = await pbx.tasks()
        assert (task.kind, task.status, task.assignee_id) == ("callback", "open", contact.owner_id)
        assert (await pbx.events("task.assigned"))[0]["task_id"] == task.id

    async def test_the_owner_known_beforehand_gets_the_callback_at_once(
        self, pbx: PhoneHub
    ) -> None:
        olga = await pbx.manager("olga")
        form = await pbx.client.post(
            "/forms/default",
            json={"phone": "89123456789", "message": "Нужен счёт", "consent": True},
        )
        assert form.status_code == 201
        await pbx.set_owner(CLIENT, olga)

        await missed(pbx, "c-1")

        (task,) = await pbx.tasks()
        assert task.assignee_id == olga
        assert task.contact_id == form.json()["contact_id"]
        created = (await pbx.events("task.created"))[0]
        assert (created["assignee_id"], created["phone"]) == (olga, CLIENT)

    async def test_callbacks_of_conversations_routed_in_one_round_follow_each_ones_manager(
        self, pbx: PhoneHub
    ) -> None:
        anna = await pbx.manager("anna")
        boris = await pbx.manager("boris")
        await pbx.queue("sales", [anna, boris], lines=("pbx",))
        for n in range(1, 5):
            await missed(pbx, f"c-{n}", f"+7 912 000-00-0{n}")

        await pbx.drain()  # the assignments' events are handled together

        tasks = await pbx.tasks()
        assignees = {c.id: c.assignee_id for c in await pbx.conversations()}
        assert len(tasks) == 4
        assert {t.assignee_id for t in tasks} == {anna, boris}  # evenly: both got some
        for task in tasks:
            assert task.conversation_id is not None
            assert task.assignee_id == assignees[task.conversation_id]
        announced = await pbx.events("task.assigned")
        assert sorted((e["task_id"], e["assignee_id"]) for e in announced) == sorted(
            (t.id, t.assignee_id) for t in tasks
        )


class TestDueTime:
    async def test_counted_in_the_owners_working_hours(self, pbx: PhoneHub) -> None:
        olga = await pbx.manager("olga", working_hours=NINE_TO_SIX)
        form = await pbx.client.post(
            "/forms/default",
            json={"phone": "+7 912 000-00-01", "message": "Жду звонка", "consent": True},
        )
        assert form.status_code == 201
        await pbx.set_owner("+79120000001", olga)
        pbx.clock.now = FRIDAY_EVENING

        await missed(pbx, "c-1", "+7 912 000-00-01")
        await missed(pbx, "c-2", "8 912 000 00 01")  # adds to the open callback

        (task,) = await pbx.tasks()
        # 10 minutes on Friday, 20 on Monday morning (Moscow): 09:20 MSK = 06:20 UTC.
        assert task.due_at == datetime(2026, 12, 7, 6, 20, tzinfo=UTC)
        assert (task.assignee_id, task.count) == (olga, 2)

    async def test_the_lines_hours_count_when_nobody_is_responsible_yet(
        self, hub: PhoneHub
    ) -> None:
        await hub.line("pbx", "generic", callback_minutes=60, working_hours=NINE_TO_SIX)
        hub.clock.now = FRIDAY_EVENING

        await missed(hub, "c-1")

        (task,) = await hub.tasks()
        assert task.assignee_id is None
        assert task.due_at == datetime(2026, 12, 7, 6, 50, tzinfo=UTC)


class TestOverdue:
    async def test_the_timer_emits_task_overdue_once(self, pbx: PhoneHub) -> None:
        # Missed two hours ago (by the hub's clock), so it is overdue by the API's too.
        pbx.clock.now = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
        await missed(pbx, "c-1")
        pbx.clock.advance(29 * 60)
        await pbx.drain()
        assert await pbx.events("task.overdue") == []

        pbx.clock.advance(3 * 3600)
        await pbx.drain()
        await pbx.drain()

        (overdue,) = await pbx.events("task.overdue")
        (task,) = await pbx.tasks()
        assert overdue["task_id"] == task.id
        assert task.overdue_at == pbx.clock.now
        listed = await pbx.client.get("/api/v1/tasks?overdue=true", headers=pbx.headers)
        assert [t["id"] for t in listed.json()["items"]] == [task.id]
        assert listed.json()["items"][0]["overdue"] is True

    async def test_a_closed_callback_never_becomes_overdue(self, pbx: PhoneHub) -> None:
        await missed(pbx, "c-1")
        await pbx.generic("pbx", event="newCall", callId="c-2", **{"from": "89123456789"})
        await pbx.generic("pbx", event="answer", callId="c-2", **{"from": "89123456789"})

        pbx.clock.advance(timedelta(hours=2).total_seconds())
        await pbx.drain()

        assert await pbx.events("task.overdue") == []
        (task,) = await pbx.tasks()
        assert task.status == "done"
