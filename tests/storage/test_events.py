"""The event catalogue: each topic's stored JSON is read back as its typed event and
written again key for key, in the shapes earlier versions wrote into outboxes."""

from __future__ import annotations

from typing import Any

import pytest

import storage.events as events
from storage.bus import BusMessage, InProcessBus, event_of, publish_event
from storage.events import (
    CATALOGUE,
    ClaimStatusChanged,
    ConversationOffered,
    Event,
    MessageReceived,
    PresenceChanged,
    SlaDue,
    TaskClosed,
    UnknownTopic,
    parse,
)

CALL: dict[str, Any] = {
    "call_id": 5,
    "channel_id": 2,
    "direction": "inbound",
    "state": "ringing",
    "from": "+74951234567",
    "to": "+74957654321",
    "number": "+74951234567",
    "contact_id": 9,
    "conversation_id": 11,
    "manager_id": None,
    "contact": {
        "id": 9,
        "name": "Иван",
        "company": None,
        "language": "ru",
        "owner_id": 3,
        "phone": "+74951234567",
    },
}
TASK: dict[str, Any] = {
    "task_id": 4,
    "kind": "callback",
    "status": "open",
    "assignee_id": None,
    "contact_id": 9,
    "conversation_id": 11,
    "call_id": 5,
    "phone": "+74951234567",
    "count": 2,
    "due_at": "2026-03-02T10:00:00+00:00",
}
CLAIM: dict[str, Any] = {
    "claim_id": 6,
    "number": "CLM-2026-000006",
    "contact_id": 9,
    "conversation_id": 11,
    "channel_id": 2,
}
REFS: dict[str, Any] = {"conversation_id": 11, "contact_id": 9, "channel_id": 2}
MESSAGE: dict[str, Any] = {"conversation_id": 11, "message_id": 40, "channel_id": 2}

# Payloads exactly as the code before the catalogue wrote them (dicts built by hand at
# each emit), one or more per topic.
STORED: list[tuple[str, dict[str, Any]]] = [
    ("channel.changed", {"channel_id": 2, "kind": "email"}),
    ("email.quarantined", {"channel_id": 2, "quarantine_id": 8, "reason": "too_large"}),
    ("contact.merge_suggested", {"contact_id": 9, "other_contact_id": 10}),
    (
        "contact.merged",
        {
            "contact_id": 9,
            "merged_contact_id": 10,
            "merge_id": 1,
            "conversation_ids": [3, 4],
            "manager_id": 2,
            "token_id": None,
        },
    ),
    ("contact.changed", {"contact_id": 9}),
    ("lead.created", {**REFS, "lead_id": 12, "source": "webform"}),
    (
        "lead.status_changed",
        {
            "lead_id": 12,
            "from": "new",
            "to": "qualified",
            "actor": {"manager_id": 3, "token_id": None},
        },
    ),
    ("conversation.opened", REFS),
    ("message.received", {**REFS, "message_id": 40, "continues": False}),
    ("message.received", {**REFS, "message_id": 41, "continues": True, "automatic": True}),
    ("conversation.closed", {"conversation_id": 11, "manager_id": 3, "closed_by": None}),
    (
        "conversation.snoozed",
        {
            "conversation_id": 11,
            "until": "2026-03-02T06:00:00+00:00",
            "manager_id": 3,
            "snoozed_by": 3,
        },
    ),
    ("conversation.snooze_due", {"conversation_id": 11, "until": "2026-03-02T06:00:00+00:00"}),
    ("conversation.snooze_ended", {"conversation_id": 11, "manager_id": 3}),
    ("conversation.pending", {"conversation_id": 11, "manager_id": None, "marked_by": 3}),
    (
        "conversation.reopened",
        {
            "conversation_id": 11,
            "from": "snoozed",
            "reason": "snooze_ended",
            "manager_id": 3,
            "reopened_by": None,
        },
    ),
    ("message.edited", MESSAGE),
    ("message.outbound", {**MESSAGE, "manager_id": 3}),
    ("message.outbound", {**MESSAGE, "manager_id": None}),
    ("message.note_added", {**MESSAGE, "manager_id": 3}),
    ("note.mentioned", {**MESSAGE, "manager_id": 4, "author_id": 3}),
    ("message.sent", MESSAGE),
    ("message.failed", {**MESSAGE, "reason": "550 no such user"}),
    ("message.delayed", {**MESSAGE, "reason": None}),
    (
        "conversation.assigned",
        {
            "conversation_id": 11,
            "manager_id": 3,
            "queue_id": None,
            "reason": "owner",
            "explanation": "the contact's responsible manager",
            "assignment_id": 30,
        },
    ),
    (
        "conversation.offered",
        {"conversation_id": 11, "queue_id": 1, "manager_ids": [3, 4], "assignment_id": 31},
    ),
    (
        "conversation.waiting",
        {"conversation_id": 11, "queue_id": None, "reason": "no queue", "assignment_id": 32},
    ),
    ("routing.retry", {"conversation_id": 11, "assignment_id": 32}),
    ("routing.retry", {"conversation_id": 11}),
    ("routing.forward_due", {"conversation_id": 11, "assignment_id": 30}),
    (
        "sla.due",
        {
            "conversation_id": 11,
            "kind": "first_response",
            "due_at": "2026-03-02T10:00:00+00:00",
            "assignment_id": 30,
        },
    ),
    (
        "sla.due",
        {"conversation_id": 11, "kind": "next_response", "due_at": "2026-03-02T10:00:00+00:00"},
    ),
    (
        "conversation.sla_clock",
        {"conversation_id": 11, "due_at": "2026-03-02T10:00:00+00:00", "at": "soon"},
    ),
    (
        "sla.breached",
        {
            "conversation_id": 11,
            "kind": "first_response",
            "due_at": "2026-03-02T10:00:00+00:00",
            "manager_id": 3,
            "queue_id": 1,
            "supervisor_id": None,
        },
    ),
    ("routing.queue_changed", {"queue_id": 1}),
    ("manager.presence_changed", {"manager_id": 3, "from": "offline", "to": "online"}),
    ("manager.capacity_changed", {"manager_id": 3}),
    (
        "notification.retry",
        {
            "notifier": "telegram",
            "notification": {
                "manager_id": 3,
                "kind": "assigned",
                "conversation_id": 11,
                "title_ru": "Новый разговор",
                "title_en": "New conversation",
                "data": {"queue": "Продажи"},
            },
        },
    ),
    ("claim.filed", CLAIM),
    (
        "claim.status_changed",
        {
            **CLAIM,
            "from": "registered",
            "to": "resolved",
            "manager_id": 3,
            "comment": None,
            "notify": True,
        },
    ),
    ("claim.step_added", {**CLAIM, "step_id": 14, "manager_id": None}),
    ("claim.step_done", {**CLAIM, "step_id": 14, "manager_id": 3}),
    ("claim.updated", {**CLAIM, "changed": {"manager_id": 3, "resolution": True}, "by": 3}),
    ("claim.rated", {**CLAIM, "conversation_id": None, "rating": 5}),
    ("call.ringing", {**CALL, "manager_ids": [3]}),
    ("call.answered", {**CALL, "state": "answered", "manager_id": 3, "manager_ids": [3]}),
    (
        "call.ended",
        {
            **CALL,
            "state": "completed",
            "contact": None,
            "wait_seconds": 4,
            "talk_seconds": 65,
            "end_reason": "normal",
            "forwarded": False,
        },
    ),
    ("telephony.number_blocked", {"number": "+74951234567", "manager_id": 3}),
    ("task.created", TASK),
    ("task.updated", TASK),
    ("task.assigned", {**TASK, "assignee_id": 3}),
    ("task.closed", {**TASK, "status": "done", "closed_by_call_id": 7}),
    ("task.closed", {**TASK, "status": "done", "closed_by_manager_id": 3}),
    ("task.closed", {**TASK, "status": "done", "closed_by_manager_id": None}),
    ("task.overdue", {**TASK, "overdue_at": "2026-03-02T10:00:05+00:00"}),
    ("task.due", {"task_id": 4, "due_at": "2026-03-02T10:00:00+00:00"}),
    ("task.due", {"task_id": 4, "due_at": None}),
]


def hub_catalogue() -> dict[str, type[Event]]:
    """The hub's own events (tests may declare more for the outbox's mechanics)."""
    return {topic: kind for topic, kind in CATALOGUE.items() if kind.__module__ == events.__name__}


class TestStoredShapes:
    def test_the_samples_cover_every_topic(self) -> None:
        assert {topic for topic, _ in STORED} == set(hub_catalogue())

    @pytest.mark.parametrize(("topic", "stored"), STORED, ids=[t for t, _ in STORED])
    def test_stored_json_reads_as_its_event_and_writes_back_the_same(
        self, topic: str, stored: dict[str, Any]
    ) -> None:
        event = parse(topic, stored)

        assert type(event) is CATALOGUE[topic]
        assert event.topic == topic
        assert event.payload() == stored

    def test_keys_that_are_python_words_are_fields_with_another_name(self) -> None:
        event = parse("manager.presence_changed", {"manager_id": 3, "from": "away", "to": "online"})

        assert event == PresenceChanged(manager_id=3, from_="away", to="online")

    def test_rows_written_before_a_key_existed_get_the_default_handlers_always_read(
        self,
    ) -> None:
        # message.received had no "continues" at first; claim notices had no "notify".
        received = parse("message.received", {**REFS, "message_id": 40})
        changed = parse(
            "claim.status_changed",
            {**CLAIM, "from": "registered", "to": "closed", "manager_id": 3, "comment": "ok"},
        )

        assert isinstance(received, MessageReceived)
        assert (received.continues, received.automatic) == (True, False)
        assert isinstance(changed, ClaimStatusChanged) and changed.notify is True

    def test_optional_keys_are_left_out_as_they_always_were(self) -> None:
        assert "assignment_id" not in SlaDue(conversation_id=1, kind="x", due_at="t").payload()
        assert "automatic" not in MessageReceived(**REFS, message_id=1, continues=True).payload()
        by_call = TaskClosed(**{**TASK, "status": "done"}, closed_by_call_id=7).payload()
        assert "closed_by_manager_id" not in by_call

    def test_lists_are_tuples_in_the_event_and_lists_in_the_json(self) -> None:
        event = parse("conversation.offered", {"conversation_id": 1, "manager_ids": [3, 4]})

        assert isinstance(event, ConversationOffered) and event.manager_ids == (3, 4)
        assert event.payload()["manager_ids"] == [3, 4]


class TestBadRows:
    def test_unknown_topic(self) -> None:
        with pytest.raises(UnknownTopic):
            parse("conversation.exploded", {"conversation_id": 1})

    @pytest.mark.parametrize(
        "payload",
        [
            {"manager_id": 3},  # no "to"
            {"manager_id": "three", "from": "away", "to": "online"},
            {"manager_id": True, "from": "away", "to": "online"},
            {"manager_id": 3, "from": "away", "to": 1},
        ],
    )
    def test_missing_or_mistyped_fields_are_refused(self, payload: dict[str, Any]) -> None:
        with pytest.raises((KeyError, TypeError, ValueError)):
            parse("manager.presence_changed", payload)

    def test_a_topic_is_declared_once(self) -> None:
        with pytest.raises(TypeError, match="declared twice"):

            class Again(Event, topic="conversation.opened"):
                pass


class TestBus:
    async def test_a_published_event_is_read_back_from_the_bus_with_its_id(self) -> None:
        bus = InProcessBus()
        stored = dict(STORED[1][1])
        event = parse("email.quarantined", stored)
        try:
            async with bus.subscribe("email.*") as subscription:
                await publish_event(bus, event, event_id=77)
                message = await subscription.get(5)
        finally:
            await bus.close()

        assert message is not None
        assert message.payload == {"event_id": 77, **stored}
        assert event_of(message) == event

    def test_other_messages_are_no_events(self) -> None:
        assert event_of(BusMessage("manager.7", {"type": "call.ringing"})) is None
        assert event_of(BusMessage("routing.queue_changed", {"queue": "x"})) is None
