"""The rows a decision reads without the ORM: their fields are their entity's columns, and
what is set on them after reading is what `record` (or `save_pending`) writes."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime

from sqlalchemy import inspect

from routing.repository import ChannelRow, ContactRow, ConversationRow, DecisionRow, LeadRow


def _conversation() -> ConversationRow:
    return ConversationRow(
        id=7,
        contact_id=3,
        channel_id=1,
        status="open",
        routing_state="new",
        assignee_id=None,
        queue_id=None,
        priority="normal",
        tags=["vip"],
        waiting_reason=None,
        first_response_at=None,
        assigned_at=None,
        last_outbound_at=None,
    )


def test_every_field_is_a_column_of_the_entity() -> None:
    kinds: list[type[DecisionRow]] = [ConversationRow, ContactRow, ChannelRow, LeadRow]
    for kind in kinds:
        columns = set(inspect(kind.entity).column_attrs.keys())
        assert {f.name for f in fields(kind)} <= columns, kind
        assert [c.key for c in kind.columns()] == [f.name for f in fields(kind)]


def test_what_is_set_after_reading_is_pending_until_written() -> None:
    row = _conversation()
    assert row.pending() == {}
    row.priority = "high"
    row.tags.append("late")  # changed in place: still a change
    row.queue_id = None  # set to what it was: no change
    assert row.pending() == {"priority": "high", "tags": ["vip", "late"]}

    at = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    # What a decision writes may hold columns the row does not read (updated_at).
    row.written({"priority": "high", "assignee_id": 5, "assigned_at": at, "updated_at": at})
    assert row.pending() == {}
    assert (row.assignee_id, row.assigned_at, row.priority) == (5, at, "high")
    assert not hasattr(row, "updated_at")
