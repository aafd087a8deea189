"""The workspace's reply composer: sending a reply (with files, through a chosen channel) or
a note (with @mentions), and the timeline's authorised attachment downloads.

The composer's helpers in the page (canned replies by `/`, managers by `@`) call the REST
API with the session cookie: GET /api/v1/canned-replies (and its `/text`, which fills the
variables on the server), GET /api/v1/mentionable-managers. A send goes through the same
service as POST /api/v1/conversations/{id}/messages (intake.conversations.add_reply).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

from channels.webform.pages import store_upload
from inbox.deps import ContextDep, ReadSessionDep
from intake.accounts import get_manager
from intake.composer import mention_ids, visible_attachment
from intake.conversations import add_reply
from intake.inbox import visible_conversation
from intake.schemas import AttachmentIn
from storage.errors import InvalidInput, PayloadTooLarge
from storage.types import DbId

from .common import ListPlaceForm, PagePrincipal, router, speaker, viewer_of

MAX_FILES = 20
# Pictures a browser shows inline; anything else is only ever downloaded.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


def megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.0f}" if size >= 1024 * 1024 else f"{size / (1024 * 1024):.2f}"


@router.post("/inbox/c/{conversation_id}/messages")
async def send(
    conversation_id: DbId,
    request: Request,
    context: ContextDep,
    principal: PagePrincipal,
    place: ListPlaceForm,
    text: Annotated[str, Form(max_length=100_000)] = "",
    kind: Annotated[str, Form(pattern="^(reply|note)$")] = "reply",
    channel_id: Annotated[str, Form(max_length=20)] = "",
    mentions: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """A reply (through the conversation's channel or the chosen `channel_id`, with files)
    or an internal note (never sent; its @mentions notify the managers named): the same
    service as POST /api/v1/conversations/{id}/messages. Back to the conversation beside
    the list it was opened from (the view in its order, or the search `q`)."""
    note = kind == "note"
    chosen = int(channel_id) if channel_id.isdigit() and len(channel_id) < 19 else None
    if channel_id and chosen is None:
        raise InvalidInput("channel_id is not a channel's id", code="unreachable_channel")
    # An empty file input comes as a part without a file name: not a file.
    uploads = [
        upload
        for upload in (await request.form()).getlist("files")
        if isinstance(upload, UploadFile) and upload.filename
    ]
    stored: list[AttachmentIn] = []
    async with context.db.read() as reading:
        await visible_conversation(reading, viewer_of(principal), conversation_id)
        if uploads and not note:
            stored = await _stored(request, context, reading, principal.manager_id, uploads)
    async with context.db.transaction() as session:
        await add_reply(
            session,
            conversation_id,
            text=text,
            manager_id=principal.manager_id,
            now=context.routing.clock(),
            note=note,
            attachments=stored,
            channel_id=None if note else chosen,
            mentions=mention_ids([mentions]) if note else (),
        )
    return RedirectResponse(place.conversation_url(conversation_id), status_code=303)


async def _stored(
    request: Request,
    context: ContextDep,
    session: ReadSessionDep,
    manager_id: int | None,
    uploads: list[UploadFile],
) -> list[AttachmentIn]:
    """The files in the blob store (before the transaction); a file over the limit, or too
    many files, refused in the manager's words."""
    limit = context.intake.reply_file_max_bytes
    words = speaker(request, await get_manager(session, manager_id) if manager_id else None)
    if len(uploads) > MAX_FILES:
        raise InvalidInput(words.t("composer.too_many_files", count=MAX_FILES), code="too_many")
    stored = []
    for upload in uploads:
        try:
            stored.append(await store_upload(context, upload, limit))
        except PayloadTooLarge as exc:
            raise PayloadTooLarge(
                words.t("composer.file_too_large", name=upload.filename, limit=megabytes(limit))
            ) from exc
    return stored


@router.get("/inbox/a/{attachment_id}")
async def attachment(
    attachment_id: DbId, principal: PagePrincipal, context: ContextDep, session: ReadSessionDep
) -> Response:
    """An attachment of a conversation the manager may see (404 otherwise): pictures shown
    in the browser, anything else downloaded, never run as a page."""
    found = await visible_attachment(session, viewer_of(principal), attachment_id)
    data = await context.blobs.get(found.sha256)
    disposition = "inline" if found.content_type in INLINE_TYPES else "attachment"
    ascii_name = found.filename.encode("ascii", "replace").decode().replace('"', "_")
    return Response(
        data,
        media_type=found.content_type if disposition == "inline" else "application/octet-stream",
        headers={
            "Content-Disposition": f'{disposition}; filename="{ascii_name}"; '
            f"filename*=UTF-8''{quote(found.filename, safe='')}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, no-store",
        },
    )
