"""Canned replies: prepared answers with the client's name, the request number and the
manager's name filled in for the conversation they are inserted into.

Shared replies (no owner) belong to the team and only administrators change them; a
manager's own replies are theirs. A shortcut is unique among the shared replies and among
each manager's own; a manager's own reply with a shared reply's shortcut comes first in
their list. A body may name only the known variables, checked when it is saved, so that a
reply never fails in front of a client.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from intake.inbox_repository import InboxRepository
from intake.journal_repository import JournalRepository
from storage.errors import Conflict, Forbidden, InvalidInput, NotFound
from storage.models import CannedReply, Manager

VARIABLES = ("client_name", "request_number", "manager_name")
MAX_BODY = 10_000
_SHORTCUT = re.compile(r"[\w\-]{1,64}")


@dataclass(frozen=True, slots=True)
class Editor:
    """Who changes canned replies: a manager (or an operator's token, with no manager)."""

    manager_id: int | None
    is_admin: bool


def check_body(body: str) -> str:
    """The body, if it names only known variables; InvalidInput(invalid_body) otherwise."""
    if not body.strip():
        raise InvalidInput("the reply is empty", code="invalid_body")
    if len(body) > MAX_BODY:
        raise InvalidInput(f"the reply is over {MAX_BODY} characters", code="invalid_body")
    try:
        fields = list(string.Formatter().parse(body))
    except ValueError as exc:
        raise InvalidInput(
            f"unbalanced braces: write {{{{ and }}}} for a brace ({exc})", code="invalid_body"
        ) from exc
    for _text, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in VARIABLES or spec or conversion:
            known = ", ".join("{" + variable + "}" for variable in VARIABLES)
            raise InvalidInput(
                f"unknown variable {{{name}}}: a reply may use {known}", code="invalid_body"
            )
    return body


def _check_shortcut(shortcut: str) -> str:
    shortcut = shortcut.strip().lstrip("/")
    if not _SHORTCUT.fullmatch(shortcut):
        raise InvalidInput("a shortcut is 1 to 64 letters, digits, - or _", code="invalid_shortcut")
    return shortcut


async def list_canned(
    session: AsyncSession, manager_id: int | None, prefix: str | None = None, limit: int = 50
) -> Sequence[CannedReply]:
    """The replies `manager_id` may insert, by shortcut, narrowed by what was typed after `/`."""
    return await InboxRepository(session).canned_replies(
        manager_id, prefix=(prefix or "").strip().lstrip("/") or None, limit=limit
    )


async def create_canned(
    session: AsyncSession,
    editor: Editor,
    *,
    shortcut: str,
    title: str,
    body: str,
    shared: bool,
) -> CannedReply:
    """A new reply: shared ones need an administrator; own ones need a manager."""
    owner_id = _owner(editor, shared)
    shortcut = _check_shortcut(shortcut)
    repo = InboxRepository(session)
    if await repo.shortcut_taken(owner_id, shortcut):
        raise Conflict(f"the shortcut /{shortcut} is taken", code="shortcut_taken")
    reply = CannedReply(
        owner_id=owner_id, shortcut=shortcut, title=_title(title), body=check_body(body)
    )
    session.add(reply)
    await session.flush()
    return reply


async def change_canned(
    session: AsyncSession,
    editor: Editor,
    reply_id: int,
    *,
    shortcut: str | None = None,
    title: str | None = None,
    body: str | None = None,
) -> CannedReply:
    reply = await _editable(session, editor, reply_id)
    if shortcut is not None:
        shortcut = _check_shortcut(shortcut)
        if await InboxRepository(session).shortcut_taken(
            reply.owner_id, shortcut, except_id=reply.id
        ):
            raise Conflict(f"the shortcut /{shortcut} is taken", code="shortcut_taken")
        reply.shortcut = shortcut
    if title is not None:
        reply.title = _title(title)
    if body is not None:
        reply.body = check_body(body)
    await session.flush()
    return reply


async def delete_canned(session: AsyncSession, editor: Editor, reply_id: int) -> None:
    reply = await _editable(session, editor, reply_id)
    await session.delete(reply)
    await session.flush()


async def render_canned(
    session: AsyncSession, manager_id: int | None, reply_id: int, conversation_id: int
) -> str:
    """The reply's text for this conversation, its variables filled in."""
    reply = await InboxRepository(session).canned_reply(reply_id)
    if reply is None or (reply.owner_id is not None and reply.owner_id != manager_id):
        raise NotFound(f"no canned reply {reply_id}")
    row = await JournalRepository(session).get_conversation_row(conversation_id)
    if row is None:
        raise NotFound(f"no conversation {conversation_id}")
    manager = await session.get(Manager, manager_id) if manager_id is not None else None
    values = {
        "client_name": row.contact_name or "",
        "request_number": str(row.lead_id) if row.lead_id is not None else "",
        "manager_name": manager.name if manager is not None else "",
    }
    return reply.body.format_map(values)


def _owner(editor: Editor, shared: bool) -> int | None:
    if shared:
        if not editor.is_admin:
            raise Forbidden("only an administrator keeps the shared replies", code="admin_required")
        return None
    if editor.manager_id is None:
        raise InvalidInput("an operator's token keeps only shared replies", code="shared_only")
    return editor.manager_id


def _title(title: str) -> str:
    title = title.strip()
    if not 1 <= len(title) <= 200:
        raise InvalidInput("a title is 1 to 200 characters", code="invalid_title")
    return title


async def _editable(session: AsyncSession, editor: Editor, reply_id: int) -> CannedReply:
    reply = await InboxRepository(session).canned_reply(reply_id)
    if reply is None or (reply.owner_id is not None and reply.owner_id != editor.manager_id):
        raise NotFound(f"no canned reply {reply_id}")
    if reply.owner_id is None and not editor.is_admin:
        raise Forbidden("only an administrator keeps the shared replies", code="admin_required")
    return reply
