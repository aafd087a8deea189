"""The reply composer's domain: which channels a reply can leave by, who a note mentions,
and which attachments a manager may download.

A reply leaves by the conversation's own channel when that channel can write back (email,
Telegram), or by another channel the contact is reachable in: their email address through a
mailbox, their Telegram through a bot they talk to. A web form or a phone call has no way
back of its own; with no email or Telegram known, the contact cannot be answered in writing
and `reply_routes` is empty.

Who a note mentions is decided here, never by the page: the active managers whose `@Name`
stands in its text, whatever ids the composer sent along.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from intake.composer_repository import ComposerRepository
from intake.inbox import visible_conversation
from intake.visibility import Viewer
from storage.errors import InvalidInput, NotFound
from storage.models import Attachment, Channel, ChannelKind, Message, MessageDirection

# The kinds of channel the hub can write to a client through.
WRITABLE = (ChannelKind.EMAIL.value, ChannelKind.TELEGRAM.value)
MENTION_SUGGESTIONS = 8


@dataclass(frozen=True, slots=True)
class ReplyRoute:
    """One way a reply can reach the client: a channel, and the address it goes to (None:
    where the client last wrote from in this conversation)."""

    channel_id: int
    kind: str
    title: str
    address: str | None
    own: bool


def _writable(channel: Channel) -> bool:
    # A managers' bot talks to managers, never to clients.
    return channel.kind in WRITABLE and channel.config.get("audience") != "managers"


async def reply_routes(session: AsyncSession, conversation_id: int) -> list[ReplyRoute]:
    """The ways a reply can leave, the conversation's own channel first; empty when the
    client cannot be answered in writing. NotFound for an unknown conversation."""
    repo = ComposerRepository(session)
    try:
        conversation, own = await repo.conversation_channel(conversation_id)
    except KeyError:
        raise NotFound(f"no conversation {conversation_id}") from None
    routes: list[ReplyRoute] = []
    if _writable(own) and own.is_active:
        routes.append(ReplyRoute(own.id, own.kind, own.title, None, True))
    identities = await repo.reachable_identities(conversation.contact_id, WRITABLE)
    for kind in WRITABLE:
        if kind == own.kind:
            continue
        address = next((value for k, value in identities if k == kind), None)
        if address is None:
            continue
        candidates = list(await repo.contact_channels(conversation.contact_id, kind))
        if kind == ChannelKind.EMAIL and not candidates:
            # Any mailbox can write to an address; a bot only to whoever started it.
            candidates = list(await repo.active_channels(kind))
        channel = next((c for c in candidates if _writable(c)), None)
        if channel is not None:
            routes.append(ReplyRoute(channel.id, kind, channel.title, address, False))
    return routes


async def reply_channel(
    session: AsyncSession, conversation_id: int, channel_id: int | None, own_channel_id: int
) -> int:
    """The channel a reply is stored and sent through: `channel_id` when it is one of the
    conversation's routes (InvalidInput `unreachable_channel` otherwise); without one, the
    conversation's own channel, or the first other route when its own cannot write back."""
    routes = await reply_routes(session, conversation_id)
    if channel_id is not None:
        if all(route.channel_id != channel_id for route in routes):
            raise InvalidInput(
                f"channel {channel_id} cannot reach this client", code="unreachable_channel"
            )
        return channel_id
    if routes and not any(route.own for route in routes):
        return routes[0].channel_id
    return own_channel_id


_MENTION_START = re.compile(r"(?:^|(?<=[\s(,;:]))@", re.UNICODE)


def _named_at(folded: str, start: int, name: str) -> bool:
    """Whether the whole `name` (folded) stands at `start` (not the start of a longer word)."""
    if not name or not folded.startswith(name, start):
        return False
    after = folded[start + len(name) : start + len(name) + 1]
    return not after or not (after.isalnum() or after == "_")


async def mentioned_managers(
    session: AsyncSession, text: str, suggested: Collection[int] = ()
) -> list[int]:
    """The active managers a note's text mentions by `@Name`, by id. At each `@` the longest
    name that stands there whole counts ("@Ирина Петрова" is not also "@Ирина").
    `suggested` (the ids the composer picked) only lets a name shared by several managers
    resolve to the picked one; an id whose name is not in the text mentions nobody."""
    if "@" not in text:
        return []
    by_name: dict[str, list[int]] = {}
    for manager_id, name in await ComposerRepository(session).active_managers():
        by_name.setdefault(name.casefold().strip(), []).append(manager_id)
    folded = text.casefold()
    found: set[int] = set()
    for match in _MENTION_START.finditer(folded):
        names = [name for name in by_name if _named_at(folded, match.end(), name)]
        if not names:
            continue
        ids = by_name[max(names, key=len)]
        picked = [manager_id for manager_id in ids if manager_id in suggested]
        found.update(picked or ids)
    return sorted(found)


@dataclass(frozen=True, slots=True)
class TextPart:
    """A piece of a note's text: plain, or an `@Name` that mentions a manager."""

    text: str
    mention: bool


def mention_parts(text: str, names: Collection[str]) -> list[TextPart]:
    """`text` cut into plain pieces and the `@Name`s of `names` in it, by the rule of
    `mentioned_managers` (at each `@` the longest whole name, in any case)."""
    folded_names = sorted({name.strip() for name in names if name.strip()}, key=len, reverse=True)
    parts: list[TextPart] = []
    done = 0
    for match in _MENTION_START.finditer(text):
        at = match.end()
        if at <= done:
            continue
        for name in folded_names:
            end = at + len(name)
            if text[at:end].casefold() != name.casefold():
                continue
            after = text[end : end + 1]
            if after and (after.isalnum() or after == "_"):
                continue
            if match.start() > done:
                parts.append(TextPart(text[done : match.start()], False))
            parts.append(TextPart(text[match.start() : end], True))
            done = end
            break
    if done < len(text):
        parts.append(TextPart(text[done:], False))
    return parts


async def note_mentions(session: AsyncSession, messages: Sequence[Message]) -> dict[int, list[str]]:
    """The names of the managers each note among `messages` mentions (its `meta.mentions`),
    by message id, for showing the `@Name`s (mention_parts); one query for all of them."""
    wanted: dict[int, list[int]] = {}
    for message in messages:
        if message.direction != MessageDirection.NOTE or not message.text:
            continue
        ids = (message.meta or {}).get("mentions")
        if isinstance(ids, list):
            wanted[message.id] = [i for i in ids if isinstance(i, int)]
    every = {manager_id for ids in wanted.values() for manager_id in ids}
    if not every:
        return {}
    # A manager deactivated since the note was written was mentioned all the same.
    names = dict(await ComposerRepository(session).active_managers(ids=every, inactive=True))
    found = {
        message_id: [names[i] for i in ids if i in names] for message_id, ids in wanted.items()
    }
    return {message_id: mentioned for message_id, mentioned in found.items() if mentioned}


async def mention_suggestions(
    session: AsyncSession, typed: str, limit: int = MENTION_SUGGESTIONS
) -> list[tuple[int, str]]:
    """Active managers whose name (or a word of it) starts with what was typed after `@`."""
    wanted = typed.strip().casefold()
    found = []
    for manager_id, name in await ComposerRepository(session).active_managers():
        words = name.casefold().split()
        if (
            not wanted
            or name.casefold().startswith(wanted)
            or any(word.startswith(wanted) for word in words)
        ):
            found.append((manager_id, name))
        if len(found) >= limit:
            break
    return found


async def visible_attachment(
    session: AsyncSession, viewer: Viewer, attachment_id: int
) -> Attachment:
    """An attachment of a conversation `viewer` may see; NotFound otherwise."""
    found = await ComposerRepository(session).attachment(attachment_id)
    if found is None:
        raise NotFound(f"no attachment {attachment_id}")
    attachment, conversation_id = found
    await visible_conversation(session, viewer, conversation_id)
    return attachment


def mention_ids(values: Sequence[str]) -> list[int]:
    """The ids in the composer's hidden field ("3,7"), ignoring what is not a number."""
    ids = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if part.isdigit() and len(part) < 19:
                ids.append(int(part))
    return ids
