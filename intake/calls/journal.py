"""The call journal: one call per provider call id, whatever order its events come in.

A phone system reports a call as a few events (ringing, answered, ended, a
recording). Providers repeat them, drop some and send them out of order (a hangup
before its answer). `record_call_event` applies one event to the call's row, locked
with the others of the transaction by `prepare_calls` (intake.calls.book), so that:

- the same event applied again changes nothing (one call, one message, one lead);
- a call first heard of through its answer or its end is created from that event;
- state moves forward only: ringing -> answered -> completed, ringing -> missed; an
  answer heard after the hangup turns a missed call into a completed one;
- the caller of an inbound call becomes a phone identity and a contact, and the call
  a message of the conversation kept open per caller number (which opens a lead).

Services flush, never commit; a concurrent first event of the same call shows up as
an IntegrityError at flush, and the boundary runs the event again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from intake.calls.book import CallBook, finish_calls, prepare_calls
from intake.calls.events import (
    AGENT_LENGTH,
    NUMBER_LENGTH,
    PROVIDER_CALL_ID_LENGTH,
    RECORDING_URL_LENGTH,
    CallChannel,
    CallEvent,
    CallEventKind,
    CallOutcome,
    EndCause,
    agent_of,
    blocklist_key,
    build_call,
    call_meta,
    call_text,
    client_number,
    client_side,
    contact_card,
    inbound_message,
    key_of,
    reject,
    start_of,
)
from intake.contacts import resolve_contact
from intake.identities import IdentityValue
from intake.ingest import IntakeConfig, ingest
from intake.ingest_repository import IntakeRepository
from storage.events import CallAnswered, CallEnded, CallRinging
from storage.models import (
    Call,
    CallDirection,
    CallState,
    Contact,
    IdentityKind,
    Message,
    MessageDirection,
    MessageStatus,
)
from storage.outbox import emit
from storage.types import utcnow

__all__ = [
    "AGENT_LENGTH",
    "NUMBER_LENGTH",
    "PROVIDER_CALL_ID_LENGTH",
    "CallBook",
    "CallChannel",
    "CallEvent",
    "CallEventKind",
    "CallOutcome",
    "EndCause",
    "blocklist_key",
    "call_payload",
    "call_text",
    "client_number",
    "finish_calls",
    "prepare_calls",
    "record_call_event",
]


async def record_call_event(
    session: AsyncSession,
    channel: CallChannel,
    event: CallEvent,
    config: IntakeConfig,
    book: CallBook,
    *,
    now: datetime | None = None,
) -> CallOutcome:
    """Apply one event to its call (created if new); idempotent, tolerant of order.

    Writes the events for what changed: `call.ringing` for a new call (and for phones
    rung later), `call.answered`, `call.ended`, each with the contact card and the
    managers concerned. `book` is the transaction's (see `prepare_calls`).
    """
    now = now or utcnow()
    at = event.at or now
    region = config.default_region
    key = key_of(channel, event)
    call = book.calls.get(key)
    outcome: CallOutcome
    if call is None:
        call = await _new_call(session, book, key, event, at, region)
        outcome = CallOutcome(call, created=True)
    elif key in book.fresh:
        book.fresh.discard(key)
        outcome = CallOutcome(call, created=True, lead_id=book.lead_ids.get(call.id))
    else:
        outcome = CallOutcome(call)
        _fill_in(call, event, config)
    before = _snapshot(call)

    if call.state != CallState.REJECTED:
        if call.contact_id is None and call.client_number is not None:
            outcome.lead_id, written = await _take_in(session, channel, call, config, at)
            if written is not None and call.message_id is not None:
                book.written[call.message_id] = written
        if event.kind is CallEventKind.ANSWERED:
            await _answered(book, call, event, at, outcome, region)
        elif event.kind is CallEventKind.ENDED:
            await _ended(book, call, event, at, outcome, region)
        elif event.kind is CallEventKind.RINGING:
            await _ringing_again(session, book, call, event, outcome)
        if call.direction == CallDirection.OUTBOUND and event.agent:
            await _identify(book, call, event, outcome, region)  # who placed the call
    if event.recording_url or event.recording_ref:
        _recording(call, event)
    if event.details:
        call.details = {**(call.details or {}), **event.details}
    _times(call)
    outcome.duplicate = not outcome.created and _snapshot(call) == before
    if call.message_id is not None and not outcome.duplicate:
        book.write_line(call.message_id, call_text(call, channel.language), call_meta(call))
    if outcome.created and call.state == CallState.RINGING:
        await _screen_pop(session, book, call, CallRinging, event.ringing)
    await _announce(session, book, outcome)
    return outcome


async def _new_call(
    session: AsyncSession,
    book: CallBook,
    key: tuple[int, str],
    event: CallEvent,
    at: datetime,
    region: str,
) -> Call:
    call = build_call(key, event, at, region)
    if call.direction == CallDirection.INBOUND:
        caller = blocklist_key(event.from_number, region)
        if caller is not None and await book.is_blocked(caller):
            reject(call, at)
    session.add(call)
    await session.flush()
    book.calls[key] = call
    return call


def _fill_in(call: Call, event: CallEvent, config: IntakeConfig) -> None:
    """A call first heard of without its numbers (a recording, say) learns them later."""
    if not call.from_number and event.from_number:
        call.from_number = event.from_number[:NUMBER_LENGTH]
    if not call.to_number and event.to_number:
        call.to_number = event.to_number[:NUMBER_LENGTH]
    if (
        event.direction is not None
        and event.direction != call.direction
        and call.message_id is None
        and call.contact_id is None
    ):
        call.direction = event.direction
    if call.client_number is None:
        call.client_number = client_number(
            client_side(CallDirection(call.direction), event), config.default_region
        )
    start = start_of(event)
    if start is not None and start < call.started_at:
        call.started_at = start  # a late ringing event knows when the call began
    if event.queue and not call.queue:
        call.queue = event.queue[:AGENT_LENGTH]


def _snapshot(call: Call) -> tuple[Any, ...]:
    return (
        call.state,
        call.contact_id,
        call.manager_id,
        call.agent,
        call.started_at,
        call.answered_at,
        call.ended_at,
        call.wait_seconds,
        call.talk_seconds,
        call.recording_url,
        call.recording_ref,
        call.client_number,
        call.from_number,
        call.to_number,
    )


async def _take_in(
    session: AsyncSession, channel: CallChannel, call: Call, config: IntakeConfig, at: datetime
) -> tuple[int | None, tuple[str, dict[str, Any]] | None]:
    """The caller becomes a contact; an inbound call a message of their conversation."""
    assert call.client_number is not None
    thread_key = f"phone:{call.client_number}"
    external_id = f"call:{call.provider_call_id}"
    text, meta = call_text(call, channel.language), call_meta(call)
    if call.direction == CallDirection.INBOUND:
        result = await ingest(session, inbound_message(channel, call), config)
        call.contact_id = result.contact_id
        call.conversation_id = result.conversation_id
        call.message_id = result.message_id
        return result.lead_id, (text, meta)
    # An outbound call opens nothing; it joins the client's open conversation if any.
    resolution = await resolve_contact(
        session, [IdentityValue(IdentityKind.PHONE, call.client_number)]
    )
    call.contact_id = resolution.contact.id
    intake = IntakeRepository(session)
    conversation = await intake.find_open_conversation(channel.id, thread_key)
    if conversation is not None:
        message = Message(
            conversation_id=conversation.id,
            channel_id=channel.id,
            external_id=external_id,
            direction=MessageDirection.EVENT,
            status=MessageStatus.RECEIVED,
            text=text,
            meta=meta,
        )
        session.add(message)
        conversation.last_message_at = at
        await session.flush()
        call.conversation_id = conversation.id
        call.message_id = message.id
        return await intake.lead_of_conversation(conversation.id), (text, meta)
    return None, None


async def _answered(
    book: CallBook,
    call: Call,
    event: CallEvent,
    at: datetime,
    outcome: CallOutcome,
    region: str,
) -> None:
    if call.state in (CallState.RINGING, CallState.MISSED) or call.answered_at is None:
        answered_at = event.answered_at or at
        if call.ended_at is not None and answered_at > call.ended_at:
            answered_at = call.ended_at  # heard after the hangup: it cannot be later than that
        if call.state == CallState.RINGING:
            call.state = CallState.ANSWERED
            outcome.answered_now = True
        elif call.state == CallState.MISSED:
            call.state = CallState.COMPLETED  # the hangup came first; it was answered after all
            call.end_reason = EndCause.NORMAL
            call.forwarded = False
            outcome.answered_now = True
        call.answered_at = answered_at
    await _identify(book, call, event, outcome, region)


async def _ended(
    book: CallBook,
    call: Call,
    event: CallEvent,
    at: datetime,
    outcome: CallOutcome,
    region: str,
) -> None:
    answered = event.answered is True or call.state == CallState.ANSWERED
    if call.state in (CallState.RINGING, CallState.ANSWERED):
        call.ended_at = max(at, call.started_at)
        outcome.ended_now = True
        if answered:
            if call.state == CallState.RINGING:
                outcome.answered_now = True
            call.state = CallState.COMPLETED
            call.end_reason = event.cause or EndCause.NORMAL
            if call.answered_at is None and event.answered_at is not None:
                call.answered_at = event.answered_at
        else:
            call.state = CallState.MISSED
            call.end_reason = event.cause or EndCause.NO_ANSWER
            call.forwarded = event.cause is EndCause.FORWARDED
            outcome.missed_now = (
                call.direction == CallDirection.INBOUND
                and not call.forwarded
                and call.end_reason != EndCause.BLOCKED
            )
    elif call.state == CallState.MISSED and event.answered is True:
        call.state = CallState.COMPLETED  # a repeated end that knows better
        call.end_reason = event.cause or EndCause.NORMAL
        call.forwarded = False
        outcome.answered_now = True
        if call.answered_at is None and event.answered_at is not None:
            call.answered_at = event.answered_at
    if event.talk_seconds is not None and call.state == CallState.COMPLETED:
        call.talk_seconds = max(0, int(event.talk_seconds))
        call.details = {**(call.details or {}), "talk_reported": True}
    if call.state == CallState.COMPLETED and event.agent:
        await _identify(book, call, event, outcome, region)


def _times(call: Call) -> None:
    """Waiting and talking times from the call's moments (a provider's talk time wins)."""
    if call.answered_at is not None:
        call.wait_seconds = _seconds(call.answered_at - call.started_at)
        if call.ended_at is not None and not (call.details or {}).get("talk_reported"):
            call.talk_seconds = _seconds(call.ended_at - call.answered_at)
    elif call.ended_at is not None and call.state == CallState.MISSED:
        call.wait_seconds = _seconds(call.ended_at - call.started_at)


def _seconds(span: timedelta) -> int:
    return max(0, int(span.total_seconds()))


async def _identify(
    book: CallBook, call: Call, event: CallEvent, outcome: CallOutcome, region: str
) -> None:
    """The manager the PBX names, matched by extension, SIP login, email or phone."""
    if call.manager_id is not None or not event.agent:
        return
    agent = agent_of(event.agent)
    phone = client_number(agent, region) if any(c.isdigit() for c in agent) else None
    manager_id = await book.manager_named(agent, phone)
    call.agent = agent
    if manager_id is not None:
        call.manager_id = manager_id
        outcome.manager_now = True


def _recording(call: Call, event: CallEvent) -> None:
    if event.recording_url and event.recording_url.lower().startswith(("https://", "http://")):
        call.recording_url = event.recording_url[:RECORDING_URL_LENGTH]
    if event.recording_ref:
        call.recording_ref = event.recording_ref[:PROVIDER_CALL_ID_LENGTH]


async def _ringing_again(
    session: AsyncSession,
    book: CallBook,
    call: Call,
    event: CallEvent,
    outcome: CallOutcome,
) -> None:
    """A repeated ring of a ringing call pops up only at phones not rung before."""
    if outcome.created or call.state != CallState.RINGING or not event.ringing:
        return
    rang = set((call.details or {}).get("rang", []))
    new = [agent for agent in event.ringing if agent not in rang]
    if new:
        await _screen_pop(session, book, call, CallRinging, tuple(new))


async def _screen_pop(
    session: AsyncSession,
    book: CallBook,
    call: Call,
    kind: type[CallRinging | CallAnswered],
    ringing: tuple[str, ...] = (),
) -> None:
    """`call.ringing` / `call.answered` with the contact card, for the managers concerned."""
    contact = await book.contact(call.contact_id)
    managers: set[int] = set()
    if contact is not None and contact.owner_id is not None:
        managers.add(contact.owner_id)
    conversation = await book.conversation(call.conversation_id)
    if conversation is not None and conversation.assignee_id is not None:
        managers.add(conversation.assignee_id)
    if ringing:
        managers.update(await book.managers_at(list(ringing)))
        rang = sorted({*(call.details or {}).get("rang", []), *ringing})
        call.details = {**(call.details or {}), "rang": rang}
    if call.manager_id is not None:
        managers.add(call.manager_id)
    emit(session, kind(**call_payload(call, contact), manager_ids=tuple(sorted(managers))))


def call_payload(call: Call, contact: Contact | None = None) -> dict[str, Any]:
    """The call as events carry it (the fields of storage.events.CallEvent)."""
    return {
        "call_id": call.id,
        "channel_id": call.channel_id,
        "direction": call.direction,
        "state": call.state,
        "from_": call.from_number,
        "to": call.to_number,
        "number": call.client_number,
        "contact_id": call.contact_id,
        "conversation_id": call.conversation_id,
        "manager_id": call.manager_id,
        "contact": contact_card(contact, call.client_number),
    }


async def _announce(session: AsyncSession, book: CallBook, outcome: CallOutcome) -> None:
    """The events for what this event changed: answered (screen pop) and ended."""
    call = outcome.call
    if outcome.answered_now and call.state == CallState.ANSWERED:
        await _screen_pop(session, book, call, CallAnswered)
    if outcome.ended_now or (outcome.answered_now and call.state == CallState.COMPLETED):
        contact = await book.contact(call.contact_id)
        emit(
            session,
            CallEnded(
                **call_payload(call, contact),
                wait_seconds=call.wait_seconds,
                talk_seconds=call.talk_seconds,
                end_reason=call.end_reason,
                forwarded=call.forwarded,
            ),
        )
